"""The plain data that flows between the boxes: Request, MediaInfo, Plan, Result, progress events.

All frozen dataclasses: they print well, serialise to JSON with :func:`to_jsonable`, and a test can
build any of them by hand.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Codec = Literal["h264", "hevc", "av1"]
AudioChoice = Literal["keep", "remove"]
VideoMode = Literal["two-pass", "crf", "copy"]
AudioMode = Literal["encode", "copy", "none"]
# How a result's VMAF was obtained: predicted from the search's samples, or measured on the whole output.
VmafMethod = Literal["estimate-samples", "measured-full"]
QualityOutcome = Literal["crf", "two-pass", "not-searched"]

# A setting's origin, lowest priority first: the plan says where each one came from.
Source = Literal["default", "profile", "instruction", "option"]


@dataclass(frozen=True)
class Request:
    """What the user asked for, in the user's terms. ``None`` means "not asked: decide for me".

    ``max_height`` is the short side of the picture, as in "720p": a portrait video asked for 720p
    comes out 720 wide. ``max_width`` is the long side. ``sources`` says, per field name, where the
    value came from (default, profile, instruction or option).
    """

    target_size_bytes: int | None = None
    max_height: int | None = None
    max_width: int | None = None
    fps: float | None = None
    codec: Codec = "h264"
    container: Literal["mp4"] = "mp4"
    audio: AudioChoice = "keep"
    audio_bitrate_bps: int | None = None
    preset: str = "medium"
    crf: int | None = None
    quality: str | None = None
    min_vmaf: float | None = None  # a custom quality floor; wins over the ``quality`` level's VMAF
    trim_start_s: float | None = None
    trim_end_s: float | None = None
    profile: str | None = None
    sources: Mapping[str, Source] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoStream:
    codec: str
    width: int
    height: int
    rotation: int  # display rotation in degrees, one of 0, 90, 180, 270 (counter-clockwise)
    fps: float  # average frame rate
    pix_fmt: str
    bitrate_bps: int | None
    sample_aspect_ratio: str = "1:1"
    color_range: str | None = None

    @property
    def display_width(self) -> int:
        """Width as the picture is shown: rotation applied."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height


@dataclass(frozen=True)
class AudioStream:
    codec: str
    channels: int
    sample_rate: int
    bitrate_bps: int | None
    profile: str | None = None


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    size_bytes: int
    duration_s: float
    container: str  # ffmpeg's format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    video: VideoStream | None
    audio: AudioStream | None
    creation_time: str | None = None
    probed_with: Literal["ffprobe", "ffmpeg"] = "ffprobe"

    @property
    def bitrate_bps(self) -> int:
        return round(self.size_bytes * 8 / self.duration_s) if self.duration_s > 0 else 0

    @property
    def is_mp4_family(self) -> bool:
        return "mp4" in self.container.split(",") or "mov" in self.container.split(",")


@dataclass(frozen=True)
class VideoPlan:
    encoder: str  # "libx264", "libx265", "libsvtav1" or "copy"
    codec: Codec
    mode: VideoMode
    width: int
    height: int
    fps: float
    fps_changed: bool
    bitrate_bps: int | None  # two-pass target, or the cap in crf mode
    crf: int | None
    preset: str
    passes: int
    # VBV buffer in crf mode; None means two seconds of the cap. The quality mode sizes it so that
    # cap * duration + buffer stays under the budget, which is what x264's VBV can honestly promise.
    vbv_buffer_bits: int | None = None


@dataclass(frozen=True)
class AudioPlan:
    codec: str | None  # "aac", or None when there is no audio in the output
    mode: AudioMode
    bitrate_bps: int | None
    channels: int | None
    sample_rate: int | None


@dataclass(frozen=True)
class QualityProbe:
    """One step of the quality search: the samples encoded at ``crf`` and ``width`` x ``height``
    predict a full output with ``video_bytes`` of video and a VMAF of ``vmaf`` (measured against the
    source samples at the reference picture size)."""

    crf: int
    width: int
    height: int
    video_bytes: int
    vmaf: float


