"""Batches: many inputs, one command, one report.

Three steps, plain data between them:

1. **expand**: arguments (files, folders, globs) and manifest rows -> :class:`Source` (an input, its
   instruction, an explicit output if the manifest names one);
2. **prepare**: each Source probed, its Request built and planned, and its output named by
   :func:`assign_outputs` (deterministic: never two jobs to one file, never an input, and a finished
   output recorded in the folder's ledger is found again on a re-run) -> :class:`Job`, or an
   :class:`Item` for a file that already failed or was already done;
3. **run**: :func:`run_jobs` executes the jobs (``workers`` at a time), isolating every failure, and
   reports progress as events (:class:`JobStarted`, :class:`JobEvent`, :class:`JobFinished`); the
   result is a :class:`BatchReport`.

The ledger is a small JSON file, ``.hybrid.json``, in each output folder: for every output a batch
finished and verified, the input it came from (path, size, mtime), the request (a hash) and the
output's size and SHA-256. A re-run skips an output only when all of them still match, so an edited
input, a changed instruction or a damaged output is encoded again. It is written to a temporary
file and renamed into place, so it is never half-written.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Literal

from . import local, planner, profiles
from .errors import HybridError, InputError, Interrupted
from .intent import Intent, build_request, parse_instruction
from .models import Event, MediaInfo, Plan, Request, Result, to_jsonable
from .probe import probe

# Suffixes of video files: what a folder or a glob contributes to a batch (and, in cli.py, what a
# last positional argument can never be: an instruction).
MEDIA_SUFFIXES = frozenset(
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".wmv", ".flv", ".mpg", ".mpeg", ".m2v", ".ts",
        ".mts", ".m2ts", ".3gp", ".3g2", ".ogv", ".mxf", ".vob", ".dv", ".divx", ".asf", ".rm", ".rmvb",
        ".f4v", ".gif", ".hevc", ".h264", ".y4m",
    }
)  # fmt: skip

LEDGER_NAME = ".hybrid.json"
GLOB_CHARS = frozenset("*?[")
# What one concurrent local job may need at its peak (x264 on a 4K source with lookahead, plus the
# audio encode and our own process): the memory side of the default --jobs.
MEMORY_PER_JOB_BYTES = 1_500_000_000

Status = Literal["ok", "skipped", "failed", "interrupted"]


# -- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """One input of a batch, before anything was read from it."""

    input: Path
    instruction: str | None = None
    output: Path | None = None  # named by a manifest row; never renamed
    subfolder: Path = Path()  # below the folder argument it was found in (mirrored under -d)
    error: str | None = None  # known bad before probing (a glob that matched nothing)
    exit_code: int = 0


@dataclass(frozen=True)
class Job:
    """A Source ready to run: probed, understood, planned, its output named."""

    index: int
    source: Source
    info: MediaInfo
    request: Request
    plan: Plan
    output: Path
    replace: bool = False  # the output exists and --overwrite was given


@dataclass(frozen=True)
class Item:
    """What became of one input: the batch's report has one per Source, in order."""

    index: int
    input: Path
    output: Path | None
    status: Status
    size_before_bytes: int | None
    size_after_bytes: int | None = None
    elapsed_s: float = 0.0
    error: str | None = None
    exit_code: int = 0
    result: Result | None = None

    @property
    def ratio(self) -> float | None:
        """Output size over input size (0.4 = 40 % of the original)."""
        if self.size_before_bytes and self.size_after_bytes is not None:
            return self.size_after_bytes / self.size_before_bytes
        return None


PARTIAL_EXIT = 20
ALL_FAILED_EXIT = 21


@dataclass(frozen=True)
class BatchReport:
    items: tuple[Item, ...]
    elapsed_s: float
    interrupted: bool = False

    def count(self, status: Status) -> int:
        return sum(1 for item in self.items if item.status == status)

    @property
    def exit_code(self) -> int:
        """0 all done (finished or skipped); 20 some failed; every one failed: the shared reason's
        code if they all failed the same way (a batch of one behaves like one file), else 21."""
        failed = [item for item in self.items if item.status == "failed"]
        if not failed:
            return 0
        if len(failed) < len(self.items):
            return PARTIAL_EXIT
        codes = {item.exit_code for item in failed}
        return codes.pop() if len(codes) == 1 else ALL_FAILED_EXIT


