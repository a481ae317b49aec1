"""What every benchmark needs: where the clips are, what machine and versions ran it, timing, writing.

Benchmarks measure; they assert nothing. Each one writes ``<name>.json`` (everything, for scripts and
later comparison) and ``<name>.md`` (a table and a summary for people) into a results folder, and
records enough about the run (machine, load, versions, git commit) to tell two runs apart.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"  # ignored by git: quick runs must not replace real results
MEDIA_DIR = Path(os.environ.get("HYBRID_MEDIA_DIR", REPO_ROOT.parent / "shared" / "media"))
MEDIA_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")

T = TypeVar("T")


def clips(media_dir: Path = MEDIA_DIR) -> list[Path]:
    """The video files of the shared media folder, sorted by name."""
    if not media_dir.is_dir():
        raise SystemExit(f"no media folder at {media_dir} (set HYBRID_MEDIA_DIR)")
    return sorted(p for p in media_dir.iterdir() if p.suffix.lower() in MEDIA_SUFFIXES and p.is_file())


# -- timing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """One measured call: wall seconds, and CPU seconds spent by the child processes it waited for.

    On a shared machine wall time moves with other people's work; the children's CPU time (ffmpeg's
    user + system time) moves much less, so both are kept.
    """

    wall_s: float
    child_cpu_s: float


def _children_cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.children_user + times.children_system


def timed(fn: Callable[[], T]) -> tuple[T, Timing]:
    """Run ``fn`` and measure it. Exceptions propagate (the caller decides what a failure means)."""
    cpu_before = _children_cpu_s()
    start = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - start
    return value, Timing(wall_s=round(wall, 3), child_cpu_s=round(_children_cpu_s() - cpu_before, 3))


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def ratio(a: float | None, b: float | None, digits: int = 3) -> float | None:
    return round(a / b, digits) if a is not None and b else None


# -- the run's context ----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu_model = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            cpu_model = found.group(1).strip()
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_bytes": psutil.virtual_memory().total,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in psutil.getloadavg()]
    except (AttributeError, OSError):
        return None


def git_info() -> dict[str, Any]:
    """The commit benchmarked, and whether the package had uncommitted changes at the time."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no", "--", "hybrid")
    return {
        "commit": git("rev-parse", "HEAD"),
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "hybrid_dirty": bool(status) if status is not None else None,  # tracked files only
        "hybrid_modified": [line.split(maxsplit=1)[-1] for line in (status or "").splitlines()],
    }


