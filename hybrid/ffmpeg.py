"""Finding the ffmpeg binaries and running them with progress.

Lookup order: ``HYBRID_FFMPEG`` / ``HYBRID_FFPROBE`` (an explicit choice is used or refused, never
silently replaced), then the ffmpeg bundled by imageio-ffmpeg, then ``ffmpeg`` on PATH. ffprobe is not
bundled: without one, probing falls back to parsing ``ffmpeg -i`` (``HYBRID_FFPROBE=none`` forces that).

ffmpeg runs from argument lists, never a shell, with ``-nostdin`` and ``-progress pipe:1``; the runner
turns the progress block into :class:`~hybrid.models.Progress` events, keeps the whole stderr for the
error, and kills and reaps the process in ``finally`` whatever happened.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import EncodeError, FFmpegNotFoundError
from .models import Event, Progress

log = logging.getLogger("hybrid")

EventSink = Callable[[Event], None]


def _ignore(_: Event) -> None:
    pass


@functools.lru_cache(maxsize=8)
def _check_binary(path: str, name: str) -> str:
    """Return the version line of a working binary, or raise FFmpegNotFoundError."""
    try:
        proc = subprocess.run(
            [path, "-hide_banner", "-version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            check=False,
        )
    except FileNotFoundError:
        raise FFmpegNotFoundError(f"{name} not found at {path}") from None
    except (PermissionError, OSError) as exc:
        raise FFmpegNotFoundError(f"{name} at {path} cannot run: {exc.strerror or exc}") from None
    except subprocess.TimeoutExpired:
        raise FFmpegNotFoundError(f"{name} at {path} did not answer within 20 s") from None
    first = proc.stdout.decode("utf-8", "replace").splitlines()[:1]
    if proc.returncode != 0 or not first or not first[0].startswith(f"{name} version"):
        detail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-1:]
        why = f": {detail[0]}" if detail else ""
        raise FFmpegNotFoundError(f"{name} at {path} does not work (exit {proc.returncode}){why}")
    return first[0]


def find_ffmpeg() -> str:
    """Path of a working ffmpeg, or FFmpegNotFoundError saying how to get one."""
    explicit = os.environ.get("HYBRID_FFMPEG")
    if explicit:
        _check_binary(explicit, "ffmpeg")
        return explicit
    candidates: list[str] = []
    with contextlib.suppress(Exception):
        import imageio_ffmpeg

        candidates.append(imageio_ffmpeg.get_ffmpeg_exe())
    on_path = shutil.which("ffmpeg")
    if on_path:
        candidates.append(on_path)
    problems: list[str] = []
    for candidate in dict.fromkeys(candidates):
        try:
            _check_binary(candidate, "ffmpeg")
            return candidate
        except FFmpegNotFoundError as exc:
            problems.append(str(exc))
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise FFmpegNotFoundError(
        "no working ffmpeg: reinstall hybrid (pip install --force-reinstall imageio-ffmpeg) or "
        f"set HYBRID_FFMPEG to an ffmpeg binary{detail}"
    )


def find_ffprobe() -> str | None:
    """Path of a working ffprobe, or None to probe with ffmpeg alone."""
    explicit = os.environ.get("HYBRID_FFPROBE")
    if explicit is not None:
        if explicit.lower() in ("", "none", "0", "off"):
            return None
        _check_binary(explicit, "ffprobe")
        return explicit
    on_path = shutil.which("ffprobe")
    if on_path:
        try:
            _check_binary(on_path, "ffprobe")
            return on_path
        except FFmpegNotFoundError as exc:
            log.debug("ignoring ffprobe on PATH: %s", exc)
    return None


def ffmpeg_version() -> str:
    """``"n9.0.2-17-g2a571b6068-20260930"``: what ffmpeg says its version is."""
    line = _check_binary(find_ffmpeg(), "ffmpeg")
    return line.split()[2] if len(line.split()) > 2 else line


@functools.lru_cache(maxsize=8)
def _encoders(path: str) -> frozenset[str]:
    proc = subprocess.run(
        [path, "-hide_banner", "-encoders"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    names = set()
    for line in proc.stdout.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def require_encoder(name: str) -> None:
    """Raise FFmpegNotFoundError when the ffmpeg in use lacks an encoder the plan needs."""
    path = find_ffmpeg()
    if name not in _encoders(path):
        raise FFmpegNotFoundError(
            f"the ffmpeg at {path} has no {name} encoder: unset HYBRID_FFMPEG to use the bundled one"
        )


def file_arg(path: Path | str) -> str:
    """A path as ffmpeg should read it: ``file:`` so names with ``-`` or ``:`` stay names."""
    return f"file:{path}"


_NOISE = re.compile(r"^(frame=|size=|video:|\s*$|Press \[q\]|Stream mapping|\s+Stream #|\s+Metadata|\[out#)")


def last_meaningful_lines(stderr: str, count: int = 3) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if not _NOISE.match(ln)]
    return " | ".join(lines[-count:]) if lines else "no error output"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # If hybrid itself is killed outright, its ffmpeg must not go on writing in the background.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class RunResult:
    returncode: int
    stderr: str


def run(
    argv: Sequence[str],
    *,
    stage: str = "ffmpeg",
    total_s: float = 0.0,
    on_event: EventSink = _ignore,
    check: bool = True,
    timeout_s: float | None = None,
) -> RunResult:
    """Run an ffmpeg command line, reporting progress as events.

    ``argv`` must not contain ``-progress``: it is added here. The process gets its own session so a
    terminal's Ctrl-C reaches hybrid only, which then kills ffmpeg instead of letting it finish a
    half file; it is killed and reaped in ``finally`` on every path out.
    """
    argv = list(argv)
    full = [argv[0], "-nostdin", "-hide_banner", "-nostats", "-progress", "pipe:1", *argv[1:]]
    log.debug("running: %s", shlex.join(full))
    proc = subprocess.Popen(
        full,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    stderr_chunks: list[bytes] = []

    def drain() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(65536), b""):  # type: ignore[union-attr]
            stderr_chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timer: threading.Timer | None = None
    if timeout_s is not None:
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
    try:
        assert proc.stdout is not None
        block: dict[str, str] = {}
        for raw in proc.stdout:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            block[key] = value
            if key == "progress":
                on_event(_progress_event(stage, block, total_s))
                block = {}
        returncode = proc.wait()
        reader.join()
    finally:
        if timer is not None:
            timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    stderr = b"".join(stderr_chunks).decode("utf-8", "replace")
    if check and returncode != 0:
        raise EncodeError(
            f"ffmpeg failed during {stage} (exit {returncode}): {last_meaningful_lines(stderr)}",
            stderr=stderr,
            argv=full,
            returncode=returncode,
        )
    return RunResult(returncode, stderr)


def _progress_event(stage: str, block: dict[str, str], total_s: float) -> Progress:
    done_s = 0.0
    raw = block.get("out_time_us") or block.get("out_time_ms")
    if raw and raw.lstrip("-").isdigit():
        done_s = max(0.0, int(raw) / 1e6)
    speed: float | None = None
    raw_speed = block.get("speed", "").rstrip("x").strip()
    with contextlib.suppress(ValueError):
        speed = float(raw_speed)
    if block.get("progress") == "end" and total_s:
        done_s = total_s
    if total_s:
        done_s = min(done_s, total_s)
    return Progress(stage=stage, done_s=done_s, total_s=total_s, speed=speed)


def run_capture(argv: Sequence[str], *, timeout_s: float = 120) -> subprocess.CompletedProcess[bytes]:
    """A short ffmpeg/ffprobe run whose output we parse (probing): no progress, bounded in time."""
    log.debug("running: %s", shlex.join(argv))
    try:
        return subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise EncodeError(f"{Path(argv[0]).name} did not finish within {timeout_s:.0f} s") from exc
