"""Our NemoVideo-compatible render node: ``hybrid serve``.

An ASGI app (Starlette under uvicorn) that speaks every endpoint of the documented protocol, so the
client can be tested over real HTTP and users can run a node on a strong machine and point their
laptops at it. Its "agent" reads the message with the project's own instruction reading
(``agent.understand``) and planner; its renders are ``hybrid.local.compress``.

State lives in ``<data-dir>/node.sqlite3`` and files under ``<data-dir>/sessions`` and
``<data-dir>/renders``, so finished renders survive a restart (renders cut short by a restart are
marked failed: the client retries those with a new id, as documented).

Enforced: tokens expire (1001), unknown or foreign sessions are 1002, uploads over the limit are
4002 (counted while streaming; nothing past the limit touches the disk), unsupported types and path
tricks in file names are 4001, anonymous tokens are rate limited per IP (429), export without the
attribution headers is HTTP 402, a user sees only its own sessions, files and renders.

Faults for tests (``Faults``; ``hybrid serve --fault NAME[=N]``): each counted fault fires on the
next N matching requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import uvicorn
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import local, planner
from ..errors import HybridError
from ..models import Event, Progress, Request, StageStarted, to_jsonable
from ..probe import probe
from ..units import format_size
from .agent import understand
from .errors import ACCEPTED_EXTENSIONS, MAX_UPLOAD_BYTES

log = logging.getLogger("hybrid.serve")

WEEK_S = 7 * 24 * 3600.0
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()+,-]{0,199}$")
_RENDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
FAULT_NAMES = (
    "drop_sse",
    "rate_limit",
    "upload_500",
    "expire_token",
    "render_fail",
    "truncate_download",
    "lose_session",
    "plan_required",
)


@dataclass(frozen=True)
class Faults:
    """Injected faults. Counts: how many of the next matching requests misbehave."""

    drop_sse: int = 0  # the stream edits the draft, sends one heartbeat, and closes without text
    rate_limit: int = 0  # any request: HTTP 429 (Retry-After: 0)
    upload_500: int = 0  # uploads: HTTP 500
    expire_token: int = 0  # authenticated requests: the caller's token expires now (1001)
    render_fail: int = 0  # renders: status failed
    truncate_download: int = 0  # file downloads: the connection drops halfway
    lose_session: int = 0  # session lookups: 1002
    plan_required: int = 0  # exports: HTTP 402
    status_variant: Literal["A", "B"] = "A"  # export status shape
    sse_shape: Literal["vendor", "adk"] = "vendor"  # agent event shape


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    token_ttl_s: float = WEEK_S
    initial_credits: float = 100.0
    message_cost: float = 5.0
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    anon_tokens_per_ip: int = 10  # per rate window, as documented
    rate_window_s: float = WEEK_S
    heartbeat_s: float = 0.2  # pause between the agent's steps, each preceded by a heartbeat
    faults: Faults = field(default_factory=Faults)


class _Fault(Exception):
    pass


class Node:
    """The node's state: the database, the files, the render worker, the armed faults."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "sessions").mkdir(exist_ok=True)
        (self.data_dir / "renders").mkdir(exist_ok=True)
        self.db = sqlite3.connect(
            self.data_dir / "node.sqlite3", check_same_thread=False, isolation_level=None
        )
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self._faults: dict[str, int] = {name: getattr(config.faults, name) for name in FAULT_NAMES}
        self.status_variant = config.faults.status_variant
        self.sse_shape = config.faults.sse_shape
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="render")
        self._cancelled: set[str] = set()
        self._schema()
        self._recover()

    # -- storage -------------------------------------------------------------------------------

    def _schema(self) -> None:
        self.db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, available REAL, frozen REAL);
            CREATE TABLE IF NOT EXISTS tokens (token_hash TEXT PRIMARY KEY, user_id TEXT, client_id TEXT,
                ip TEXT, issued_at REAL, expires_at REAL);
            CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, task_id TEXT, user_id TEXT,
                created_at REAL, state TEXT);
            CREATE TABLE IF NOT EXISTS files (session_id TEXT, filename TEXT, path TEXT, info TEXT,
                PRIMARY KEY (session_id, filename));
            CREATE TABLE IF NOT EXISTS renders (render_id TEXT PRIMARY KEY, user_id TEXT, session_id TEXT,
                status TEXT, progress REAL, output_path TEXT, size INTEGER, duration REAL, error TEXT,
                created_at REAL, completed_at REAL, encodes INTEGER, request TEXT);
            """
        )

    def _recover(self) -> None:
        # A render cut short by a restart has no process any more: fail it, the client retries.
        with self.lock:
            self.db.execute(
                "UPDATE renders SET status='failed', error='the render node restarted during the render' "
                "WHERE status IN ('pending', 'processing')"
            )

    def q(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self.lock:
            return list(self.db.execute(sql, args).fetchall())

    def q1(self, sql: str, *args: Any) -> sqlite3.Row | None:
        rows = self.q(sql, *args)
        return rows[0] if rows else None

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)
        with self.lock:
            self.db.close()

    # -- faults --------------------------------------------------------------------------------

    def arm(self, name: str, count: int = 1) -> None:
        if name not in self._faults:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(FAULT_NAMES)})")
        with self.lock:
            self._faults[name] = count

    def fire(self, name: str) -> bool:
        with self.lock:
            if self._faults.get(name, 0) > 0:
                self._faults[name] -= 1
                log.info("fault injected: %s", name)
                return True
            return False

    # -- identity ------------------------------------------------------------------------------

    def issue_token(self, client_id: str, ip: str) -> dict[str, Any] | None:
        """A new token for this client id; None if the IP has had too many new clients lately.

        A client that asks again (it lost its token, or it expired: the documented 1001 cure) gets a
        new token for the same user and credits; only new client ids count against the IP's limit.
        A token still valid for this client keeps its expiry: asking again does not extend a week.
        """
        now = time.time()
        with self.lock:
            previous = self.q1("SELECT * FROM tokens WHERE client_id=? ORDER BY issued_at DESC", client_id)
            if previous is None:
                recent = self.q1(
                    "SELECT COUNT(DISTINCT client_id) AS n FROM tokens WHERE ip=? AND issued_at>?",
                    ip,
                    now - self.config.rate_window_s,
                )
                if recent is not None and recent["n"] >= self.config.anon_tokens_per_ip:
                    return None
                user_id = f"anon_{uuid.uuid4().hex[:16]}"
                self.db.execute("INSERT INTO users VALUES (?, ?, 0)", (user_id, self.config.initial_credits))
            else:
                user_id = previous["user_id"]
            still_valid = previous is not None and previous["expires_at"] > now
            expires = previous["expires_at"] if still_valid and previous else now + self.config.token_ttl_s
            token = f"nmv_usr_{secrets.token_urlsafe(24)}"
            self.db.execute(
                "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                (_hash(token), user_id, client_id, ip, now, expires),
            )
            row = self.q1("SELECT * FROM tokens WHERE token_hash=?", _hash(token))
            assert row is not None
            return self._token_answer(row, token)

    def _token_answer(self, row: sqlite3.Row, token: str | None) -> dict[str, Any]:
        user = self.q1("SELECT * FROM users WHERE user_id=?", row["user_id"])
        return {
            "token": token,
            "token_hash": row["token_hash"],
            "user_id": row["user_id"],
            "credits": user["available"] if user else 0,
            "expires_at": datetime.fromtimestamp(row["expires_at"], UTC).isoformat().replace("+00:00", "Z"),
        }

    def user_for(self, token: str) -> str | None:
        row = self.q1("SELECT * FROM tokens WHERE token_hash=?", _hash(token))
        if row is None or row["expires_at"] <= time.time():
            return None
        if self.fire("expire_token"):
            with self.lock:
                self.db.execute(
                    "UPDATE tokens SET expires_at=? WHERE token_hash=?", (time.time(), row["token_hash"])
                )
            return None
        return str(row["user_id"])

    def session(self, session_id: str, user_id: str) -> sqlite3.Row | None:
        if self.fire("lose_session"):
            return None
        return self.q1("SELECT * FROM sessions WHERE session_id=? AND user_id=?", session_id, user_id)

    def save_state(self, session_id: str, state: dict[str, Any]) -> None:
        with self.lock:
            self.db.execute("UPDATE sessions SET state=? WHERE session_id=?", (json.dumps(state), session_id))

    def session_dir(self, session_id: str) -> Path:
        return self.data_dir / "sessions" / session_id

    # -- renders -------------------------------------------------------------------------------

    def start_render(
        self, render_id: str, user_id: str, session_id: str, source: Path, request: Request
    ) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO renders (render_id, user_id, session_id, status, progress, created_at, request) "
                "VALUES (?, ?, ?, 'pending', 5, ?, ?)",
                (render_id, user_id, session_id, time.time(), json.dumps(to_jsonable(request))),
            )
        self.worker.submit(self._render, render_id, source, request)

    def _set(self, render_id: str, **values: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in values)
        with self.lock:
            self.db.execute(f"UPDATE renders SET {cols} WHERE render_id=?", (*values.values(), render_id))

    def _render(self, render_id: str, source: Path, request: Request) -> None:
        if render_id in self._cancelled:
            self._set(render_id, status="cancelled")
            return
        self._set(render_id, status="processing", progress=10)
        folder = self.data_dir / "renders" / render_id
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / "output.mp4"
        last_write = [0.0]
        weights = {
            "audio": (10.0, 5.0),
            "pass 1/2": (15.0, 35.0),
            "pass 2/2": (50.0, 40.0),
            "encode": (15.0, 75.0),
        }
        span = [(10.0, 0.0)]

        def on_event(event: Event) -> None:
            if render_id in self._cancelled:
                raise _Fault("cancelled")
            if isinstance(event, StageStarted):
                span[0] = weights.get(event.stage.split(" (")[0], (90.0, 0.0))
            elif isinstance(event, Progress) and event.total_s > 0 and time.monotonic() - last_write[0] > 0.3:
                last_write[0] = time.monotonic()
                start, width = span[0]
                self._set(
                    render_id, progress=round(start + width * min(1.0, event.done_s / event.total_s), 1)
                )

        try:
            if self.fire("render_fail"):
                raise _Fault("injected render failure")
            result = local.compress(source, request, output, overwrite=True, on_event=on_event)
        except _Fault as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self._set(render_id, status="cancelled" if str(exc) == "cancelled" else "failed", error=str(exc))
            return
        except HybridError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            self._set(render_id, status="failed", error=exc.message)
            return
        except Exception as exc:  # a bug in a render must not kill the worker
            log.exception("render %s crashed", render_id)
            shutil.rmtree(folder, ignore_errors=True)
            self._set(render_id, status="failed", error=f"internal error: {type(exc).__name__}")
            return
        self._set(
            render_id,
            status="completed",
            progress=100,
            output_path=str(output),
            size=result.size_bytes,
            duration=result.duration_s,
            encodes=result.encodes,
            completed_at=time.time(),
        )


def _hash(token: str) -> str:
    # Only hashes of tokens are stored: a copied database hands out no working tokens.
    return hashlib.sha256(token.encode()).hexdigest()


def ok(data: Any) -> JSONResponse:
    return JSONResponse({"code": 0, "data": data})


def fail(code: int, message: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def render_fail(message: str, status: int) -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def _empty_state() -> dict[str, Any]:
    return {
        "draft": {"t": [], "d": 0, "m": {}},
        "video_infos": [],
        "generated_media": [],
        "canvas_config": {},
        "video_analyses": [],
    }


def safe_filename(name: str) -> str | None:
    """The name if it is a plain file name; None for paths, dot-files, control characters, odd bytes."""
    if not name or "/" in name or "\\" in name or "\0" in name or ".." in name:
        return None
    return name if _SAFE_NAME.match(name) else None


def build_app(node: Node) -> Starlette:
    """The ASGI app for one node."""

    def client_ip(request: HttpRequest) -> str:
        return request.client.host if request.client else "unknown"

    def gate(request: HttpRequest) -> Response | None:
        if node.fire("rate_limit"):
            return JSONResponse(
                {"code": 429, "message": "rate limited"}, status_code=429, headers={"Retry-After": "0"}
            )
        return None

    def authenticate(request: HttpRequest) -> str | Response:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        user = node.user_for(token) if token else None
        if user is None:
            return fail(1001, "invalid or expired token")
        return user

    def caller(request: HttpRequest) -> str | Response:
        """The user behind a request, or the response refusing it (an injected rate limit, a bad token)."""
        return gate(request) or authenticate(request)

    def own_user(path_user: str, user: str) -> bool:
        return path_user in ("me", user)

    def path_session(request: HttpRequest, user: str) -> Any:
        """The session named by the path's uid and sid, if it is this user's."""
        if not own_user(request.path_params["uid"], user):
            return None
        return node.session(request.path_params["sid"], user)

    async def anonymous_token(request: HttpRequest) -> Response:
        if (early := gate(request)) is not None:
            return early
        client_id = request.headers.get("x-client-id", "").strip()
        if not client_id or len(client_id) > 64:
            return fail(400, "missing X-Client-Id", status=400)
        answer = await run_in_threadpool(node.issue_token, client_id, client_ip(request))
        if answer is None:
            return JSONResponse({"code": 429, "message": "too many anonymous tokens"}, status_code=429)
        return ok({k: v for k, v in answer.items() if k != "token_hash"})

    async def new_session(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        if not own_user(request.path_params["uid"], user):
            return fail(1001, "token does not match the user in the path")
        session_id = str(secrets.randbelow(9 * 10**18) + 10**18)
        task_id = uuid.uuid4().hex
        with node.lock:
            node.db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (session_id, task_id, user, time.time(), json.dumps(_empty_state())),
            )
        node.session_dir(session_id).mkdir(parents=True, exist_ok=True)
        return ok({"task_id": task_id, "session_id": session_id, "user_id": user})

    async def credits(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        row = node.q1("SELECT * FROM users WHERE user_id=?", user)
        available, frozen = (row["available"], row["frozen"]) if row else (0.0, 0.0)
        return ok({"available": available, "frozen": frozen, "total": available + frozen})

    async def state(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        sid = request.path_params["sid"]
        row = path_session(request, user)
        if row is None:
            return fail(1002, "session not found")
        return ok(
            {
                "session_id": sid,
                "task_id": row["task_id"],
                "task_name": "project",
                "state": json.loads(row["state"]),
            }
        )

    async def upload(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        sid = request.path_params["sid"]
        row = path_session(request, user)
        if row is None:
            return fail(1002, "session not found")
        if node.fire("upload_500"):
            return JSONResponse({"code": 500, "message": "injected upload failure"}, status_code=500)
        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        if ctype == b"application/json":
            return fail(4001, "this node cannot fetch URLs: upload the file itself")
        if ctype != b"multipart/form-data" or b"boundary" not in params:
            return fail(4001, "expected multipart/form-data with a files field")
        limit = node.config.max_upload_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit + 64 * 1024:
            return fail(4002, f"file too large: the limit is {format_size(limit)}")
        receiver = _UploadReceiver(node.session_dir(sid), limit)
        parser = MultipartParser(params[b"boundary"], receiver.callbacks())
        drained = 0
        async for chunk in request.stream():
            if receiver.problem is None:
                parser.write(chunk)
            else:
                # Refused: stop writing, but read the rest (bounded) so the client gets our answer.
                drained += len(chunk)
                if drained > limit:
                    break
        receiver.finish()
        if receiver.problem is not None:
            code, message = receiver.problem
            return fail(code, message)
        if not receiver.saved:
            return fail(4001, "no file in the files field")
        infos = []
        for name, path, digest in receiver.saved:
            info = await run_in_threadpool(_describe_upload, path)
            if info is None:
                path.unlink(missing_ok=True)
                return fail(4001, f"{name} is not a readable video")
            cdn = f"{str(request.base_url).rstrip('/')}/files/{sid}/{name}"
            record = {"filename": name, "file_type": "video", "cdn_url": cdn, "hash": digest, **info}
            infos.append(record)
            with node.lock:
                node.db.execute(
                    "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
                    (sid, name, str(path), json.dumps(record)),
                )
                fresh = node.q1("SELECT state FROM sessions WHERE session_id=?", sid)
                current = json.loads(fresh["state"]) if fresh else _empty_state()
                current["video_infos"] = [v for v in current["video_infos"] if v.get("filename") != name] + [
                    record
                ]
                node.save_state(sid, current)
        return ok({"files": infos, "session_state_applied": True})

    async def run_sse(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        try:
            body = await request.json()
            sid = str(body["session_id"])
            text = "".join(str(p.get("text", "")) for p in body["new_message"]["parts"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return fail(
                400, "expected app_name, user_id, session_id and new_message.parts[].text", status=400
            )
        row = node.session(sid, user) if own_user(str(body.get("user_id", "me")), user) else None
        if row is None:
            return fail(1002, "session not found")
        cost = node.config.message_cost
        with node.lock:
            credit = node.q1("SELECT available FROM users WHERE user_id=?", user)
            if credit is None or credit["available"] < cost:
                return fail(2001, "no credits left")
            node.db.execute(
                "UPDATE users SET available=available-?, frozen=frozen+? WHERE user_id=?", (cost, cost, user)
            )
        drop = node.fire("drop_sse")
        return StreamingResponse(
            _agent_stream(node, user, sid, text, drop),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def export(request: HttpRequest) -> Response:
        user = caller(request)
        if isinstance(user, Response):
            return user
        if not all(request.headers.get(h) for h in ("x-skill-source", "x-skill-version", "x-skill-platform")):
            return render_fail("attribution headers missing: this plan cannot export", 402)
        if node.fire("plan_required"):
            return render_fail("the free plan cannot export", 402)
        try:
            body = await request.json()
            render_id, sid, draft = str(body["id"]), str(body["sessionId"]), body["draft"]
        except (ValueError, KeyError, TypeError):
            return render_fail("expected id, sessionId and draft", 400)
        if not _RENDER_ID.match(render_id):
            return render_fail("bad render id", 400)
        if node.q1("SELECT 1 FROM renders WHERE render_id=?", render_id):
            return render_fail("duplicate render id", 409)
        if node.session(sid, user) is None:
            return fail(1002, "session not found")
        source, job = _job_from_draft(node, sid, draft, body.get("output"))
        if source is None or job is None:
            return render_fail("the draft has no exportable video track", 400)
        node.start_render(render_id, user, sid, source, job)
        return JSONResponse({"success": True, "data": {"id": render_id, "status": "pending", "progress": 5}})

    def render_row(request: HttpRequest) -> sqlite3.Row | Response:
        user = authenticate(request)
        if isinstance(user, Response):
            return user
        row = node.q1(
            "SELECT * FROM renders WHERE render_id=? AND user_id=?", request.path_params["rid"], user
        )
        return row if row is not None else render_fail("render not found", 404)

    async def export_status(request: HttpRequest) -> Response:
        if (early := gate(request)) is not None:
            return early
        row = render_row(request)
        if isinstance(row, Response):
            return row
        base = str(request.base_url).rstrip("/")
        url = f"{base}/files/renders/{row['render_id']}/output.mp4" if row["status"] == "completed" else None
        if node.status_variant == "B":
            data: dict[str, Any] = {
                "id": row["render_id"],
                "status": row["status"],
                "progress": row["progress"],
                "createdAt": int(row["created_at"] * 1000),
            }
            if url:
                data.update(
                    outputUrl=url, completedAt=int((row["completed_at"] or 0) * 1000), encodes=row["encodes"]
                )
            if row["error"]:
                data["error"] = row["error"]
            return JSONResponse({"success": True, "data": data})
        answer: dict[str, Any] = {
            "taskId": row["render_id"],
            "status": row["status"],
            "progress": row["progress"],
        }
        if url:
            answer["output"] = {"url": url, "duration": row["duration"], "size": row["size"]}
            answer["encodes"] = row["encodes"]
        if row["error"]:
            answer["error"] = row["error"]
        return JSONResponse(answer)

    async def cancel(request: HttpRequest) -> Response:
        if (early := gate(request)) is not None:
            return early
        row = render_row(request)
        if isinstance(row, Response):
            return row
        if row["status"] in ("pending", "processing"):
            node._cancelled.add(row["render_id"])
        return JSONResponse({"success": True, "data": {"id": row["render_id"], "status": "cancelling"}})

    async def download(request: HttpRequest) -> Response:
        if (early := gate(request)) is not None:
            return early
        header = request.headers.get("authorization", "")
        user = node.user_for(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            return Response("invalid or expired token\n", status_code=401)
        row = node.q1(
            "SELECT * FROM renders WHERE render_id=? AND user_id=?", request.path_params["rid"], user
        )
        if row is None or row["status"] != "completed" or not row["output_path"]:
            return Response("not found\n", status_code=404)
        return _file(node, Path(row["output_path"]), f"{row['render_id']}.mp4")

    async def uploaded_file(request: HttpRequest) -> Response:
        header = request.headers.get("authorization", "")
        user = node.user_for(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            return Response("invalid or expired token\n", status_code=401)
        sid, name = request.path_params["sid"], request.path_params["name"]
        if (
            safe_filename(name) is None
            or node.q1("SELECT 1 FROM sessions WHERE session_id=? AND user_id=?", sid, user) is None
        ):
            return Response("not found\n", status_code=404)
        row = node.q1("SELECT path FROM files WHERE session_id=? AND filename=?", sid, name)
        if row is None:
            return Response("not found\n", status_code=404)
        return _file(node, Path(row["path"]), name)

    async def health(request: HttpRequest) -> Response:
        return JSONResponse({"ok": True, "service": "hybrid render node"})

    routes = [
        Route("/api/auth/anonymous-token", anonymous_token, methods=["POST"]),
        Route("/api/tasks/{uid}/with-session/nemo_agent", new_session, methods=["POST"]),
        Route("/run_sse", run_sse, methods=["POST"]),
        Route("/api/upload-video/nemo_agent/{uid}/{sid}", upload, methods=["POST"]),
        Route("/api/credits/balance/simple", credits, methods=["GET"]),
        Route("/api/state/nemo_agent/{uid}/{sid}/latest", state, methods=["GET"]),
        Route("/api/render/proxy/lambda", export, methods=["POST"]),
        Route("/api/render/proxy/lambda/{rid}", export_status, methods=["GET"]),
        Route("/api/render/proxy/lambda/{rid}/cancel", cancel, methods=["POST"]),
        Route("/api/render/proxy/{rid}/download", download, methods=["GET"]),
        Route("/files/renders/{rid}/output.mp4", download, methods=["GET"]),
        Route("/files/{sid}/{name}", uploaded_file, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _file(node: Node, path: Path, name: str) -> Response:
    if not path.is_file():
        return Response("not found\n", status_code=404)
    if node.fire("truncate_download"):
        return StreamingResponse(
            _truncated(path), media_type="video/mp4", headers={"Content-Length": str(path.stat().st_size)}
        )
    return FileResponse(path, media_type="video/mp4", filename=name)


async def _truncated(path: Path) -> AsyncIterator[bytes]:
    size = path.stat().st_size
    with path.open("rb") as handle:
        yield handle.read(size // 2)
    raise _Fault("injected truncated download")


class _UploadReceiver:
    """python-multipart callbacks: each ``files`` part streams into the session folder.

    Bytes are counted as they arrive; at the limit the part is deleted and the rest is not written.
    """

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder = folder
        self.limit = limit
        self.total = 0
        self.problem: tuple[int, str] | None = None
        self.saved: list[tuple[str, Path, str]] = []
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._handle: Any = None
        self._partial: Path | None = None
        self._name = ""
        self._digest: Any = None

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._hfield,
            "on_header_value": self._hvalue,
            "on_header_end": self._hend,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers = {}

    def _hfield(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _hvalue(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _hend(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_done(self) -> None:
        if self.problem is not None:
            return
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") != b"files":
            self._handle = None  # other fields are ignored
            return
        raw = params.get(b"filename", b"").decode("utf-8", "replace")
        name = safe_filename(raw)
        if name is None:
            self.problem = (4001, "unsupported file name (plain names only, no paths)")
            return
        if Path(name).suffix.lower() not in ACCEPTED_EXTENSIONS:
            self.problem = (4001, f"unsupported file type {Path(name).suffix or '(none)'}")
            return
        if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
            self.problem = (4001, "this node compresses videos only")
            return
        self._name = name
        self.folder.mkdir(parents=True, exist_ok=True)
        self._partial = self.folder / f".partial-{uuid.uuid4().hex}"
        self._handle = self._partial.open("wb")
        self._digest = hashlib.sha256()

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is None or self.problem is not None:
            return
        self.total += end - start
        if self.total > self.limit:
            self.problem = (4002, f"file too large: the limit is {format_size(self.limit)}")
            self._discard()
            return
        self._handle.write(data[start:end])
        self._digest.update(data[start:end])

    def _end(self) -> None:
        if self._handle is None or self._partial is None:
            return
        self._handle.close()
        final = self.folder / self._name
        self._partial.replace(final)
        self.saved.append((self._name, final, self._digest.hexdigest()))
        self._handle, self._partial = None, None

    def _discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)
        self._handle, self._partial = None, None

    def finish(self) -> None:
        """Whatever is still open at the end (a refused or cut-off upload) is removed."""
        self._discard()
        if self.problem is not None:
            for _, path, _ in self.saved:
                path.unlink(missing_ok=True)
            self.saved = []


def _describe_upload(path: Path) -> dict[str, Any] | None:
    try:
        info = probe(path)
    except HybridError:
        return None
    if info.video is None:
        return None
    return {
        "duration": info.duration_s,
        "width": info.video.display_width,
        "height": info.video.display_height,
        "fps": info.video.fps,
        "size": info.size_bytes,
    }


def _request_fields(data: Any) -> dict[str, Any]:
    known = {f.name for f in fields(Request)} - {"sources"}
    return {k: v for k, v in (data or {}).items() if k in known and v is not None}


def _job_from_draft(node: Node, sid: str, draft: Any, output: Any) -> tuple[Path | None, Request | None]:
    """The draft's first video segment's file, and the output the draft's metadata asks for."""
    if not isinstance(draft, dict):
        return None, None
    for track in draft.get("t") or []:
        if not isinstance(track, dict) or track.get("tt") != 0:
            continue
        for seg in track.get("sg") or []:
            name = safe_filename(str(seg.get("file", ""))) if isinstance(seg, dict) else None
            row = (
                node.q1("SELECT path FROM files WHERE session_id=? AND filename=?", sid, name)
                if name
                else None
            )
            if row is None:
                continue
            meta: dict[str, Any] = draft["m"] if isinstance(draft.get("m"), dict) else {}
            request = Request(**_request_fields(meta.get("hybrid")))
            resolution = output.get("resolution") if isinstance(output, dict) else None
            if isinstance(resolution, str) and (m := re.match(r"^(\d{3,4})p$", resolution)):
                request = Request(**{**_request_fields(meta.get("hybrid")), "max_height": int(m.group(1))})
            return Path(row["path"]), request
    return None, None


