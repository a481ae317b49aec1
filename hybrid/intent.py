"""Instruction text -> Request: a pure, offline, rule-based parser, and the merge of every source.

``parse_instruction("shrink this to 20mb for discord, no audio")`` returns an :class:`Intent`: what the
text asked for, in the user's terms (a relative size stays a fraction until the input's size is
known). :func:`build_request` merges explicit options, the instruction, a profile and the defaults,
in that order of precedence, into a :class:`~hybrid.models.Request` whose ``sources`` says where each
setting came from.

How the parser works: the text is normalised (NFKC folds full-width characters, number words become
digits, in English and Chinese), then each kind of phrase is matched by its own patterns, most
specific first, and blanked out once matched so that a later pattern cannot read it again ("first 30
seconds" is a trim, so its "30" is never a size). Filler around the understood phrases is ignored.
Two different answers for the same setting ("under 50MB ... max 25MB"), or nothing understood at
all, raise :class:`~hybrid.errors.IntentError` rather than a guess.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import IntentError
from .models import AudioChoice, Codec, Request, Source
from .profiles import Profile, alias_table

Quality = Literal["visually-lossless", "high", "balanced", "small"]
QUALITY_LEVELS: tuple[Quality, ...] = ("visually-lossless", "high", "balanced", "small")

# The bundled profiles' names and aliases (the CLI passes the table built from the loaded profiles,
# user ones included; a test keeps this copy equal to the bundled files).
DEFAULT_ALIASES: Mapping[str, str] = {
    "discord": "discord",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "gmail": "email",
    "outlook": "email",
    "邮件": "email",
    "邮箱": "email",
    "instagram": "instagram",
    "insta": "instagram",
    "ig": "instagram",
    "instagram reel": "instagram",
    "reel": "instagram",
    "reels": "instagram",
    "ins": "instagram",
    "slack": "slack",
    "telegram": "telegram",
    "tg": "telegram",
    "电报": "telegram",
    "tiktok": "tiktok",
    "tik tok": "tiktok",
    "抖音": "tiktok",
    "twitter": "twitter",
    "x": "twitter",
    "tweet": "twitter",
    "推特": "twitter",
    "whatsapp": "whatsapp",
    "whats app": "whatsapp",
    "wa": "whatsapp",
    "youtube": "youtube",
    "yt": "youtube",
    "油管": "youtube",
}

HELP = (
    'say a size ("under 25MB", "half the size"), a resolution ("720p"), a platform ("for Discord"), '
    '"remove the audio", a trim ("first 30 seconds") or a quality ("best quality")'
)


@dataclass(frozen=True)
class Intent:
    """What an instruction asked for. ``None`` means the text did not say.

    ``target_fraction`` is a size relative to the input ("half the size" is 0.5); ``keep_resolution``
    is "same resolution" (no size limit on the picture, even one a profile would set). ``phrases``
    lists what was understood, in the words of the text.
    """

    target_size_bytes: int | None = None
    target_fraction: float | None = None
    max_height: int | None = None
    max_width: int | None = None
    keep_resolution: bool = False
    fps: float | None = None
    codec: Codec | None = None
    container: Literal["mp4"] | None = None
    audio: AudioChoice | None = None
    quality: Quality | None = None
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    profile: str | None = None
    phrases: tuple[str, ...] = field(default=(), compare=False)


# -- normalisation ---------------------------------------------------------------------------------

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}  # fmt: skip
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TENS, "hundred", "a"], key=len, reverse=True))
_NUMBER_WORDS_RE = re.compile(
    rf"\b(?:(?:{_NUMBER_WORD})(?:[\s-]+(?:and[\s-]+)?)?)*(?:{'|'.join([*_UNITS, *_TENS, 'hundred'])})\b"
)


def _words_to_number(words: str) -> int | None:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", words):
        if word in ("and", ""):
            continue
        if word == "a":
            current = max(current, 1)
        elif word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            return None
    return total + current


def _replace_number_words(text: str) -> str:
    def sub(match: re.Match[str]) -> str:
        phrase = match.group(0)
        value = _words_to_number(phrase)
        if value is None:
            return phrase
        # keep a leading "a" that is an article ("a ten second clip"), not part of the number
        if phrase.startswith("a ") and not re.match(r"a[\s-]+hundred", phrase):
            return "a " + str(_words_to_number(phrase[2:]))
        return str(value)

    return _NUMBER_WORDS_RE.sub(sub, text)


_ZH_DIGITS = {
    "零": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
# Chinese numerals are converted only before a unit: "一半" (half) and "一下" (a bit) are not numbers.
_ZH_NUMBER_RE = re.compile(
    r"[零一二两三四五六七八九十百千]+(?=\s*(?:兆|秒|分钟|分|帧|小时|倍|mb|m|g|k|%|p|fps))"
)


def _zh_to_number(text: str) -> int:
    total, current = 0, 0
    for char in text:
        if char in _ZH_DIGITS:
            current = _ZH_DIGITS[char]
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        elif char == "百":
            total += (current or 1) * 100
            current = 0
        elif char == "千":
            total += (current or 1) * 1000
            current = 0
    return total + current


_PUNCTUATION = str.maketrans("，。：、～–", ",.:,~-")
_ZH_PERCENT_RE = re.compile(r"百分之([零一二两三四五六七八九十百]+|\d+(?:\.\d+)?)")


def _zh_or_digits(text: str) -> str:
    return text if text[0].isdigit() else str(_zh_to_number(text))


def normalise(text: str) -> str:
    """Lower case, full-width folded, Chinese punctuation to ASCII, number words to digits."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.translate(_PUNCTUATION)
    text = _ZH_PERCENT_RE.sub(lambda m: f"{_zh_or_digits(m.group(1))}%", text)
    text = _ZH_NUMBER_RE.sub(lambda m: str(_zh_to_number(m.group(0))), text)
    return _replace_number_words(text)


