"""Bad input, bad output, missing tools: one clear line, a documented exit code, nothing left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg
import pytest

from hybrid.errors import EXIT_CODES

from .conftest import REPO, clip, leftovers, run_cli


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temporary folder an unprivileged user can reach (pytest's own are private to root)."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="hybrid-test-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in folder.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(folder, ignore_errors=True)


FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def assert_refused(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("hybrid: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_clean(folder: Path, *expected: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)
    assert leftovers(folder) == []


def make(tmp_path: Path, name: str, *ffmpeg_args: str) -> Path:
    path = tmp_path / name
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", *ffmpeg_args, str(path)], check=True, stdin=subprocess.DEVNULL
    )
    return path


def test_exit_codes_are_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, f"exit code {code} is not in the README's table"


def test_missing_file(tmp_path: Path) -> None:
    proc = run_cli("compress", str(tmp_path / "nope.mp4"), "-t", "1MB")
    assert_refused(proc, 3, "no such file", "nope.mp4")
    assert_clean(tmp_path)


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "clips.mp4").mkdir()
    proc = run_cli("compress", str(tmp_path / "clips.mp4"), "-t", "1MB")
    assert_refused(proc, 3, "is a folder")


def _as_nobody() -> list[str] | None:
    """A prefix that runs a command as an unprivileged user, for permission tests run as root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"] if setpriv else None


def test_unreadable_file(shared_tmp: Path) -> None:
    tmp_path = shared_tmp
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    source = tmp_path / "secret.mp4"
    source.write_bytes(clip("motion-320p.mov").read_bytes())
    source.chmod(0o000)
    env = {**os.environ, "HOME": str(tmp_path), "HYBRID_CONFIG_DIR": str(tmp_path / "config")}
    import sys

    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "hybrid", "compress", str(source), "-t", "100KB"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert_refused(proc, 3, "permission denied")
    assert_clean(tmp_path, "secret.mp4")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    proc = run_cli("compress", str(tmp_path / "empty.mp4"), "-t", "1MB")
    assert_refused(proc, 4, "is empty")
    assert_clean(tmp_path, "empty.mp4")


