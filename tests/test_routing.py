"""Routing end to end: the route in ``hybrid plan``, the fallbacks during a run, against a real render
node on 127.0.0.1 (and a closed port there for "offline"). Nothing else is ever contacted.

The calibration and the cloud's speed are seeded into the test's own config dir, so the route does
not depend on this machine's load: the local estimate is over ``--max-wait 0s`` and the seeded cloud
is faster, so the router picks the cloud whenever it is usable.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from hybrid import dispatch, ffmpeg, local, resources
from hybrid.cloud.client import ClientOptions
from hybrid.cloud.config import Store
from hybrid.cloud.executor import CloudSettings, compress_cloud
from hybrid.cloud.server import Faults, NodeConfig, RunningNode
from hybrid.models import Event, Message, Progress, Request, Result
from hybrid.planner import plan as make_plan
from hybrid.probe import probe

from .conftest import clip, leftovers, run_cli

CLIP = "motion-320p.mov"
TARGET = "300kB"


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEMO_TOKEN", "NEMO_API_URL"):
        monkeypatch.delenv(name, raising=False)


def seed(cloud_url: str | None = None) -> None:
    """A calibration for this ffmpeg and CPU (so nothing is measured here), and a fast cloud."""
    cal = resources.Calibration(
        ffmpeg_version=ffmpeg.ffmpeg_version(),
        cpu_model=resources.cpu_model(),
        encode_cpu_s_per_mpx=0.03,
        decode_cpu_s_per_mpx=0.003,
        measured_at=time.time(),
        cost_s=2.0,
        cpu_busy=0.0,
    )
    data: dict[str, object] = {"calibration": cal.__dict__, "corrections": {}}
    if cloud_url:
        data["cloud"] = {cloud_url: {"upload_bps": 1e9, "service_s_per_media_s": 0.01}}
    path = resources.speed_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    # The client's retries shrunk, so a failing service fails fast.
    Store().update_config(network_retries=0, backoff_s=0.01, rate_limit_wait_s=0.05)


def node_config(data_dir: Path, **faults: int) -> NodeConfig:
    return NodeConfig(data_dir=data_dir, heartbeat_s=0.01, anon_tokens_per_ip=1000, faults=Faults(**faults))


@pytest.fixture()
def closed_port() -> Iterator[str]:
    """A 127.0.0.1 port nothing listens on: connecting is refused at once, like an offline service."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield f"http://127.0.0.1:{port}"


def compress_args(out: Path, *extra: str) -> list[str]:
    return ["compress", str(clip(CLIP)), "--target", TARGET, "--preset", "veryfast", "-o", str(out),
            "--json", *extra]  # fmt: skip


# -- the route in the plan -------------------------------------------------------------------------


def test_plan_shows_the_route_without_touching_the_network_when_local_is_plainly_fine() -> None:
    r = run_cli("plan", str(clip(CLIP)), "--target", TARGET, "--json")
    assert r.returncode == 0, r.stderr
    route = json.loads(r.stdout)["route"]
    assert route["path"] == "local" and "within the 3m00s wait" in route["reason"]
    assert route["local_estimate_s"] > 0 and route["cloud_estimate_s"] > route["cloud_upload_s"] > 0
    # A small job on a working machine: neither calibrated nor connected (no waiting for either).
    assert route["local_basis"] == "prior" and route["cloud_reachable"] == "unchecked"
    text = run_cli("plan", str(clip(CLIP)), "--target", TARGET).stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("Route"))
    assert "on this" in line and "-core machine; cloud: ~" in line and "— choosing local" in line


def test_offline_means_local_at_once(closed_port: str, tmp_path: Path) -> None:
    seed(closed_port)
    info = probe(clip(CLIP))
    the_plan = make_plan(info, Request(target_size_bytes=300_000, preset="veryfast"))
    started = time.monotonic()
    decision = dispatch.decide(the_plan, tmp_path, cloud_url=closed_port, max_wait_s=0.0)
    assert time.monotonic() - started < 2.0  # the CPU sample and one refused connect
    assert decision.route.path == "local" and "offline" in decision.route.reason
    assert decision.route.cloud_estimate_s is None and decision.resources.cloud.reachable == "unreachable"

    r = run_cli("plan", str(clip(CLIP)), "--target", TARGET, "--cloud-url", closed_port, "--max-wait", "0s",
                "--json")  # fmt: skip
    route = json.loads(r.stdout)["route"]
    assert route["path"] == "local" and route["cloud_estimate_s"] is None and "offline" in route["reason"]
    assert route["local_basis"] == "calibrated"


def test_forced_paths_show_in_the_plan(closed_port: str) -> None:
    seed(closed_port)
    r = run_cli("plan", str(clip(CLIP)), "--target", TARGET, "--cloud", "--cloud-url", closed_port, "--json")
    assert json.loads(r.stdout)["route"]["path"] == "cloud"
    assert json.loads(r.stdout)["route"]["reason"] == "--cloud given"
    r = run_cli("plan", str(clip(CLIP)), "--cloud", "--local")
    assert r.returncode == 2 and "contradict" in r.stderr
    r = run_cli("plan", str(clip(CLIP)), "--max-wait", "soon")
    assert r.returncode == 2 and "not a duration" in r.stderr


