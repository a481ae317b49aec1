"""A batch on the render service, the way the service documents its own workflow: one session, every
file uploaded into it, then for each file in turn its instruction, its render and its download.

The credits are checked once, before anything is uploaded: a batch that cannot finish is refused
with the numbers. Each download is verified exactly as a local encode is, renamed into place, and
recorded in the output folder's ledger (``hybrid.batch``), so a re-run skips it. Failures stay with
their file: a refused upload or a failed render fails that file only.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from .. import local
from ..batch import BatchReport, BatchSink, Item, Job, record_output, run_jobs
from ..errors import HybridError
from ..models import Event, Message, Result, StageStarted, Transfer, Waiting
from . import errors as E
from .agent import describe_request
from .client import Deadline, NemoClient, RenderStatus, Session
from .config import Store
from .executor import (
    FIRST_POLL_S,
    MAX_POLLS,
    POLL_GROWTH,
    CloudSettings,
    _Job,
    cloud_result,
    exportable,
    preflight,
)

# Neither the vendor nor its documents state what one instruction costs; our node charges 5 credits
# a message. ``credits_per_file`` in config.json overrides this estimate for the up-front check.
DEFAULT_CREDITS_PER_FILE = 5.0
DRAFT_WAIT_S = 120.0
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._()+,-]")


def upload_names(jobs: Sequence[Job]) -> dict[int, str]:
    """A name per file, unique in the session and plain enough for any service (the node takes only
    letters, digits and ``._()+,-``): ``clip.mp4``, then ``clip-2.mp4`` for a second ``clip.mp4``."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for job in jobs:
        path = job.source.input
        stem = _UNSAFE.sub("_", path.stem).lstrip("._-") or "video"
        suffix = path.suffix.lower()
        name, n = f"{stem}{suffix}", 2
        while name.lower() in taken:
            name, n = f"{stem}-{n}{suffix}", n + 1
        taken.add(name.lower())
        names[job.index] = name
    return names


def draft_is_for(draft: Any, name: str, names: Sequence[str], previous: Any) -> bool:
    """Is this exportable draft the one for ``name``? The segment fields are not documented: when they
    mention one of our uploads by name (as ``file``, ``name`` or the tail of a URL) that decides;
    otherwise a draft that changed since the instruction was sent is taken to be its answer."""
    if not exportable(draft):
        return False
    mentioned: set[str] = set()
    for track in draft["t"]:
        if not isinstance(track, dict):
            continue
        for seg in track.get("sg") or []:
            if not isinstance(seg, dict):
                continue
            for value in seg.values():
                if isinstance(value, str):
                    mentioned.update(n for n in names if value == n or value.endswith("/" + n))
    if mentioned:
        return name in mentioned
    return bool(draft != previous)