# -- the scanner -----------------------------------------------------------------------------------


class _Scan:
    """The working text plus what has been found; matched spans are blanked so they are read once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.found: dict[str, list[tuple[Any, str]]] = {}
        self.plain = False  # a plain request ("compress", "make it smaller") was recognised

    def take(self, pattern: re.Pattern[str], handle: Callable[[re.Match[str]], None]) -> None:
        for match in list(pattern.finditer(self.text)):
            # a span blanked by an earlier match in this same loop is no longer there
            if self.text[match.start() : match.end()] != match.group(0):
                continue
            handle(match)
            self.blank(match.start(), match.end())

    def blank(self, start: int, end: int) -> None:
        self.text = self.text[:start] + " " * (end - start) + self.text[end:]

    def add(self, name: str, value: Any, phrase: str) -> None:
        self.found.setdefault(name, []).append((value, phrase.strip()))

    def add_wanted(self, name: str, value: Any, match: re.Match[str]) -> None:
        """Add a setting unless the words around it describe the input ("this 4k video", "the file is
        200MB", "recorded at 60fps"): those say what the user has, not what they want."""
        before = self.text[max(0, match.start() - 30) : match.start()]
        after = self.text[match.end() : match.end() + 20]
        if _SOURCE_BEFORE_RE.search(before) or _SOURCE_AFTER_RE.match(after):
            self.add("described", value, match.group(0))
        else:
            self.add(name, value, match.group(0))


# Words that make a size, resolution or frame rate a description of the input, not a wish.
_SOURCE_BEFORE_RE = re.compile(
    r"(?:\b(?:this|my|our|its|it'?s|is|was|are|original(?:ly)?|currently|source)\s+|"
    r"\b(?:recorded|shot|filmed|captured)(?:\s+[\w.]+){0,3}?\s+(?:in|at)\s+|"
    r"(?:这个|原来是|原视频是?|原始|我的))$"
)
_SOURCE_AFTER_RE = re.compile(
    r"\s*(?:videos?|clips?|footage|recordings?|files?|movies?|source|originals?|input|的?视频|的?原片|的?文件)"
    r"(?![a-z0-9])"
)


_NUM = r"(\d+(?:[.,]\d+)?|\.\d+)"
# A number starts here, not inside a word or another number (Chinese characters may touch it: "到50").
_NOT_BEFORE = r"(?<![a-z0-9.])"
_SIZE_UNITS: dict[str, int] = {
    "b": 1, "byte": 1, "bytes": 1,
    "k": 10**3, "kb": 10**3, "kbyte": 10**3, "kbytes": 10**3, "kilobyte": 10**3, "kilobytes": 10**3,
    "m": 10**6, "mb": 10**6, "meg": 10**6, "megs": 10**6, "mbyte": 10**6, "mbytes": 10**6,
    "megabyte": 10**6, "megabytes": 10**6, "兆": 10**6, "兆字节": 10**6, "mb字节": 10**6, "m字节": 10**6,
    "g": 10**9, "gb": 10**9, "gig": 10**9, "gigs": 10**9, "gigabyte": 10**9, "gigabytes": 10**9,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "kibibytes": 2**10, "mebibytes": 2**20, "gibibytes": 2**30,
}  # fmt: skip
_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _SIZE_UNITS), key=len, reverse=True))
# Bare k/m/g are sizes only after a size cue ("under 800k"); elsewhere "4k" is a resolution and "5m"
# could be minutes.
_BARE = {"k", "m", "g"}
_SIZE_CUE = (
    r"(?:under|below|less\s+than|smaller\s+than|no\s+(?:more|bigger|larger)\s+than|not\s+(?:more|bigger|"
    r"larger)\s+than|at\s+most|max(?:imum)?|up\s+to|fit\s+(?:in(?:to)?|within|under)|within|<=?|≤|"
    r"target(?:\s+(?:of|size))?|to|压缩到|压到|控制在|不超过|小于|低于|不大于|到)"
)
_SIZE_RE = re.compile(
    rf"(?:({_SIZE_CUE})\s*(?:about|around|roughly|approximately|approx\.?|~)?\s*)?{_NOT_BEFORE}{_NUM}\s*"
    rf"({_UNIT_ALT})(?![a-z/]|ps)\s*(?:以下|以内|之内|内)?"
)
_BITRATE_RE = re.compile(rf"{_NOT_BEFORE}{_NUM}\s*(?:k|m|g)?(?:bps|b/s|bit/s|bits?\s+per\s+second)")
_SIZE_NO_UNIT_RE = re.compile(
    r"(?:under|below|less\s+than|smaller\s+than|at\s+most|no\s+more\s+than|fit\s+in(?:to)?|"
    r"压缩到|不超过|小于|低于)\s*(\d+(?:\.\d+)?)(?!\s*(?:[a-z%:\d.]|兆|秒|分|帧|小时|倍))"
)

