"""Ctrl-C and SIGTERM in the middle of an encode: exit 130, ffmpeg gone, no output, no debris."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hybrid import Request, compress
from hybrid.models import Progress

from .conftest import clip, leftovers

pytestmark = pytest.mark.encode


def _ffmpeg_children_of(work_marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "ffmpeg" in cmdline and work_marker in cmdline:
            found.append(proc)
    return found


def start_slow_compress(out: Path, *, capture: bool) -> subprocess.Popen[str]:
    """The CLI compressing a clip at preset veryslow: long enough to be interrupted mid-pass."""
    stream = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "hybrid", "compress", str(clip("phone-720p-hello.mp4")), "-t", "2MB",
         "-o", str(out), "--preset", "veryslow", "--quiet"],
        stdin=subprocess.DEVNULL, stdout=stream, stderr=stream, text=True,
    )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_encode_leaves_nothing(tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "out.mp4"
    proc = start_slow_compress(out, capture=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            work = [p for p in tmp_path.iterdir() if p.name.startswith(".hybrid-")]
            if work and any(f.name.startswith("x264") for f in work[0].iterdir()):
                break  # the first pass is writing its statistics
            time.sleep(0.1)
        else:
            pytest.fail("the encode never started")
        time.sleep(0.5)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
    assert _ffmpeg_children_of(str(tmp_path)) == []


def test_keyboard_interrupt_inside_the_api_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"

    def stop_at_first_progress(event: object) -> None:
        if isinstance(event, Progress):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        compress(
            clip("phone-720p-hello.mp4"),
            Request(target_size_bytes=2_000_000, preset="medium"),
            out,
            on_event=stop_at_first_progress,
        )
    assert list(tmp_path.iterdir()) == []
    assert _ffmpeg_children_of(str(tmp_path)) == []


def test_sigkill_of_hybrid_takes_ffmpeg_with_it(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("parent-death signal is Linux-only")
    out = tmp_path / "out.mp4"
    proc = start_slow_compress(out, capture=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _ffmpeg_children_of(str(tmp_path)):
        time.sleep(0.1)
    assert _ffmpeg_children_of(str(tmp_path)), "ffmpeg never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _ffmpeg_children_of(str(tmp_path)):
        time.sleep(0.1)
    assert _ffmpeg_children_of(str(tmp_path)) == [], "ffmpeg outlived a killed hybrid"
    assert not out.exists()
    # A killed process cannot clean up; the next run in the same folder sweeps its work folder.
    assert leftovers(tmp_path) != []
    compress(clip("motion-320p.mov"), Request(target_size_bytes=200_000, preset="veryfast"), out)
    assert leftovers(tmp_path) == []
    assert out.exists()
