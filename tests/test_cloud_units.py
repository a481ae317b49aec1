"""The cloud path's pure parts: SSE framing, both event and status shapes, the message, the config."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from hybrid.cloud import errors as E
from hybrid.cloud.agent import describe_request, understand
from hybrid.cloud.client import ClientOptions, NemoClient, parse_status
from hybrid.cloud.config import VENDOR_URL, Store, resolve_base_url
from hybrid.cloud.executor import CloudSettings, compress_cloud, exportable, timeline_summary
from hybrid.cloud.server import safe_filename
from hybrid.cloud.sse import AgentHeartbeat, AgentText, AgentTool, SSEDecoder, parse_agent_event
from hybrid.models import Request

from .conftest import clip

STREAM = (
    'data: {"type":"text","content":"hello"}\r\n\r\n'
    ": ping\n\n"
    "data:\n\n"
    "event: note\nid: 7\ndata: line one\ndata: line two\n\n"
    "\n"
    'data: {"type":"heartbeat"}\r\r'
    "data: unterminated"
)


def decode(chunks: list[str]) -> list[tuple[str, str]]:
    decoder = SSEDecoder()
    out = []
    for chunk in chunks:
        out += [(e.event, e.data) for e in decoder.feed(chunk)]
    decoder.close()
    return out


EXPECTED = [
    ("message", '{"type":"text","content":"hello"}'),
    ("message", ""),
    ("note", "line one\nline two"),
    ("message", '{"type":"heartbeat"}'),
]


def test_sse_decoder_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


def test_sse_decoder_any_chunking_gives_the_same_events() -> None:
    # One character at a time splits every CRLF and every field name.
    assert decode(list(STREAM)) == EXPECTED
    assert decode([STREAM[i : i + 5] for i in range(0, len(STREAM), 5)]) == EXPECTED


def test_sse_decoder_counts_comments() -> None:
    decoder = SSEDecoder()
    decoder.feed(": ping\n: ping\n")
    assert decoder.comments == 2


def test_agent_events_in_both_documented_shapes() -> None:
    assert parse_agent_event('{"type":"text","content":"done"}') == AgentText("done")
    assert parse_agent_event('{"type":"heartbeat"}') == AgentHeartbeat()
    assert parse_agent_event("") == AgentHeartbeat()
    assert parse_agent_event('{"type":"tool_call","name":"cut","args":{}}') == AgentTool("tool_call", "cut")
    adk = '{"content":{"role":"model","parts":[{"text":"Hel"},{"text":"lo"}]},"author":"nemo_agent"}'
    assert parse_agent_event(adk) == AgentText("Hello")
    call = '{"content":{"parts":[{"functionCall":{"name":"trim","args":{}}}]}}'
    assert parse_agent_event(call) == AgentTool("tool_call", "trim")


def test_export_status_variants_a_and_b() -> None:
    a = parse_status(
        {
            "taskId": "render_1",
            "status": "completed",
            "progress": 100,
            "output": {"url": "https://cdn/x.mp4", "duration": 30.5, "size": 15728640},
        },
        "render_1",
    )
    assert (a.status, a.output_url, a.size_bytes, a.duration_s) == (
        "completed",
        "https://cdn/x.mp4",
        15728640,
        30.5,
    )
    b = parse_status(
        {"success": True, "data": {"id": "render_2", "status": "processing", "progress": 40, "createdAt": 1}},
        "render_2",
    )
    assert (b.render_id, b.status, b.progress, b.output_url) == ("render_2", "processing", 40.0, None)
    with pytest.raises(E.CloudProtocolError):
        parse_status({"what": 1}, "render_3")


def test_the_message_means_what_the_request_says() -> None:
    request = Request(target_size_bytes=4_999_999, max_height=480, fps=24, audio="remove", preset="veryfast")
    back = understand(describe_request(request))
    for name in ("target_size_bytes", "max_height", "fps", "audio", "preset", "codec"):
        assert getattr(back, name) == getattr(request, name), name


def test_free_text_goes_through_the_instruction_parser() -> None:
    assert understand("make it under 8 MB please").target_size_bytes == 8_000_000


def test_base_url_precedence(tmp_path: Path) -> None:
    store = Store(tmp_path)
    env = {"NEMO_API_URL": "http://env.example"}
    assert resolve_base_url(None, store, {}) == VENDOR_URL
    assert resolve_base_url(None, store, env) == "http://env.example"
    store.update_config(cloud_url="http://config.example/")
    assert resolve_base_url(None, store, env) == "http://config.example"
    assert resolve_base_url("http://option.example", store, env) == "http://option.example"


def test_client_id_is_made_once_and_files_are_private(tmp_path: Path) -> None:
    store = Store(tmp_path / "cfg")
    first = store.credentials().client_id
    assert store.credentials().client_id == first
    store.save_credentials(
        store.credentials().__class__(client_id=first, token="nmv_usr_secret", kind="user")
    )
    mode = stat.S_IMODE(os.stat(store.credentials_path).st_mode)
    assert mode == 0o600
    assert "nmv_usr_secret" not in repr(store.credentials())
    store.forget_token()
    assert store.credentials().token is None
    assert store.credentials().client_id == first


def test_timeline_summary_in_the_documented_form() -> None:
    draft = {
        "t": [
            {"tt": 0, "sg": [{"name": "city timelapse", "s": 0, "e": 10000}]},
            {"tt": 1, "sg": [{"name": "Lo-fi", "s": 0, "e": 10000}]},
            {"tt": 7, "sg": [{"text": "Urban Dreams", "s": 0, "e": 3000}]},
        ],
        "d": 10000,
    }
    assert timeline_summary(draft) == (
        "Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s) "
        '3. Title: "Urban Dreams" (0-3s)'
    )
    assert exportable(draft) and not exportable({"t": [{"tt": 0, "sg": []}]})


def test_safe_filenames() -> None:
    assert safe_filename("clip 1.mp4") == "clip 1.mp4"
    for bad in ("../x.mp4", "a/b.mp4", "a\\b.mp4", ".hidden.mp4", "x\0.mp4", "", "..mp4"):
        assert safe_filename(bad) is None, bad


def _no_network(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"pre-flight let a request through: {request.url}")


def test_preflight_refuses_large_files_before_any_request(tmp_path: Path) -> None:
    big = tmp_path / "big.mp4"
    with big.open("wb") as handle:  # sparse: 501 MB that take no disk
        handle.truncate(501 * 10**6)
    settings = CloudSettings(base_url="http://127.0.0.1:9")
    with pytest.raises(E.FileTooLargeError, match="--local"):
        compress_cloud(
            big,
            Request(),
            tmp_path / "out.mp4",
            settings=settings,
            transport=httpx.MockTransport(_no_network),
        )


def test_preflight_refuses_unsupported_types(tmp_path: Path) -> None:
    odd = tmp_path / "clip.flv"
    odd.write_bytes(clip("motion-320p.mov").read_bytes()[:1000])
    settings = CloudSettings(base_url="http://127.0.0.1:9")
    with pytest.raises(E.UnsupportedFileError, match="--local"):
        compress_cloud(
            odd,
            Request(),
            tmp_path / "out.mp4",
            settings=settings,
            transport=httpx.MockTransport(_no_network),
        )


# -- client behaviour that needs a misbehaving server: httpx's MockTransport ------------------------


class Recorder:
    """A scripted server: answers in order, remembers every request."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def token_answer(token: str = "nmv_usr_t1") -> httpx.Response:
    return httpx.Response(
        200, json={"code": 0, "data": {"token": token, "credits": 100, "user_id": "anon_1"}}
    )