# -- fallbacks during a run --------------------------------------------------------------------------


@pytest.mark.encode
def test_a_402_from_the_chosen_cloud_falls_back_to_local_once(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    with RunningNode(node_config(tmp_path / "node", plan_required=5)) as node:
        seed(node.url)
        r = run_cli(*compress_args(out, "--cloud-url", node.url, "--max-wait", "0s"))
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        assert result["path"] == "local" and result["fell_back_from"] == "cloud"
        assert "free plan cannot export" in result["fallback_reason"]
        assert "the cloud is faster" in result["route_reason"]
        assert "compressing on this machine instead" in r.stderr
        assert out.stat().st_size == result["size_bytes"] <= 300_000
        assert leftovers(tmp_path) == []

        # The refusal is remembered: the next plan does not offer that cloud.
        r = run_cli("plan", str(clip(CLIP)), "--target", TARGET, "--cloud-url", node.url, "--max-wait", "0s",
                    "--json")  # fmt: skip
        route = json.loads(r.stdout)["route"]
        assert route["path"] == "local" and route["cloud_estimate_s"] is None
        assert "free plan cannot export" in route["reason"]

        # Forced, there is no fallback: the cloud's own error and exit code.
        forced = run_cli(*compress_args(tmp_path / "forced.mp4", "--cloud", "--cloud-url", node.url))
        assert forced.returncode == 12 and "free plan cannot export" in forced.stderr
        assert not (tmp_path / "forced.mp4").exists()


@pytest.mark.encode
def test_the_chosen_cloud_renders_when_it_works(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    with RunningNode(node_config(tmp_path / "node")) as node:
        seed(node.url)
        r = run_cli(*compress_args(out, "--cloud-url", node.url, "--max-wait", "0s"))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["path"] == "cloud" and result["fell_back_from"] is None
    assert "the cloud is faster" in result["route_reason"] and out.stat().st_size <= 300_000
    seen = resources.load_cloud_speed(node.url)
    assert seen.service_s_per_media_s is not None  # what this node took is remembered per URL


@pytest.mark.encode
def test_a_killed_local_encode_moves_to_the_cloud(tmp_path: Path) -> None:
    out = tmp_path / "small.mp4"
    request = Request(target_size_bytes=300_000, preset="veryfast")
    info = probe(clip(CLIP))
    the_plan = make_plan(info, request)
    events: list[Event] = []
    killed: list[int] = []

    def kill_ffmpeg_once(event: Event) -> None:
        events.append(event)
        if isinstance(event, Progress) and not killed:
            for child in psutil.Process().children(recursive=True):
                if "ffmpeg" in child.name():
                    killed.append(child.pid)
                    child.kill()  # as the OOM killer would

    with RunningNode(node_config(tmp_path / "node")) as node:
        seed()  # no cloud speed: the documented one, so a 8 s clip stays local
        decision = dispatch.decide(the_plan, tmp_path, cloud_url=node.url)
        assert decision.route.path == "local"

        def run_local(sink: dispatch.EventSink) -> Result:
            return local.compress(clip(CLIP), request, out, on_event=sink, info=info, plan=the_plan)

        def run_cloud(sink: dispatch.EventSink) -> Result:
            settings = CloudSettings(base_url=node.url, options=ClientOptions(backoff_s=0.02), poll_max_s=0.5)
            return compress_cloud(clip(CLIP), request, out, on_event=sink, settings=settings, info=info)

        result = dispatch.execute(
            decision, the_plan, run_local=run_local, run_cloud=run_cloud, on_event=kill_ffmpeg_once
        )
    assert killed and result.path == "cloud" and result.fell_back_from == "local"
    assert result.fallback_reason and "exit -9" in result.fallback_reason
    assert any(isinstance(e, Message) and "ran short" in e.text for e in events)
    assert out.stat().st_size == result.size_bytes <= 300_000
    assert leftovers(tmp_path) == []


def test_which_failures_move_the_job() -> None:
    from hybrid.cloud import errors as E
    from hybrid.errors import EncodeError, InputError, ResourceError

    assert dispatch.ran_short(ResourceError("disk"))
    assert dispatch.ran_short(EncodeError("killed", returncode=-9))
    assert dispatch.ran_short(EncodeError("full", stderr="...: No space left on device", returncode=1))
    assert not dispatch.ran_short(EncodeError("bad input", returncode=1))
    assert not dispatch.ran_short(InputError("missing"))
    for cured_by_local in (E.CloudUnavailableError("gone"), E.plan_required(), E.no_credits(None, False)):
        assert isinstance(cured_by_local, dispatch.CLOUD_FALLBACK_ERRORS)
    # A rejected token of the user's own is theirs to fix: no silent move.
    assert not isinstance(E.CloudAuthError("rejected"), dispatch.CLOUD_FALLBACK_ERRORS)


@pytest.mark.machine
def test_plan_calibrate_measures_once_and_later_plans_use_it() -> None:
    r = run_cli("plan", str(clip(CLIP)), "--target", TARGET, "--calibrate", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["route"]["local_basis"] == "calibrated"
    assert resources.speed_path().exists()
    text = run_cli("plan", str(clip(CLIP)), "--target", TARGET).stdout
    assert "rough" not in text and "Route    local: ~" in text
