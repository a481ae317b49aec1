"""Probing a file into :class:`~hybrid.models.MediaInfo`.

With an ffprobe, its JSON is read; without one, the report ``ffmpeg -i`` prints is parsed, so that the
bundled ffmpeg alone is enough. Both paths must agree (the tests hold them to it). Stream bitrates that
the container does not state (Matroska, WebM, AVI audio) are measured the same way on both paths: one
stream-copy pass that counts each stream's bytes without decoding anything.
"""

from __future__ import annotations

import json
import re
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from . import ffmpeg
from .errors import InputError, MediaError
from .models import AudioStream, MediaInfo, VideoStream

# Demuxers that mean "a still image", whatever the file is called.
_IMAGE_FORMATS = re.compile(r"(_pipe$|^image2$|^apng$|^webp$|^tiff?$)")


def check_input_path(path: Path) -> int:
    """Refuse paths that are not readable regular files; return the size in bytes."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a folder, not a video file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path} is not a regular file")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError:
        raise InputError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if st.st_size == 0:
        raise MediaError(f"{path} is empty (0 bytes)")
    return st.st_size


def probe(path: Path | str, *, use_ffprobe: bool | None = None, scan: bool = True) -> MediaInfo:
    """Describe a video file. Raises InputError or MediaError with a one-line reason.

    ``use_ffprobe``: None picks ffprobe when one is available; False parses ``ffmpeg -i``.
    ``scan``: read every packet once (no decoding) to measure stream bitrates the container does
    not state and to catch truncated files; off for files hybrid has just written and verifies
    otherwise.
    """
    path = Path(path)
    size = check_input_path(path)
    ffprobe_path = ffmpeg.find_ffprobe() if use_ffprobe in (None, True) else None
    if use_ffprobe and ffprobe_path is None:
        raise MediaError("ffprobe was asked for but none is available")
    raw = _probe_with_ffprobe(ffprobe_path, path) if ffprobe_path else _probe_with_ffmpeg(path)
    return _finish(path, size, raw, "ffprobe" if ffprobe_path else "ffmpeg", _scan(path) if scan else None)


# Both probe paths produce this intermediate shape; _finish validates it and fills gaps.
_Raw = dict[str, Any]


def _not_media(path: Path) -> MediaError:
    return MediaError(f"{path} is not a video file ffmpeg can read (unknown format, or corrupt)")


def _probe_with_ffprobe(ffprobe_path: str, path: Path) -> _Raw:
    proc = ffmpeg.run_capture(
        [ffprobe_path, "-v", "error", "-show_format", "-show_streams", "-of", "json", ffmpeg.file_arg(path)]
    )
    try:
        data = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        data = {}
    fmt = data.get("format") or {}
    if proc.returncode != 0 or not fmt:
        stderr = proc.stderr.decode("utf-8", "replace")
        raise _explain_failure(path, stderr)
    raw: _Raw = {
        "container": fmt.get("format_name", ""),
        "duration": _float(fmt.get("duration")),
        "creation_time": (fmt.get("tags") or {}).get("creation_time"),
        "video": None,
        "audio": None,
        "stream_durations": [],
    }
    for s in data.get("streams", []):
        kind = s.get("codec_type")
        if _float(s.get("duration")):
            raw["stream_durations"].append(_float(s.get("duration")))
        if kind == "video" and raw["video"] is None:
            if (s.get("disposition") or {}).get("attached_pic"):
                continue
            rotation = 0
            for side in s.get("side_data_list") or []:
                if "rotation" in side:
                    rotation = round(float(side["rotation"]))
            if not rotation and (s.get("tags") or {}).get("rotate"):
                rotation = -int((s.get("tags") or {})["rotate"])
            sar = s.get("sample_aspect_ratio")
            raw["video"] = {
                "codec": s.get("codec_name", "unknown"),
                "width": int(s.get("width") or 0),
                "height": int(s.get("height") or 0),
                "rotation": rotation,
                "fps": _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")),
                "pix_fmt": s.get("pix_fmt") or "unknown",
                "bitrate": _int(s.get("bit_rate")),
                "sar": sar,
                "color_range": s.get("color_range"),
            }
        elif kind == "audio" and raw["audio"] is None:
            raw["audio"] = {
                "codec": s.get("codec_name", "unknown"),
                "channels": int(s.get("channels") or 0),
                "sample_rate": int(s.get("sample_rate") or 0),
                "bitrate": _int(s.get("bit_rate")),
                "profile": s.get("profile"),
            }
    return raw


_INPUT_RE = re.compile(r"^Input #0, (.+?), from '", re.M)
_DURATION_RE = re.compile(r"^\s*Duration: (N/A|(\d+):(\d+):(\d+(?:\.\d+)?))", re.M)
_STREAM_RE = re.compile(r"^\s*Stream #0:(\d+)(?:\[0x[0-9a-f]+\])?(?:\([^)]*\))?: (\w+): (.*)$")
_CREATION_RE = re.compile(r"^\s{4}creation_time\s*: (\S+)", re.M)
_ROTATION_RE = re.compile(r"(?:displaymatrix|Display Matrix): rotation of (-?[\d.]+) degrees", re.I)
_CHANNELS = {
    "mono": 1,
    "stereo": 2,
    "2.1": 3,
    "3.0": 3,
    "quad": 4,
    "4.0": 4,
    "5.0": 5,
    "5.1": 6,
    "6.1": 7,
    "7.1": 8,
}


def _split_top(text: str) -> list[str]:
    """Split ffmpeg's stream description on commas outside brackets."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    parts.append(current.strip())
    return parts