def mock_client(tmp_path: Path, recorder: Recorder, **options: float) -> NemoClient:
    return NemoClient(
        "http://node.test",
        Store(tmp_path / "cfg"),
        transport=httpx.MockTransport(recorder),
        options=ClientOptions(backoff_s=0, rate_limit_wait_s=0, **options),
        env={},
    )


def test_refused_client_id_is_replaced_once(tmp_path: Path) -> None:
    recorder = Recorder(httpx.Response(400, json={"code": 400}), token_answer())
    with mock_client(tmp_path, recorder) as c:
        assert c.token() == "nmv_usr_t1"
    first, second = (r.headers["X-Client-Id"] for r in recorder.requests)
    assert first != second and Store(tmp_path / "cfg").credentials().client_id == second


def test_every_request_carries_the_attribution_headers(tmp_path: Path) -> None:
    recorder = Recorder(token_answer(), httpx.Response(200, json={"code": 0, "data": {"available": 1}}))
    with mock_client(tmp_path, recorder) as c:
        c.credits()
    for sent in recorder.requests:
        assert sent.headers["X-Skill-Source"] == "hybrid"
        assert sent.headers["X-Skill-Platform"] == "unknown"
        assert sent.headers["X-Skill-Version"]
    assert recorder.requests[1].headers["Authorization"] == "Bearer nmv_usr_t1"


