"""Plan + Resources + Estimates -> Route: local or cloud, and why, in words.

A pure function: everything it weighs is in its arguments, so a test builds a Resources by hand and
checks the decision table without a video, a network or a clock. The order of the rules:

1. ``--local`` / ``--cloud`` always win.
2. This machine cannot do the job (ffmpeg broken, not enough disk or memory): the cloud, if usable.
3. On battery below the threshold: the cloud, if usable.
4. The local estimate is within the user's patience (``--max-wait``): local.
5. Over it: the cloud if it is usable and faster, else local, saying why.

"Usable" for the cloud: not known offline, a token or anonymous tokens allowed, the input within the
service's 500 MB and of a type it takes, an H.264 output up to 1080p (what it renders), and no recent
refusal (credits exhausted, plan required).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import local
from .models import Plan
from .resources import CLOUD_VIDEO_SUFFIXES, MAX_UPLOAD_BYTES, Estimates, Resources
from .units import format_duration, format_size

PathName = Literal["local", "cloud"]

DEFAULT_MAX_WAIT_S = 180.0
DEFAULT_BATTERY_MIN_PERCENT = 20.0
CLOUD_MAX_SHORT_SIDE = 1080  # the service renders "up to 1080x1920"


@dataclass(frozen=True)
class RouteOptions:
    forced: PathName | None = None  # --local / --cloud
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    battery_min_percent: float = DEFAULT_BATTERY_MIN_PERCENT


@dataclass(frozen=True)
class Route:
    """Where the job runs and why. ``cloud_estimate_s`` is None when the cloud is unusable
    (``cloud_problem`` says why; ``cloud_nominal_s`` is what it would have taken); ``local_problem`` is
    what stops this machine, if anything."""

    path: PathName
    reason: str
    local_estimate_s: float
    cloud_estimate_s: float | None
    cloud_upload_s: float | None = None
    local_problem: str | None = None
    cloud_problem: str | None = None
    cloud_nominal_s: float | None = None


def memory_needed_bytes(plan: Plan) -> int:
    """What one local encode holds in memory: x264's lookahead and reference frames at the output
    size (about 60 frames of yuv420p at preset medium), the decoder's frames, and ffmpeg itself."""
    v, src = plan.video, plan.input.video
    out_frame = v.width * v.height * 3 // 2
    in_frame = (src.width * src.height * 3 // 2) if src is not None else out_frame
    return 150_000_000 + 60 * out_frame + 16 * in_frame


def local_problem(plan: Plan, res: Resources) -> str | None:
    """Why this machine cannot do the job, or None."""
    if not res.ffmpeg_ok:
        return res.ffmpeg_problem or "ffmpeg does not work here"
    disk = local.required_disk_bytes(plan)
    if res.free_disk_bytes < disk:
        return (
            f"not enough free disk beside the output: the encode needs about {format_size(disk)}, "
            f"{format_size(res.free_disk_bytes)} is free"
        )
    memory = memory_needed_bytes(plan)
    if res.available_memory_bytes < memory:
        return (
            f"not enough memory for {plan.video.width}x{plan.video.height}: about {format_size(memory)} "
            f"needed, {format_size(res.available_memory_bytes)} available"
        )
    return None


def cloud_problem(plan: Plan, res: Resources) -> str | None:
    """Why the render service cannot take this job, or None (usable, as far as is known)."""
    cloud = res.cloud
    if cloud.reachable == "unreachable":
        return f"offline: {cloud.reach_detail or cloud.base_url + ' did not answer'}"
    if cloud.refusal:
        return f"the render service refused the last job: {cloud.refusal}"
    if not cloud.has_token and not cloud.anonymous_allowed:
        return "no token for the render service, and anonymous tokens are turned off (hybrid login)"
    suffix = plan.input.path.suffix.lower()
    if suffix not in CLOUD_VIDEO_SUFFIXES:
        return f"the render service does not take {suffix or 'extension-less'} files"
    if plan.input.size_bytes > MAX_UPLOAD_BYTES:
        return f"the input is {format_size(plan.input.size_bytes)}, over the service's 500 MB upload limit"
    if plan.video.codec != "h264":
        return f"the render service makes H.264 only, not {plan.video.codec.upper()}"
    if min(plan.video.width, plan.video.height) > CLOUD_MAX_SHORT_SIDE:
        return f"the render service renders up to 1080p, not {plan.video.width}x{plan.video.height}"
    return None


def route(plan: Plan, res: Resources, est: Estimates, options: RouteOptions) -> Route:
    """Decide local or cloud. Pure."""
    local_s = est.local_s
    no_local = local_problem(plan, res)
    no_cloud = cloud_problem(plan, res)
    cloud_s = None if no_cloud else est.cloud.total_s

    def done(path: PathName, reason: str) -> Route:
        return Route(
            path=path,
            reason=reason,
            local_estimate_s=local_s,
            cloud_estimate_s=cloud_s,
            cloud_upload_s=est.cloud.upload_s,
            local_problem=no_local,
            cloud_problem=no_cloud,
            cloud_nominal_s=est.cloud.total_s,
        )

    if options.forced == "local":
        return done("local", "--local given")
    if options.forced == "cloud":
        return done("cloud", "--cloud given")
    if no_local:
        if no_cloud:
            # Local anyway: its own check then fails with the precise error and exit code.
            return done("local", f"{no_local}; and the cloud is unusable ({no_cloud})")
        return done("cloud", f"this machine cannot: {no_local}")
    low_battery = (
        res.plugged_in is False
        and res.battery_percent is not None
        and res.battery_percent < options.battery_min_percent
    )
    if low_battery and not no_cloud:
        return done(
            "cloud", f"on battery at {res.battery_percent:.0f}%, below {options.battery_min_percent:g}%"
        )
    patience = about(options.max_wait_s)
    if local_s <= options.max_wait_s:
        if no_cloud:
            return done("local", f"within the {patience} wait; the cloud is unusable: {no_cloud}")
        return done("local", f"this machine can do it within the {patience} wait")
    over = f"local ~{about(local_s)} is over the {patience} wait"
    if no_cloud:
        return done("local", f"{over}, but the cloud is unusable: {no_cloud}")
    if cloud_s is not None and cloud_s < local_s:
        return done("cloud", f"{over}; the cloud is faster")
    return done("local", f"{over}, but the cloud would not be faster")


def about(seconds: float) -> str:
    """An estimate as people say it: "45 s", "2m10s" (no tenths: it is an estimate)."""
    return f"{seconds:.0f} s" if seconds < 59.5 else format_duration(seconds)


def describe(route_: Route, cores: int) -> str:
    """One line: "local: ~2m10s on this 2-core machine; cloud: ~1m40s incl. 45 s upload — choosing
    local (offline)"."""
    local_text = f"local: ~{about(route_.local_estimate_s)} on this {cores}-core machine"
    cloud_s = route_.cloud_estimate_s if route_.cloud_estimate_s is not None else route_.cloud_nominal_s
    if cloud_s is None:
        cloud_text = "cloud: unusable"
    else:
        upload = route_.cloud_upload_s or 0.0
        cloud_text = f"cloud: ~{about(cloud_s)} incl. {about(upload)} upload"
        if route_.cloud_estimate_s is None:
            cloud_text += " (unusable)"
    return f"{local_text}; {cloud_text} — choosing {route_.path} ({route_.reason})"