@dataclass(frozen=True)
class JobStarted:
    index: int
    total: int
    slot: int  # 1..workers: which progress line this job draws on
    input: Path
    output: Path


@dataclass(frozen=True)
class JobEvent:
    """An event of one running job (a stage, progress, a message)."""

    index: int
    slot: int
    input: Path
    event: Event


@dataclass(frozen=True)
class JobFinished:
    total: int
    slot: int  # 0 when the file never ran (failed while preparing, or skipped)
    item: Item


@dataclass(frozen=True)
class Preparing:
    """Probing and planning the ``index``-th of ``total`` inputs, before any encode starts."""

    index: int
    total: int
    input: Path


BatchEvent = Preparing | JobStarted | JobEvent | JobFinished
BatchSink = Callable[[BatchEvent], None]


class BatchInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during a batch: the jobs were stopped and cleaned up; ``report`` says what
    finished (those outputs are kept)."""

    def __init__(self, report: BatchReport) -> None:
        super().__init__("interrupted")
        self.report = report


def _ignore(_: BatchEvent) -> None:
    pass


# -- expansion --------------------------------------------------------------------------------------


def has_glob(text: str) -> bool:
    return any(ch in GLOB_CHARS for ch in text)


def is_media_name(path: Path) -> bool:
    return path.suffix.lower() in MEDIA_SUFFIXES and not path.name.startswith(".")


_OUR_NAME = re.compile(r"^(?P<stem>.+)-compressed(?:-\d+)?\.mp4$", re.I)


def _our_output(path: Path, siblings: set[str], ledger: Mapping[str, Any]) -> bool:
    """A file an earlier hybrid run wrote beside its input: recorded in the folder's ledger, or named
    ``X-compressed[-N].mp4`` next to a video called X. A folder compressed twice must not compress
    its own outputs."""
    if path.name in ledger:
        return True
    m = _OUR_NAME.match(path.name)
    return m is not None and m.group("stem") in siblings


def _ours_beside(path: Path) -> bool:
    siblings = {p.stem for p in path.parent.iterdir() if is_media_name(p)}
    return _our_output(path, siblings, read_ledger(path.parent))


def folder_videos(folder: Path, recursive: bool) -> list[Path]:
    """The video files in ``folder`` (sorted by name; hidden files and folders, and hybrid's own
    outputs, left out)."""
    found: list[Path] = []
    walker = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for root, dirs, names in walker:
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        videos = sorted(
            Path(root) / n for n in names if is_media_name(Path(n)) and os.path.isfile(Path(root) / n)
        )
        stems = {p.stem for p in videos}
        ledger = read_ledger(Path(root))
        found.extend(p for p in videos if not _our_output(p, stems, ledger))
    return found


def expand_argument(
    arg: str, instruction: str | None, *, recursive: bool, output: Path | None = None
) -> list[Source]:
    """One argument -> its Sources: a file (even a missing one: probing says why it fails), the
    videos in a folder, or the videos a glob matches (expanded here for shells that do not)."""
    path = Path(arg)
    if os.path.isdir(arg):
        videos = folder_videos(path, recursive)
        if not videos:
            hint = "" if recursive else " (--recursive looks in its subfolders too)"
            return [Source(path, instruction, error=f"{path} is a folder with no video files in it{hint}",
                           exit_code=InputError.exit_code)]  # fmt: skip
        return [Source(v, instruction, subfolder=v.parent.relative_to(path)) for v in videos]
    if os.path.lexists(arg) or not has_glob(arg):
        if output is None and path.name in read_ledger(path.parent):
            return []  # a shell's glob handed us an output of an earlier batch: not an input
        return [Source(path, instruction, output=output)]
    matches = sorted(Path(m) for m in glob.glob(arg, recursive=recursive))
    videos = [m for m in matches if is_media_name(m) and m.is_file() and not _ours_beside(m)]
    if not videos:
        return [
            Source(path, instruction, error=f"no video files match {arg}", exit_code=InputError.exit_code)
        ]
    return [Source(v, instruction) for v in videos]


def expand(args: Iterable[str], instruction: str | None, *, recursive: bool) -> list[Source]:
    """All the arguments' Sources, in order; a file reached twice (a folder and a glob) runs once."""
    sources: list[Source] = []
    seen: set[Path] = set()
    for arg in args:
        for source in expand_argument(arg, instruction, recursive=recursive):
            key = source.input.resolve()
            if source.error is None and key in seen:
                continue
            seen.add(key)
            sources.append(source)
    return sources


