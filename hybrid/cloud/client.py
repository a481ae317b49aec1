"""The NemoVideo API client: one method per documented endpoint, errors mapped at the boundary.

Everything the service can answer is turned into data or into one ``CloudError`` subclass here;
no httpx exception leaves this module. Retries are bounded and local to one call:

- network errors and HTTP 5xx: ``network_retries`` more tries, exponential backoff;
- HTTP 429: wait (``Retry-After``, else ``rate_limit_wait_s``), then one more try;
- 1001/1010/1011/HTTP 401 with an anonymous token: a new anonymous token, then one more try.

Session loss (1002) and failed renders are handled a level up, in ``executor.py``, because curing
them means redoing earlier steps. ``/run_sse`` is never re-sent once the service accepted it (the
vendor warns that this charges credits twice): a dropped or silent stream is reported, and the
caller polls the session state instead.

The token goes into the ``Authorization`` header and nowhere else: not into messages, logs or reprs,
and never to a host other than the base URL's (output URLs may point at a CDN).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from . import errors as E
from .config import Credentials, Store, env_token
from .sse import (
    AgentHeartbeat,
    AgentOther,
    AgentText,
    AgentTool,
    SSEDecoder,
    is_ignorable_text,
    parse_agent_event,
)

log = logging.getLogger("hybrid.cloud")

CHUNK_BYTES = 256 * 1024
AUTH_CODES = frozenset({1001, 1010, 1011})


@dataclass(frozen=True)
class ClientOptions:
    """Timeouts and retry budgets; tests shrink the waits, users may tune them in config.json."""

    timeout_s: float = 60.0
    sse_idle_s: float = 120.0  # no bytes at all for this long: the stream is silent, poll the state
    stall_s: float = 600.0  # heartbeats only for this long: a stalled job (the vendor's ten minutes)
    network_retries: int = 3
    backoff_s: float = 1.0
    rate_limit_wait_s: float = 30.0
    platform: str = "unknown"
    language: str = "en"


@dataclass(frozen=True)
class Session:
    session_id: str
    task_id: str | None = None


@dataclass(frozen=True)
class Credits:
    available: float
    frozen: float
    total: float


@dataclass(frozen=True)
class AgentReply:
    """What came back from one ``/run_sse`` call."""

    texts: tuple[str, ...]
    heartbeats: int
    tools: tuple[str, ...]
    ended: str  # "closed" (normal end), "dropped" (connection broke), "silent" (no bytes), "stalled"


@dataclass(frozen=True)
class RenderStatus:
    render_id: str
    status: str  # pending | processing | completed | failed (| cancelled)
    progress: float | None
    output_url: str | None
    size_bytes: int | None = None
    duration_s: float | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def attribution_headers(platform: str = "unknown") -> dict[str, str]:
    return {"X-Skill-Source": "hybrid", "X-Skill-Version": __version__, "X-Skill-Platform": platform}


def new_render_id() -> str:
    # The documented form is render_<unix ms>; a short random tail keeps two ids made in the same
    # millisecond (a fast retry) unique, which the service requires.
    return f"render_{int(time.time() * 1000)}_{uuid.uuid4().hex[:6]}"


def unwrap(body: Any) -> Any:
    """Both envelopes: ``{"code": 0, "data": ...}`` and ``{"success": true, "data": ...}``."""
    if isinstance(body, dict) and "data" in body:
        return body["data"]
    return body


def parse_status(body: Any, render_id: str) -> RenderStatus:
    """Export status, variant A (top level, ``output.url``) or B (inside ``data``, ``outputUrl``)."""
    d = body
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and "status" in body["data"]:
        d = body["data"]
    if not isinstance(d, dict) or not isinstance(d.get("status"), str):
        raise E.CloudProtocolError("the render service sent an export status of an unknown shape")
    output: dict[str, Any] = d["output"] if isinstance(d.get("output"), dict) else {}
    url = d.get("outputUrl") or output.get("url") or d.get("url")
    progress = d.get("progress")
    size = output.get("size") if output else d.get("size")
    duration = output.get("duration") if output else d.get("duration")
    error = d.get("error") or d.get("message")
    return RenderStatus(
        render_id=str(d.get("id") or d.get("taskId") or render_id),
        status=d["status"].lower(),
        progress=float(progress) if isinstance(progress, (int, float)) else None,
        output_url=str(url) if url else None,
        size_bytes=int(size) if isinstance(size, (int, float)) else None,
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        error=str(error) if error else None,
        extra={k: v for k, v in d.items() if k in ("encodes", "width", "height")},
    )


class Deadline:
    """One overall deadline for a whole job; every wait and loop checks it."""

    def __init__(self, seconds: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seconds = seconds
        self.at = None if seconds is None else clock() + seconds

    def left(self) -> float:
        return math.inf if self.at is None else self.at - self.clock()

    def check(self, doing: str) -> None:
        if self.left() <= 0:
            raise E.CloudTimeoutError(
                f"the cloud job passed its {self.seconds:g} s deadline while {doing} "
                "(raise deadline_s in the config, or use --local)"
            )


class NemoClient:
    """A synchronous client for one base URL. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        base_url: str,
        store: Store | None = None,
        *,
        options: ClientOptions | None = None,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        deadline: Deadline | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise E.CloudErrorWithCode(
                f"{base_url!r} is not a render service URL: give one like http://127.0.0.1:8765 "
                "(--cloud-url, cloud_url in the config, or NEMO_API_URL)"
            )
        self.store = store or Store()
        self.options = options or ClientOptions()
        self.deadline = deadline or Deadline(None)
        self._sleep_fn = sleep
        self._env_token = env_token(env)
        self.http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(self.options.timeout_s),
            headers=attribution_headers(self.options.platform),
            follow_redirects=False,
        )
        self._creds: Credentials | None = None

    def __enter__(self) -> NemoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- identity ------------------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        if self._creds is None:
            self._creds = self.store.credentials()
        return self._creds

    @property
    def anonymous(self) -> bool:
        return self._env_token is None and self.credentials.kind == "anonymous"

    @property
    def user_id(self) -> str | None:
        return self.credentials.user_id

    def token(self) -> str:
        """The token to send: NEMO_TOKEN, else the stored one (unless expired), else a new anonymous one."""
        if self._env_token:
            return self._env_token
        creds = self.credentials
        if creds.token and not (creds.kind == "anonymous" and _expired(creds.expires_at)):
            return creds.token
        return self.new_anonymous_token()

    def new_anonymous_token(self) -> str:
        creds = self.credentials
        for attempt in range(2):
            response = self._send(
                "POST", "/api/auth/anonymous-token", headers={"X-Client-Id": creds.client_id}, authed=False
            )
            if response.status_code == 400 and attempt == 0:
                # Documented: a missing or refused client id; make a fresh one and try once more.
                creds = replace(creds, client_id=str(uuid.uuid4()))
                self.store.save_credentials(creds)
                continue
            data = self._judge(response, what="getting an anonymous token")
            token = data.get("token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise E.CloudProtocolError("the render service sent no anonymous token")
            creds = replace(
                creds,
                token=token,
                kind="anonymous",
                user_id=str(data["user_id"]) if data.get("user_id") else creds.user_id,
                expires_at=str(data["expires_at"]) if data.get("expires_at") else None,
            )
            self.store.save_credentials(creds)
            self._creds = creds
            log.debug("got an anonymous token for client %s", creds.client_id)
            return token
        raise E.CloudAuthError("the render service refused to issue an anonymous token", code=400)

    # -- transport -----------------------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None, authed: bool) -> dict[str, str]:
        headers = dict(extra or {})
        if authed:
            headers["Authorization"] = f"Bearer {self.token()}"
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: Callable[[], Iterator[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        authed: bool = True,
    ) -> httpx.Response:
        """One request with the bounded network/5xx/429/auth retries; returns the final response."""
        refreshed = waited = False
        failures = 0
        for _ in range(self.options.network_retries + 4):
            self.deadline.check(f"calling {path}")
            try:
                response = self.http.request(
                    method,
                    path,
                    json=json_body,
                    content=body() if body is not None else None,
                    headers=self._headers(headers, authed),
                )
            except httpx.TransportError as exc:
                failures += 1
                if failures > self.options.network_retries:
                    raise E.CloudUnavailableError(
                        f"cannot reach the render service at {self.base_url}: {_describe(exc)}"
                    ) from exc
                log.debug("network error on %s %s (%s); retrying", method, path, type(exc).__name__)
                self._backoff(failures)
                continue
            log.debug("%s %s -> %s", method, path, response.status_code)
            if response.status_code >= 500:
                failures += 1
                if failures > self.options.network_retries:
                    return response
                self._backoff(failures)
                continue
            if response.status_code == 429:
                if waited:
                    return response
                waited = True
                self._wait_rate_limit(response)
                continue
            if authed and self._auth_rejected(response):
                if refreshed or not self.anonymous:
                    return response
                refreshed = True
                log.debug("token rejected; getting a new anonymous token")
                self.new_anonymous_token()
                continue
            return response
        raise E.CloudUnavailableError(f"the render service at {self.base_url} kept failing on {path}")

    def _backoff(self, failures: int) -> None:
        self._sleep(self.options.backoff_s * 2 ** (failures - 1))

    def _sleep(self, seconds: float) -> None:
        left = self.deadline.left()
        if seconds >= left:
            self.deadline.check("waiting to retry")
            self._sleep_fn(max(0.0, left))
            self.deadline.check("waiting to retry")
        self._sleep_fn(seconds)

    def _wait_rate_limit(self, response: httpx.Response) -> None:
        wait = self.options.rate_limit_wait_s
        with contextlib.suppress(ValueError, TypeError):
            wait = float(response.headers.get("Retry-After"))
        log.info("rate limited by the render service; waiting %.0f s, then trying once more", wait)
        self._sleep(max(0.0, wait))

    @staticmethod
    def _auth_rejected(response: httpx.Response) -> bool:
        if response.status_code == 401:
            return True
        return _app_code(response) in AUTH_CODES

    def _judge(self, response: httpx.Response, *, what: str) -> Any:
        """A final response -> its data, or the CloudError that says what went wrong."""
        status = response.status_code
        body = _json_or_none(response)
        code = body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), int) else None
        message = _server_message(body)
        if status == 429:
            raise E.RateLimitedError(
                "the render service is rate limiting this client; try again later (or use --local)", code=429
            )
        if status == 401 or code in AUTH_CODES:
            if self._env_token:
                hint = "NEMO_TOKEN was rejected (expired or wrong): set a valid one or unset it"
            elif self.credentials.kind == "user":
                hint = (
                    "the stored token was rejected (expired or wrong): "
                    "run `hybrid login --token NEW` or `hybrid logout`"
                )
            else:
                hint = "the render service rejected even a fresh anonymous token"
            raise E.CloudAuthError(hint, code=code or status)
        if status == 402:
            raise E.plan_required()
        if code == 1002:
            raise E.CloudSessionError("the render service lost the session", code=1002)
        if code == 2001:
            raise E.no_credits(self.user_id, self.anonymous)
        if code == 4001:
            raise E.unsupported_file(message or "")
        if code == 4002:
            raise E.too_large()
        if status >= 500:
            raise E.CloudUnavailableError(
                f"the render service failed while {what} (HTTP {status}) after "
                f"{self.options.network_retries} retries; try again later or use --local",
                code=status,
            )
        if status >= 400 or (code is not None and code != 0):
            detail = f": {message}" if message else ""
            raise E.CloudErrorWithCode(
                f"the render service refused {what} (HTTP {status}, code {code}){detail}", code=code or status
            )
        if isinstance(body, dict) and body.get("success") is False:
            raise E.CloudErrorWithCode(f"the render service refused {what}: {message or 'no reason given'}")
        if body is None:
            raise E.CloudProtocolError(f"the render service sent a non-JSON answer while {what}")
        return unwrap(body)

    def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        return self._judge(self._send(method, path, **kwargs), what=what)

    # -- endpoints -----------------------------------------------------------------------------

    def create_session(self) -> Session:
        data = self._call(
            "POST",
            "/api/tasks/me/with-session/nemo_agent",
            json_body={"task_name": "project", "language": self.options.language},
            what="creating a session",
        )
        if not isinstance(data, dict) or not data.get("session_id"):
            raise E.CloudProtocolError("the render service sent no session id")
        if data.get("user_id") and self._creds is not None and not self._creds.user_id:
            self._creds = replace(self._creds, user_id=str(data["user_id"]))
        return Session(session_id=str(data["session_id"]), task_id=str(data.get("task_id") or "") or None)

    def credits(self) -> Credits:
        data = self._call("GET", "/api/credits/balance/simple", what="reading the credits")
        if not isinstance(data, dict):
            raise E.CloudProtocolError("the render service sent credits of an unknown shape")
        available = float(data.get("available", 0))
        frozen = float(data.get("frozen", 0))
        return Credits(available=available, frozen=frozen, total=float(data.get("total", available + frozen)))

    def state(self, session_id: str) -> dict[str, Any]:
        data = self._call(
            "GET", f"/api/state/nemo_agent/me/{session_id}/latest", what="reading the session state"
        )
        if not isinstance(data, dict):
            raise E.CloudProtocolError("the render service sent a session state of an unknown shape")
        return data

    def upload(
        self,
        session_id: str,
        path: Path,
        on_progress: Callable[[int, int], None] | None = None,
        *,
        filename: str | None = None,
    ) -> dict[str, Any]:
        """Upload one file as multipart ``files``, streamed from disk in 256 kB chunks.

        ``filename`` is the name the session knows it by (default: the file's own): a batch uploads
        several files into one session, and two inputs called ``clip.mp4`` must not replace each other.
        """
        size = path.stat().st_size
        boundary = f"hybrid-{uuid.uuid4().hex}"
        name = _quote_filename(filename or path.name)
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()

        def body() -> Iterator[bytes]:
            yield head
            sent = 0
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK_BYTES):
                    sent += len(chunk)
                    if on_progress is not None:
                        on_progress(sent, size)
                    yield chunk
            yield tail

        data = self._call(
            "POST",
            f"/api/upload-video/nemo_agent/me/{session_id}",
            body=body,
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(len(head) + size + len(tail)),
            },
            what="uploading the video",
        )
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list) or not files or not isinstance(files[0], dict):
            raise E.CloudProtocolError("the render service accepted the upload but listed no file")
        return files[0]

    def send_message(
        self,
        session_id: str,
        text: str,
        on_text: Callable[[str], None] | None = None,
        on_heartbeat: Callable[[float], None] | None = None,
    ) -> AgentReply:
        """Send one message through ``/run_sse`` and read the stream as it arrives."""
        payload = {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": session_id,
            "new_message": {"parts": [{"text": text}]},
        }
        timeout = httpx.Timeout(self.options.timeout_s, read=self.options.sse_idle_s)
        refreshed = waited = False
        failures = 0
        for _ in range(self.options.network_retries + 4):
            self.deadline.check("sending the instruction")
            try:
                with self.http.stream(
                    "POST",
                    "/run_sse",
                    json=payload,
                    headers=self._headers({"Accept": "text/event-stream"}, authed=True),
                    timeout=timeout,
                ) as response:
                    if "text/event-stream" in response.headers.get("content-type", ""):
                        return self._read_stream(response, on_text, on_heartbeat)
                    response.read()
            except httpx.ConnectError as exc:
                # Nothing was sent: retrying cannot charge twice.
                failures += 1
                if failures > self.options.network_retries:
                    raise E.CloudUnavailableError(
                        f"cannot reach the render service at {self.base_url}: {_describe(exc)}"
                    ) from exc
                self._backoff(failures)
                continue
            except httpx.TransportError as exc:
                # The request may have reached the agent: never re-send, poll the state instead.
                log.debug("the agent stream failed before it started (%s)", type(exc).__name__)
                return AgentReply(texts=(), heartbeats=0, tools=(), ended="dropped")
            # Not a stream: an error envelope (nothing was processed, so one retry is safe).
            if response.status_code == 429 and not waited:
                waited = True
                self._wait_rate_limit(response)
                continue
            if self._auth_rejected(response) and not refreshed and self.anonymous:
                refreshed = True
                self.new_anonymous_token()
                continue
            if response.status_code >= 500:
                failures += 1
                if failures <= self.options.network_retries:
                    self._backoff(failures)
                    continue
            self._judge(response, what="sending the instruction")
            raise E.CloudProtocolError("the render service answered the instruction without a stream")
        raise E.CloudUnavailableError("the render service kept failing on the instruction")

    def _read_stream(
        self,
        response: httpx.Response,
        on_text: Callable[[str], None] | None,
        on_heartbeat: Callable[[float], None] | None,
    ) -> AgentReply:
        decoder = SSEDecoder()
        texts: list[str] = []
        tools: list[str] = []
        heartbeats = 0
        started = last_news = time.monotonic()
        ended = "closed"
        try:
            for chunk in response.iter_text():
                for event in decoder.feed(chunk):
                    agent = parse_agent_event(event.data)
                    now = time.monotonic()
                    if isinstance(agent, AgentText):
                        last_news = now
                        if agent.text and not is_ignorable_text(agent.text, bool(texts)):
                            texts.append(agent.text)
                            if on_text is not None:
                                on_text(agent.text)
                    elif isinstance(agent, AgentTool):
                        last_news = now
                        tools.append(agent.name)
                        log.debug("agent %s %s", agent.kind, agent.name)
                    elif isinstance(agent, AgentHeartbeat):
                        heartbeats += 1
                        if on_heartbeat is not None:
                            on_heartbeat(now - started)
                    elif isinstance(agent, AgentOther):
                        log.debug("agent sent an event of an unknown shape")
                if time.monotonic() - last_news > self.options.stall_s:
                    ended = "stalled"
                    break
                if self.deadline.left() <= 0:
                    ended = "stalled"
                    break
        except httpx.ReadTimeout:
            ended = "silent"
        except httpx.TransportError:
            ended = "dropped"
        decoder.close()
        return AgentReply(texts=tuple(texts), heartbeats=heartbeats, tools=tuple(tools), ended=ended)

    def start_export(
        self, session_id: str, draft: Any, render_id: str, output: Mapping[str, Any] | None = None
    ) -> RenderStatus:
        body: dict[str, Any] = {"id": render_id, "sessionId": session_id, "draft": draft}
        body["output"] = dict(output) if output else {"format": "mp4", "quality": "high"}
        data = self._call("POST", "/api/render/proxy/lambda", json_body=body, what="starting the export")
        return parse_status(
            {"data": data} if isinstance(data, dict) and "status" in data else data, render_id
        )

    def export_status(self, render_id: str) -> RenderStatus:
        response = self._send("GET", f"/api/render/proxy/lambda/{render_id}")
        self._judge(response, what="reading the export status")
        return parse_status(_json_or_none(response), render_id)

    def cancel_export(self, render_id: str) -> None:
        with contextlib.suppress(E.CloudError):
            self._call("POST", f"/api/render/proxy/lambda/{render_id}/cancel", what="cancelling the export")

    def download(
        self,
        render_id: str,
        output_url: str | None,
        dest: Path,
        on_progress: Callable[[int, int | None], None] | None = None,
        expected_bytes: int | None = None,
    ) -> None:
        """Stream the result into ``dest`` (which the caller removes on failure).

        The output URL first; if it fails in any way, the documented download endpoint. The token is
        sent only to the service's own host.
        """
        sources: list[str] = []
        if output_url:
            sources.append(output_url)
        sources.append(f"{self.base_url}/api/render/proxy/{render_id}/download")
        problem = "no source"
        for n, url in enumerate(sources):
            attempts = 1 if n < len(sources) - 1 else self.options.network_retries
            for attempt in range(1, attempts + 1):
                self.deadline.check("downloading the result")
                try:
                    self._download_once(url, dest, on_progress, expected_bytes)
                    return
                except (httpx.HTTPError, httpx.InvalidURL, _IncompleteDownload, OSError) as exc:
                    problem = _describe(exc) if isinstance(exc, httpx.HTTPError) else str(exc)
                    if isinstance(exc, OSError) and not isinstance(exc, _IncompleteDownload):
                        raise E.CloudErrorWithCode(
                            f"cannot write the download to {dest.parent}: {exc}"
                        ) from exc
                    log.debug("download from %s failed (%s)", "output URL" if n == 0 and output_url else
                              "download endpoint", problem)  # fmt: skip
                    if attempt < attempts:
                        self._backoff(attempt)
        raise E.CloudUnavailableError(f"could not download the result from the render service: {problem}")

    def _download_once(
        self,
        url: str,
        dest: Path,
        on_progress: Callable[[int, int | None], None] | None,
        expected_bytes: int | None,
    ) -> None:
        # The token goes only to the service's own host, never to a CDN the output URL may name.
        headers = {"Authorization": f"Bearer {self.token()}"} if self._same_origin(url) else {}
        with self.http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                response.read()
                raise _IncompleteDownload(f"HTTP {response.status_code}")
            length = response.headers.get("content-length")
            total = int(length) if length and length.isdigit() else expected_bytes
            done = 0
            with dest.open("wb") as handle:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    handle.write(chunk)
                    done += len(chunk)
                    if on_progress is not None:
                        on_progress(done, total)
                handle.flush()
                os.fsync(handle.fileno())
        if total is not None and done != total:
            raise _IncompleteDownload(f"got {done} of {total} bytes")

    def _same_origin(self, url: str) -> bool:
        if not url.startswith(("http://", "https://")):
            return True  # a relative URL is on the service itself
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


class _IncompleteDownload(OSError):
    pass


def _expired(expires_at: str | None) -> bool:
    if not expires_at:
        return False
    try:
        when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= datetime.now(UTC)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _app_code(response: httpx.Response) -> int | None:
    if "json" not in response.headers.get("content-type", ""):
        return None
    body = _json_or_none(response)
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _server_message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("message", "msg", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return str(body[key])[:200]
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _quote_filename(name: str) -> str:
    return name.replace("\\", "_").replace('"', "_").replace("\r", "_").replace("\n", "_")
