"""The quality decision as a pure function: constructed searches in, plans out (no video, no clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybrid.intent import QUALITY_LEVELS, build_request, parse_instruction
from hybrid.models import AudioStream, MediaInfo, QualityProbe, QualitySearch, Request, VideoStream
from hybrid.planner import QUALITY_VMAF, plan, target_vmaf, vmaf_at_size
from hybrid.quality import predict_video_bytes, sample_layout


def media(duration: float = 60.0, size: int = 60_000_000) -> MediaInfo:
    video = VideoStream(
        codec="h264", width=1920, height=1080, rotation=0, fps=30.0, pix_fmt="yuv420p", bitrate_bps=7_000_000
    )
    audio = AudioStream(codec="aac", channels=2, sample_rate=48000, bitrate_bps=128_000)
    return MediaInfo(
        path=Path("in.mp4"),
        size_bytes=size,
        duration_s=duration,
        container="mov,mp4",
        video=video,
        audio=audio,
    )


def search(*probes: QualityProbe, crf: int | None, target: float = 95.0) -> QualitySearch:
    return QualitySearch(
        target_vmaf=target,
        width=1920,
        height=1080,
        crf=crf,
        probes=probes,
        samples=3,
        sample_s=3.0,
        whole_input=False,
        elapsed_s=4.0,
        time_cap_s=10.0,
        capped=False,
        encode_estimate_s=40.0,
    )


P = QualityProbe


def test_one_table_of_levels_shared_by_the_cli_and_the_instruction_parser() -> None:
    assert set(QUALITY_VMAF) == set(QUALITY_LEVELS)
    assert QUALITY_VMAF["visually-lossless"] == 95 and QUALITY_VMAF["high"] == 93
    intent = parse_instruction("under 50MB without losing quality")
    request = build_request(None, intent)
    assert target_vmaf(request) == 95.0
    assert target_vmaf(build_request({"min_vmaf": 91.5}, intent)) == 91.5  # the number wins
    assert target_vmaf(Request(quality="high", crf=20)) is None  # an explicit CRF is not a quality ask
    assert target_vmaf(Request()) is None


def test_quality_that_fits_the_target_is_one_crf_pass_with_a_vbv_cap_under_the_target() -> None:
    info = media()
    request = Request(target_size_bytes=50_000_000, quality="visually-lossless")
    found = search(P(24, 1920, 1080, 20_000_000, 95.4), P(26, 1920, 1080, 16_000_000, 94.1), crf=24)
    p = plan(info, request, quality=found)
    assert p.video.mode == "crf" and p.video.crf == 24 and p.video.passes == 1
    assert (p.video.width, p.video.height) == (1920, 1080)
    # VBV bound: cap * duration + buffer, plus audio and container, stays under the target.
    assert p.video.bitrate_bps is not None and p.video.vbv_buffer_bits is not None
    video_max = (p.video.bitrate_bps * p.duration_s + p.video.vbv_buffer_bits) / 8
    audio = (p.audio.bitrate_bps or 0) * p.duration_s / 8
    assert video_max + audio + p.overhead_bytes <= 50_000_000
    assert p.quality is not None and p.quality.outcome == "crf"
    assert p.quality.expected_vmaf == pytest.approx(95.4)
    assert p.predicted_size_bytes < 22_000_000
    assert "CRF 24" in p.reasons[0]


def test_quality_that_does_not_fit_is_two_pass_at_the_target_with_what_it_would_need() -> None:
    info = media()
    request = Request(target_size_bytes=20_000_000, quality="visually-lossless")  # 1080p on the ladder
    found = search(
        P(22, 1920, 1080, 30_000_000, 95.6),
        P(23, 1920, 1080, 27_000_000, 94.8),
        P(30, 1920, 1080, 9_000_000, 88.0),
        P(34, 1920, 1080, 6_000_000, 84.0),
        crf=22,
    )
    p = plan(info, request, quality=found)
    assert p.video.mode == "two-pass"
    assert p.quality is not None and p.quality.outcome == "two-pass"
    assert (p.video.width, p.video.height) == (1920, 1080)
    assert p.quality.expected_vmaf is not None and 88 < p.quality.expected_vmaf < 95
    assert p.quality.needed_size_bytes is not None and p.quality.needed_size_bytes > 30_000_000
    text = " ".join(p.reasons)
    assert "below the 95 asked: allow" in text and "for visually-lossless" in text
    assert p.quality.shortfall is not None and "below the 95 asked: allow" in p.quality.shortfall


def test_at_a_tight_target_the_picture_size_that_scores_better_wins() -> None:
    info = media()
    request = Request(target_size_bytes=10_000_000, quality="high")
    full = [P(22, 1920, 1080, 30_000_000, 95.6), P(30, 1920, 1080, 9_000_000, 85.0)]
    full.append(P(34, 1920, 1080, 6_000_000, 80.0))
    smaller = [P(24, 1280, 720, 11_000_000, 90.0), P(27, 1280, 720, 8_000_000, 88.0)]
    p = plan(info, request, quality=search(*full, *smaller, crf=None, target=93))
    assert (p.video.width, p.video.height) == (1280, 720)
    assert any("picture size chosen by quality" in r for r in p.reasons)
    # and the other way round: when the full picture scores better, it stays
    worse = [P(24, 1280, 720, 11_000_000, 82.0), P(27, 1280, 720, 8_000_000, 80.0)]
    p = plan(info, request, quality=search(*full, *worse, crf=None, target=93))
    assert (p.video.width, p.video.height) == (1920, 1080)


def test_without_a_search_the_plan_still_names_the_quality_target() -> None:
    p = plan(media(), Request(target_size_bytes=50_000_000, quality="high"))
    assert p.quality is not None and p.quality.target_vmaf == 93 and p.quality.outcome == "not-searched"


def test_vmaf_at_size_interpolates_on_log_size_and_never_invents_quality() -> None:
    probes = [P(20, 1, 1, 1000, 96.0), P(26, 1, 1, 500, 90.0)]
    assert vmaf_at_size(probes, 1000) == pytest.approx(96.0)
    assert vmaf_at_size(probes, 707) == pytest.approx(93.0, abs=0.1)  # halfway in log size
    assert vmaf_at_size(probes, 10_000) is not None and vmaf_at_size(probes, 10_000) <= 98.0  # type: ignore[operator]
    assert vmaf_at_size([P(20, 1, 1, 1000, 96.0)], 2000) == 96.0
    assert vmaf_at_size([P(20, 1, 1, 1000, 96.0)], 500) == pytest.approx(96.0 - 7.0 * 0.693, abs=0.01)
    assert vmaf_at_size([], 500) is None


def test_samples_are_spread_and_short_inputs_are_used_whole() -> None:
    assert sample_layout(0.0, 2.0) == ((0.0,), 2.0, True)
    starts, length, whole = sample_layout(0.0, 600.0)
    assert not whole and len(starts) == 8 and 0.5 <= length <= 4.0
    assert starts[0] > 0 and starts[-1] + length < 600 and list(starts) == sorted(starts)
    starts, length, whole = sample_layout(10.0, 60.0)  # a trimmed input: samples inside the trim
    assert not whole and starts[0] >= 10.0 and starts[-1] + length <= 70.0


def test_size_prediction_discounts_the_keyframe_each_sample_starts_with() -> None:
    # two samples of 30 frames: a 10 kB forced keyframe then 29 frames of 1 kB each
    packets = ([(10_000, True)] + [(1_000, False)] * 29) * 2
    predicted = predict_video_bytes(packets, forced_keys=2, output_frames=300)
    assert predicted == 10_000 * 2 + 1_000 * 298  # keyframes at the encoder's own rate (every 250)
    assert predict_video_bytes(packets, forced_keys=2, output_frames=60) == sum(s for s, _ in packets)
