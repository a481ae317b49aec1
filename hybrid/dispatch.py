"""Routing in practice: measure what the router needs (only as much as the decision needs), run the
chosen path, and move to the other path once when the first fails for a reason the user can't fix.

- :func:`decide` takes the snapshot, calibrates x264 only when the choice could depend on the local
  estimate, and connects to the cloud's base URL only when the router would choose the cloud: a small
  job on a working machine never waits for either.
- :func:`execute` runs a path; cloud -> local when the service is gone, failing or refusing to export
  (network, 5xx after retries, 402, credits, rate limits, failed renders); local -> cloud when this
  machine ran short (disk full, ffmpeg killed). Never away from a forced path. The Result says which
  path made the file, why, and what it moved away from.
- After a job it records what it saw: local speed (the estimate's correction), upload bandwidth and
  the service's time per base URL, and a refusal (credits, plan) so the next route avoids the service.
"""

from __future__ import annotations

import errno
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import resources, router
from .cloud import errors as E
from .cloud.config import Store
from .errors import EncodeError, HybridError, Interrupted, ResourceError
from .models import Event, Message, Plan, Result, Transfer
from .resources import Estimates, Resources
from .router import PathName, Route, RouteOptions

log = logging.getLogger("hybrid")

EventSink = Callable[[Event], None]
Runner = Callable[[EventSink], Result]

# Cloud failures a user cannot cure by changing anything on their side: the local path takes over.
CLOUD_FALLBACK_ERRORS: tuple[type[HybridError], ...] = (
    E.CloudUnavailableError,
    E.PlanRequiredError,
    E.NoCreditsError,
    E.RateLimitedError,
    E.RenderFailedError,
    E.CloudTimeoutError,
    E.CloudProtocolError,
    E.CloudSessionError,
    E.FileTooLargeError,
    E.UnsupportedFileError,
)
# Refusals worth remembering: the next routes avoid the service for a while.
REMEMBERED_REFUSALS: dict[type[HybridError], str] = {
    E.NoCreditsError: "credits exhausted",
    E.PlanRequiredError: "the free plan cannot export",
}


@dataclass(frozen=True)
class Decision:
    route: Route
    resources: Resources
    estimates: Estimates
    options: RouteOptions


def route_options(forced: PathName | None, max_wait_s: float | None, config: dict[str, Any]) -> RouteOptions:
    """``--max-wait`` beats the config's ``max_wait_s``; ``battery_min_percent`` from the config."""
    wait = max_wait_s
    if wait is None and isinstance(config.get("max_wait_s"), (int, float)):
        wait = float(config["max_wait_s"])
    battery = config.get("battery_min_percent")
    return RouteOptions(
        forced=forced,
        max_wait_s=router.DEFAULT_MAX_WAIT_S if wait is None else wait,
        battery_min_percent=float(battery)
        if isinstance(battery, (int, float))
        else router.DEFAULT_BATTERY_MIN_PERCENT,
    )


def estimate_matters(plan: Plan, res: Resources, est: Estimates, options: RouteOptions) -> bool:
    """Could a measured local estimate change the route? Not when a path is forced, when one side is
    out anyway, or when even the pessimistic uncalibrated estimate is within the user's patience."""
    if options.forced is not None or router.local_problem(plan, res) or router.cloud_problem(plan, res):
        return False
    return est.local_s > options.max_wait_s


def decide(
    plan: Plan,
    output_folder: Path,
    *,
    forced: PathName | None = None,
    cloud_url: str | None = None,
    max_wait_s: float | None = None,
    calibrate: bool | None = None,
) -> Decision:
    """Measure, estimate and route one plan. ``calibrate``: True measures x264 now if not cached, False
    never does, None (default) only when the route could depend on it."""
    config = Store().config()
    options = route_options(forced, max_wait_s, config)
    res = resources.snapshot(output_folder, cloud_url=cloud_url)
    cal = resources.cached_calibration(res.ffmpeg_version, res.cpu_model)
    codec = plan.video.codec

    def estimates(cal: resources.Calibration | None) -> Estimates:
        return resources.estimate(
            plan,
            res,
            cal,
            resources.load_correction(codec),
            resources.load_cloud_speed(res.cloud.base_url),
            config,
        )

    est = estimates(cal)
    wanted = calibrate if calibrate is not None else estimate_matters(plan, res, est, options)
    if cal is None and res.ffmpeg_ok and wanted:
        try:
            cal = resources.calibrate()
            est = estimates(cal)
        except Interrupted:
            raise
        except HybridError as exc:  # a failed measurement must not fail the job: the prior stands
            log.debug("calibration failed: %s", exc.message)
    chosen = router.route(plan, res, est, options)
    if chosen.path == "cloud" and options.forced is None and res.cloud.reachable == "unchecked":
        # The only moment the network is touched before a job: the router wants the cloud.
        res = replace(res, cloud=resources.check_cloud(res.cloud))
        chosen = router.route(plan, res, est, options)
    return Decision(route=chosen, resources=res, estimates=est, options=options)