def sse(*events: str) -> httpx.Response:
    body = "".join(f"data: {e}\n\n" for e in events)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())


def test_heartbeats_only_for_too_long_is_a_stall(tmp_path: Path) -> None:
    recorder = Recorder(token_answer(), sse('{"type":"heartbeat"}', "", '{"type":"heartbeat"}'))
    with mock_client(tmp_path, recorder, stall_s=0) as c:
        reply = c.send_message("1", "under 5MB")
    assert reply.ended == "stalled" and reply.texts == ()


def test_text_is_collected_and_a_trailing_temporary_issue_ignored(tmp_path: Path) -> None:
    recorder = Recorder(
        token_answer(),
        sse(
            '{"type":"text","content":"Done."}',
            '{"type":"tool_call","name":"x"}',
            '{"type":"text","content":"I encountered a temporary issue"}',
        ),
    )
    with mock_client(tmp_path, recorder) as c:
        reply = c.send_message("1", "under 5MB")
    assert reply.texts == ("Done.",) and reply.tools == ("x",) and reply.ended == "closed"


def test_a_dropped_stream_is_never_sent_again(tmp_path: Path) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/api/auth/anonymous-token":
            return token_answer()
        raise httpx.ReadError("connection reset")

    store = Store(tmp_path / "cfg")
    with NemoClient("http://node.test", store, transport=httpx.MockTransport(handler), env={}) as c:
        reply = c.send_message("1", "under 5MB")
    assert reply.ended == "dropped" and calls.count("/run_sse") == 1


def test_the_token_never_goes_to_another_host(tmp_path: Path) -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/anonymous-token":
            return token_answer()
        seen[request.url.host] = request.headers.get("Authorization")
        return httpx.Response(200, content=b"video")

    with NemoClient(
        "http://node.test", Store(tmp_path / "cfg"), transport=httpx.MockTransport(handler), env={}
    ) as c:
        c.download("render_1", "https://cdn.example/x.mp4", tmp_path / "a.mp4")
        c.download("render_1", "http://node.test/files/x.mp4", tmp_path / "b.mp4")
    assert seen == {"cdn.example": None, "node.test": "Bearer nmv_usr_t1"}


def test_settings_come_from_the_config_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "cfg")
    store.update_config(cloud_url="http://node.test", deadline_s=60, poll_max_s=2, platform="cursor")
    settings = CloudSettings.from_store(store, env={})
    assert (settings.base_url, settings.deadline_s, settings.poll_max_s) == ("http://node.test", 60, 2)
    assert settings.options.platform == "cursor"
    assert (
        CloudSettings.from_store(store, cloud_url="http://other.test", env={}).base_url == "http://other.test"
    )


def test_a_url_that_is_not_http_is_refused_at_once(tmp_path: Path) -> None:
    for bad in ("notaurl", "ftp://x", "http://"):
        with pytest.raises(E.CloudError, match="not a render service URL"):
            NemoClient(bad, Store(tmp_path / "cfg"))