def x264_version(ffmpeg_exe: str) -> str | None:
    """x264 writes its version into every stream it makes (an SEI message): encode one tiny frame."""
    tiny = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=1", "-frames:v", "1"]
    try:
        proc = subprocess.run(
            [ffmpeg_exe, "-nostdin", "-v", "error", *tiny, "-c:v", "libx264", "-f", "h264", "-"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    # "x264 - core 165 r3222 b35605a - H.264..." (builds without a git revision omit "r3222 b35605a")
    found = re.search(rb"x264 - core (\d+)((?: r\d+)?(?: [0-9a-f]{7,})?) - ", proc.stdout)
    return f"core {found.group(1).decode()}{found.group(2).decode()}" if found else None


def versions(ffmpeg_exe: str) -> dict[str, Any]:
    import hybrid
    from hybrid import ffmpeg as hybrid_ffmpeg

    try:
        first = subprocess.run(
            [ffmpeg_exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout.splitlines()[:1]
        ffmpeg_version = first[0].split()[2] if first and len(first[0].split()) > 2 else None
    except (OSError, subprocess.TimeoutExpired):
        ffmpeg_version = None
    return {
        "hybrid": hybrid.__version__,
        "ffmpeg": ffmpeg_version,
        "ffmpeg_path": ffmpeg_exe,
        "ffprobe_path": hybrid_ffmpeg.find_ffprobe() or "none (probing with ffmpeg)",
        "x264": x264_version(ffmpeg_exe),
        "psutil": psutil.__version__,
    }


def run_context(ffmpeg_exe: str, **settings: Any) -> dict[str, Any]:
    """Everything about a run that is not a measurement: when, where, what, with which settings."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_start": load_average(),
        "versions": versions(ffmpeg_exe),
        "git": git_info(),
        "settings": settings,
    }


# -- output ---------------------------------------------------------------------------------------


def write_results(out_dir: Path, name: str, data: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``name.json`` and ``name.md`` into ``out_dir`` (created if needed), each via a rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / f"{name}.json", out_dir / f"{name}.md")
    for path, text in zip(paths, (json.dumps(data, indent=2) + "\n", markdown), strict=True):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return paths


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f} MB"
    return f"{n / 1e3:.0f} kB"


def context_markdown(context: dict[str, Any]) -> str:
    m, v, g = context["machine"], context["versions"], context["git"]
    modified = ", ".join(g.get("hybrid_modified") or [])
    dirty = f" (uncommitted changes in {modified})" if g.get("hybrid_dirty") else ""
    lines = [
        f"- date: {context['date']}",
        f"- machine: {m['cpu_model']}, {m['logical_cores']} logical / {m['physical_cores']} physical "
        f"cores, {m['ram_bytes'] / 2**30:.1f} GiB RAM, {m['os']}",
        f"- load average at start: {context.get('load_average_start')}, at end: "
        f"{context.get('load_average_end')} (the machine is shared: wall times are noisy)",
        f"- versions: hybrid {v['hybrid']}, ffmpeg {v['ffmpeg']}, x264 {v['x264']}, Python {m['python']}",
        f"- git: {(g.get('commit') or '?')[:12]} on {g.get('branch')}{dirty}",
        "- settings: " + ", ".join(f"{k}={val}" for k, val in context["settings"].items()),
    ]
    return "\n".join(lines) + "\n"


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so temporary folders and hybrid's work files are removed."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def require_ffmpeg() -> str:
    """The ffmpeg hybrid itself uses, so both sides of a comparison run the same binary."""
    from hybrid import ffmpeg as hybrid_ffmpeg

    exe = hybrid_ffmpeg.find_ffmpeg()
    if not shutil.which(exe) and not Path(exe).exists():
        raise SystemExit(f"ffmpeg not found at {exe}")
    return exe


# -- memory ---------------------------------------------------------------------------------------


class PeakRss:
    """Peak resident memory of this process's descendants while a block runs, sampled in a thread.

    Processes are told apart by (pid, start time) and grouped by name, so that a run's ffmpeg
    children (or a render node's grandchildren) show up whatever process started them. Sampling every
    ``interval_s`` misses processes that live less than that (ffprobe calls): they are small.

        with PeakRss() as peaks:
            run_something()
        peaks.peak(lambda name, pid: name.startswith("ffmpeg"))
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.seen: dict[tuple[int, float], tuple[str, int]] = {}  # (pid, created) -> (name, peak rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="peak-rss")

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                children = me.children(recursive=True)
            except psutil.Error:
                children = []
            for proc in children:
                try:
                    with proc.oneshot():
                        key = (proc.pid, proc.create_time())
                        rss = proc.memory_info().rss
                        name = self.seen[key][0] if key in self.seen else proc.name()
                except psutil.Error:
                    continue
                self.seen[key] = (name, max(rss, self.seen.get(key, (name, 0))[1]))
            self._stop.wait(self.interval_s)

    def peak(self, which: Callable[[str, int], bool]) -> int | None:
        """The largest peak among the processes ``which(name, pid)`` selects, None if none was seen."""
        peaks = [rss for (pid, _), (name, rss) in self.seen.items() if which(name, pid)]
        return max(peaks) if peaks else None


# -- VMAF -----------------------------------------------------------------------------------------

VMAF_THREADS = 2


def aligned_vmaf(
    ffmpeg_exe: str,
    distorted: Path,
    source: Path,
    *,
    width: int,
    height: int,
    fps: float,
    subsample: int,
    align: str = "time",
) -> float:
    """Mean VMAF (vmaf_v0.6.1) of a whole output against its source, on aligned frames.

    ``time``: both sides retimed to start at zero and resampled to the source's frame rate with the
    fps filter (each tick takes the frame shown at that moment). ``frames``: frame N of one is paired
    with frame N of the other (both given the time N / fps), whatever their timestamps. Either way the
    output is scaled to the source's picture size (as a player would) and both go to limited-range
    4:2:0.
    """
    rate = f"{fps:.6f}".rstrip("0").rstrip(".")
    timing = f"setpts=N/({rate}*TB)" if align == "frames" else f"setpts=PTS-STARTPTS,fps={rate}"
    prep = f"{timing},scale={width}:{height}:flags=bicubic:out_range=tv,format=yuv420p"
    graph = (
        f"[0:v:0]{prep}[dist];[1:v:0]{prep}[ref];[dist][ref]libvmaf=model=version=vmaf_v0.6.1"
        f":n_threads={VMAF_THREADS}:n_subsample={max(1, subsample)}:shortest=1"
    )
    argv = [ffmpeg_exe, "-nostdin", "-hide_banner", "-i", f"file:{distorted}", "-i", f"file:{source}"]
    argv += ["-filter_complex", graph, "-an", "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    scores = re.findall(r"VMAF score: ([\d.]+)", proc.stderr)
    if proc.returncode != 0 or not scores:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"libvmaf failed (exit {proc.returncode}): {tail}")
    return float(scores[-1])


def vmaf_method() -> str:
    """How :func:`full_vmaf` measures (recorded in each run's settings)."""
    return "benchmarks.common.full_vmaf: the better of frame-index and fps-filter alignment"


def full_vmaf(ffmpeg_exe: str, distorted: Path, source: Path, *, scored_fps: float) -> dict[str, float]:
    """VMAF of ``distorted`` (a compressed ``source``) over the whole file, scoring ``scored_fps``
    frames a second (libvmaf's n_subsample; every frame is still decoded and aligned).

    Measured with both alignments of :func:`aligned_vmaf`; ``vmaf`` is the better one, since pairing
    the wrong frames only ever lowers the score. Neither is right for every tool: pairing by index
    (what ``hybrid.quality.measure_output`` does when the frame counts differ by at most one) scored
    a HandBrake output of motion-320p.mov 54 where the fps filter gives 86.4 (HandBrake dropped a
    frame that was not the last); the fps filter scored phone-1080p-short.mp4's outputs (variable
    frame rate) ~78 where pairing by index gives ~93.
    """
    import hybrid

    info = hybrid.probe(source)
    if info.video is None:
        raise RuntimeError(f"{source.name} has no video")
    v = info.video
    subsample = max(1, int(v.fps // scored_fps))
    scores = {
        f"vmaf_{align}": aligned_vmaf(
            ffmpeg_exe,
            distorted,
            source,
            width=v.display_width,
            height=v.display_height,
            fps=v.fps,
            subsample=subsample,
            align=align,
        )
        for align in ("frames", "time")
    }
    return {"vmaf": max(scores.values()), **scores}


# -- other tools ----------------------------------------------------------------------------------


def handbrake_version(exe: str) -> str | None:
    try:
        proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"HandBrake (\S+)", proc.stdout + proc.stderr)
    return found.group(1) if found else None


def x264_of_file(path: Path) -> str | None:
    """The x264 version an encoder wrote into a file's stream (its SEI message), if it is there."""
    try:
        with path.open("rb") as f:
            head = f.read(8_000_000)
    except OSError:
        return None
    found = re.search(rb"x264 - core (\d+)((?: r\d+)?(?: [0-9a-f]{7,})?) - ", head)
    return f"core {found.group(1).decode()}{found.group(2).decode()}" if found else None