_FRACTION_WORDS = {"half": 0.5, "a half": 0.5, "a third": 1 / 3, "third": 1 / 3, "one third": 1 / 3,
                   "a quarter": 0.25, "quarter": 0.25, "one quarter": 0.25, "a fourth": 0.25}  # fmt: skip
_FRACTION_RE = re.compile(
    r"\b(?:(?:to|into|at)\s+)?(half|a\s+half|a\s+third|third|a\s+quarter|quarter|a\s+fourth)\s+"
    r"(?:of\s+)?(?:the|its|it'?s|their)?\s*(?:original\s+|current\s+|file\s+)?(?:size|file\s*size|as\s+big)"
    r"|\b(?:by|in)\s+(half)\b|\bhalve\b(?:\s+(?:the|its)\s+(?:file\s*)?size)?|\b(half)[\s-]size[d]?\b"
)
_PERCENT = rf"{_NOT_BEFORE}{_NUM}\s*(?:%|percent|per\s+cent)"
_REDUCE_BY_RE = re.compile(
    rf"(?:(?:compress|reduce|shrink|cut|decrease|lower|trim|make\s+it|shrunk|reduced)\w*\s+"
    rf"(?:(?:it|this|the\s+(?:file|video|size|file\s*size)|file\s*size|size|the\s+video'?s?\s+size)\s+)?by\s+"
    rf"{_PERCENT})|(?:{_PERCENT}\s+(?:smaller|less|lighter|reduction|off))|(?:(?:缩小|减小|减少|降低|压缩|减)"
    rf"(?:了)?{_PERCENT})"
)
_PERCENT_OF_RE = re.compile(
    rf"(?:{_PERCENT}\s+of\s+(?:the|its|it'?s)?\s*(?:original\s+|current\s+)?(?:size|file\s*size|original))|"
    rf"(?:(?:to|down\s+to)\s+{_PERCENT})|(?:(?:压缩到|缩小到|减小到|压到|变为|变成|到)(?:原来的|原大小的|原始大小的)?"
    rf"{_PERCENT})"
)
_BARE_PERCENT_RE = re.compile(rf"(?:\w+\s+)?{_PERCENT}")
_TIMES_SMALLER_RE = re.compile(rf"{_NOT_BEFORE}{_NUM}\s*(?:x|times)\s+(?:smaller|less|lighter)|缩小{_NUM}倍")
_ZH_HALF_RE = re.compile(r"(?:原来的|原大小的|原始的)?一半(?:大小)?|减半|压缩一半|小一半")

_CLOCK = r"\d+:\d{2}(?::\d{2})?(?:\.\d+)?"
_DUR_UNIT = r"(?:seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|秒钟|秒|分钟|分|小时)"
_DUR = rf"(?:{_CLOCK}|{_NOT_BEFORE}\d+(?:\.\d+)?\s*{_DUR_UNIT}(?![a-z])|(?:a\s+|one\s+)?(?:minute|hour)\b)"
_START_WORDS = r"(?:from|starting\s+(?:at|from)|start\s+(?:at|from)|beginning\s+at|从)"
_TRIM_RANGE_RE = re.compile(
    rf"(?:{_START_WORDS}|between)?\s*({_DUR}|{_NOT_BEFORE}\d+(?:\.\d+)?)\s*(?:to|until|till|through|and|-|~|到|至)\s*"
    rf"({_DUR})(?:\s*之间)?"
)
_TRIM_FIRST_RE = re.compile(
    rf"(?:(?:keep|only|just)\s+)?(?:the\s+)?(?:first|opening|前|开头|开始的?|头)\s*({_DUR})"
    rf"|(?:trim|cut|shorten|clip|crop)\s+(?:it|this|the\s+video|the\s+clip)?\s*(?:down\s+)?to\s+(?:the\s+first\s+)?"
    rf"({_DUR})|只要前({_DUR})|截取前({_DUR})"
)
_CUT_START_RE = re.compile(
    rf"(?:cut|remove|drop|skip|trim|delete|lose|chop|strip|without)\s+(?:off\s+)?(?:the\s+)?"
    rf"(?:first|opening|beginning)\s*({_DUR})(?:,?\s*(?:and|&)\s+(?:the\s+)?(?:last|final|end)\s*({_DUR}))?|(?:去掉|去除|删掉|删除|剪掉|跳过|不要)(?:前|开头|开始的?|头)\s*({_DUR})(?:\s*(?:和|及|与|,)\s*(?:最后|结尾|末尾)\s*({_DUR}))?"
)
_CUT_END_RE = re.compile(
    rf"(?:cut|remove|drop|skip|trim|delete|lose|chop|strip|without)\s+(?:off\s+)?(?:the\s+)?"
    rf"(?:last|final|ending|end)\s*({_DUR})|(?:去掉|去除|删掉|删除|剪掉|不要)(?:最后|结尾|末尾|后)\s*({_DUR})"
)
_LAST_RE = re.compile(rf"(?:(?:keep|only|just)\s+)?(?:the\s+)?(?:last|final)\s*({_DUR})|(?:最后|后)({_DUR})")
_START_AT_RE = re.compile(rf"{_START_WORDS}\s*({_DUR})(?:\s*开始)?(?:\s+on(?:wards)?)?")

