"""Shared fixtures: the real clips in ../shared/media, a runner for the CLI as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ.get("HYBRID_MEDIA", REPO.parent / "shared" / "media"))

CLIPS = sorted(
    p.name for p in MEDIA.glob("*") if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".avi", ".webm"}
)


def clip(name: str) -> Path:
    path = MEDIA / name
    if not path.exists():
        pytest.fail(f"test clip missing: {path} (../shared/media must sit beside the repo)")
    return path


@pytest.fixture(autouse=True)
def _isolated_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test reads or writes the real user config directory."""
    monkeypatch.setenv("HYBRID_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    yield


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hybrid`` in a child process, as a user would, with no TTY."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "hybrid", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders hybrid might have left behind in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".hybrid-") or "partial" in p.name)