def _probe_with_ffmpeg(path: Path) -> _Raw:
    proc = ffmpeg.run_capture([ffmpeg.find_ffmpeg(), "-hide_banner", "-nostdin", "-i", ffmpeg.file_arg(path)])
    return _parse_ffmpeg_report(path, proc.stderr.decode("utf-8", "replace"))


_LEVEL_PREFIX = re.compile(r"^\[(?:info|warning|verbose)\] ", re.M)


def from_ffmpeg_report(path: Path, text: str) -> MediaInfo:
    """MediaInfo from the report an ffmpeg run printed about its first input (``-loglevel
    level+info`` prefixes allowed): lets a run that does other work (the executor's verification
    decode) describe the file too, without a separate probe."""
    size = path.stat().st_size
    return _finish(path, size, _parse_ffmpeg_report(path, _LEVEL_PREFIX.sub("", text)), "ffmpeg", None)


def _parse_ffmpeg_report(path: Path, text: str) -> _Raw:
    container = _INPUT_RE.search(text)
    if not container:
        raise _explain_failure(path, text)
    header = text[: container.start()]
    if "Invalid data found" in header or "moov atom not found" in header:
        raise _explain_failure(path, text)
    raw: _Raw = {
        "container": container.group(1),
        "duration": None,
        "creation_time": None,
        "video": None,
        "audio": None,
        "stream_durations": [],
    }
    duration = _DURATION_RE.search(text)
    if duration and duration.group(1) != "N/A":
        raw["duration"] = (
            int(duration.group(2)) * 3600 + int(duration.group(3)) * 60 + float(duration.group(4))
        )
    lines = text.splitlines()
    # the file-level creation time is the one before the first stream
    first_stream = next((i for i, ln in enumerate(lines) if _STREAM_RE.match(ln)), len(lines))
    created = _CREATION_RE.search("\n".join(lines[:first_stream]))
    raw["creation_time"] = created.group(1) if created else None
    current: dict[str, Any] | None = None
    for line in lines:
        match = _STREAM_RE.match(line)
        if match:
            current = None
            kind, desc = match.group(2), match.group(3)
            parts = _split_top(desc)
            codec = parts[0].split()[0] if parts and parts[0] else "unknown"
            if kind == "Video" and raw["video"] is None and "(attached pic)" not in desc:
                size = re.search(r"(?<![\w])(\d{1,5})x(\d{1,5})(?![\w])", desc)
                fps = re.search(r"([\d.]+)(k?) fps", desc)
                tbr = re.search(r"([\d.]+)(k?) tbr", desc)
                kbps = re.search(r"(\d+) kb/s", desc)
                sar = re.search(r"SAR (\d+:\d+)", desc)
                pix = parts[1] if len(parts) > 1 else "unknown"
                colour = re.match(r"(\w+)\((\w+)", pix)
                rate = fps or tbr
                current = raw["video"] = {
                    "codec": codec,
                    "width": int(size.group(1)) if size else 0,
                    "height": int(size.group(2)) if size else 0,
                    "rotation": 0,
                    "fps": float(rate.group(1)) * (1000 if rate.group(2) else 1) if rate else 0.0,
                    "pix_fmt": re.split(r"[(\s]", pix)[0] or "unknown",
                    "bitrate": int(kbps.group(1)) * 1000 if kbps else None,
                    "sar": sar.group(1) if sar else None,
                    "color_range": colour.group(2) if colour and colour.group(2) in ("tv", "pc") else None,
                }
            elif kind == "Audio" and raw["audio"] is None:
                rate_hz = re.search(r"(\d+) Hz", desc)
                kbps = re.search(r"(\d+) kb/s", desc)
                profile = re.match(r"\w+ \((\w[\w ]*)\)", parts[0]) if parts else None
                raw["audio"] = {
                    "codec": codec,
                    "channels": _channels(parts[2] if len(parts) > 2 else ""),
                    "sample_rate": int(rate_hz.group(1)) if rate_hz else 0,
                    "bitrate": int(kbps.group(1)) * 1000 if kbps else None,
                    "profile": profile.group(1) if profile else None,
                }
            continue
        rotation = _ROTATION_RE.search(line)
        if rotation and current is not None:
            current["rotation"] = round(float(rotation.group(1)))
    return raw