_FPS_RE = re.compile(
    rf"{_NOT_BEFORE}{_NUM}\s*(?:fps|frames?\s*(?:per|a|/)\s*s(?:ec(?:ond)?)?|frame\s*rate|帧每秒|帧/秒|帧|hz)(?![a-z])"
    rf"|(?:frame\s*rate|framerate|帧率)\s*(?:of|to|at|=|:|为|改为|设为)?\s*{_NUM}(?:\s*fps)?"
)
_RES_FPS_RE = re.compile(r"(?<![a-z0-9.])(\d{3,4})p(24|25|30|48|50|60|120)(?![a-z0-9])")
_RES_BOX_RE = re.compile(r"(?<![a-z0-9.])(\d{3,4})\s*[x×*]\s*(\d{3,4})(?![a-z0-9])")
_RES_P_RE = re.compile(r"(?<![a-z0-9.])(\d{3,4})\s*p(?![a-z])")
_RES_NAMED: dict[str, int] = {
    "8k": 4320, "4k": 2160, "uhd": 2160, "ultra hd": 2160, "2k": 1440, "qhd": 1440, "full hd": 1080,
    "fullhd": 1080, "fhd": 1080, "hd": 720, "sd": 480, "超高清": 2160, "全高清": 1080, "蓝光": 1080,
    "超清": 1080, "高清": 720, "标清": 480,
}  # fmt: skip
_RES_NAMED_RE = re.compile(
    r"(?<![a-z0-9])(8k|4k|uhd|ultra\s+hd|2k|qhd|full\s*hd|fhd|hd|sd)(?![a-z0-9])|(超高清|全高清|蓝光|超清|高清|标清)"
    r"(?!画质|质量|晰)"
)
_RES_NUMBERS = {4320, 2160, 1440, 1080, 720, 576, 540, 480, 360, 240, 144}
_RES_BARE_RE = re.compile(
    r"(?:(?:to|at|in|resolution(?:\s+(?:of|to))?|res|分辨率(?:为|改为|设为)?|under|below|max)\s*)(\d{3,4})(?![\w.%:])"
)
_SAME_RES_RE = re.compile(
    r"(?:same|original|full|current|native)\s+(?:resolution|res|size\s+picture|dimensions)"
    r"|(?:keep|don'?t\s+change|do\s+not\s+change|don'?t\s+touch|without\s+changing|maintain|preserve)\s+"
    r"(?:the\s+)?(?:original\s+)?(?:resolution|dimensions)|(?:no|without)\s+(?:downscal|resiz|scal)\w*"
    r"|保持分辨率|原分辨率|分辨率不变|不改变分辨率|不要降低分辨率|保持原分辨率"
)
_ORIENTATION_RE = re.compile(r"\b(?:vertical|portrait|landscape|horizontal|9:16|16:9)\b|竖屏|横屏|竖版|横版")

_CODEC_RE = re.compile(
    r"(?<![a-z0-9])(?:(h\.?\s?264|x264|avc)|(h\.?\s?265|x265|hevc)|(av1|av-1))(?![a-z0-9])"
)
_OTHER_FORMAT_RE = re.compile(
    r"(?:to|into|as|export(?:\s+(?:it|as|to))?|output|导出|转成|转为|转换为|转换成)\s*(?:an?\s+)?(?:\.)?"
    r"(webm|mkv|avi|mov|gif|vp9|vp8|wmv|flv|prores|mpeg-?2)(?![a-z0-9])"
)
_MP4_RE = re.compile(r"(?<![a-z0-9])\.?mp4(?![a-z0-9])")

_LOSSLESS_RE = re.compile(
    r"(?:without|no|zero|minimal|w/o|with\s+no)\s+(?:any\s+|visible\s+|noticeable\s+|much\s+)?"
    r"(?:loss\s+(?:of|in)\s+quality|quality\s+loss|losing\s+(?:any\s+|much\s+)?(?:of\s+the\s+)?quality|"
    r"visible\s+loss|quality\s+drop|loss)"
    r"|(?:visually\s+)?lossless|(?:keep|preserve|maintain|retain|same|original|full)\s+"
    r"(?:the\s+)?(?:same\s+|original\s+|full\s+)?quality|quality\s+(?:intact|unchanged|the\s+same)"
    r"|(?:不损失|不降低|不影响|保持|不损|不丢失|保留)(?:原有?的?)?(?:画质|质量|清晰度)|画质不变|画质无损|无损|画质(?:不要|别|不能|不)(?:降低|损失|变差|下降)"
)
_HIGH_RE = re.compile(
    r"(?:best|highest|high|great|good|top|max(?:imum)?|very\s+good|excellent)\s+(?:possible\s+)?(?:quality|"
    r"image\s+quality|picture\s+quality)|(?:quality|look)\s+(?:as\s+)?(?:good|high)\s+as\s+possible"
    r"|高画质|高质量|最好画质|画质最好|最佳画质|画质优先|高清晰度|清晰度优先"
)
_BALANCED_RE = re.compile(
    r"good\s+enough|(?:decent|reasonable|ok(?:ay)?|acceptable|normal|standard|medium|average|fine|"
    r"balanced)\s+quality|balanced|一般画质|画质一般|均衡|平衡|中等画质"
)
_SMALL_RE = re.compile(
    r"(?:as\s+)?small\s+as\s+(?:possible|it\s+(?:can|gets)|you\s+can)|smallest(?:\s+(?:possible|file|size))*"
    r"|(?:max(?:imum)?|maximal|extreme|heavy|aggressive|strongest|highest)\s+compression"
    r"|compress\s+(?:it\s+|this\s+)?(?:as\s+much\s+as\s+possible|to\s+the\s+max|hard)|tiny|lowest\s+size"
    r"|low\s+quality|quality\s+doesn'?t\s+matter|don'?t\s+care\s+about\s+(?:the\s+)?quality"
    r"|最小|尽量小|尽可能小|越小越好|最大压缩|极限压缩|最大程度压缩|画质无所谓"
)

