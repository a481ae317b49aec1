"""Plain-language instructions on real clips, end to end through the CLI, checked by probing the output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from hybrid import ffmpeg, probe

from .conftest import clip, leftovers, run_cli

pytestmark = pytest.mark.encode


def compress(tmp_path: Path, name: str, *args: str) -> tuple[Path, dict[str, object]]:
    """Run ``hybrid compress`` on a clip as a user would; return the output and the JSON report."""
    out = tmp_path / "out.mp4"
    proc = run_cli("compress", str(clip(name)), *args, "--preset", "veryfast", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert leftovers(tmp_path) == []
    return out, json.loads(proc.stdout)


def codec_tag(path: Path) -> str:
    proc = subprocess.run(
        [ffmpeg.find_ffmpeg(), "-hide_banner", "-i", f"file:{path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    # "Video: hevc (Main) (hvc1 / 0x31637668), ...": the four-character code before the hex
    match = re.search(r"Video: .*?\((\w{4}) / 0x[0-9A-Fa-f]+\)", proc.stderr)
    assert match, proc.stderr
    return match.group(1)


def test_size_resolution_audio_and_trim_from_one_sentence(tmp_path: Path) -> None:
    out, report = compress(
        tmp_path,
        "phone-720p-hello.mp4",
        "hey, can you shrink this to under 400KB at 360p with no audio, first 4 s",
    )
    got = probe(out)
    assert out.stat().st_size <= 400_000 and report["size_bytes"] == out.stat().st_size
    assert got.video is not None and got.video.display_height == 360
    assert got.audio is None
    assert abs(got.duration_s - 4.0) <= 0.15


def test_relative_size_and_frame_rate(tmp_path: Path) -> None:
    source = clip("motion-320p.mov")
    out, _ = compress(tmp_path, "motion-320p.mov", "half the size at 15 fps")
    got = probe(out)
    assert out.stat().st_size <= source.stat().st_size // 2
    assert got.video is not None and abs(got.video.fps - 15) < 0.01
    assert got.audio is not None  # not asked to remove it


def test_chinese_instruction(tmp_path: Path) -> None:
    out, _ = compress(tmp_path, "ball-576p.mp4", "压缩到300KB以下，去掉声音，前5秒")
    got = probe(out)
    assert out.stat().st_size <= 300_000
    assert got.audio is None
    assert abs(got.duration_s - 5.0) <= 0.15


def test_cut_the_last_seconds_with_prompt_option(tmp_path: Path) -> None:
    source = probe(clip("screen-540p-tour.mp4"))
    out, _ = compress(tmp_path, "screen-540p-tour.mp4", "--prompt", "cut the last 5 s, under 500KB")
    got = probe(out)
    assert out.stat().st_size <= 500_000
    assert abs(got.duration_s - (source.duration_s - 5)) <= 0.15


def test_platform_profile_from_the_instruction(tmp_path: Path) -> None:
    # WhatsApp's profile: at most 720p and 30 fps; the 1080p phone clip must come down to both.
    out, _ = compress(tmp_path, "phone-1080p-short.mp4", "send it on WhatsApp")
    got = probe(out)
    assert out.stat().st_size <= 16_000_000
    assert got.video is not None and got.video.display_height == 720 and got.video.fps <= 30.01


def test_option_beats_instruction(tmp_path: Path) -> None:
    out, _ = compress(tmp_path, "motion-320p.mov", "first 3 seconds at 240p", "--max-height", "160")
    got = probe(out)
    assert got.video is not None and min(got.video.display_width, got.video.display_height) == 160
    assert abs(got.duration_s - 3.0) <= 0.15


def test_hevc_two_pass_fits_and_is_tagged_for_apple(tmp_path: Path) -> None:
    out, report = compress(tmp_path, "motion-320p.mov", "first 3 seconds in HEVC under 100KB")
    got = probe(out)
    assert out.stat().st_size <= 100_000
    assert out.stat().st_size >= 85_000  # two-pass used the budget, not a tiny guess
    assert got.video is not None and got.video.codec == "hevc"
    assert codec_tag(out) == "hvc1"
    assert report["mode"] == "two-pass"
    assert abs(got.duration_s - 3.0) <= 0.15


def test_av1_two_pass_fits(tmp_path: Path) -> None:
    out, report = compress(tmp_path, "motion-320p.mov", "first 3 seconds, AV1, under 100KB, no audio")
    got = probe(out)
    assert 85_000 <= out.stat().st_size <= 100_000
    assert got.video is not None and got.video.codec == "av1"
    assert got.audio is None
    assert report["mode"] == "two-pass"


def test_plan_json_shows_how_the_instruction_was_understood() -> None:
    proc = run_cli(
        "plan",
        str(clip("phone-720p-hello.mp4")),
        "compress this video to under 2MB for Discord without losing quality, first 5 seconds, 30fps",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    r = data["request"]
    assert r["target_size_bytes"] == 2_000_000 and r["profile"] == "discord"
    assert (r["max_height"], r["max_width"]) == (1080, 1920)
    assert r["fps"] == 30.0 and r["codec"] == "h264" and r["container"] == "mp4" and r["audio"] == "keep"
    assert r["quality"] == "visually-lossless"
    assert (r["trim_start_s"], r["trim_end_s"]) == (0.0, 5.0)
    assert r["sources"]["target_size_bytes"] == "instruction"
    assert r["sources"]["max_height"] == "profile"
    assert r["sources"]["preset"] == "default"
    assert "under 2mb" in data["instruction"]["understood"]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["make it purple"], 10, 'did not understand "make it purple"'),
        (["under 50MB, max 25MB"], 10, "conflicting sizes"),
        (["--profile", "myspace"], 11, "unknown profile 'myspace'"),
        (["shrink it", "--prompt", "under 5MB"], 2, "give the instruction once"),
    ],
)
def test_unclear_instructions_get_one_line_and_an_exit_code(
    args: list[str], code: int, fragment: str
) -> None:
    proc = run_cli("compress", str(clip("motion-320p.mov")), *args)
    assert proc.returncode == code, proc.stderr
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_media_file_name_is_never_taken_for_an_instruction(tmp_path: Path) -> None:
    proc = run_cli("plan", str(clip("motion-320p.mov")), str(tmp_path / "missing.mp4"))
    assert proc.returncode == 2
    assert "one INPUT at a time" in proc.stderr
