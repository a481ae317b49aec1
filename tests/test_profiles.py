"""Platform profiles: the bundled files, user overrides, errors naming file and key, the CLI around them."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hybrid import profiles
from hybrid.errors import PlanError, ProfileError

from .conftest import REPO, clip, run_cli

PLATFORMS = {"discord", "whatsapp", "email", "slack", "telegram", "twitter", "instagram", "tiktok", "youtube"}

GOOD = """
description = "Work chat"
max_bytes = 5_000_000  # our chat server's limit
max_height = 480
max_width = 854
max_duration_s = 5
fps = 24
codec = "h264"
audio = "remove"
aliases = ["work chat"]
"""


def test_every_platform_has_a_bundled_profile() -> None:
    table = profiles.load_profiles(user_dir=Path("/nonexistent"))
    assert set(table) == PLATFORMS
    for profile in table.values():
        assert profile.origin == "bundled"
        assert profile.max_bytes > 0 and profile.max_height <= profile.max_width
        assert profile.codec in ("h264", "hevc", "av1")


def test_repo_root_profiles_are_the_packaged_ones() -> None:
    root = sorted(p.name for p in (REPO / "profiles").glob("*.toml"))
    packaged = sorted(p.name for p in (REPO / "hybrid" / "_profiles").glob("*.toml"))
    assert root == packaged == sorted(f"{name}.toml" for name in PLATFORMS)


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_max_bytes_is_exact_and_cites_its_source(name: str) -> None:
    text = (REPO / "profiles" / f"{name}.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("max_bytes"))
    # the comment block right above max_bytes says where the number comes from
    comment = []
    for line in reversed(lines[:index]):
        if not line.startswith("#"):
            break
        comment.append(line)
    assert comment, f"{name}.toml: max_bytes has no comment citing its source"
    assert re.search(r"Help|FAQ|Support|docs|Developer|specification|Meta|announcement", " ".join(comment))
    value = tomllib.loads(text)["max_bytes"]
    assert isinstance(value, int) and value == profiles.load_profiles(Path("/nonexistent"))[name].max_bytes


def test_wheel_ships_the_profiles(tmp_path: Path) -> None:
    # Build from a copy, so the build leaves nothing in the working tree others are using; the copy
    # keeps hybrid/_profiles a symlink, as in the repository.
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "hybrid", source / "hybrid", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "profiles", source / "profiles")
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    assert (source / "hybrid" / "_profiles").is_symlink()
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w",
         str(tmp_path / "dist")],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("hybrid-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {n.rsplit("/", 1)[1][:-5] for n in names if n.startswith("hybrid/_profiles/")}
        assert shipped == PLATFORMS
        discord = archive.read("hybrid/_profiles/discord.toml").decode()
    assert discord == (REPO / "profiles" / "discord.toml").read_text(encoding="utf-8")


def test_user_profiles_add_and_override(tmp_path: Path) -> None:
    (tmp_path / "work.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "discord.toml").write_text(
        GOOD.replace("Work chat", "Discord Nitro")
        .replace("5_000_000", "500_000_000")
        .replace('aliases = ["work chat"]', 'aliases = ["nitro"]'),
        encoding="utf-8",
    )
    table = profiles.load_profiles(user_dir=tmp_path)
    assert table["work"].origin == "user" and table["work"].audio == "remove"
    assert table["discord"].max_bytes == 500_000_000 and table["discord"].origin == "user"
    assert table["whatsapp"].origin == "bundled"
    assert profiles.alias_table(table)["work chat"] == "work"
    assert profiles.get_profile("Work Chat", table).name == "work"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (GOOD + "max_size = 3\n", "unknown key 'max_size'"),
        (GOOD.replace('codec = "h264"', 'codec = "vp9"'), "key 'codec' must be"),
        (GOOD.replace("fps = 24", ""), "missing key 'fps'"),
        (GOOD.replace("max_bytes = 5_000_000", 'max_bytes = "5MB"'), "key 'max_bytes' must be"),
        (GOOD.replace('audio = "remove"', 'audio = "loud"'), "key 'audio' must be"),
        (GOOD.replace("max_height = 480", "max_height = 2000"), "max_height (2000) is the short side"),
        (GOOD + "[oops\n", "is not valid TOML"),
    ],
)
def test_malformed_profiles_name_the_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        profiles.load_profiles(user_dir=tmp_path)
    message = str(caught.value)
    assert str(path) in message and fragment in message
    assert "\n" not in message
    assert caught.value.exit_code == 11


def test_an_alias_claimed_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "work.toml").write_text(GOOD.replace('["work chat"]', '["discord"]'), encoding="utf-8")
    with pytest.raises(ProfileError, match=r"work.toml: alias 'discord' is already the name of profile"):
        profiles.load_profiles(user_dir=tmp_path)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'myspace' \(known: discord, email"):
        profiles.get_profile("myspace", profiles.load_profiles(Path("/nonexistent")))


def test_too_long_for_the_profile_says_how_to_trim() -> None:
    twitter = profiles.load_profiles(Path("/nonexistent"))["twitter"]
    profiles.check_duration(twitter, 140.0)
    with pytest.raises(PlanError, match=r'at most 2m20s: trim it, e.g. add "first 140 seconds"'):
        profiles.check_duration(twitter, 200.0)
    youtube = profiles.load_profiles(Path("/nonexistent"))["youtube"]
    profiles.check_duration(youtube, 3600.0)
    assert math.isinf(profiles.load_profiles(Path("/nonexistent"))["discord"].max_duration_s)


# -- through the command line ----------------------------------------------------------------------


def _config(tmp_path: Path, **files: str) -> dict[str, str]:
    folder = tmp_path / "config" / "profiles"
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / f"{name}.toml").write_text(text, encoding="utf-8")
    return {"HYBRID_CONFIG_DIR": str(tmp_path / "config")}


def test_cli_lists_profiles_including_the_users(tmp_path: Path) -> None:
    env = _config(tmp_path, work=GOOD)
    proc = run_cli("profiles", env=env)
    assert proc.returncode == 0, proc.stderr
    for name in [*PLATFORMS, "work"]:
        assert re.search(rf"^{name}\s", proc.stdout, re.M), name
    assert "[user]" in proc.stdout
    data = json.loads(run_cli("profiles", "--json", env=env).stdout)
    assert data["discord"]["max_bytes"] == 10_000_000 and data["work"]["origin"] == "user"


def test_cli_bad_user_profile_exits_11(tmp_path: Path) -> None:
    env = _config(tmp_path, broken=GOOD + "colour = 'purple'\n")
    proc = run_cli("plan", str(clip("motion-320p.mov")), "--profile", "discord", env=env)
    assert proc.returncode == 11
    assert "broken.toml" in proc.stderr and "'colour'" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_cli_profile_sets_the_plan(tmp_path: Path) -> None:
    proc = run_cli("plan", str(clip("phone-720p-hello.mp4")), "--profile", "whatsapp", "--json")
    assert proc.returncode == 0, proc.stderr
    request = json.loads(proc.stdout)["request"]
    assert request["profile"] == "whatsapp" and request["target_size_bytes"] == 16_000_000
    assert (request["max_height"], request["max_width"], request["fps"]) == (720, 1280, 30.0)
    assert request["sources"]["profile"] == "option"
    assert request["sources"]["target_size_bytes"] == "profile"


def test_cli_refuses_input_longer_than_the_profile(tmp_path: Path) -> None:
    env = _config(tmp_path, work=GOOD)  # at most 5 s; the clip lasts 8.3 s
    proc = run_cli("plan", str(clip("phone-720p-hello.mp4")), "for the work chat", env=env)
    assert proc.returncode == 5
    assert 'add "first 5 seconds"' in proc.stderr
    proc = run_cli("plan", str(clip("phone-720p-hello.mp4")), "for the work chat, first 5 seconds", env=env)
    assert proc.returncode == 0, proc.stderr