_AUDIO_REMOVE_RE = re.compile(
    r"(?:remove|strip|drop|delete|kill|lose|cut|take\s+out|get\s+rid\s+of|without|no|mute|turn\s+off|disable)"
    r"\s+(?:the\s+|any\s+|all\s+)?(?:audio(?:\s+track)?|sound|music|soundtrack)|\bmute[d]?\b|\bsilent\b"
    r"|audio\s+(?:off|removed)|sound\s+off|\bno-audio\b|\bvideo\s+only\b"
    r"|去掉声音|去除声音|去掉音频|去除音频|删除音频|删除声音|删掉声音|静音|不要声音|不要音频|无声|去声音|去掉音轨|去音频|消音"
)
_AUDIO_KEEP_RE = re.compile(
    r"(?:keep|with|preserve|maintain|retain)\s+(?:the\s+)?(?:audio|sound)|保留声音|保留音频|保持声音|带声音"
)

_PLAIN_RE = re.compile(
    r"\b(?:compress\w*|shrink\w*|smaller|reduce\w*|export\w*|convert\w*|encode|re-?encode|transcode\w*|"
    r"optimi[sz]e\w*|squeeze\w*|downsiz\w*|resiz\w*|lighter|make\s+it\s+small\w*|small\w*|size\s+down|"
    r"minimi[sz]e\w*|trim|cut)\b"
    r"|压缩|导出|转换|转码|缩小|变小|减小|弄小|优化|输出|处理"
)


def _bytes(number: str, unit: str) -> int:
    return math.floor(float(number.replace(",", ".")) * _SIZE_UNITS[unit])


def _duration_s(text: str) -> float:
    text = text.strip()
    if ":" in text:
        parts = [float(p) for p in text.split(":")]
        seconds = 0.0
        for part in parts:
            seconds = seconds * 60 + part
        return seconds
    match = re.match(r"(?:a\s+|one\s+)?(minute|hour)$", text)
    if match:
        return 60.0 if match.group(1) == "minute" else 3600.0
    match = re.match(r"(\d+(?:\.\d+)?)\s*(\D*)$", text)
    if not match:
        raise ValueError(text)
    value, unit = float(match.group(1)), match.group(2).strip()
    if unit.startswith(("h", "小时")):
        return value * 3600
    if unit.startswith(("m", "分")):
        return value * 60
    return value


def _aliases_re(aliases: Mapping[str, str]) -> re.Pattern[str]:
    parts = []
    for alias in sorted(aliases, key=len, reverse=True):
        escaped = re.escape(alias).replace(r"\ ", r"\s+")
        if alias.isascii() and len(alias) <= 3:
            # "x", "wa", "ig": only after "for/on/to", or "x" is every "1920x1080"
            parts.append(
                rf"(?:(?<=for\s)|(?<=on\s)|(?<=to\s)|(?<=via\s)|(?<=into\s))(?:{escaped})(?![a-z0-9])"
            )
        elif alias.isascii():
            parts.append(rf"(?<![a-z0-9])(?:{escaped})(?![a-z0-9])")
        else:
            parts.append(escaped)
    return re.compile("|".join(parts)) if parts else re.compile(r"(?!x)x")


_ALIAS_CACHE: dict[tuple[tuple[str, str], ...], re.Pattern[str]] = {}


def _platform_re(aliases: Mapping[str, str]) -> re.Pattern[str]:
    key = tuple(sorted(aliases.items()))
    if key not in _ALIAS_CACHE:
        _ALIAS_CACHE[key] = _aliases_re(aliases)
    return _ALIAS_CACHE[key]