def _channels(text: str) -> int:
    text = text.strip()
    match = re.match(r"(\d+) channels", text)
    if match:
        return int(match.group(1))
    return _CHANNELS.get(text.split("(")[0], 2 if text else 0)


_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot", b"uuid"}


def _explain_failure(path: Path, stderr: str) -> MediaError:
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        head = b""
    # A renamed text file is "not a video", not a "damaged" one, whatever demuxer the name chose.
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return MediaError(f"{path} is not a video file (it is text)")
    if "moov atom not found" in stderr and head[4:8] in _MP4_BOXES:
        return MediaError(f"{path} is truncated or corrupt (its index, the moov atom, is missing)")
    if "Invalid data found" in stderr or "could not find codec parameters" in stderr.lower():
        return _not_media(path)
    return _not_media(path)


@dataclass(frozen=True)
class _Scan:
    video_bytes: int | None
    audio_bytes: int | None
    reached_s: float | None  # timestamp of the last packet the demuxer could read


def _scan(path: Path) -> _Scan:
    """Read every packet of the first video and audio stream without decoding (a stream copy to
    nowhere): gives each stream's size, and where the data really ends, which exposes a truncated
    file whose header still promises the whole duration."""
    proc = ffmpeg.run_capture(
        [
            ffmpeg.find_ffmpeg(),
            "-hide_banner",
            "-nostdin",
            "-nostats",
            "-i",
            ffmpeg.file_arg(path),
            "-map",
            "0:V:0?",
            "-map",
            "0:a:0?",
            "-c",
            "copy",
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ],
        timeout_s=900,
    )
    text = proc.stderr.decode("utf-8", "replace")
    match = re.search(r"video:\s*(\d+(?:\.\d+)?)(KiB|kB)\s+audio:\s*(\d+(?:\.\d+)?)(KiB|kB)", text)
    video_bytes = audio_bytes = None
    if match:
        unit = 1024 if match.group(2) == "KiB" else 1000
        video_bytes, audio_bytes = round(float(match.group(1)) * unit), round(float(match.group(3)) * unit)
    reached = None
    for value in re.findall(r"^out_time_us=(\d+)$", proc.stdout.decode("ascii", "replace"), re.M):
        reached = int(value) / 1e6
    return _Scan(video_bytes, audio_bytes, reached)


