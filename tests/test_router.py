"""The router's decision table, and the estimates it weighs, as pure functions.

Every Resources here is built by hand: no test reads this machine's state, so the table holds on any
machine, loaded or idle, with or without a battery or a network.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hybrid import resources, router
from hybrid.models import AudioStream, MediaInfo, Plan, Request, VideoStream
from hybrid.planner import plan as make_plan
from hybrid.resources import Calibration, CloudSpeed, CloudState, Correction, Estimates, Resources
from hybrid.router import Route, RouteOptions

CAL = Calibration(
    ffmpeg_version="test",
    cpu_model="test",
    encode_cpu_s_per_mpx=0.03,
    decode_cpu_s_per_mpx=0.003,
    measured_at=0.0,
    cost_s=2.0,
    cpu_busy=0.0,
)


def media(
    *,
    width: int = 1920,
    height: int = 1080,
    duration: float = 120.0,
    size: int = 200_000_000,
    name: str = "trip.mp4",
    fps: float = 30.0,
) -> MediaInfo:
    return MediaInfo(
        path=Path(name),
        size_bytes=size,
        duration_s=duration,
        container="mov,mp4,m4a,3gp,3g2,mj2",
        video=VideoStream("h264", width, height, 0, fps, "yuv420p", int(size * 8 / duration * 0.9)),
        audio=AudioStream("aac", 2, 48000, 128_000),
    )


def a_plan(info: MediaInfo | None = None, **request: object) -> Plan:
    req = Request(**{"target_size_bytes": 25_000_000, **request})  # type: ignore[arg-type]
    return make_plan(info or media(), req)


def machine(**changes: object) -> Resources:
    """A healthy idle 2-core machine on mains power, the cloud not yet checked."""
    values: dict[str, object] = {
        "logical_cores": 2,
        "physical_cores": 2,
        "cpu_busy": 0.0,
        "competing_threads": 0.0,
        "available_memory_bytes": 8 * 10**9,
        "free_disk_bytes": 100 * 10**9,
        "temp_free_bytes": 100 * 10**9,
        "battery_percent": None,
        "plugged_in": None,
        "cpu_model": "test",
        "ffmpeg_ok": True,
        "ffmpeg_problem": None,
        "ffmpeg_version": "test",
        "cloud": CloudState(base_url="http://127.0.0.1:9"),
    }
    values.update(changes)
    return Resources(**values)  # type: ignore[arg-type]


def cloud(**changes: object) -> CloudState:
    return replace(CloudState(base_url="http://127.0.0.1:9"), **changes)  # type: ignore[arg-type]


def estimates(local_s: float, cloud_s: float = 100.0, upload_s: float = 40.0) -> Estimates:
    c = resources.CloudEstimate(
        total_s=cloud_s,
        upload_s=upload_s,
        service_s=cloud_s - upload_s,
        download_s=0.0,
        upload_bps=10e6,
        upload_basis="assumed",
        service_basis="documented",
    )
    return Estimates(local_s=local_s, local_basis="calibrated", cloud=c)


def decide(
    res: Resources | None = None,
    est: Estimates | None = None,
    plan: Plan | None = None,
    **options: object,
) -> Route:
    return router.route(
        plan or a_plan(),
        res or machine(),
        est or estimates(60.0),
        RouteOptions(**options),  # type: ignore[arg-type]
    )


# -- the decision table -------------------------------------------------------------------------------


def test_local_when_this_machine_can_within_the_wait() -> None:
    r = decide(est=estimates(60.0, cloud_s=30.0))
    assert r.path == "local" and "within the 3m00s wait" in r.reason
    assert r.local_estimate_s == 60.0 and r.cloud_estimate_s == 30.0 and r.cloud_upload_s == 40.0


def test_over_the_wait_the_faster_usable_cloud_wins() -> None:
    r = decide(est=estimates(400.0, cloud_s=100.0))
    assert r.path == "cloud" and "over the 3m00s wait" in r.reason and "faster" in r.reason


def test_over_the_wait_but_the_cloud_is_slower_stays_local() -> None:
    r = decide(est=estimates(400.0, cloud_s=500.0))
    assert r.path == "local" and "would not be faster" in r.reason


def test_max_wait_is_the_users_patience() -> None:
    assert decide(est=estimates(60.0, cloud_s=30.0), max_wait_s=30.0).path == "cloud"
    assert decide(est=estimates(400.0, cloud_s=100.0), max_wait_s=600.0).path == "local"


@pytest.mark.parametrize(
    ("res", "plan", "words"),
    [
        (machine(cloud=cloud(reachable="unreachable", reach_detail="127.0.0.1:9: refused")), None, "offline"),
        (machine(cloud=cloud(refusal="credits exhausted")), None, "credits exhausted"),
        (
            machine(cloud=cloud(has_token=False, anonymous_allowed=False)),
            None,
            "anonymous tokens are turned off",
        ),
        (machine(), a_plan(media(size=600_000_000)), "over the service's 500 MB"),
        (machine(), a_plan(media(name="trip.flv")), "does not take .flv"),
        (machine(), a_plan(codec="hevc"), "H.264 only"),
        (machine(), a_plan(media(width=3840, height=2160), target_size_bytes=400_000_000), "up to 1080p"),
    ],
)
def test_an_unusable_cloud_means_local_with_the_reason(res: Resources, plan: Plan | None, words: str) -> None:
    r = decide(res, estimates(400.0, cloud_s=100.0), plan)
    assert r.path == "local" and words in r.reason and words in (r.cloud_problem or "")
    assert r.cloud_estimate_s is None and r.cloud_nominal_s == 100.0


def test_a_token_makes_anonymous_tokens_unnecessary() -> None:
    res = machine(cloud=cloud(has_token=True, anonymous_allowed=False))
    assert decide(res, estimates(400.0, cloud_s=100.0)).path == "cloud"


@pytest.mark.parametrize(
    ("res", "words"),
    [
        (machine(free_disk_bytes=10_000_000), "not enough free disk"),
        (machine(available_memory_bytes=100_000_000), "not enough memory for 1920x1080"),
        (machine(ffmpeg_ok=False, ffmpeg_problem="no working ffmpeg"), "no working ffmpeg"),
    ],
)
def test_a_machine_that_cannot_sends_the_job_to_a_usable_cloud(res: Resources, words: str) -> None:
    r = decide(res, estimates(10.0, cloud_s=500.0))
    assert r.path == "cloud" and r.reason.startswith("this machine cannot") and words in r.reason
    assert r.local_problem is not None and words in r.local_problem
    # ... and when the cloud is unusable too, local: its own check fails with the exact error and code.
    offline = replace(res, cloud=cloud(reachable="unreachable"))
    r = decide(offline, estimates(10.0, cloud_s=500.0))
    assert r.path == "local" and words in r.reason and "offline" in r.reason


def test_disk_need_counts_pass_logs_and_output() -> None:
    p = a_plan()
    from hybrid import local

    need = local.required_disk_bytes(p)
    assert need > p.predicted_size_bytes
    assert decide(machine(free_disk_bytes=need), estimates(10.0), p).path == "local"
    assert decide(machine(free_disk_bytes=need - 1), estimates(10.0), p).path == "cloud"


def test_memory_need_grows_with_the_picture() -> None:
    small = router.memory_needed_bytes(a_plan(media(width=640, height=360), target_size_bytes=5_000_000))
    big = router.memory_needed_bytes(a_plan(media(width=3840, height=2160), target_size_bytes=400_000_000))
    assert 150_000_000 < small < 200_000_000 < 1_000_000_000 < big < 2_000_000_000


def test_on_a_low_battery_the_usable_cloud_is_preferred() -> None:
    low = machine(battery_percent=12.0, plugged_in=False)
    r = decide(low, estimates(10.0, cloud_s=500.0))
    assert r.path == "cloud" and "on battery at 12%, below 20%" in r.reason
    assert decide(replace(low, plugged_in=True), estimates(10.0, cloud_s=500.0)).path == "local"
    assert decide(low, estimates(10.0), battery_min_percent=10.0).path == "local"
    offline = replace(low, cloud=cloud(reachable="unreachable"))
    assert decide(offline, estimates(10.0)).path == "local"


def test_forced_paths_always_win() -> None:
    broken = machine(free_disk_bytes=0, cloud=cloud(reachable="unreachable"))
    r = decide(broken, estimates(10_000.0, cloud_s=1.0), forced="local")
    assert r.path == "local" and r.reason == "--local given" and r.local_problem and r.cloud_problem
    r = decide(machine(), estimates(1.0, cloud_s=10_000.0), forced="cloud")
    assert r.path == "cloud" and r.reason == "--cloud given"
    r = decide(broken, estimates(1.0), forced="cloud")
    assert r.path == "cloud" and r.cloud_estimate_s is None  # forced, though known unusable


def test_the_route_line_reads_like_the_issue() -> None:
    offline = machine(cloud=cloud(reachable="unreachable", reach_detail="127.0.0.1:9: refused"))
    r = decide(offline, estimates(130.0, cloud_s=100.0, upload_s=45.0))
    assert router.describe(r, 2) == (
        "local: ~2m10s on this 2-core machine; cloud: ~1m40s incl. 45 s upload (unusable) — choosing local "
        "(within the 3m00s wait; the cloud is unusable: offline: 127.0.0.1:9: refused)"
    )
    r = decide(machine(), estimates(130.0, cloud_s=100.0, upload_s=45.0))
    assert router.describe(r, 2).startswith(
        "local: ~2m10s on this 2-core machine; cloud: ~1m40s incl. 45 s upload — choosing local"
    )


# -- the estimates ------------------------------------------------------------------------------------


def local_s(plan: Plan, res: Resources | None = None, correction: Correction | None = None) -> float:
    return resources.estimate_local_s(plan, res or machine(), CAL, correction or Correction())


def test_local_estimate_follows_pixels_frames_passes_and_preset() -> None:
    info = media(duration=60.0, size=300_000_000)
    two_pass = a_plan(info, target_size_bytes=60_000_000)
    smaller = a_plan(info, target_size_bytes=60_000_000, max_height=540)
    longer = a_plan(replace(info, duration_s=120.0), target_size_bytes=120_000_000)
    fast = a_plan(info, target_size_bytes=60_000_000, preset="veryfast")
    assert two_pass.video.mode == "two-pass" and two_pass.video.height == 1080 and smaller.video.height == 540
    assert local_s(smaller) < 0.5 * local_s(two_pass)
    assert local_s(longer) == pytest.approx(2 * local_s(two_pass), rel=0.05)
    assert local_s(fast) < 0.5 * local_s(two_pass)
    # 60 s of 1080p30 two-pass at medium on an idle 2-core machine with this calibration:
    # 1800 frames x 2.07 Mpx x 0.03 s/Mpx x 0.93 (both passes) / 1.8 cores, plus decoding twice: ~71 s.
    assert 60 < local_s(two_pass) < 75


def test_busy_machines_and_learnt_corrections_lengthen_the_estimate() -> None:
    p = a_plan()
    idle = local_s(p)
    busy = local_s(p, machine(competing_threads=4.0, cpu_busy=1.0))
    # Four other hungry threads against x264's four on two cores: one core where it would use 1.8.
    assert busy == pytest.approx(1.8 * idle, rel=0.02)
    # The correction scales the CPU work, not the processes' start-up.
    assert local_s(p, correction=Correction(factor=1.5, samples=3)) == pytest.approx(1.5 * idle, rel=0.01)


def test_cloud_estimate_is_upload_plus_documented_render_plus_download() -> None:
    p = a_plan(media(duration=30.0, size=50_000_000), target_size_bytes=10_000_000)
    e = resources.estimate_cloud(p, CloudSpeed(), {})
    assert e.upload_basis == "assumed" and e.service_basis == "documented"
    assert e.upload_s == pytest.approx(50_000_000 * 8 / 10e6, abs=0.1)  # 40 s at 10 Mb/s
    assert e.service_s == pytest.approx(20 + 60)  # agent + "30-90 s for a 30-second clip"
    assert e.total_s == pytest.approx(e.upload_s + e.service_s + e.download_s, abs=0.2)
    configured = resources.estimate_cloud(p, CloudSpeed(upload_bps=1e6), {"upload_mbps": 40})
    assert configured.upload_basis == "configured" and configured.upload_s == pytest.approx(10.0)
    measured = resources.estimate_cloud(p, CloudSpeed(upload_bps=20e6, service_s_per_media_s=0.5), {})
    assert measured.upload_basis == "measured" and measured.upload_s == pytest.approx(20.0)
    assert measured.service_basis == "measured" and measured.service_s == pytest.approx(15.0)


def test_without_calibration_the_estimate_is_the_pessimistic_prior() -> None:
    p = a_plan()
    est = resources.estimate(p, machine(), None, Correction(factor=0.1, samples=5), CloudSpeed())
    assert est.local_basis == "prior" and est.local_s > 2 * local_s(p)
    refined = resources.estimate(p, machine(), CAL, Correction(factor=0.9, samples=2), CloudSpeed())
    assert refined.local_basis == "calibrated+refined"


def test_a_refusal_is_remembered_for_a_day_and_for_its_url_only() -> None:
    config = {"cloud_refusal": {"url": "http://a", "reason": "credits exhausted", "at": 1000.0}}
    assert (
        resources.cloud_state("http://a", config, has_token=False, now=2000.0).refusal == "credits exhausted"
    )
    assert resources.cloud_state("http://b", config, has_token=False, now=2000.0).refusal is None
    assert resources.cloud_state("http://a", config, has_token=False, now=1000.0 + 86401).refusal is None
    off = resources.cloud_state("http://a", {"anonymous_tokens": False}, has_token=False, now=0.0)
    assert not off.anonymous_allowed and off.reachable == "unchecked"


def test_corrections_learn_halfway_from_each_real_encode() -> None:
    first = resources.record_local("h264", estimated_cpu_s=10.0, actual_cpu_s=20.0)
    assert first.samples == 1 and first.factor == pytest.approx(2**0.5, rel=1e-3)
    second = resources.record_local("h264", estimated_cpu_s=10.0, actual_cpu_s=20.0)
    assert second.samples == 2 and second.factor == pytest.approx(2**0.75, rel=1e-3)
    assert resources.load_correction("h264") == second
    assert resources.load_correction("hevc") == Correction()
    wild = resources.record_local("hevc", estimated_cpu_s=1.0, actual_cpu_s=1000.0)
    assert wild.factor == pytest.approx(2.0)  # one outlier is clamped to 4x, then halved


def test_retried_second_passes_are_compared_like_with_like() -> None:
    p = a_plan()
    assert resources.encodes_share(p, 2) == 1.0
    assert resources.encodes_share(p, 3) == pytest.approx((0.28 + 2 * 0.65) / 0.93)
    assert resources.encodes_share(a_plan(target_size_bytes=None), 1) in (1.0, None)
