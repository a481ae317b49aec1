"""hybrid: compress a video to the size or quality you describe, locally or on a render node.

The public API::

    from hybrid import Request, compress, plan_file
    plan = plan_file("trip.mov", Request(target_size_bytes=25_000_000))
    result = compress("trip.mov", Request(target_size_bytes=25_000_000), "trip-small.mp4")
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
from .local import compress
from .models import AudioPlan, AudioStream, MediaInfo, Plan, Request, Result, VideoPlan, VideoStream
from .planner import plan
from .probe import probe

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
    "IntentError",
    "Interrupted",
    "MediaError",
    "MediaInfo",
    "OutputError",
    "Plan",
    "PlanError",
    "ProfileError",
    "Request",
    "ResourceError",
    "Result",
    "VideoPlan",
    "VideoStream",
    "__version__",
    "compress",
    "plan",
    "plan_file",
    "probe",
]
