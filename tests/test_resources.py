"""The real snapshot and the real calibration on this machine: the one place the tests measure it.

Only properties that hold on any machine are checked (sane ranges, the cache's behaviour); the router's
decisions are tested with constructed Resources in test_router.py.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from hybrid import ffmpeg, resources

pytestmark = pytest.mark.machine


def test_the_real_snapshot_and_calibration(tmp_path: Path) -> None:
    res = resources.snapshot(tmp_path, cloud_url="http://127.0.0.1:9")
    assert res.logical_cores >= res.physical_cores >= 1
    assert 0.0 <= res.cpu_busy <= 1.0 and res.competing_threads >= 0.0
    assert res.available_memory_bytes > 0 and res.free_disk_bytes > 0 and res.temp_free_bytes > 0
    assert (res.battery_percent is None) == (res.plugged_in is None)
    assert res.ffmpeg_ok and res.ffmpeg_version == ffmpeg.ffmpeg_version() and res.cpu_model
    # The snapshot never contacts the cloud: that is check_cloud's job, and only when it matters.
    assert res.cloud.reachable == "unchecked" and res.cloud.base_url == "http://127.0.0.1:9"

    started = time.monotonic()
    cal = resources.calibrate()
    took = time.monotonic() - started
    assert cal.cost_s <= took < 30  # a few seconds; generous for a loaded shared machine
    assert cal.ffmpeg_version == res.ffmpeg_version and cal.cpu_model == res.cpu_model
    # x264 medium costs some tens of milliseconds of CPU per megapixel on any current x86 machine.
    assert 0.003 < cal.encode_cpu_s_per_mpx < 0.5 and 0 < cal.decode_cpu_s_per_mpx < cal.encode_cpu_s_per_mpx

    # Cached: the next call measures nothing.
    started = time.monotonic()
    assert resources.calibrate() == cal and time.monotonic() - started < 1.0
    # Another ffmpeg or another CPU: the cache does not apply, and a new calibration is measured.
    assert resources.cached_calibration("n0.0-other", cal.cpu_model) is None
    assert resources.cached_calibration(cal.ffmpeg_version, "another CPU") is None
    stale = replace(cal, ffmpeg_version="n0.0-other", measured_at=1.0)
    data = json.loads(resources.speed_path().read_text())
    resources.speed_path().write_text(json.dumps({**data, "calibration": asdict(stale)}))
    assert resources.cached_calibration(cal.ffmpeg_version, cal.cpu_model) is None


def test_the_reachability_check_is_bounded_and_local() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    url = f"http://127.0.0.1:{listening.getsockname()[1]}"
    try:
        assert resources.check_cloud(resources.CloudState(base_url=url)).reachable == "reachable"
    finally:
        listening.close()
    started = time.monotonic()
    state = resources.check_cloud(resources.CloudState(base_url=url))
    assert state.reachable == "unreachable" and state.reach_detail and "127.0.0.1" in state.reach_detail
    assert time.monotonic() - started < resources.REACH_TIMEOUT_S + 0.2
    bad = resources.check_cloud(resources.CloudState(base_url="ftp://example"))
    assert bad.reachable == "unreachable" and "not an http(s) URL" in (bad.reach_detail or "")