def _event(node: Node, kind: str, **payload: Any) -> str:
    if node.sse_shape == "adk":
        if kind == "text":
            parts: list[dict[str, Any]] = [{"text": payload["content"]}]
            body: dict[str, Any] = {
                "content": {"role": "model", "parts": parts},
                "author": "nemo_agent",
                "id": uuid.uuid4().hex,
            }
        elif kind == "tool_call":
            call = {"name": payload["name"], "args": payload.get("args", {})}
            body = {"content": {"parts": [{"functionCall": call}]}, "author": "nemo_agent"}
        elif kind == "tool_result":
            answer = {"name": payload["name"], "response": payload.get("result", {})}
            body = {"content": {"parts": [{"functionResponse": answer}]}, "author": "nemo_agent"}
        else:
            return "data:\n\n"
    else:
        body = {"type": kind, **payload}
    return f"data: {json.dumps(body)}\n\n"


async def _agent_stream(node: Node, user: str, sid: str, text: str, drop: bool) -> AsyncIterator[str]:
    """The agent: read the message, inspect the upload, plan, write the draft; say what it did."""
    pause = node.config.heartbeat_s
    cost = node.config.message_cost
    try:
        yield _event(node, "heartbeat")
        await asyncio.sleep(pause)
        row = node.q1("SELECT state FROM sessions WHERE session_id=?", sid)
        state = json.loads(row["state"]) if row else _empty_state()
        videos = [v for v in state.get("video_infos", []) if v.get("file_type") == "video"]
        if not videos:
            yield _event(node, "text", content="Upload a video first: this session has none.")
            return
        # A session may hold several videos (a batch uploads them all first): the message names the
        # one it is about, and the name is taken out before reading the wishes ("720p" in a file name
        # is not a resolution). A message naming none is about the last upload.
        named = sorted((v for v in videos if v["filename"] in text), key=lambda v: -len(v["filename"]))
        video = named[0] if named else videos[-1]
        text = text.replace(video["filename"], "") if named else text
        yield _event(node, "tool_call", name="understand_instruction", args={"text": text[:500]})
        try:
            request = understand(text, input_size_bytes=video.get("size"))
        except ValueError as exc:
            yield _event(node, "text", content=f"I could not understand that: {exc}")
            return
        yield _event(node, "tool_result", name="understand_instruction", result=to_jsonable(request))
        yield _event(node, "heartbeat")
        await asyncio.sleep(pause)
        file_row = node.q1("SELECT path FROM files WHERE session_id=? AND filename=?", sid, video["filename"])
        if file_row is None:
            yield _event(node, "text", content="The uploaded video is gone; upload it again.")
            return
        yield _event(node, "tool_call", name="plan_compression", args={"file": video["filename"]})
        try:
            the_plan = await run_in_threadpool(lambda: planner.plan(probe(Path(file_row["path"])), request))
        except HybridError as exc:
            yield _event(node, "text", content=f"I cannot do that: {exc.message}")
            return
        duration_ms = round(the_plan.duration_s * 1000)
        draft = {
            "t": [
                {
                    "tt": 0,
                    "sg": [
                        {
                            "file": video["filename"],
                            "name": video["filename"],
                            "src": video["cdn_url"],
                            "s": 0,
                            "e": duration_ms,
                        }
                    ],
                }
            ],
            "d": duration_ms,
            "m": {
                "title": video["filename"],
                "width": the_plan.video.width,
                "height": the_plan.video.height,
                "hybrid": to_jsonable(request),
            },
        }
        state["draft"] = draft
        node.save_state(sid, state)
        yield _event(
            node,
            "tool_result",
            name="plan_compression",
            result={"width": the_plan.video.width, "height": the_plan.video.height},
        )
        if drop:
            yield _event(node, "heartbeat")
            return  # the documented "edit with no text": the client must read the state
        v = the_plan.video
        target = f" to fit {format_size(request.target_size_bytes)}" if request.target_size_bytes else ""
        yield _event(
            node,
            "text",
            content=f"Timeline ready{target}: {v.width}x{v.height} at {v.fps:g} fps, {v.mode} {v.encoder}, "
            f"about {format_size(the_plan.predicted_size_bytes)}. Export when you are ready.",
        )
    finally:
        with node.lock:
            node.db.execute("UPDATE users SET frozen=MAX(0, frozen-?) WHERE user_id=?", (cost, user))