def parse_instruction(text: str, *, aliases: Mapping[str, str] | None = None) -> Intent:
    """Understand an instruction; raise IntentError when it is unclear or contradicts itself.

    ``aliases`` maps platform words to profile names (default: the bundled profiles'). Pure, offline,
    well under a millisecond for a sentence.
    """
    original = " ".join(text.split())
    if not original:
        raise IntentError(f"the instruction is empty: {HELP}")
    scan = _Scan(f" {normalise(original)} ")
    table = DEFAULT_ALIASES if aliases is None else {k.lower(): v for k, v in aliases.items()}

    def unsupported(match: re.Match[str]) -> None:
        raise IntentError(
            f"hybrid writes MP4 (H.264, HEVC or AV1), not {match.group(1).upper()}: "
            f'drop "{match.group(0).strip()}" or ask for MP4'
        )

    # Bitrates first, so "2 Mbps" is never read as a 2 MB size; they are not something we take.
    scan.take(_BITRATE_RE, lambda m: scan.add("bitrate", m.group(0), m.group(0)))
    scan.take(_OTHER_FORMAT_RE, unsupported)

    # Trims, before sizes: "first 30 s" and "0:10 to 1:20" hold numbers that are not sizes.
    scan.take(_TRIM_RANGE_RE, lambda m: _trim_range(scan, m))
    scan.take(_CUT_START_RE, lambda m: _cut_start(scan, m))
    scan.take(_CUT_END_RE, lambda m: scan.add("trim_end_s", -_duration_s(_group(m)), m.group(0)))
    scan.take(_TRIM_FIRST_RE, lambda m: _trim_first(scan, m))
    scan.take(_LAST_RE, lambda m: scan.add("trim_start_s", -_duration_s(_group(m)), m.group(0)))
    scan.take(_START_AT_RE, lambda m: scan.add("trim_start_s", _duration_s(m.group(1)), m.group(0)))

    # Frame rate and resolution before sizes: "1080p" and "60fps" are never megabytes.
    scan.take(_RES_FPS_RE, lambda m: _res_fps(scan, m))
    scan.take(
        _FPS_RE, lambda m: scan.add_wanted("fps", float((m.group(1) or m.group(2)).replace(",", ".")), m)
    )
    scan.take(_RES_BOX_RE, lambda m: _res_box(scan, m))
    scan.take(_RES_P_RE, lambda m: scan.add_wanted("resolution", (int(m.group(1)), None), m))
    scan.take(_RES_NAMED_RE, lambda m: _res_named(scan, m))
    scan.take(_SAME_RES_RE, lambda m: scan.add("resolution", "keep", m.group(0)))

    # Sizes: absolute, then relative.
    scan.take(_SIZE_RE, lambda m: _size(scan, m))
    scan.take(_REDUCE_BY_RE, lambda m: _percent(scan, m, reduce_by=True))
    scan.take(_PERCENT_OF_RE, lambda m: _percent(scan, m, reduce_by=False))
    scan.take(_TIMES_SMALLER_RE, lambda m: _times(scan, m))
    scan.take(_FRACTION_RE, lambda m: _fraction(scan, m))
    scan.take(_ZH_HALF_RE, lambda m: scan.add("target", ("fraction", 0.5), m.group(0)))
    scan.take(_SIZE_NO_UNIT_RE, lambda m: _size_no_unit(scan, m))
    scan.take(_BARE_PERCENT_RE, lambda m: _ambiguous_percent(m))
    scan.take(_RES_BARE_RE, lambda m: _res_bare(scan, m))

    scan.take(_CODEC_RE, lambda m: _codec(scan, m))
    scan.take(_MP4_RE, lambda m: scan.add("container", "mp4", m.group(0)))
    scan.take(_LOSSLESS_RE, lambda m: scan.add("quality", "visually-lossless", m.group(0)))
    scan.take(_HIGH_RE, lambda m: scan.add("quality", "high", m.group(0)))
    scan.take(_SMALL_RE, lambda m: scan.add("quality", "small", m.group(0)))
    scan.take(_BALANCED_RE, lambda m: scan.add("quality", "balanced", m.group(0)))
    scan.take(_AUDIO_REMOVE_RE, lambda m: scan.add("audio", "remove", m.group(0)))
    scan.take(_AUDIO_KEEP_RE, lambda m: scan.add("audio", "keep", m.group(0)))
    scan.take(_platform_re(table), lambda m: scan.add("profile", table[_alias_key(m.group(0))], m.group(0)))
    scan.take(_ORIENTATION_RE, lambda m: scan.add("orientation", m.group(0), m.group(0)))
    scan.take(_PLAIN_RE, lambda m: scan.add("plain", True, m.group(0)))
    return _intent(scan, original)


def _alias_key(text: str) -> str:
    return " ".join(text.split())


def _group(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g)


def _trim_range(scan: _Scan, m: re.Match[str]) -> None:
    start_text, end_text = m.group(1), m.group(2)
    end = _duration_s(end_text)
    # "from 10 to 20 seconds": a bare start takes the end's unit
    unit = re.search(r"[^\d.:\s].*$", end_text.strip())
    start = _duration_s(start_text + (unit.group(0) if unit and re.fullmatch(r"[\d.]+", start_text) else ""))
    if end <= start:
        raise IntentError(f'the trim "{m.group(0).strip()}" ends before it starts: say "from 0:10 to 1:20"')
    scan.add("trim_start_s", start, m.group(0))
    scan.add("trim_end_s", end, m.group(0))


def _cut_start(scan: _Scan, m: re.Match[str]) -> None:
    # "cut the first 5 s and the last 5 s": one verb for both ends
    scan.add("trim_start_s", _duration_s(m.group(1) or m.group(3)), m.group(0))
    end = m.group(2) or m.group(4)
    if end:
        scan.add("trim_end_s", -_duration_s(end), m.group(0))


