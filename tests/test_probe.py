"""Probing every shared clip, with ffprobe and with the bundled ffmpeg alone, and the two agreeing."""

from __future__ import annotations

import math

import pytest

from hybrid import ffmpeg
from hybrid.models import MediaInfo
from hybrid.probe import probe

from .conftest import CLIPS, clip

# What each clip is, from ../shared/media/README.md: display size, video codec, fps, audio codec,
# channels, rotation.
EXPECTED = {
    "ball-576p.mp4": ((720, 576), "h264", 25.0, "aac", 2, 0),
    "diver-mjpeg.mov": ((640, 480), "mjpeg", 25.0, "mp2", 2, 0),
    "game-cinepak.mkv": ((320, 240), "msvideo1", 12.05, "vorbis", 1, 0),
    "motion-320p.mov": ((568, 320), "h264", 30.0, "aac", 1, 0),
    "phone-1080p-short.mp4": ((1920, 1080), "h264", 27.02, "aac", 2, 0),
    "phone-720p-hello.mp4": ((1280, 720), "h264", 30.12, "aac", 2, 0),
    "phone-720p-hello.webm": ((1280, 720), "vp9", 30.0, "opus", 2, 0),
    "phone-portrait-rotated.mp4": ((720, 1280), "h264", 30.0, "aac", 2, 90),
    "screen-540p-tour.mp4": ((960, 540), "h264", 24.0, None, 0, 0),
    "tree-cinepak.avi": ((320, 240), "cinepak", 15.0, None, 0, 0),
}
DURATIONS = {
    "ball-576p.mp4": 10.2,
    "diver-mjpeg.mov": 14.0,
    "game-cinepak.mkv": 6.6,
    "motion-320p.mov": 8.0,
    "phone-1080p-short.mp4": 1.6,
    "phone-720p-hello.mp4": 8.3,
    "phone-720p-hello.webm": 8.3,
    "phone-portrait-rotated.mp4": 8.3,
    "screen-540p-tour.mp4": 11.3,
    "tree-cinepak.avi": 29.6,
}


def test_every_clip_is_covered() -> None:
    assert sorted(EXPECTED) == CLIPS


def _check(info: MediaInfo, name: str) -> None:
    (width, height), vcodec, fps, acodec, channels, rotation = EXPECTED[name]
    assert info.video is not None
    assert (info.video.display_width, info.video.display_height) == (width, height)
    assert info.video.codec == vcodec
    assert info.video.fps == pytest.approx(fps, abs=0.01)
    assert info.video.rotation == rotation
    assert info.video.bitrate_bps and info.video.bitrate_bps > 10_000
    assert info.duration_s == pytest.approx(DURATIONS[name], abs=0.06)
    assert info.size_bytes == clip(name).stat().st_size
    if acodec is None:
        assert info.audio is None
    else:
        assert info.audio is not None
        assert info.audio.codec == acodec
        assert info.audio.channels == channels
        assert info.audio.sample_rate in (22050, 44100, 48000)
        assert info.audio.bitrate_bps and info.audio.bitrate_bps > 1000


@pytest.mark.parametrize("name", CLIPS)
def test_probe_with_bundled_ffmpeg_only(name: str) -> None:
    info = probe(clip(name), use_ffprobe=False)
    assert info.probed_with == "ffmpeg"
    _check(info, name)


@pytest.mark.parametrize("name", CLIPS)
def test_probe_with_ffprobe_agrees_with_ffmpeg(name: str) -> None:
    if ffmpeg.find_ffprobe() is None:
        pytest.skip("no ffprobe on PATH (CI installs Debian's ffmpeg for this test)")
    a = probe(clip(name), use_ffprobe=True)
    b = probe(clip(name), use_ffprobe=False)
    assert a.probed_with == "ffprobe"
    _check(a, name)
    # ffmpeg -i prints durations to 10 ms, rates to 2 decimals and bitrates in whole kb/s; Debian's
    # ffprobe (5.1) and the bundled ffmpeg (9) may also differ on edit lists by part of a frame.
    assert a.video and b.video
    assert a.duration_s == pytest.approx(b.duration_s, abs=1 / a.video.fps)
    assert a.container == b.container
    assert a.creation_time == b.creation_time
    assert a.video and b.video
    for field in ("codec", "width", "height", "rotation", "pix_fmt", "sample_aspect_ratio", "color_range"):
        assert getattr(a.video, field) == getattr(b.video, field), field
    assert a.video.fps == pytest.approx(b.video.fps, abs=0.01)
    assert _close_bitrate(a.video.bitrate_bps, b.video.bitrate_bps)
    assert (a.audio is None) == (b.audio is None)
    if a.audio and b.audio:
        for field in ("codec", "channels", "sample_rate", "profile"):
            assert getattr(a.audio, field) == getattr(b.audio, field), field
        assert _close_bitrate(a.audio.bitrate_bps, b.audio.bitrate_bps)


def _close_bitrate(x: int | None, y: int | None) -> bool:
    assert x is not None and y is not None
    return math.isclose(x, y, rel_tol=0.01) or abs(x - y) <= 1000


def test_portrait_phone_video_displays_portrait() -> None:
    info = probe(clip("phone-portrait-rotated.mp4"))
    assert info.video is not None
    assert (info.video.width, info.video.height) == (1280, 720)  # as stored
    assert (info.video.display_width, info.video.display_height) == (720, 1280)  # as shown


def test_full_range_mjpeg_is_reported_as_such() -> None:
    info = probe(clip("diver-mjpeg.mov"))
    assert info.video is not None
    assert info.video.pix_fmt == "yuvj422p"
    assert info.video.color_range == "pc"


def test_audio_before_video_is_found() -> None:
    info = probe(clip("motion-320p.mov"))
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.channels == 1


def test_paths_that_look_like_options_are_read_as_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    odd = tmp_path / "-i weird:name.mp4"
    odd.write_bytes(clip("motion-320p.mov").read_bytes())
    info = probe(odd, use_ffprobe=False)
    assert info.video is not None and info.video.codec == "h264"