@dataclass(frozen=True)
class QualitySearch:
    """What the sample search measured: I/O done, ready for the planner's pure decision.

    ``width`` x ``height`` is the picture the CRF search ran at; ``crf`` the largest CRF whose samples
    reach ``target_vmaf`` (None: none did within the CRF range or the time cap). ``probes`` may also
    hold points at other sizes and CRFs, measured to compare picture sizes at the target size.
    """

    target_vmaf: float
    width: int
    height: int
    crf: int | None
    probes: tuple[QualityProbe, ...]
    samples: int
    sample_s: float  # total seconds of samples
    whole_input: bool
    elapsed_s: float
    time_cap_s: float
    capped: bool  # the time cap stopped the search early
    encode_estimate_s: float  # what the full encode is expected to take here (the cap is a share)


@dataclass(frozen=True)
class QualityPlan:
    """The quality target and what the search decided for it."""

    target_vmaf: float
    level: str | None  # the named level, None for --min-vmaf
    outcome: QualityOutcome
    crf: int | None  # the CRF the search found for the target
    expected_vmaf: float | None  # of the planned output, estimated from the samples
    needed_size_bytes: int | None  # the smallest target the samples say reaches the quality
    search: QualitySearch | None
    # Set when the output will fall short of the target VMAF: what to expect and what size would do.
    shortfall: str | None = None


@dataclass(frozen=True)
class Plan:
    """How one input will be turned into one output, and why."""

    input: MediaInfo
    request: Request
    video: VideoPlan
    audio: AudioPlan
    duration_s: float  # of the output, after trims
    trim_start_s: float | None
    trim_end_s: float | None
    budget_bytes: int | None  # the size the encode aims at (under the target), None without target
    overhead_bytes: int  # predicted container overhead
    predicted_size_bytes: int
    min_size_bytes: int  # the smallest target this input could be squeezed into
    reasons: tuple[str, ...]
    quality: QualityPlan | None = None  # set when a VMAF target was asked


@dataclass(frozen=True)
class Result:
    output: Path
    size_bytes: int
    target_size_bytes: int | None
    duration_s: float
    elapsed_s: float
    path: Literal["local", "cloud"]
    encodes: int
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    mode: VideoMode
    notes: tuple[str, ...] = ()
    vmaf: float | None = None
    vmaf_method: VmafMethod | None = None
    # Why the router chose the path it first tried; and when that path failed for a reason the user
    # could not fix, the path the job moved away from and that failure (``path`` made the file).
    route_reason: str | None = None
    fell_back_from: Literal["local", "cloud"] | None = None
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Progress:
    """An ffmpeg run moved on. ``done_s``/``total_s`` are seconds of media; ``speed`` is x realtime."""

    stage: str
    done_s: float
    total_s: float
    speed: float | None = None


@dataclass(frozen=True)
class StageStarted:
    stage: str
    total_s: float


@dataclass(frozen=True)
class Message:
    """Something the user should read (a retry, a fallback); the CLI prints it."""

    text: str


@dataclass(frozen=True)
class Transfer:
    """Bytes moved to or from a render service (upload, download); ``total_bytes`` None if unknown."""

    stage: str
    done_bytes: int
    total_bytes: int | None


@dataclass(frozen=True)
class Waiting:
    """A remote job is still running (agent heartbeats, export polling); ``progress`` in percent."""

    stage: str
    elapsed_s: float
    progress: float | None = None


Event = Progress | StageStarted | Message | Transfer | Waiting


def to_jsonable(value: Any) -> Any:
    """Dataclasses, paths, enums, mappings and tuples to plain JSON types, properties included."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in dir(type(value)):
            if isinstance(getattr(type(value), name, None), property):
                out[name] = to_jsonable(getattr(value, name))
        return out
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value