def _trim_first(scan: _Scan, m: re.Match[str]) -> None:
    scan.add("trim_start_s", 0.0, m.group(0))
    scan.add("trim_end_s", _duration_s(_group(m)), m.group(0))


def _res_fps(scan: _Scan, m: re.Match[str]) -> None:
    scan.add("resolution", (int(m.group(1)), None), m.group(0))
    scan.add("fps", float(m.group(2)), m.group(0))


def _res_box(scan: _Scan, m: re.Match[str]) -> None:
    a, b = int(m.group(1)), int(m.group(2))
    scan.add_wanted("resolution", (min(a, b), max(a, b)), m)


def _res_named(scan: _Scan, m: re.Match[str]) -> None:
    name = " ".join((m.group(1) or m.group(2)).split())
    scan.add_wanted(
        "resolution", (_RES_NAMED[name if name in _RES_NAMED else name.replace(" ", "")], None), m
    )


def _res_bare(scan: _Scan, m: re.Match[str]) -> None:
    value = int(m.group(1))
    if value in _RES_NUMBERS:
        scan.add("resolution", (value, None), m.group(0))


def _size(scan: _Scan, m: re.Match[str]) -> None:
    cue, number, unit = m.group(1), m.group(2), m.group(3)
    if unit in _BARE and not cue:
        return  # "5m" alone could be minutes: not a size without "under", "max", "to"...
    if cue == "to" and unit in _BARE:
        return
    value = _bytes(number, unit)
    if value <= 0:
        raise IntentError(f'a size must be more than zero: "{m.group(0).strip()}"')
    if cue:  # "to 20mb", "under 25 MB": a wish, whatever precedes it
        scan.add("target", ("bytes", value), m.group(0))
    else:
        scan.add_wanted("target", ("bytes", value), m)


def _size_no_unit(scan: _Scan, m: re.Match[str]) -> None:
    if int(float(m.group(1))) in _RES_NUMBERS:
        scan.add("resolution", (int(float(m.group(1))), None), m.group(0))
        return
    raise IntentError(
        f'"{m.group(0).strip()}" has no unit: say {m.group(1)}MB, {m.group(1)}MiB or {m.group(1)}KB'
    )


def _percent_value(m: re.Match[str]) -> float:
    number = next(g for g in m.groups() if g)
    return float(number.replace(",", "."))


def _percent(scan: _Scan, m: re.Match[str], *, reduce_by: bool) -> None:
    p = _percent_value(m)
    fraction = (100 - p) / 100 if reduce_by else p / 100
    if not 0 < fraction < 1:
        raise IntentError(f'"{m.group(0).strip()}" does not leave a smaller file: say e.g. "50% smaller"')
    scan.add("target", ("fraction", fraction), m.group(0))


def _ambiguous_percent(m: re.Match[str]) -> None:
    p = m.group(1)
    raise IntentError(f'"{m.group(0).strip()}" is unclear: say "{p}% smaller" or "{p}% of the size"')


def _times(scan: _Scan, m: re.Match[str]) -> None:
    factor = _percent_value(m)
    if factor <= 1:
        raise IntentError(f'"{m.group(0).strip()}" does not make a smaller file: say e.g. "2x smaller"')
    scan.add("target", ("fraction", 1 / factor), m.group(0))


def _fraction(scan: _Scan, m: re.Match[str]) -> None:
    word = " ".join((m.group(1) or m.group(2) or "half").split())
    scan.add("target", ("fraction", _FRACTION_WORDS.get(word, 0.5)), m.group(0))


def _codec(scan: _Scan, m: re.Match[str]) -> None:
    codec: Codec = "h264" if m.group(1) else "hevc" if m.group(2) else "av1"
    scan.add("codec", codec, m.group(0))


_LABELS = {
    "target": "sizes",
    "resolution": "resolutions",
    "fps": "frame rates",
    "codec": "codecs",
    "audio": "audio choices",
    "trim_start_s": "trim starts",
    "trim_end_s": "trim ends",
    "profile": "platforms",
}


def _one(scan: _Scan, name: str) -> Any:
    """The single value found for a setting; two different ones are a contradiction."""
    values = scan.found.get(name, [])
    distinct = list(dict.fromkeys(v for v, _ in values))
    if len(distinct) > 1:
        phrases = list(dict.fromkeys(p for _, p in values))
        shown = " and ".join(f'"{p}"' for p in phrases[:3])
        raise IntentError(f"the instruction asks for conflicting {_LABELS.get(name, name)}: {shown}; say one")
    return distinct[0] if distinct else None


