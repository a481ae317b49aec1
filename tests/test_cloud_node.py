"""The cloud client against a real render node (uvicorn on 127.0.0.1, a free port), real clips.

Every documented error path is driven through the node's fault options. Encodes use the short
motion-320p clip with preset veryfast.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hybrid.cloud import errors as E
from hybrid.cloud.client import ClientOptions, Deadline, NemoClient
from hybrid.cloud.config import Store
from hybrid.cloud.executor import CloudSettings, _Job, compress_cloud
from hybrid.cloud.server import Faults, NodeConfig, RunningNode
from hybrid.models import Event, Message, Request, Transfer, Waiting
from hybrid.probe import probe

from .conftest import clip, leftovers

pytestmark = pytest.mark.encode

CLIP = "motion-320p.mov"
TARGET = 300_000
FAST = ClientOptions(backoff_s=0.02, rate_limit_wait_s=0.05, sse_idle_s=20)


def request() -> Request:
    return Request(target_size_bytes=TARGET, preset="veryfast")


def node_config(data_dir: Path, **changes: object) -> NodeConfig:
    values: dict[str, object] = {"data_dir": data_dir, "heartbeat_s": 0.01, "anon_tokens_per_ip": 1000}
    values.update(changes)
    return NodeConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_vendor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NEMO_TOKEN", "NEMO_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with RunningNode(node_config(tmp_path_factory.mktemp("node"))) as running:
        yield running


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "config")


def settings(url: str) -> CloudSettings:
    return CloudSettings(base_url=url, options=FAST, poll_max_s=0.5)


def client(url: str, store: Store) -> NemoClient:
    return NemoClient(url, store, options=FAST)


def session_with_upload(c: NemoClient) -> str:
    session = c.create_session()
    c.upload(session.session_id, clip(CLIP))
    return session.session_id


# -- the whole flow ---------------------------------------------------------------------------------


def test_whole_flow_survives_a_restart_and_never_logs_the_token(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "node"
    out = tmp_path / "out" / "small.mp4"
    out.parent.mkdir()
    events: list[Event] = []
    with RunningNode(node_config(data)) as running:
        result = compress_cloud(
            clip(CLIP), request(), out, settings=settings(running.url), store=store, on_event=events.append
        )
        with client(running.url, store) as c:
            before = c.credits()
    assert result.path == "cloud"
    assert out.stat().st_size == result.size_bytes <= TARGET
    info = probe(out)
    assert info.video is not None and info.video.codec == "h264"
    assert abs(info.duration_s - probe(clip(CLIP)).duration_s) < 0.3
    assert leftovers(out.parent) == []
    assert any(isinstance(e, Message) and e.text.startswith("service: ") for e in events)
    # The export went pending -> processing -> completed, its progress only ever growing.
    progress = [e.progress for e in events if isinstance(e, Waiting) and e.stage == "render"]
    assert (
        progress == sorted(progress)
        and progress[-1] == 100
        and any(p is not None and p < 100 for p in progress)
    )
    uploaded = [e.done_bytes for e in events if isinstance(e, Transfer) and e.stage == "upload"]
    assert uploaded[-1] == clip(CLIP).stat().st_size
    assert before.available == 95 and before.total == before.available + before.frozen

    token = store.credentials().token
    assert token and token.startswith("nmv_usr_")
    assert stat.S_IMODE(os.stat(store.credentials_path).st_mode) == 0o600
    assert not [r for r in caplog.records if token in r.getMessage()]

    # A new node process on the same data: the finished render is still there and downloadable.
    render_id = result.notes[0].split("render ")[-1].rstrip(")")
    with RunningNode(node_config(data)) as again, client(again.url, store) as c:
        status = c.export_status(render_id)
        assert status.status == "completed"
        copy = tmp_path / "again.mp4"
        c.download(render_id, status.output_url, copy)
        assert copy.read_bytes() == out.read_bytes()
        assert c.credits().available == 95


def test_variant_b_adk_events_silent_stream_and_one_of_each_transient_fault(
    tmp_path: Path, store: Store
) -> None:
    faults = Faults(
        status_variant="B",
        sse_shape="adk",
        drop_sse=1,
        rate_limit=1,
        upload_500=1,
        expire_token=1,
        render_fail=1,
        truncate_download=1,
        lose_session=1,
    )
    events: list[Event] = []
    with RunningNode(node_config(tmp_path / "node", faults=faults)) as running:
        result = compress_cloud(
            clip(CLIP),
            request(),
            tmp_path / "out.mp4",
            settings=settings(running.url),
            store=store,
            on_event=events.append,
        )
        remaining = dict(running.node._faults)
    assert result.size_bytes <= TARGET and result.path == "cloud"
    assert all(n == 0 for n in remaining.values()), remaining  # every fault fired and was recovered from
    texts = " ".join(e.text for e in events if isinstance(e, Message))
    assert "checking the session state" in texts and "new render id" in texts and "lost the session" in texts
    assert leftovers(tmp_path) == []


def test_cli_compress_cloud_json_and_the_account_commands(node: RunningNode, tmp_path: Path) -> None:
    env = {**os.environ, "HYBRID_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("NEMO_TOKEN", None)

    def hybrid(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hybrid", *args],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=240,
            check=False,
        )

    out = tmp_path / "cli.mp4"
    done = hybrid(
        "compress",
        str(clip(CLIP)),
        "-o",
        str(out),
        "--target",
        "300KB",
        "--preset",
        "veryfast",
        "--cloud",
        "--cloud-url",
        node.url,
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["path"] == "cloud" and report["size_bytes"] <= TARGET
    token = json.loads((tmp_path / "cfg" / "credentials.json").read_text())["token"]
    assert token not in done.stderr + done.stdout

    credits = hybrid("credits", "--cloud-url", node.url)
    assert credits.returncode == 0 and "available 95, frozen 0, total 95" in credits.stdout
    status = hybrid("status")
    assert status.returncode == 0, status.stderr
    assert "Timeline (1 track): 1. Video: motion-320p.mov (0-8" in status.stdout
    assert hybrid("compress", str(clip(CLIP)), "--cloud", "--local").returncode == 2

    assert hybrid("login", "--token", "nmv_usr_not_a_real_one").returncode == 0
    refused = hybrid("credits", "--cloud-url", node.url)
    assert refused.returncode == 12 and "hybrid login --token" in refused.stderr
    assert "nmv_usr_not_a_real_one" not in refused.stderr
    assert hybrid("logout").returncode == 0
    assert hybrid("credits", "--cloud-url", node.url).returncode == 0  # a fresh anonymous token


# -- errors, one by one -----------------------------------------------------------------------------


def test_render_failing_twice_is_a_render_error(tmp_path: Path, store: Store) -> None:
    config = node_config(tmp_path / "node", faults=Faults(render_fail=2))
    with RunningNode(config) as running, pytest.raises(E.RenderFailedError, match="twice"):
        compress_cloud(
            clip(CLIP), request(), tmp_path / "out.mp4", settings=settings(running.url), store=store
        )
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_interrupted_downloads_leave_nothing_behind(tmp_path: Path, store: Store) -> None:
    config = node_config(tmp_path / "node", faults=Faults(truncate_download=100))
    with RunningNode(config) as running, pytest.raises(E.CloudUnavailableError, match="download"):
        compress_cloud(
            clip(CLIP), request(), tmp_path / "out.mp4", settings=settings(running.url), store=store
        )
    assert not (tmp_path / "out.mp4").exists()
    assert leftovers(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["config", "node"]


def test_rate_limit_waits_and_retries_once(node: RunningNode, store: Store) -> None:
    with client(node.url, store) as c:
        c.credits()
        node.node.arm("rate_limit", 1)
        assert c.credits().available >= 0
        node.node.arm("rate_limit", 2)
        with pytest.raises(E.RateLimitedError):
            c.credits()


def test_expired_token_gets_a_new_anonymous_one(node: RunningNode, store: Store) -> None:
    with client(node.url, store) as c:
        c.credits()
        first = store.credentials().token
        node.node.arm("expire_token", 1)
        c.credits()
        assert store.credentials().token not in (None, first)
        node.node.arm("expire_token", 0)


def test_wrong_user_token_is_an_auth_error(node: RunningNode, store: Store) -> None:
    env = {"NEMO_TOKEN": "nmv_usr_wrong"}
    with (
        NemoClient(node.url, store, options=FAST, env=env) as c,
        pytest.raises(E.CloudAuthError, match="NEMO_TOKEN"),
    ):
        c.credits()


def test_lost_session_means_a_new_session_and_one_retry(
    node: RunningNode, store: Store, tmp_path: Path
) -> None:
    with client(node.url, store) as c:
        sid = c.create_session().session_id
        node.node.arm("lose_session", 1)
        with pytest.raises(E.CloudSessionError):
            c.state(sid)
    node.node.arm("lose_session", 2)
    with pytest.raises(E.CloudSessionError, match="twice"):
        compress_cloud(clip(CLIP), request(), tmp_path / "o.mp4", settings=settings(node.url), store=store)
    node.node.arm("lose_session", 0)


def test_no_credits_shows_the_registration_link(tmp_path: Path, store: Store) -> None:
    with (
        RunningNode(node_config(tmp_path / "node", initial_credits=0)) as running,
        client(running.url, store) as c,
    ):
        sid = session_with_upload(c)
        with pytest.raises(E.NoCreditsError, match=r"register\?bind=anon_"):
            c.send_message(sid, "under 1MB")


def test_free_plan_cannot_export(node: RunningNode, store: Store) -> None:
    with client(node.url, store) as c:
        sid = session_with_upload(c)
        c.send_message(sid, "under 300KB, preset veryfast")
        draft = c.state(sid)["state"]["draft"]
        node.node.arm("plan_required", 1)
        with pytest.raises(E.PlanRequiredError, match="register or upgrade"):
            c.start_export(sid, draft, "render_plan_check")
        # Without attribution headers, the node refuses export the same way.
        raw = httpx.post(
            f"{node.url}/api/render/proxy/lambda",
            headers={"Authorization": f"Bearer {c.token()}"},
            json={"id": "render_x", "sessionId": sid, "draft": draft},
        )
        assert raw.status_code == 402


def test_upload_limit_is_enforced_while_streaming(tmp_path: Path, store: Store) -> None:
    with RunningNode(node_config(tmp_path / "node", max_upload_bytes=100_000)) as running:
        with client(running.url, store) as c:
            sid = c.create_session().session_id
            with pytest.raises(E.FileTooLargeError, match="--local"):
                c.upload(sid, clip(CLIP))
        stored = list((tmp_path / "node" / "sessions" / sid).iterdir())
    assert stored == []  # the partial file was removed; nothing past the limit was kept


def test_unsupported_types_and_path_tricks_are_4001(node: RunningNode, store: Store, tmp_path: Path) -> None:
    with client(node.url, store) as c:
        sid = c.create_session().session_id
        headers = {"Authorization": f"Bearer {c.token()}"}
        url = f"{node.url}/api/upload-video/nemo_agent/me/{sid}"
        for name in ("../../escape.mp4", "sub/dir.mp4", ".hidden.mp4", "notes.txt"):
            answer = httpx.post(url, headers=headers, files={"files": (name, b"x" * 100)}).json()
            assert answer["code"] == 4001, name
        fake = tmp_path / "fake.mp4"
        fake.write_bytes(b"not a video" * 100)
        with pytest.raises(E.UnsupportedFileError, match="accepts mp4"):
            c.upload(sid, fake)
    assert not list((node.node.data_dir).rglob("escape.mp4"))


def test_one_user_cannot_see_anothers_files(node: RunningNode, tmp_path: Path) -> None:
    a_store, b_store = Store(tmp_path / "a"), Store(tmp_path / "b")
    with client(node.url, a_store) as a, client(node.url, b_store) as b:
        sid = a.create_session().session_id
        info = a.upload(sid, clip(CLIP))
        assert httpx.get(info["cdn_url"], headers={"Authorization": f"Bearer {a.token()}"}).status_code == 200
        assert httpx.get(info["cdn_url"], headers={"Authorization": f"Bearer {b.token()}"}).status_code == 404
        assert httpx.get(info["cdn_url"]).status_code == 401
        with pytest.raises(E.CloudSessionError):
            b.state(sid)
        with pytest.raises(E.CloudSessionError):
            b.upload(sid, clip(CLIP))
        with pytest.raises(E.CloudErrorWithCode):
            b.export_status("render_that_is_not_yours")


def test_anonymous_tokens_are_rate_limited_per_ip(tmp_path: Path) -> None:
    with RunningNode(node_config(tmp_path / "node", anon_tokens_per_ip=1)) as running:
        with client(running.url, Store(tmp_path / "one")) as first:
            first.credits()
        with client(running.url, Store(tmp_path / "two")) as second, pytest.raises(E.RateLimitedError):
            second.credits()


def test_network_errors_are_retried_a_bounded_number_of_times(store: Store) -> None:
    started = time.monotonic()
    with NemoClient("http://127.0.0.1:9", store, options=FAST) as c, pytest.raises(E.CloudUnavailableError):
        c.credits()
    assert time.monotonic() - started < 5


def test_the_overall_deadline_stops_the_job(node: RunningNode, store: Store, tmp_path: Path) -> None:
    tight = CloudSettings(base_url=node.url, options=FAST, deadline_s=0.0)
    with pytest.raises(E.CloudTimeoutError, match="deadline"):
        compress_cloud(clip(CLIP), request(), tmp_path / "o.mp4", settings=tight, store=store)
    assert leftovers(tmp_path) == []


def test_an_export_can_be_cancelled(node: RunningNode, store: Store) -> None:
    with client(node.url, store) as c:
        sid = session_with_upload(c)
        c.send_message(sid, "under 300KB, preset veryfast")
        draft = c.state(sid)["state"]["draft"]
        started = c.start_export(sid, draft, "render_to_cancel")
        assert started.status == "pending" and started.progress == 5
        c.cancel_export("render_to_cancel")
        for _ in range(100):
            status = c.export_status("render_to_cancel")
            if status.status not in ("pending", "processing"):
                break
            time.sleep(0.1)
    assert status.status == "cancelled"


def test_serve_refuses_unknown_faults(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hybrid", "serve", "--fault", "gremlins", "--data-dir", str(tmp_path / "n")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "unknown fault 'gremlins'" in done.stderr


def test_ctrl_c_during_a_render_cancels_it_and_leaves_nothing(node: RunningNode, tmp_path: Path) -> None:
    env = {**os.environ, "HYBRID_CONFIG_DIR": str(tmp_path / "cfg")}
    env.pop("NEMO_TOKEN", None)
    before = {row["render_id"] for row in node.node.q("SELECT render_id FROM renders")}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybrid",
            "compress",
            str(clip(CLIP)),
            "-o",
            str(tmp_path / "o.mp4"),
            "--target",
            "300KB",
            "--preset",
            "veryfast",
            "--cloud",
            "--cloud-url",
            node.url,
            "-q",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        render_id = None
        for _ in range(300):
            rows = node.node.q("SELECT render_id FROM renders")
            fresh = [row["render_id"] for row in rows if row["render_id"] not in before]
            if fresh:
                render_id = fresh[0]
                break
            time.sleep(0.05)
        assert render_id is not None, "the render never started"
        time.sleep(0.3)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg"]
    for _ in range(100):
        row = node.node.q1("SELECT status FROM renders WHERE render_id=?", render_id)
        if row is not None and row["status"] not in ("pending", "processing"):
            break
        time.sleep(0.1)
    assert row is not None and row["status"] == "cancelled"


def test_tokens_expire_and_are_renewed(tmp_path: Path, store: Store) -> None:
    with (
        RunningNode(node_config(tmp_path / "node", token_ttl_s=1)) as running,
        client(running.url, store) as c,
    ):
        c.credits()
        first = store.credentials().token
        time.sleep(1.1)
        assert c.credits().available == 100
        assert store.credentials().token != first


def test_an_agent_that_answers_without_a_timeline_fails_fast_with_its_words(
    node: RunningNode, store: Store
) -> None:
    with client(node.url, store) as c:
        session = c.create_session()  # nothing uploaded: the agent says so and edits nothing
        reply = c.send_message(session.session_id, "under 1MB")
        job = _Job(c, settings(node.url), Deadline(30), lambda event: None)
        started = time.monotonic()
        with pytest.raises(E.CloudError, match="Upload a video first"):
            job.wait_for_draft(session, reply)
    assert time.monotonic() - started < 2
