"""The planner as a pure function: constructed MediaInfo in, Plan out, no video, no clock."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hybrid.errors import PlanError
from hybrid.models import AudioStream, MediaInfo, Request, VideoStream
from hybrid.planner import AIM, mp4_overhead_bytes, plan, required_bpp, scaled_size


def media(
    *,
    width: int = 1920,
    height: int = 1080,
    rotation: int = 0,
    fps: float = 30.0,
    duration: float = 600.0,
    size: int = 500_000_000,
    vcodec: str = "h264",
    container: str = "mov,mp4,m4a,3gp,3g2,mj2",
    audio: AudioStream | None = None,
    no_audio: bool = False,
) -> MediaInfo:
    video = VideoStream(
        codec=vcodec,
        width=width,
        height=height,
        rotation=rotation,
        fps=fps,
        pix_fmt="yuv420p",
        bitrate_bps=int(size * 8 / duration * 0.9),
    )
    if audio is None and not no_audio:
        audio = AudioStream(codec="aac", channels=2, sample_rate=48000, bitrate_bps=160_000)
    return MediaInfo(
        path=Path("in.mp4"),
        size_bytes=size,
        duration_s=duration,
        container=container,
        video=video,
        audio=audio,
    )


def test_two_pass_budget_arithmetic() -> None:
    info = media()
    p = plan(info, Request(target_size_bytes=50_000_000))
    assert p.video.mode == "two-pass" and p.video.passes == 2 and p.video.encoder == "libx264"
    assert p.budget_bytes == int(50_000_000 * AIM)
    audio_bytes = p.audio.bitrate_bps * 600 / 8  # type: ignore[operator]
    video_bytes = p.video.bitrate_bps * 600 / 8  # type: ignore[operator]
    # Video gets exactly what remains of the budget after audio and the modelled overhead.
    assert video_bytes + audio_bytes + p.overhead_bytes == pytest.approx(p.budget_bytes, abs=200)
    assert p.predicted_size_bytes <= 50_000_000
    assert p.predicted_size_bytes >= 0.97 * 50_000_000


def test_overhead_grows_with_packets_not_with_size() -> None:
    short = mp4_overhead_bytes(10, 30, 48000)
    long = mp4_overhead_bytes(600, 30, 48000)
    assert long > 50 * short / 2  # roughly proportional to the packet count
    assert mp4_overhead_bytes(600, 60, 48000) > long  # more frames, more index
    assert mp4_overhead_bytes(600, 30, None) < long  # no audio packets
    # The same 10-minute video planned at two targets carries the same overhead.
    info = media()
    assert (
        plan(info, Request(target_size_bytes=40_000_000)).overhead_bytes
        == plan(info, Request(target_size_bytes=80_000_000)).overhead_bytes
    )


def test_audio_never_above_the_source() -> None:
    quiet = AudioStream(codec="aac", channels=2, sample_rate=48000, bitrate_bps=3_400)
    p = plan(media(audio=quiet), Request(target_size_bytes=100_000_000))
    assert p.audio.bitrate_bps == 3_400
    p = plan(media(), Request(target_size_bytes=400_000_000, audio_bitrate_bps=320_000))
    assert p.audio.bitrate_bps == 160_000


def test_audio_is_aac_stereo_at_most() -> None:
    surround = AudioStream(codec="ac3", channels=6, sample_rate=48000, bitrate_bps=448_000)
    p = plan(media(audio=surround), Request(target_size_bytes=100_000_000))
    assert p.audio.codec == "aac" and p.audio.channels == 2 and p.audio.bitrate_bps == 128_000


def test_audio_shrinks_when_the_budget_is_tight() -> None:
    roomy = plan(media(), Request(target_size_bytes=200_000_000))
    tight = plan(media(), Request(target_size_bytes=12_000_000))
    assert roomy.audio.bitrate_bps == 128_000
    assert tight.audio.bitrate_bps is not None and 32_000 <= tight.audio.bitrate_bps < 128_000
    assert any("audio reduced" in r for r in tight.reasons)


def test_no_audio_when_asked() -> None:
    p = plan(media(), Request(target_size_bytes=50_000_000, audio="remove"))
    assert p.audio.mode == "none" and p.audio.codec is None and p.audio.bitrate_bps is None
    with_audio = plan(media(), Request(target_size_bytes=50_000_000))
    assert p.video.bitrate_bps > with_audio.video.bitrate_bps  # type: ignore[operator]


def test_ladder_steps_down_until_the_bitrate_carries_the_picture() -> None:
    info = media()  # 10 minutes of 1080p30
    sizes = {}
    for mb in (400, 150, 75, 40, 25, 12):
        p = plan(info, Request(target_size_bytes=mb * 1_000_000))
        sizes[mb] = p.video.height
        bpp = p.video.bitrate_bps / (p.video.width * p.video.height * p.video.fps)  # type: ignore[operator]
        if p.video.height > 240:
            assert bpp >= required_bpp(p.video.height)
    assert sizes[400] == 1080
    assert list(sizes.values()) == sorted(sizes.values(), reverse=True)
    assert sizes[12] <= 360
    assert set(sizes.values()) <= {1080, 720, 540, 480, 360, 240}


def test_the_reason_names_the_bitrate() -> None:
    p = plan(media(duration=60, size=100_000_000), Request(target_size_bytes=9_500_000))
    assert p.video.height == 720
    assert any(
        r.startswith("downscaled to 720p:") and "too little for the source's 1080p" in r for r in p.reasons
    )


def test_fps_capped_at_30_before_the_picture_shrinks() -> None:
    info = media(fps=60.0, duration=60, size=200_000_000)
    generous = plan(info, Request(target_size_bytes=150_000_000))
    assert generous.video.fps == 60.0
    starved = plan(info, Request(target_size_bytes=12_000_000))
    assert starved.video.fps == 30.0 and starved.video.fps_changed
    assert any("30 fps" in r for r in starved.reasons)


def test_portrait_stays_portrait_and_even() -> None:
    info = media(width=1920, height=1080, rotation=90, duration=60, size=100_000_000)
    p = plan(info, Request(target_size_bytes=5_000_000))
    assert p.video.width < p.video.height
    assert p.video.width % 2 == 0 and p.video.height % 2 == 0
    assert p.video.width / p.video.height == pytest.approx(1080 / 1920, rel=0.01)


def test_720p_request_on_portrait_limits_the_short_side() -> None:
    info = media(width=1920, height=1080, rotation=270, duration=60, size=100_000_000)
    p = plan(info, Request(target_size_bytes=50_000_000, max_height=720))
    assert (p.video.width, p.video.height) == (720, 1280)


def test_never_upscales() -> None:
    info = media(width=640, height=360, duration=60, size=30_000_000)
    p = plan(info, Request(target_size_bytes=20_000_000, max_height=1080))
    assert (p.video.width, p.video.height) == (640, 360)
    assert scaled_size(640, 360, 2160) == (640, 360)


def test_odd_sizes_become_even_with_the_aspect_kept() -> None:
    assert scaled_size(720, 576, 540) == (676, 540)
    assert scaled_size(568, 320, 240) == (426, 240)


def test_source_that_already_fits_is_remuxed() -> None:
    info = media(duration=60, size=20_000_000)
    p = plan(info, Request(target_size_bytes=25_000_000))
    assert p.video.mode == "copy" and p.video.encoder == "copy" and p.video.passes == 0
    assert p.audio.mode == "copy"
    assert "already fits" in p.reasons[0]


def test_source_that_fits_but_is_not_h264_gets_a_capped_quality_encode() -> None:
    info = media(duration=60, size=20_000_000, vcodec="vp9", container="matroska,webm")
    p = plan(info, Request(target_size_bytes=25_000_000))
    assert p.video.mode == "crf" and p.video.crf == 23
    assert p.video.bitrate_bps is not None
    # The cap keeps even a worst-case encode inside the target.
    assert p.budget_bytes is not None and p.budget_bytes <= 25_000_000
    assert "not inflated" in p.reasons[0]


def test_remux_is_not_used_when_the_picture_must_change() -> None:
    info = media(duration=60, size=20_000_000)
    p = plan(info, Request(target_size_bytes=25_000_000, max_height=720))
    assert p.video.mode == "crf" and p.video.height == 720


def test_no_target_means_quality_capped_at_the_source_size() -> None:
    info = media(duration=60, size=20_000_000)
    p = plan(info, Request())
    assert p.video.mode == "crf"
    assert p.budget_bytes is not None and p.budget_bytes < 20_000_000
    assert p.predicted_size_bytes < 20_000_000


def test_impossible_target_is_refused_with_the_smallest_that_works() -> None:
    info = media()  # 10 minutes
    with pytest.raises(
        PlanError, match=r"100.0 kB is too small for 10m00s of video: the smallest that works is [\d.]+ MB"
    ):
        plan(info, Request(target_size_bytes=100_000))
    with pytest.raises(PlanError) as refused:
        plan(info, Request(target_size_bytes=100_000))
    named = float(str(refused.value).split("works is ")[1].split(" MB")[0]) * 1_000_000
    # The size the message names does work, at the bottom of the ladder.
    ok = plan(info, Request(target_size_bytes=int(named) + 10_000))
    assert ok.video.height == 240 and ok.video.mode == "two-pass"


def test_trims_shorten_the_budgeted_duration() -> None:
    info = media(duration=600, size=500_000_000)
    p = plan(info, Request(target_size_bytes=10_000_000, trim_start_s=10, trim_end_s=40))
    assert p.duration_s == 30
    assert (p.trim_start_s, p.trim_end_s) == (10, 40)
    last5 = plan(info, Request(target_size_bytes=10_000_000, trim_end_s=-5))
    assert last5.duration_s == 595


def test_trim_beyond_the_end_is_refused() -> None:
    with pytest.raises(PlanError, match="only 1m00s long"):
        plan(media(duration=60, size=10_000_000), Request(trim_start_s=90))


def test_plan_is_a_pure_function() -> None:
    info = media()
    request = Request(target_size_bytes=30_000_000)
    assert plan(info, request) == plan(info, request)
    assert plan(replace(info), replace(request)) == plan(info, request)