def _intent(scan: _Scan, original: str) -> Intent:
    recognised = {k for k in scan.found if k not in ("bitrate", "orientation", "described")}
    if not recognised and "described" in scan.found:
        recognised = {"described"}  # "compress my 4k video": understood, nothing to change
    if not recognised:
        shown = original if len(original) <= 60 else original[:57] + "..."
        if "bitrate" in scan.found:
            raise IntentError(f'"{shown}": hybrid takes a size, not a bitrate: {HELP}')
        raise IntentError(f'did not understand "{shown}": {HELP}')
    target = _one(scan, "target")
    resolution = _one(scan, "resolution")
    qualities = [q for q, _ in scan.found.get("quality", [])]
    # "as small as possible without losing quality": the quality floor is what must not be broken
    quality = next((level for level in QUALITY_LEVELS if level in qualities), None)
    max_height = max_width = None
    if isinstance(resolution, tuple):
        max_height, max_width = resolution
    phrases = tuple(dict.fromkeys(p for values in scan.found.values() for _, p in values if p))
    return Intent(
        target_size_bytes=target[1] if target and target[0] == "bytes" else None,
        target_fraction=target[1] if target and target[0] == "fraction" else None,
        max_height=max_height,
        max_width=max_width,
        keep_resolution=resolution == "keep",
        fps=_one(scan, "fps"),
        codec=_one(scan, "codec"),
        container=_one(scan, "container"),
        audio=_one(scan, "audio"),
        quality=quality,
        trim_start_s=_one(scan, "trim_start_s"),
        trim_end_s=_one(scan, "trim_end_s"),
        profile=_one(scan, "profile"),
        phrases=phrases,
    )


# -- merging ---------------------------------------------------------------------------------------

# The Request fields a user can set, each reported in ``sources``.
SETTINGS = (
    "target_size_bytes",
    "max_height",
    "max_width",
    "fps",
    "codec",
    "container",
    "audio",
    "audio_bitrate_bps",
    "preset",
    "quality",
    "min_vmaf",
    "trim_start_s",
    "trim_end_s",
    "profile",
)


def _intent_fields(intent: Intent, input_size_bytes: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if intent.target_size_bytes is not None:
        out["target_size_bytes"] = intent.target_size_bytes
    elif intent.target_fraction is not None:
        if input_size_bytes is None:
            raise IntentError('a size relative to the input (like "half the size") needs the input file')
        out["target_size_bytes"] = math.floor(input_size_bytes * intent.target_fraction)
    if intent.keep_resolution:
        out["max_height"] = None
        out["max_width"] = None
    elif intent.max_height is not None:
        out["max_height"] = intent.max_height
        out["max_width"] = intent.max_width
    for name in ("fps", "codec", "container", "audio", "quality", "trim_start_s", "trim_end_s", "profile"):
        value = getattr(intent, name)
        if value is not None:
            out[name] = value
    return out


def _profile_fields(profile: Profile) -> dict[str, Any]:
    out: dict[str, Any] = {
        "target_size_bytes": profile.max_bytes,
        "max_height": profile.max_height,
        "max_width": profile.max_width,
        "fps": profile.fps,
        "codec": profile.codec,
        "container": profile.container,
        "audio": profile.audio,
        "profile": profile.name,
    }
    if profile.audio_bitrate_bps is not None:
        out["audio_bitrate_bps"] = profile.audio_bitrate_bps
    return out


_PICTURE = ("max_height", "max_width")


def build_request(
    options: Mapping[str, Any] | None = None,
    intent: Intent | None = None,
    profile: Profile | None = None,
    *,
    input_size_bytes: int | None = None,
) -> Request:
    """Merge settings: explicit options > instruction > profile > defaults; ``sources`` says which.

    ``options`` holds Request field names the user set on the command line (only those). ``profile``
    is a :class:`hybrid.profiles.Profile` (or None). The picture size is one setting: whichever source
    says anything about it (``max_height``, ``max_width`` or "same resolution") decides both sides.
    A relative target ("half the size") resolves against ``input_size_bytes``.
    """
    layers: list[tuple[Source, dict[str, Any]]] = []
    if profile is not None:
        layers.append(("profile", _profile_fields(profile)))
    if intent is not None:
        layers.append(("instruction", _intent_fields(intent, input_size_bytes)))
    if options:
        unknown = set(options) - set(SETTINGS) - {"crf"}
        if unknown:
            raise ValueError(f"not Request settings: {sorted(unknown)}")
        opts = {k: v for k, v in options.items() if v is not None}
        if any(name in opts for name in _PICTURE):
            opts = {**{name: None for name in _PICTURE}, **opts}
        layers.append(("option", opts))

    values: dict[str, Any] = {}
    sources: dict[str, Source] = {name: "default" for name in SETTINGS}
    for source, layer in layers:  # lowest priority first: each layer overrides the ones before
        if any(name in layer for name in _PICTURE):
            for name in _PICTURE:
                values[name] = layer.get(name)
                sources[name] = source
        for name, value in layer.items():
            if name in _PICTURE:
                continue
            values[name] = value
            sources[name] = source
    return Request(**values, sources=sources)


def request_from_instruction(
    text: str,
    *,
    input_size_bytes: int | None = None,
    profiles: Mapping[str, Profile] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Request:
    """Convenience for the API and the tests: parse ``text`` and apply the profile it names.

    Platform words come from ``aliases``, else from ``profiles`` (user profiles' aliases included),
    else from the bundled profiles.
    """
    if aliases is None and profiles is not None:
        aliases = alias_table(profiles)
    intent = parse_instruction(text, aliases=aliases)
    profile = None
    if intent.profile is not None and profiles is not None:
        profile = profiles.get(intent.profile)
    return build_request(None, intent, profile, input_size_bytes=input_size_bytes)