class CloudBatch:
    """The session and its uploads, shared by the batch's jobs (which run one at a time)."""

    def __init__(self, jobs: Sequence[Job], client: NemoClient, settings: CloudSettings, store: Store):
        self.jobs = list(jobs)
        self.client = client
        self.settings = settings
        self.store = store
        self.names = upload_names(self.jobs)
        self.session: Session | None = None
        self.refused: dict[int, HybridError] = {}
        self.finished: set[int] = set()

    def open(self, on_event: Callable[[Event], None]) -> Session:
        """A new session with every file that has not finished uploaded into it."""
        on_event(StageStarted(stage="session", total_s=0))
        session = self.client.create_session()
        self.store.update_config(last_session=session.session_id, last_session_url=self.settings.base_url)
        todo = [job for job in self.jobs if job.index not in self.finished]
        for n, job in enumerate(todo, 1):
            stage = f"upload {n}/{len(todo)}"
            on_event(StageStarted(stage=stage, total_s=0))
            try:
                preflight(job.source.input)
            except HybridError as exc:
                self.refused[job.index] = exc  # that file's problem only: it is not uploaded
                continue
            try:
                self.client.upload(
                    session.session_id,
                    job.source.input,
                    on_progress=_transfer(on_event, stage),
                    filename=self.names[job.index],
                )
            except (E.UnsupportedFileError, E.FileTooLargeError) as exc:
                # Refusals of one file stay with it; anything else (the session, the network, the
                # token) is the batch's problem and goes up to the job that is running.
                self.refused[job.index] = exc
        self.session = session
        return session

    def execute(self, job: Job, on_event: Callable[[Event], None]) -> Result:
        started = time.monotonic()
        job.output.parent.mkdir(parents=True, exist_ok=True)  # -d OUTDIR and its mirrored subfolders
        dest = local.resolve_output(job.source.input, job.output, job.replace)
        preflight(job.source.input)
        for attempt in range(2):
            try:
                session = self.session or self.open(on_event)
                if job.index in self.refused:
                    raise self.refused[job.index]
                status = self._render(session, job, on_event)
                break
            except E.CloudSessionError:
                self.session = None
                if attempt == 1:
                    raise
                on_event(Message("the render service lost the session: starting a new one, uploading again"))
        work = local._make_workdir(dest.parent)  # the local path's own: same place, same cleanup
        try:
            on_event(StageStarted(stage="download", total_s=0))
            produced = work / "download.mp4"
            self.client.download(
                status.render_id,
                status.output_url,
                produced,
                on_progress=lambda done, total: on_event(Transfer("download", done, total)),
                expected_bytes=status.size_bytes,
            )
            run = local._Run(plan=job.plan, work=work, on_event=on_event)
            verified = local._verify(produced, job.plan, run)
            local._place(produced, dest, job.replace)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.finished.add(job.index)
        result = cloud_result(dest, verified, job.request, job.plan, status, started, self.settings.base_url)
        record_output(job, result)
        return result

    def _render(self, session: Session, job: Job, on_event: Callable[[Event], None]) -> RenderStatus:
        name = self.names[job.index]
        steps = _Job(self.client, self.settings, Deadline(self.settings.deadline_s), on_event)
        previous = self._draft(session)
        on_event(StageStarted(stage="agent", total_s=0))
        reply = self.client.send_message(
            session.session_id,
            f'For the uploaded video "{name}": {describe_request(job.request)}',
            on_text=lambda text: on_event(Message(f"service: {text}")),
            on_heartbeat=lambda elapsed: on_event(Waiting("agent", elapsed)),
        )
        if reply.ended != "closed":
            on_event(Message(f"the agent's stream {reply.ended}; checking the session state instead"))
        draft = self._wait_for_draft(steps, session, name, previous, said=reply.texts)
        return steps.render(session, draft)

    def _draft(self, session: Session) -> Any:
        state = self.client.state(session.session_id)
        inner = state.get("state")
        return inner.get("draft") if isinstance(inner, dict) else None

    def _wait_for_draft(
        self, steps: _Job, session: Session, name: str, previous: Any, said: Sequence[str]
    ) -> Any:
        interval, waited = FIRST_POLL_S, 0.0
        names = list(self.names.values())
        for _ in range(MAX_POLLS):
            draft = self._draft(session)
            if draft_is_for(draft, name, names, previous):
                return draft
            if waited >= min(DRAFT_WAIT_S, steps.deadline.left()):
                break
            steps._sleep(interval)
            waited += interval
            interval = min(interval * POLL_GROWTH, self.settings.poll_max_s)
        words = f': it said "{said[-1][:200]}"' if said else ""
        raise E.CloudErrorWithCode(
            f"the render service's agent did not prepare {name} for export{words}; try again, or use --local"
        )


def _transfer(on_event: Callable[[Event], None], stage: str) -> Callable[[int, int], None]:
    return lambda done, total: on_event(Transfer(stage, done, total))


def check_credits(client: NemoClient, files: int, per_file: float) -> None:
    """Refuse up front, with the numbers, a batch the credits will not last for."""
    balance = client.credits()
    need = files * per_file
    if balance.available < need:
        top_up = "register or top up credits" if client.anonymous else "top up credits"
        raise E.NoCreditsError(
            f"the render service has {balance.available:g} credits; this batch of {files} files needs "
            f"about {need:g} ({per_file:g} per file's instruction): {top_up}, compress fewer files at "
            "once, or use --local",
            code=2001,
        )


def run_cloud_batch(
    entries: Sequence[Job | Item],
    *,
    cloud_url: str | None = None,
    on_event: BatchSink,
    store: Store | None = None,
    settings: CloudSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
) -> BatchReport:
    """Run a prepared batch on the render service; the same report as a local batch."""
    store = store or Store()
    settings = settings or CloudSettings.from_store(store, cloud_url=cloud_url, env=env)
    jobs = [e for e in entries if isinstance(e, Job)]
    with NemoClient(
        settings.base_url, store, options=settings.options, transport=transport, env=env
    ) as client:
        if jobs:
            per_file = store.config().get("credits_per_file", DEFAULT_CREDITS_PER_FILE)
            per_file = float(per_file) if isinstance(per_file, (int, float)) else DEFAULT_CREDITS_PER_FILE
            check_credits(client, len(jobs), per_file)
        cloud = CloudBatch(jobs, client, settings, store)
        # One at a time: the files share one session, and the service renders its jobs in turn.
        return run_jobs(entries, cloud.execute, workers=1, on_event=on_event)