def _finish(path: Path, size: int, raw: _Raw, probed_with: str, scanned: _Scan | None) -> MediaInfo:
    container = raw["container"]
    if _IMAGE_FORMATS.search(container.split(",")[0]):
        raise MediaError(f"{path} is an image, not a video")
    v, a = raw["video"], raw["audio"]
    if v is None:
        if a is not None:
            raise MediaError(f"{path} has no video stream (it is audio only)")
        raise _not_media(path)
    if v["width"] <= 0 or v["height"] <= 0:
        raise MediaError(f"{path} has a video stream ffmpeg cannot decode (unknown size)")
    duration = raw["duration"] or max(raw["stream_durations"], default=0.0)
    if not duration or duration <= 0:
        if v["codec"] in ("png", "mjpeg", "bmp", "gif", "webp", "tiff"):
            raise MediaError(f"{path} is an image, not a video")
        raise MediaError(f"{path} has no duration: truncated or corrupt")
    video_bitrate, audio_bitrate = v["bitrate"], (a or {}).get("bitrate")
    if scanned is not None:
        if scanned.reached_s is not None:
            missing = duration - scanned.reached_s
            if missing > max(0.5, 0.03 * duration):
                raise MediaError(
                    f"{path} is truncated or damaged: its data ends at {scanned.reached_s:.1f} s "
                    f"of the {duration:.1f} s its header promises"
                )
            if -missing > 0.25:  # no index (e.g. an AVI cut short): the header's length was a guess
                duration = scanned.reached_s
        # Bitrates the container does not state come from the packets, on both probe paths alike.
        if video_bitrate is None and scanned.video_bytes:
            video_bitrate = round(scanned.video_bytes * 8 / duration)
        if a is not None and audio_bitrate is None and scanned.audio_bytes:
            audio_bitrate = round(scanned.audio_bytes * 8 / duration)
    sar = _normal_sar(v["sar"])
    fps = float(v["fps"] or 0.0)
    if fps <= 0 or fps > 1000:
        raise MediaError(f"{path} has no usable frame rate: truncated or corrupt")
    video = VideoStream(
        codec=v["codec"],
        width=v["width"],
        height=v["height"],
        rotation=v["rotation"] % 360,
        fps=round(fps, 3),
        pix_fmt=v["pix_fmt"],
        bitrate_bps=video_bitrate,
        sample_aspect_ratio=sar,
        color_range=v["color_range"] if v["color_range"] in ("tv", "pc") else None,
    )
    audio = None
    if a is not None and a["channels"] > 0:
        audio = AudioStream(
            codec=a["codec"],
            channels=a["channels"],
            sample_rate=a["sample_rate"],
            bitrate_bps=audio_bitrate,
            profile=a["profile"],
        )
    return MediaInfo(
        path=path,
        size_bytes=size,
        duration_s=round(float(duration), 3),
        container=container,
        video=video,
        audio=audio,
        creation_time=raw["creation_time"],
        probed_with="ffprobe" if probed_with == "ffprobe" else "ffmpeg",
    )


def _normal_sar(value: str | None) -> str:
    """``"72:72"`` -> ``"1:1"``; unset or invalid -> ``"1:1"``."""
    try:
        num, den = (int(x) for x in str(value).split(":"))
        ratio = Fraction(num, den)
    except (ValueError, ZeroDivisionError):
        return "1:1"
    return f"{ratio.numerator}:{ratio.denominator}" if ratio > 0 else "1:1"


def _float(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "N/A", "") else None
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> int | None:
    number = _float(value)
    return int(number) if number else None


def _rate(value: Any) -> float:
    if not value or value in ("0/0", "N/A"):
        return 0.0
    try:
        return float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError):
        return 0.0


__all__ = ["check_input_path", "probe"]