# -- running ---------------------------------------------------------------------------------------


def parse_fault(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    return name.strip().replace("-", "_"), value.strip()


def faults_from(items: list[str]) -> Faults:
    values: dict[str, Any] = {}
    for item in items:
        name, value = parse_fault(item)
        if name in FAULT_NAMES:
            values[name] = int(value) if value else 1
        elif name == "status_variant" and value.upper() in ("A", "B"):
            values[name] = value.upper()
        elif name == "sse_shape" and value in ("vendor", "adk"):
            values[name] = value
        else:
            raise ValueError(
                f"unknown fault {item!r}: use {', '.join(FAULT_NAMES)} (optionally =N), "
                "status_variant=A|B or sse_shape=vendor|adk"
            )
    return Faults(**values)


class RunningNode:
    """A node served by uvicorn in a background thread (tests, benchmarks)."""

    def __init__(self, config: NodeConfig, host: str = "127.0.0.1") -> None:
        self.node = Node(config)
        self.app = build_app(self.node)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> RunningNode:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the render node did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.node.close()


def serve(config: NodeConfig, host: str, port: int) -> None:
    """Run a node in the foreground until Ctrl-C."""
    node = Node(config)
    try:
        uvicorn.run(build_app(node), host=host, port=port, log_level="info", lifespan="off")
    finally:
        node.close()
