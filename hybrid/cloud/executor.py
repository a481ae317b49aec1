"""The cloud executor: a Request becomes a verified file, rendered by a NemoVideo-compatible service.

The flow mirrors the local executor's promises: the destination is checked first, the input is
never modified, the result is written to a work folder beside the destination, verified exactly as
the local path verifies its own output (it decodes, has the planned streams and duration, and fits
the target), and only then renamed into place. On any failure or Ctrl-C nothing is left behind.

Between those, the protocol: pre-flight -> session -> streamed upload -> instruction over
``/run_sse`` -> the draft from the session state -> export -> polling -> streamed download.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from .. import local, planner
from ..models import Event, MediaInfo, Message, Plan, Request, Result, StageStarted, Transfer, Waiting
from ..probe import check_input_path, probe
from ..units import format_size
from . import errors as E
from .agent import describe_request
from .client import AgentReply, ClientOptions, Deadline, NemoClient, RenderStatus, Session, new_render_id
from .config import Store, resolve_base_url

EventSink = Callable[[Event], None]

DEFAULT_DEADLINE_S = 1800.0
FIRST_POLL_S = 0.5
POLL_GROWTH = 1.5
MAX_POLLS = 2000  # with the deadline, a hard bound on the polling loop
DRAFT_WAIT_S = 120.0  # after a silent stream, how long to poll the state for the agent's edit


def _ignore(_: Event) -> None:
    pass


@dataclass(frozen=True)
class CloudSettings:
    """Everything the cloud path needs besides the job; ``from_store`` reads the user's config."""

    base_url: str
    options: ClientOptions = field(default_factory=ClientOptions)
    deadline_s: float = DEFAULT_DEADLINE_S
    poll_max_s: float = 10.0  # the documented interval the backoff grows towards

    @classmethod
    def from_store(
        cls, store: Store, *, cloud_url: str | None = None, env: Mapping[str, str] | None = None
    ) -> CloudSettings:
        cfg = store.config()
        names = (
            "timeout_s",
            "sse_idle_s",
            "stall_s",
            "network_retries",
            "backoff_s",
            "rate_limit_wait_s",
            "platform",
        )
        tunables: dict[str, Any] = {k: cfg[k] for k in names if k in cfg}
        options = replace(ClientOptions(), **tunables)
        deadline = cfg.get("deadline_s")
        poll_max = cfg.get("poll_max_s")
        return cls(
            base_url=resolve_base_url(cloud_url, store, env),
            options=options,
            deadline_s=float(deadline) if isinstance(deadline, (int, float)) else DEFAULT_DEADLINE_S,
            poll_max_s=float(poll_max) if isinstance(poll_max, (int, float)) else 10.0,
        )


def preflight(input_path: Path) -> int:
    """Refuse, before any upload, what the service would refuse: too large, or not a video type."""
    size = check_input_path(input_path)
    if input_path.suffix.lower() not in E.VIDEO_EXTENSIONS:
        raise E.UnsupportedFileError(
            f"the render service does not take {input_path.suffix or 'extension-less'} files for video "
            f"compression (it takes {', '.join(x.lstrip('.') for x in E.VIDEO_EXTENSIONS)}); "
            "use --local to compress it on this machine",
            code=4001,
        )
    if size > E.MAX_UPLOAD_BYTES:
        raise E.FileTooLargeError(
            f"{input_path.name} is {format_size(size)}, over the render service's 500 MB upload limit; "
            "use --local to compress it on this machine, or trim it first",
            code=4002,
        )
    return size


def cloud_result(
    dest: Path,
    verified: MediaInfo,
    request: Request,
    plan: Plan,
    status: RenderStatus,
    started: float,
    base_url: str,
) -> Result:
    """The Result of a verified cloud render (single files and batches alike)."""
    v = verified.video
    assert v is not None
    encodes = status.extra.get("encodes")
    return Result(
        output=dest,
        size_bytes=verified.size_bytes,
        target_size_bytes=request.target_size_bytes,
        duration_s=verified.duration_s,
        elapsed_s=round(time.monotonic() - started, 3),
        path="cloud",
        encodes=encodes if isinstance(encodes, int) else 1,
        width=v.display_width,
        height=v.display_height,
        video_codec=v.codec,
        audio_codec=verified.audio.codec if verified.audio else None,
        mode=plan.video.mode,
        notes=(f"rendered by {base_url} (render {status.render_id})",),
    )