def _cloud_cannot_help(exc: BaseException) -> bool:
    return isinstance(exc, CLOUD_FALLBACK_ERRORS)


def ran_short(exc: BaseException) -> bool:
    """The local path failed for lack of resources: disk full, memory, or ffmpeg killed from outside."""
    if isinstance(exc, ResourceError):
        return True
    if isinstance(exc, EncodeError):
        return (exc.returncode is not None and exc.returncode < 0) or "No space left on device" in exc.stderr
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM)
    return isinstance(exc, MemoryError)


class _CloudWatch:
    """Passes events on, timing the upload and download so the next estimate uses this bandwidth."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.bytes: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Transfer):
            now = time.monotonic()
            self.started.setdefault(event.stage, now)
            self.seconds[event.stage] = now - self.started[event.stage]
            self.bytes[event.stage] = event.done_bytes
        self.sink(event)


def execute(
    decision: Decision,
    plan: Plan,
    *,
    run_local: Runner,
    run_cloud: Runner,
    on_event: EventSink,
    record_speed: bool = True,
) -> Result:
    """Run the decided path; fall back once to the other when allowed (see the module docstring)."""
    first = decision.route.path
    forced = decision.options.forced is not None
    try:
        result = _run(first, decision, plan, run_local, run_cloud, on_event, record_speed)
    except HybridError as exc:
        if forced:
            raise
        reason = exc.message
        if first == "cloud" and _cloud_cannot_help(exc):
            on_event(Message(f"the render service failed ({reason}); compressing on this machine instead"))
            result = _run("local", decision, plan, run_local, run_cloud, on_event, False)
        elif first == "local" and ran_short(exc) and _cloud_usable_now(decision, plan):
            on_event(Message(f"this machine ran short ({reason}); sending the job to the render service"))
            result = _run("cloud", decision, plan, run_local, run_cloud, on_event, record_speed)
        else:
            raise
        return replace(
            result, route_reason=decision.route.reason, fell_back_from=first, fallback_reason=reason
        )
    return replace(result, route_reason=decision.route.reason)


def _cloud_usable_now(decision: Decision, plan: Plan) -> bool:
    res = decision.resources
    if res.cloud.reachable == "unchecked":
        res = replace(res, cloud=resources.check_cloud(res.cloud))
    return router.cloud_problem(plan, res) is None


def _run(
    path: PathName,
    decision: Decision,
    plan: Plan,
    run_local: Runner,
    run_cloud: Runner,
    on_event: EventSink,
    record_speed: bool,
) -> Result:
    if path == "local":
        cpu_before = _children_cpu_s()
        result = run_local(on_event)
        cpu = _children_cpu_s() - cpu_before
        share = resources.encodes_share(plan, result.encodes)
        cal = decision.estimates.calibration
        if record_speed and cal is not None and share is not None:
            # A re-run second pass is not the speed model's error: compare like with like.
            resources.record_local(plan.video.codec, resources.local_cpu_s(plan, cal) * share, cpu)
        return result
    base_url = decision.resources.cloud.base_url
    watch = _CloudWatch(on_event)
    try:
        result = run_cloud(watch)
    except HybridError as exc:
        for kind, words in REMEMBERED_REFUSALS.items():
            if isinstance(exc, kind):
                Store().update_config(cloud_refusal={"url": base_url, "reason": words, "at": time.time()})
        raise
    _record_cloud(base_url, watch, result, plan)
    return result


def _children_cpu_s() -> float:
    """CPU time of this process's finished children: the ffmpeg runs of a local encode."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _record_cloud(base_url: str, watch: _CloudWatch, result: Result, plan: Plan) -> None:
    config = Store().config()
    refusal = config.get("cloud_refusal")
    if isinstance(refusal, dict) and refusal.get("url") == base_url:
        Store().update_config(cloud_refusal=None)  # it worked: whatever it refused is cured
    up_s, up_bytes = watch.seconds.get("upload", 0.0), watch.bytes.get("upload", 0)
    # Under a second of upload says more about the disk than the network: not a bandwidth sample.
    upload_bps = up_bytes * 8 / up_s if up_s >= 1.0 and up_bytes > 0 else None
    service_s = result.elapsed_s - up_s - watch.seconds.get("download", 0.0)
    per_media = service_s / plan.duration_s if plan.duration_s > 0 and service_s > 0 else None
    resources.record_cloud(base_url, upload_bps=upload_bps, service_s_per_media_s=per_media)
