"""The words the client and the render node use for a compression job.

The client turns a Request into one plain-English instruction for ``/run_sse`` (the vendor's agent
reads natural language; ours reads the same sentence back). The node understands a message with
:func:`understand`: the project's instruction parser (``hybrid.intent``) when it is installed, else
the explicit options this module itself writes ("under 5000000 bytes", "at most 720p", ...), parsed
with ``hybrid.units``.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from typing import Any

from ..errors import HybridError
from ..models import Codec, Request, Source
from ..units import parse_bitrate, parse_size

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def describe_request(request: Request) -> str:
    """A Request as one instruction sentence, every setting spelled out explicitly."""
    parts = [f"Compress this video to an MP4 with {request.codec} video"]
    if request.target_size_bytes is not None:
        parts.append(f"under {request.target_size_bytes} bytes")
    if request.max_height is not None:
        parts.append(f"at most {request.max_height}p")
    if request.max_width is not None:
        parts.append(f"at most {request.max_width} px on the long side")
    if request.fps is not None:
        parts.append(f"at most {request.fps:g} fps")
    if request.audio == "remove":
        parts.append("without audio")
    elif request.audio_bitrate_bps is not None:
        parts.append(f"audio at {request.audio_bitrate_bps}bps")
    if request.crf is not None:
        parts.append(f"crf {request.crf}")
    if request.quality is not None:
        parts.append(f"quality {request.quality}")
    if request.trim_start_s is not None or request.trim_end_s is not None:
        start = request.trim_start_s or 0.0
        end = f"{request.trim_end_s:.3f}s" if request.trim_end_s is not None else "the end"
        parts.append(f"from {start:.3f}s to {end}")
    if request.preset != "medium":
        parts.append(f"with preset {request.preset}")
    return ", ".join(parts) + "."


_SIZE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(kib|mib|gib|kb|mb|gb|bytes|byte)\b", re.I)
_HEIGHT = re.compile(r"\b(\d{2,4})p\b", re.I)
_LONG = re.compile(r"\b(\d{2,5})\s*px on the long side", re.I)
_FPS = re.compile(r"(\d+(?:\.\d+)?)\s*fps\b", re.I)
_NO_AUDIO = re.compile(r"\b(without|no|remove|drop)\s+(the\s+)?audio\b|\bmute\b", re.I)
_AUDIO = re.compile(r"audio at (\d+(?:\.\d+)?\s*[kmg]?(?:bps|b/s)?)", re.I)
_PRESET = re.compile(r"\bpreset\s+([a-z]+)", re.I)
_CRF = re.compile(r"\bcrf\s*(\d{1,2})\b", re.I)
_TRIM = re.compile(r"from\s+(\d+(?:\.\d+)?)\s*s\s+to\s+(?:(\d+(?:\.\d+)?)\s*s|the end)", re.I)
_QUALITY = re.compile(r"\bquality\s+(visually-lossless|high|balanced|small)\b", re.I)
_CODEC = re.compile(r"\b(hevc|h\.?265|av1|h\.?264)\b", re.I)


def parse_explicit(message: str) -> Request:
    """The explicit-options reading of a message; unknown words are ignored."""
    fields: dict[str, Any] = {}
    if m := _SIZE.search(message):
        fields["target_size_bytes"] = parse_size(m.group(1) + m.group(2))
    if m := _HEIGHT.search(message):
        fields["max_height"] = int(m.group(1))
    if m := _LONG.search(message):
        fields["max_width"] = int(m.group(1))
    if m := _FPS.search(message):
        fields["fps"] = float(m.group(1))
    if _NO_AUDIO.search(message):
        fields["audio"] = "remove"
    elif m := _AUDIO.search(message):
        fields["audio_bitrate_bps"] = parse_bitrate(m.group(1))
    if (m := _PRESET.search(message)) and m.group(1).lower() in PRESETS:
        fields["preset"] = m.group(1).lower()
    if m := _CRF.search(message):
        fields["crf"] = int(m.group(1))
    if m := _TRIM.search(message):
        fields["trim_start_s"] = float(m.group(1)) or None
        if m.group(2):
            fields["trim_end_s"] = float(m.group(2))
    if m := _QUALITY.search(message):
        fields["quality"] = m.group(1).lower()
    if m := _CODEC.search(message):
        word = m.group(1).lower().replace(".", "")
        codec: Codec = "hevc" if word in ("hevc", "h265") else "av1" if word == "av1" else "h264"
        fields["codec"] = codec
    sources: dict[str, Source] = dict.fromkeys(fields, "instruction")
    return Request(**fields, sources=sources)


def understand(message: str, *, input_size_bytes: int | None = None) -> Request:
    """Message -> Request: the project's instruction parser if present, else explicit options.

    The explicit reading always runs too and wins for the settings it finds, so a message written by
    :func:`describe_request` means exactly what the client meant whatever the free-text parser makes
    of it. Raises ValueError when neither reading understood anything.
    """
    explicit = parse_explicit(message)
    parsed, problem = _intent_parse(message, input_size_bytes)
    if parsed is None:
        if not explicit.sources and problem:
            raise ValueError(problem)
        return explicit
    found = {name: getattr(explicit, name) for name in explicit.sources}
    sources = {**dict(parsed.sources), **dict(explicit.sources)}
    return replace(parsed, **found, sources=sources)


def _intent_parse(message: str, input_size_bytes: int | None) -> tuple[Request | None, str | None]:
    """The seam to ``hybrid.intent``: its ``request_from_instruction`` with the loaded profiles."""
    try:
        intent = importlib.import_module("hybrid.intent")
        profiles = importlib.import_module("hybrid.profiles")
    except ImportError:
        return None, None
    parse = getattr(intent, "request_from_instruction", None)
    if parse is None:
        return None, None
    try:
        table = profiles.load_profiles()
    except HybridError:
        table = None
    try:
        result = parse(message, input_size_bytes=input_size_bytes, profiles=table)
    except HybridError as exc:  # a sentence the free-text parser rejects may still have explicit options
        return None, exc.message
    return (result if isinstance(result, Request) else None), None