def compress_cloud(
    input_path: Path | str,
    request: Request | None = None,
    output: Path | str | None = None,
    *,
    overwrite: bool = False,
    on_event: EventSink = _ignore,
    settings: CloudSettings | None = None,
    store: Store | None = None,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    info: MediaInfo | None = None,
    plan: Plan | None = None,
    instruction: str | None = None,
) -> Result:
    """Compress one file on a render service. Returns the Result (``path="cloud"``).

    ``instruction`` is sent to the agent instead of the sentence made from ``request`` (the request
    still decides how the result is verified).
    """
    started = time.monotonic()
    input_path = Path(input_path)
    request = request or Request()
    store = store or Store()
    settings = settings or CloudSettings.from_store(store, env=env)
    dest = local.resolve_output(input_path, Path(output) if output is not None else None, overwrite)
    size = preflight(input_path)
    info = info or probe(input_path)
    the_plan = plan or planner.plan(info, request)
    deadline = Deadline(settings.deadline_s)
    message = instruction or describe_request(request)
    work = local._make_workdir(dest.parent)  # the local path's own helper: same place, same cleanup
    try:
        with NemoClient(
            settings.base_url,
            store,
            options=settings.options,
            transport=transport,
            env=env,
            deadline=deadline,
        ) as client:
            job = _Job(client, settings, deadline, on_event)
            status, session = job.run(input_path, size, message)
            store.update_config(last_session=session.session_id, last_session_url=settings.base_url)
            on_event(StageStarted(stage="download", total_s=0))
            produced = work / "download.mp4"
            client.download(
                status.render_id,
                status.output_url,
                produced,
                on_progress=lambda done, total: on_event(Transfer("download", done, total)),
                expected_bytes=status.size_bytes,
            )
        # Verified exactly as a local encode is: same function, same plan.
        run = local._Run(plan=the_plan, work=work, on_event=on_event)
        verified = local._verify(produced, the_plan, run)
        local._place(produced, dest, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cloud_result(dest, verified, request, the_plan, status, started, settings.base_url)


class _Job:
    """One cloud job's protocol steps, with the retries that need earlier steps redone."""

    def __init__(self, client: NemoClient, settings: CloudSettings, deadline: Deadline, on_event: EventSink):
        self.client = client
        self.settings = settings
        self.deadline = deadline
        self.on_event = on_event

    def run(self, input_path: Path, size: int, message: str) -> tuple[RenderStatus, Session]:
        for attempt in range(2):
            try:
                session, draft = self.prepare(input_path, size, message)
                return self.render(session, draft), session
            except E.CloudSessionError:
                if attempt == 1:
                    raise E.CloudSessionError(
                        "the render service lost the session twice; try again later or use --local", code=1002
                    ) from None
                self.on_event(
                    Message("the render service lost the session: starting a new one, uploading again")
                )
        raise AssertionError("unreachable")

    def prepare(self, input_path: Path, size: int, message: str) -> tuple[Session, Any]:
        client = self.client
        self.on_event(StageStarted(stage="session", total_s=0))
        session = client.create_session()
        self.on_event(StageStarted(stage="upload", total_s=0))
        self.on_event(Transfer("upload", 0, size))
        client.upload(
            session.session_id,
            input_path,
            on_progress=lambda done, total: self.on_event(Transfer("upload", done, total)),
        )
        self.on_event(StageStarted(stage="agent", total_s=0))
        reply = client.send_message(
            session.session_id,
            message,
            on_text=lambda text: self.on_event(Message(f"service: {text}")),
            on_heartbeat=lambda elapsed: self.on_event(Waiting("agent", elapsed)),
        )
        if reply.ended != "closed":
            self.on_event(Message(f"the agent's stream {reply.ended}; checking the session state instead"))
        elif not reply.texts:
            self.on_event(Message("the agent finished without a word; checking the session state"))
        return session, self.wait_for_draft(session, reply)

    def wait_for_draft(self, session: Session, reply: AgentReply) -> Any:
        """The exportable draft from the state.

        After a silent, dropped or stalled stream the agent may still be editing: poll (bounded).
        After a normal reply the edit is done: one look, and if the timeline is empty the agent's own
        words say why.
        """
        patient = reply.ended != "closed" or not reply.texts
        interval = FIRST_POLL_S
        waited = 0.0
        for _ in range(MAX_POLLS):
            state = self.client.state(session.session_id)
            draft = (state.get("state") or {}).get("draft") if isinstance(state.get("state"), dict) else None
            if exportable(draft):
                return draft
            if not patient or waited >= min(DRAFT_WAIT_S, self.deadline.left()):
                break
            self._sleep(interval)
            waited += interval
            interval = min(interval * POLL_GROWTH, self.settings.poll_max_s)
        said = f': it said "{reply.texts[-1][:200]}"' if reply.texts else ""
        raise E.CloudErrorWithCode(
            f"the render service's agent did not prepare the video for export{said}; "
            "try again, or use --local"
        )

    def render(self, session: Session, draft: Any) -> RenderStatus:
        problem = ""
        for attempt in range(2):
            render_id = new_render_id()
            self.on_event(StageStarted(stage="render", total_s=0))
            try:
                status = self.client.start_export(session.session_id, draft, render_id)
            except (
                E.PlanRequiredError,
                E.NoCreditsError,
                E.CloudAuthError,
                E.CloudSessionError,
                E.RateLimitedError,
                E.CloudUnavailableError,
                E.CloudTimeoutError,
            ):
                raise
            except E.CloudError as exc:  # e.g. a duplicate id: documented cure is a new id, once
                problem = str(exc)
                if attempt == 0:
                    self.on_event(
                        Message(f"the export did not start ({problem}); retrying with a new render id")
                    )
                continue
            status = self.poll(status.render_id or render_id)
            if status.status == "completed":
                return status
            problem = status.error or f"status {status.status}"
            if attempt == 0:
                self.on_event(Message(f"the render failed ({problem}); retrying once with a new render id"))
        raise E.RenderFailedError(f"the render service failed to render the video twice: {problem}")

    def poll(self, render_id: str) -> RenderStatus:
        interval = FIRST_POLL_S
        started = time.monotonic()
        try:
            for _ in range(MAX_POLLS):
                status = self.client.export_status(render_id)
                self.on_event(Waiting("render", time.monotonic() - started, status.progress))
                if status.status in ("completed", "failed", "cancelled", "canceled", "error"):
                    return status
                self._sleep(interval)
                interval = min(interval * POLL_GROWTH, self.settings.poll_max_s)
        except BaseException:
            # Leaving mid-render orphans the job on the service: cancel it, best effort.
            self.client.cancel_export(render_id)
            raise
        self.client.cancel_export(render_id)
        raise E.CloudTimeoutError(f"the render did not finish after {MAX_POLLS} status checks")

    def _sleep(self, seconds: float) -> None:
        self.deadline.check("waiting for the render service")
        time.sleep(max(0.0, min(seconds, self.deadline.left())))
        self.deadline.check("waiting for the render service")


def exportable(draft: Any) -> bool:
    """Documented: a draft is exportable when some track in ``t`` has a non-empty ``sg``."""
    if not isinstance(draft, dict) or not isinstance(draft.get("t"), list):
        return False
    return any(isinstance(track, dict) and track.get("sg") for track in draft["t"])


def timeline_summary(draft: Any) -> str:
    """The documented human form: ``Timeline (3 tracks): 1. Video: city (0-10s) 2. BGM: ...``."""
    if not isinstance(draft, dict) or not isinstance(draft.get("t"), list) or not draft["t"]:
        return "Timeline (empty)"
    kinds: dict[Any, str] = {0: "Video", 1: "BGM", 7: "Title"}
    tracks: list[Any] = draft["t"]
    items: list[str] = []
    for n, track in enumerate(tracks, 1):
        if not isinstance(track, dict):
            continue
        kind = kinds.get(track.get("tt"), f"Track type {track.get('tt')}")
        segs = [s for s in (track.get("sg") or []) if isinstance(s, dict)]
        if not segs:
            items.append(f"{n}. {kind}: (empty)")
            continue
        seg = segs[0]
        name = seg.get("name") or seg.get("title") or seg.get("text") or "segment"
        start = float(seg.get("s") or 0) / 1000
        end = float(seg.get("e") or draft.get("d") or 0) / 1000
        more = f" +{len(segs) - 1} more" if len(segs) > 1 else ""
        label = f'"{name}"' if kind == "Title" else str(name)
        items.append(f"{n}. {kind}: {label} ({start:g}-{end:g}s){more}")
    plural = "s" if len(tracks) != 1 else ""
    return f"Timeline ({len(tracks)} track{plural}): " + " ".join(items)