MANIFEST_KEYS = ("path", "instruction", "output")


def read_manifest(path: Path, default_instruction: str | None, *, recursive: bool) -> list[Source]:
    """``jobs.csv`` (a header row with ``path`` and optionally ``instruction``, ``output``) or
    ``jobs.toml`` (``[[job]]`` tables with the same keys) -> Sources.

    Relative paths are relative to the manifest's folder; a row's ``path`` may be a folder or a glob
    (its videos share the row's instruction; ``output`` then is refused). A row without an
    instruction takes the command line's. Raises ValueError with the line or entry at fault.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the manifest {path}: {exc}") from None
    rows: list[tuple[str, dict[str, str]]] = []
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML: {exc}") from None
        unknown_top = set(data) - {"job", "jobs"}
        if unknown_top:
            raise ValueError(f"{path}: unknown key {sorted(unknown_top)[0]!r} (jobs go in [[job]] tables)")
        entries = data.get("job", data.get("jobs", []))
        if not isinstance(entries, list):
            raise ValueError(f"{path}: 'job' must be a list of tables ([[job]])")
        for n, entry in enumerate(entries, 1):
            where = f"{path}: job {n}"
            if not isinstance(entry, dict):
                raise ValueError(f"{where} is not a table")
            bad = set(entry) - set(MANIFEST_KEYS)
            if bad:
                raise ValueError(
                    f"{where}: unknown key {sorted(bad)[0]!r} (known: {', '.join(MANIFEST_KEYS)})"
                )
            if not all(isinstance(v, str) for v in entry.values()):
                raise ValueError(f"{where}: values must be strings")
            rows.append((where, dict(entry)))
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "path" not in header:
            raise ValueError(f"{path}: the first row must name the columns: path[,instruction][,output]")
        bad_cols = [h for h in header if h and h not in MANIFEST_KEYS]
        if bad_cols:
            raise ValueError(f"{path}: unknown column {bad_cols[0]!r} (known: {', '.join(MANIFEST_KEYS)})")
        for n, raw in enumerate(reader, 2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
            if not any(row.values()):
                continue  # blank line
            rows.append((f"{path}: line {n}", row))
    else:
        raise ValueError(f"{path}: a manifest is a .csv or a .toml file")
    base = path.parent
    sources: list[Source] = []
    for where, row in rows:
        name = row.get("path", "").strip()
        if not name:
            raise ValueError(f"{where}: no path")
        instruction = row.get("instruction", "").strip() or default_instruction
        out_text = row.get("output", "").strip()
        output = base / out_text if out_text else None
        found = expand_argument(str(base / name), instruction, recursive=recursive, output=output)
        if output is not None and len(found) != 1:
            raise ValueError(f"{where}: an output names one file, but {name} is several")
        sources.extend(found)
    if not sources:
        raise ValueError(f"{path}: no jobs in it")
    return sources


# -- the ledger -------------------------------------------------------------------------------------

_ledger_lock = threading.Lock()


def request_key(request: Request) -> str:
    """A short hash of what was asked (``sources`` left out: the same settings from an option or from
    an instruction make the same file)."""
    data = to_jsonable(replace(request, sources={}))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_ledger(folder: Path) -> dict[str, Any]:
    """The folder's ledger (output name -> record); empty when missing or unreadable (that only costs
    a re-encode)."""
    try:
        data = json.loads((folder / LEDGER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    outputs = data.get("outputs") if isinstance(data, dict) else None
    return outputs if isinstance(outputs, dict) else {}


def _input_stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"input": str(path.resolve()), "input_size_bytes": st.st_size, "input_mtime_ns": st.st_mtime_ns}


def record_output(job: Job, result: Result) -> None:
    """Add a finished, verified output to its folder's ledger (atomically: temp file, rename)."""
    entry = {
        **_input_stamp(job.source.input),
        "request": request_key(job.request),
        "size_bytes": result.output.stat().st_size,
        "sha256": file_sha256(result.output),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    folder = result.output.parent
    with _ledger_lock:
        outputs = read_ledger(folder)
        outputs[result.output.name] = entry
        fd, tmp = tempfile.mkstemp(prefix=f"{LEDGER_NAME}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"version": 1, "outputs": outputs}, handle, indent=1, sort_keys=True)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the record from the folder's other users
            os.replace(tmp, folder / LEDGER_NAME)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def finished_before(source: Source, request: Request, output: Path) -> dict[str, Any] | None:
    """The ledger record if ``output`` is this input's verified output for this request, else None."""
    entry = read_ledger(output.parent).get(output.name)
    if not isinstance(entry, dict) or not output.is_file():
        return None
    try:
        stamp = _input_stamp(source.input)
        if any(entry.get(k) != v for k, v in stamp.items()) or entry.get("request") != request_key(request):
            return None
        if output.stat().st_size != entry.get("size_bytes") or file_sha256(output) != entry.get("sha256"):
            return None
    except OSError:
        return None
    return entry


# -- naming -----------------------------------------------------------------------------------------


def output_candidates(source: Source, output_dir: Path | None) -> Iterable[Path]:
    """The names an input's output may take, in order: beside the input ``NAME-compressed.mp4``,
    ``NAME-compressed-2.mp4``, ... (the single-file rule); under ``-d`` ``NAME.mp4``, ``NAME-2.mp4``, ...
    in the mirrored subfolder."""
    stem = source.input.stem
    if output_dir is None:
        folder, base = source.input.parent, f"{stem}-compressed"
    else:
        folder, base = output_dir / source.subfolder, stem
    yield folder / f"{base}.mp4"
    n = 2
    while True:
        yield folder / f"{base}-{n}.mp4"
        n += 1


@dataclass(frozen=True)
class Naming:
    """Where one job's output goes; ``done`` when an earlier run already finished it."""

    output: Path | None
    done: bool = False
    error: str | None = None


def assign_outputs(
    sources: Sequence[Source],
    *,
    output_dir: Path | None,
    overwrite: bool,
    exists: Callable[[Path], bool],
    finished: Callable[[int, Path], bool],
) -> list[Naming]:
    """Name every output, in batch order (a pure function of the arguments).

    The rule: a job takes its first candidate that no earlier job in this batch took and that is not
    an input of the batch, and that is free, or holds this job's own finished output (``finished``:
    then it is skipped), or exists and ``overwrite`` is set. So the first of two ``clip.mov`` inputs
    gets ``clip.mp4`` and the second ``clip-2.mp4``, on every run. A manifest's explicit output is
    never renamed: a second job naming the same file fails.
    """
    claimed: set[Path] = set()
    inputs = {s.input.absolute() for s in sources}
    names: list[Naming] = []
    for index, source in enumerate(sources):
        if source.error is not None:
            names.append(Naming(None))
            continue
        if source.output is not None:
            key = source.output.absolute()
            if key in claimed:
                names.append(Naming(None, error=f"{source.output} is also the output of an earlier file"))
                continue
            claimed.add(key)
            names.append(Naming(source.output, done=not overwrite and finished(index, source.output)))
            continue
        for candidate in output_candidates(source, output_dir):
            key = candidate.absolute()
            if key in claimed or key in inputs:
                continue
            if finished(index, candidate):
                claimed.add(key)
                names.append(Naming(candidate, done=not overwrite))
                break
            if not exists(candidate) or overwrite:
                claimed.add(key)
                names.append(Naming(candidate))
                break
    return names


# -- preparing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the command line says for every file: explicit Request options, a profile name."""

    options: Mapping[str, Any] = field(default_factory=dict)
    profile_name: str | None = None
    measure: bool = False  # measure each output's VMAF on the whole file (local only)


class _Understanding:
    """Instructions parsed once each; the profiles loaded once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = profiles.load_profiles()
        self.aliases = profiles.alias_table(self.table)
        self.profile = (
            profiles.get_profile(settings.profile_name, self.table) if settings.profile_name else None
        )
        self._intents: dict[str, Intent] = {}

    def intent(self, text: str | None) -> Intent | None:
        if text is None:
            return None
        if text not in self._intents:
            self._intents[text] = parse_instruction(text, aliases=self.aliases)
        return self._intents[text]

    def request(self, text: str | None, info: MediaInfo) -> tuple[Request, profiles.Profile | None]:
        intent = self.intent(text)
        options = dict(self.settings.options)
        profile = self.profile
        if profile is not None:
            options["profile"] = profile.name
        elif intent is not None and intent.profile:
            profile = profiles.get_profile(intent.profile, self.table)
        return build_request(options, intent, profile, input_size_bytes=info.size_bytes), profile


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None


def prepare(
    sources: Sequence[Source],
    settings: Settings,
    *,
    output_dir: Path | None,
    overwrite: bool,
    shared_instruction: str | None = None,
    on_event: BatchSink = _ignore,
) -> list[Job | Item]:
    """Probe, understand and plan every Source, and name its output; in batch order.

    A shared instruction or ``--profile`` that cannot be understood fails the whole command (raised);
    anything wrong with one file (unreadable, not a video, an instruction of its own that is unclear,
    an impossible request) becomes that file's failed Item.
    """
    understanding = _Understanding(settings)
    understanding.intent(shared_instruction)
    ready: dict[int, tuple[MediaInfo, Request, Plan]] = {}
    failed: dict[int, Item] = {}
    for index, source in enumerate(sources):
        on_event(Preparing(index, len(sources), source.input))
        if source.error is not None:
            failed[index] = Item(index, source.input, None, "failed", None, error=source.error,
                                 exit_code=source.exit_code)  # fmt: skip
            continue
        try:
            info = probe(source.input)
            request, profile = understanding.request(source.instruction, info)
            the_plan = planner.plan(info, request)
            if profile is not None:
                profiles.check_duration(profile, the_plan.duration_s)
        except HybridError as exc:
            failed[index] = Item(index, source.input, None, "failed", _size_or_none(source.input),
                                 error=exc.message, exit_code=exc.exit_code)  # fmt: skip
            continue
        ready[index] = (info, request, the_plan)

    def finished(index: int, output: Path) -> bool:
        if index not in ready:
            return False
        return finished_before(sources[index], ready[index][1], output) is not None

    names = assign_outputs(
        sources, output_dir=output_dir, overwrite=overwrite, exists=os.path.lexists, finished=finished
    )
    out: list[Job | Item] = []
    for index, source in enumerate(sources):
        if index in failed:
            out.append(failed[index])
            continue
        info, request, the_plan = ready[index]
        naming = names[index]
        if naming.output is None:
            out.append(Item(index, source.input, None, "failed", info.size_bytes,
                            error=naming.error or "no output name", exit_code=6))  # fmt: skip
        elif naming.done:
            out.append(Item(index, source.input, naming.output, "skipped", info.size_bytes,
                            size_after_bytes=naming.output.stat().st_size))  # fmt: skip
        else:
            out.append(Job(index, source, info, request, the_plan, naming.output,
                           replace=overwrite and os.path.lexists(naming.output)))  # fmt: skip
    return out


# -- running ------------------------------------------------------------------------------------------

Executor = Callable[[Job, Callable[[Event], None]], Result]


def default_workers() -> int:
    """2 on a machine with at least 2 cores and the memory for two encodes, else 1.

    Measured on this project's 2-core machine (``benchmarks/batch_throughput.py``; the shared clips,
    preset medium): two jobs at once were never slower than one in five paired runs and finished a
    batch 3-39 % sooner, for the same CPU time, although x264 already uses every core: part of each
    job is serial (probing, audio, x264's start and end, verification) and the other job fills it.
    More than two was not measured: pass ``--jobs`` for that.
    """
    import psutil

    cores = os.cpu_count() or 1
    memory = int(psutil.virtual_memory().available)
    return 2 if cores >= 2 and memory >= 2 * MEMORY_PER_JOB_BYTES else 1


def local_executor(settings: Settings) -> Executor:
    """The local path: ``hybrid.local.compress`` for each job, then its ledger entry."""

    def execute(job: Job, on_event: Callable[[Event], None]) -> Result:
        job.output.parent.mkdir(parents=True, exist_ok=True)
        # A quality target's sample search belongs to the job (it is an encode's worth of work, and
        # runs in parallel with the others); any other plan is the one made while preparing.
        searched = planner.target_vmaf(job.request) is not None
        result = local.compress(
            job.source.input,
            job.request,
            job.output,
            overwrite=job.replace,
            on_event=on_event,
            info=job.info,
            plan=None if searched else job.plan,
            measure=settings.measure,
        )
        record_output(job, result)
        return result

    return execute


def run_jobs(
    entries: Sequence[Job | Item],
    execute: Executor,
    *,
    workers: int = 1,
    on_event: BatchSink = _ignore,
) -> BatchReport:
    """Run the jobs, ``workers`` at a time, in threads (each job's ffmpeg uses the cores).

    One job failing never stops the others. Ctrl-C or SIGTERM (raised in the main thread, which only
    waits here) stops every running job at its next progress event, which kills its ffmpeg and
    removes its work folder, and raises :class:`BatchInterrupted` with what finished.
    """
    started = time.monotonic()
    total = len(entries)
    emit_lock = threading.Lock()

    def emit(event: BatchEvent) -> None:
        with emit_lock:  # the drawer is not thread-safe; events arrive from every worker
            on_event(event)

    items: dict[int, Item] = {}
    for entry in entries:
        if isinstance(entry, Item):
            items[entry.index] = entry
            emit(JobFinished(total, 0, entry))
    jobs = [e for e in entries if isinstance(e, Job)]
    stop = threading.Event()
    slots: SimpleQueue[int] = SimpleQueue()
    for slot in range(1, max(1, workers) + 1):
        slots.put(slot)

    def work(job: Job) -> Item:
        before = job.info.size_bytes
        if stop.is_set():
            return Item(job.index, job.source.input, None, "interrupted", before, error="not started")
        slot = slots.get()
        clock = time.monotonic()
        try:
            emit(JobStarted(job.index, total, slot, job.source.input, job.output))

            def sink(event: Event) -> None:
                if stop.is_set():
                    raise Interrupted()
                emit(JobEvent(job.index, slot, job.source.input, event))

            try:
                result = execute(job, sink)
            except Interrupted:
                item = Item(job.index, job.source.input, None, "interrupted", before,
                            elapsed_s=time.monotonic() - clock, error="interrupted")  # fmt: skip
            except HybridError as exc:
                item = Item(job.index, job.source.input, None, "failed", before,
                            elapsed_s=time.monotonic() - clock, error=exc.message,
                            exit_code=exc.exit_code)  # fmt: skip
            except Exception as exc:  # a bug met by one file must not cost the others theirs
                item = Item(job.index, job.source.input, None, "failed", before,
                            elapsed_s=time.monotonic() - clock,
                            error=f"internal error: {type(exc).__name__}: {exc}", exit_code=1)  # fmt: skip
            else:
                item = Item(job.index, job.source.input, result.output, "ok", before,
                            size_after_bytes=result.size_bytes, elapsed_s=result.elapsed_s,
                            result=result)  # fmt: skip
            emit(JobFinished(total, slot, item))
            return item
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="hybrid-job")
    futures: list[Future[Item]] = [pool.submit(work, job) for job in jobs]
    try:
        pending = set(futures)
        while pending:
            # A short timeout keeps the main thread where Ctrl-C and SIGTERM can reach it.
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for future in done:
                item = future.result()
                items[item.index] = item
    except BaseException:
        stop.set()
        for future in futures:
            future.cancel()
        _wait_out(futures)
        for future, job in zip(futures, jobs, strict=True):
            if not future.cancelled() and future.exception() is None:
                item = future.result()
            else:
                item = Item(job.index, job.source.input, None, "interrupted", job.info.size_bytes,
                            error="not started")  # fmt: skip
            items[item.index] = item
        pool.shutdown(wait=True)
        report = BatchReport(tuple(items[i] for i in sorted(items)), time.monotonic() - started, True)
        raise BatchInterrupted(report) from None
    pool.shutdown(wait=True)
    return BatchReport(tuple(items[i] for i in sorted(items)), round(time.monotonic() - started, 3))


def _wait_out(futures: Sequence[Future[Item]]) -> None:
    """Wait until every started job has cleaned up; a second Ctrl-C must not leave its work folder."""
    while True:
        try:
            wait(futures)
            return
        except KeyboardInterrupt:
            continue
