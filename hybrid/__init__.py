"""hybrid: compress a video to the size or quality you describe, locally or on a render node.

The public API::

    from hybrid import Request, compress, plan_file
    plan = plan_file("trip.mov", Request(target_size_bytes=25_000_000))
    result = compress("trip.mov", Request(target_size_bytes=25_000_000), "trip-small.mp4")

    # or in plain words, with the platform profiles applied:
    from hybrid import load_profiles, request_from_instruction
    request = request_from_instruction("under 25MB for Discord, no audio", profiles=load_profiles())
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .errors import (
    CloudError,
    EncodeError,
    FFmpegNotFoundError,
    HybridError,
    InputError,
    IntentError,
    Interrupted,
    MediaError,
    OutputError,
    PlanError,
    ProfileError,
    ResourceError,
)
from .intent import Intent, build_request, parse_instruction, request_from_instruction
from .local import compress
from .models import AudioPlan, AudioStream, MediaInfo, Plan, Request, Result, VideoPlan, VideoStream
from .planner import plan
from .probe import probe
from .profiles import Profile, load_profiles

try:
    __version__ = version("hybrid")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"


def plan_file(path: str | Path, request: Request | None = None) -> Plan:
    """Probe ``path`` and plan ``request`` for it, without encoding anything."""
    return plan(probe(path), request or Request())


__all__ = [
    "AudioPlan",
    "AudioStream",
    "CloudError",
    "EncodeError",
    "FFmpegNotFoundError",
    "HybridError",
    "InputError",
    "Intent",
    "IntentError",
    "Interrupted",
    "MediaError",
    "MediaInfo",
    "OutputError",
    "Plan",
    "PlanError",
    "Profile",
    "ProfileError",
    "Request",
    "ResourceError",
    "Result",
    "VideoPlan",
    "VideoStream",
    "__version__",
    "build_request",
    "compress",
    "load_profiles",
    "parse_instruction",
    "plan",
    "plan_file",
    "probe",
    "request_from_instruction",
]