@pytest.mark.parametrize(
    "name", ["phone-720p-hello.mp4", "ball-576p.mp4", "phone-720p-hello.webm", "game-cinepak.mkv"]
)
def test_truncated_file(tmp_path: Path, name: str) -> None:
    data = clip(name).read_bytes()
    broken = tmp_path / f"cut{Path(name).suffix}"
    broken.write_bytes(data[: len(data) // 2])
    proc = run_cli("compress", str(broken), "-t", "200KB")
    assert_refused(proc, 4, "truncated")
    assert_clean(tmp_path, broken.name)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my holiday notes, not a video\n" * 50)
    proc = run_cli("compress", str(fake), "-t", "1MB")
    assert_refused(proc, 4, "not a video file", "text")
    assert_clean(tmp_path, "notes.mp4")


def test_random_bytes_named_mov(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mov"
    junk.write_bytes(bytes(range(256)) * 64)
    proc = run_cli("compress", str(junk), "-t", "1MB")
    assert_refused(proc, 4, "junk.mov")


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg"])
def test_image(tmp_path: Path, name: str) -> None:
    image = make(tmp_path, name, "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1")
    proc = run_cli("compress", str(image), "-t", "1MB")
    assert_refused(proc, 4, "is an image")
    assert_clean(tmp_path, name)


def test_image_renamed_to_mp4(tmp_path: Path) -> None:
    image = make(tmp_path, "photo.png", "-f", "lavfi", "-i", "testsrc=size=320x240", "-frames:v", "1")
    renamed = image.rename(tmp_path / "photo.mp4")
    proc = run_cli("compress", str(renamed), "-t", "1MB")
    assert_refused(proc, 4, "is an image")


def test_audio_only(tmp_path: Path) -> None:
    audio = make(tmp_path, "voice.m4a", "-i", str(clip("phone-720p-hello.mp4")), "-vn", "-c:a", "copy")
    proc = run_cli("compress", str(audio), "-t", "1MB")
    assert_refused(proc, 4, "audio only")
    assert_clean(tmp_path, "voice.m4a")


def test_impossible_target(tmp_path: Path) -> None:
    out = tmp_path / "tiny.mp4"
    proc = run_cli("compress", str(clip("phone-720p-hello.mp4")), "-t", "10KB", "-o", str(out))
    assert_refused(proc, 5, "too small", "the smallest that works is")
    assert_clean(tmp_path)


def test_output_same_as_input(tmp_path: Path) -> None:
    source = tmp_path / "same.mp4"
    source.write_bytes(clip("motion-320p.mov").read_bytes())
    before = source.read_bytes()
    for extra in ([], ["--overwrite"]):
        proc = run_cli("compress", str(source), "-t", "200KB", "-o", str(source), *extra)
        assert_refused(proc, 6, "is the input")
    assert source.read_bytes() == before
    assert_clean(tmp_path, "same.mp4")


def test_output_exists_without_overwrite(tmp_path: Path) -> None:
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"keep me")
    proc = run_cli("compress", str(clip("motion-320p.mov")), "-t", "200KB", "-o", str(existing))
    assert_refused(proc, 6, "already exists", "--overwrite")
    assert existing.read_bytes() == b"keep me"


def test_output_folder_missing(tmp_path: Path) -> None:
    proc = run_cli(
        "compress", str(clip("motion-320p.mov")), "-t", "200KB", "-o", str(tmp_path / "no" / "x.mp4")
    )
    assert_refused(proc, 6, "does not exist")


def test_output_not_mp4(tmp_path: Path) -> None:
    proc = run_cli("compress", str(clip("motion-320p.mov")), "-t", "200KB", "-o", str(tmp_path / "x.avi"))
    assert_refused(proc, 6, "must be an MP4")


def test_unwritable_output_folder(shared_tmp: Path) -> None:
    tmp_path = shared_tmp
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: cannot make a folder unwritable")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    source = tmp_path / "in.mov"
    source.write_bytes(clip("motion-320p.mov").read_bytes())
    source.chmod(0o644)
    import sys

    env = {**os.environ, "HOME": str(tmp_path), "HYBRID_CONFIG_DIR": str(tmp_path / "config")}
    proc = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "hybrid",
            "compress",
            str(source),
            "-t",
            "200KB",
            "-o",
            str(locked / "out.mp4"),
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert_refused(proc, 6, "cannot write to the output folder", "permission denied")
    assert list(locked.iterdir()) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a real full disk, without filling the machine's."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_not_enough_disk_is_caught_before_encoding(tiny_disk: Path) -> None:
    proc = run_cli(
        "compress", str(clip("phone-720p-hello.mp4")), "-t", "3MB", "-o", str(tiny_disk / "out.mp4")
    )
    assert_refused(proc, 7, "not enough free disk")
    assert list(tiny_disk.iterdir()) == []


def compress_with_ffmpeg(binary: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A compress with HYBRID_FFMPEG pointing at ``binary`` and no ffprobe."""
    return run_cli(
        "compress", str(clip("motion-320p.mov")), "-t", "200KB", "-o", str(tmp_path / "x.mp4"),
        env={"HYBRID_FFMPEG": binary, "HYBRID_FFPROBE": "none"},
    )  # fmt: skip


def test_ffmpeg_missing(tmp_path: Path) -> None:
    proc = compress_with_ffmpeg(str(tmp_path / "no-ffmpeg"), tmp_path)
    assert_refused(proc, 8, "ffmpeg not found")
    assert_clean(tmp_path)


def test_ffmpeg_broken(tmp_path: Path) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho 'error while loading shared libraries: libx264.so' >&2\nexit 127\n")
    fake.chmod(0o755)
    proc = compress_with_ffmpeg(str(fake), tmp_path)
    assert_refused(proc, 8, "does not work", "libx264.so")
    assert_clean(tmp_path, "ffmpeg")


def test_bad_option_is_a_usage_error() -> None:
    proc = run_cli("compress", str(clip("motion-320p.mov")), "-t", "fifty")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "not a size" in proc.stderr
