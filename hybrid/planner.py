"""Request + MediaInfo -> Plan: a pure function, no I/O.

How a target size becomes an encode:

1. The target is the hard ceiling. The encode aims a little under it (``AIM``) so that x264's
   two-pass rate control, which lands within about ±1.5 %, stays below; the executor measures and
   corrects the rare overshoot.
2. Container overhead is modelled, not guessed as a percentage: an MP4's index grows with the
   number of packets (sample sizes, chunk offsets, composition offsets), so the overhead is a fixed
   part plus bytes per video frame and per audio frame.
3. Audio gets what it needs, never more than the source had, and shrinks when the budget is tight.
   The executor encodes audio first and gives the video exactly what the audio left.
4. The video bitrate is the rest. A bits-per-pixel ladder picks the largest picture that bitrate can
   carry (stepping down 2160/1440/1080/720/540/480/360/240), capping the frame rate at 30 first when
   starved. Aspect ratio and orientation are kept, sizes are even, nothing is upscaled.
"""

from __future__ import annotations

import math
from dataclasses import replace

from .errors import PlanError
from .models import (
    AudioPlan,
    Codec,
    MediaInfo,
    Plan,
    QualityPlan,
    QualityProbe,
    QualitySearch,
    Request,
    VideoMode,
    VideoPlan,
)
from .units import format_bitrate, format_duration, format_size

AIM = 0.985  # fraction of the target the encode aims at
LADDER = (2160, 1440, 1080, 720, 540, 480, 360, 240)
STARVED_FPS_CAP = 30.0

ENCODERS: dict[Codec, str] = {"h264": "libx264", "hevc": "libx265", "av1": "libsvtav1"}
DEFAULT_CRF: dict[Codec, int] = {"h264": 23, "hevc": 28, "av1": 35}
# CRF per quality level the user can name ("visually lossless", "best quality"...), per codec. The
# levels are offsets from each codec's default, as the codecs' CRF scales differ: x264 CRF 18 is the
# usual "visually lossless" point, x265 and SVT-AV1 need higher numbers for the same picture.
QUALITY_CRF: dict[str, dict[Codec, int]] = {
    "visually-lossless": {"h264": 18, "hevc": 22, "av1": 26},
    "high": {"h264": 20, "hevc": 24, "av1": 30},
    "balanced": {"h264": 23, "hevc": 28, "av1": 35},
    "small": {"h264": 28, "hevc": 32, "av1": 42},
}
# The quality levels, as VMAF scores (0-100, model vmaf_v0.6.1, measured against the source at its
# own picture size and frame rate). This is the one table: the CLI's --quality and the instruction
# parser's quality words both name these levels. 95 is where encodes stop being told apart from the
# source in side-by-side viewing (ab-av1's default); 93 keeps fine detail; 90 is "good" streaming
# quality with softening visible on a close look; 80 shows artefacts but is still watchable. When the
# size target is too small for the level, the output is the best the target allows, with a warning.
QUALITY_VMAF: dict[str, float] = {
    "visually-lossless": 95.0,
    "high": 93.0,
    "balanced": 90.0,
    "small": 80.0,
}
# A quality CRF encode is chosen only when the samples predict it at most this share of the budget:
# the prediction is an estimate, and a two-pass at the target gives the same quality near the edge.
CRF_FIT_MARGIN = 0.92
# VMAF lost per halving of the size is about 5 (0.8 per CRF step, 11 % of size per step): the slope
# assumed when a picture size has a single measurement.
VMAF_PER_LOG_SIZE = 7.0
# The VBV buffer of a quality CRF encode, in seconds of its cap (at most a quarter of the video).
VBV_BUFFER_S = 2.0

# How much less bitrate a codec needs than H.264 for the same picture.
CODEC_EFFICIENCY: dict[Codec, float] = {"h264": 1.0, "hevc": 0.65, "av1": 0.55}

# Bits per pixel per frame that H.264 needs for an acceptable picture at 1080p. Larger pictures need
# fewer bits per pixel, smaller ones more (the 4th root). Set from VMAF measured after scaling back
# (benchmarks/results/matrix.md): at 0.032 (1080p30 ~2 Mb/s) hybrid downscaled easy phone footage that
# keeps VMAF ~96 at its own size to 240p (VMAF 58), so the ladder now steps down only below ~1.4 Mb/s at
# 1080p30, ~0.7 Mb/s at 720p30, ~0.2 Mb/s at 360p30. It cannot see content: a VMAF search
# (--quality) picks the picture by measured quality instead.
BPP_1080 = 0.022
# Below this fraction of the required bits per pixel, even the smallest picture is not worth making.
BPP_FLOOR_FRACTION = 0.4
# Bits per pixel a default-CRF encode typically spends (for predicting a CRF encode's size).
BPP_CRF_1080 = 0.07

AUDIO_DEFAULT_BPS_PER_CHANNEL = 64_000
AUDIO_FLOOR_BPS_PER_CHANNEL = 16_000
AUDIO_MAX_SHARE = 0.12  # of the total bitrate, when the budget is tight
AAC_SAMPLE_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)

# MP4 overhead model (bytes), fitted on this project's encodes of the shared clips: a moov with
# ~1 kB of fixed boxes, then per packet a sample size, a share of chunk offsets and composition
# offsets. Measured 11-17 B per video packet and 10-20 B per audio packet; the model takes the top.
MP4_FIXED_BYTES = 1536
MP4_BYTES_PER_VIDEO_PACKET = 17
MP4_BYTES_PER_AUDIO_PACKET = 20
AAC_SAMPLES_PER_PACKET = 1024


def required_bpp(short_side: int, codec: Codec = "h264") -> float:
    """Bits per pixel per frame a picture with this short side needs to look acceptable."""
    return float(BPP_1080 * (1080 / max(short_side, 1)) ** 0.25 * CODEC_EFFICIENCY[codec])


def mp4_overhead_bytes(duration_s: float, fps: float, audio_sample_rate: int | None) -> int:
    video_packets = math.ceil(duration_s * fps)
    audio_packets = (
        math.ceil(duration_s * audio_sample_rate / AAC_SAMPLES_PER_PACKET) if audio_sample_rate else 0
    )
    return (
        MP4_FIXED_BYTES
        + MP4_BYTES_PER_VIDEO_PACKET * video_packets
        + MP4_BYTES_PER_AUDIO_PACKET * audio_packets
    )


def scaled_size(display_w: int, display_h: int, short_side: int) -> tuple[int, int]:
    """The picture scaled so its short side is ``short_side``, aspect kept, both sides even."""
    src_short = min(display_w, display_h)
    factor = min(1.0, short_side / src_short)
    w, h = display_w * factor, display_h * factor
    return max(2, round(w / 2) * 2), max(2, round(h / 2) * 2)


def _resolve_trim(info: MediaInfo, request: Request) -> tuple[float, float]:
    start = request.trim_start_s or 0.0
    if start < 0:  # "the last 30 seconds" is stored as a negative start
        start = max(0.0, info.duration_s + start)
    end = request.trim_end_s if request.trim_end_s is not None else info.duration_s
    if end < 0:  # "cut the last 5 s" is stored as a negative end
        end = info.duration_s + end
    end = min(end, info.duration_s)
    if start < 0 or start >= info.duration_s:
        raise PlanError(
            f"the trim starts at {format_duration(start)} but the video is only "
            f"{format_duration(info.duration_s)} long"
        )
    if end - start < 0.1:
        raise PlanError(f"the trim leaves nothing: {format_duration(start)} to {format_duration(end)}")
    return start, end


def _audio_plan(info: MediaInfo, request: Request) -> AudioPlan:
    if request.audio == "remove" or info.audio is None:
        return AudioPlan(codec=None, mode="none", bitrate_bps=None, channels=None, sample_rate=None)
    channels = min(max(info.audio.channels, 1), 2)
    rate = next((r for r in AAC_SAMPLE_RATES if r <= min(info.audio.sample_rate or 48000, 48000)), 48000)
    bitrate = request.audio_bitrate_bps or AUDIO_DEFAULT_BPS_PER_CHANNEL * channels
    if info.audio.bitrate_bps:
        bitrate = min(bitrate, info.audio.bitrate_bps)
    return AudioPlan(codec="aac", mode="encode", bitrate_bps=bitrate, channels=channels, sample_rate=rate)


def _can_remux(
    info: MediaInfo, request: Request, audio: AudioPlan, out_w: int, out_h: int, out_fps: float
) -> bool:
    v = info.video
    assert v is not None
    return (
        request.codec == "h264"
        and v.codec == "h264"
        and v.pix_fmt in ("yuv420p", "yuvj420p")
        and info.is_mp4_family
        and (info.audio is None or audio.mode == "none" or info.audio.codec == "aac")
        and (out_w, out_h) == (v.display_width, v.display_height)
        and math.isclose(out_fps, v.fps)
        and not request.trim_start_s
        and request.trim_end_s is None
        and request.crf is None
        and request.quality is None
    )


def target_vmaf(request: Request) -> float | None:
    """The VMAF the request asks for: ``min_vmaf``, else its quality level's, else None.

    An explicit CRF is a request for that CRF, not for a quality: no VMAF target then.
    """
    if request.crf is not None:
        return None
    if request.min_vmaf is not None:
        return float(request.min_vmaf)
    return QUALITY_VMAF.get(request.quality or "")


def requested_picture(info: MediaInfo, request: Request) -> tuple[int, int, float]:
    """Width, height and frame rate the request allows at most (the source's, unless limited).

    The quality search measures against the source at this size and rate: a user who asked for 720p
    wants "lossless" relative to a 720p picture, not to the 1080p source.
    """
    v = info.video
    if v is None:
        raise PlanError(f"{info.path} has no video stream")
    dw, dh = v.display_width, v.display_height
    short_limit = min(dw, dh)
    if request.max_height and request.max_height < short_limit:
        short_limit = request.max_height
    if request.max_width and request.max_width < max(dw, dh) * short_limit / min(dw, dh):
        short_limit = math.floor(request.max_width * min(dw, dh) / max(dw, dh))
    fps = request.fps if request.fps and request.fps < v.fps else v.fps
    w, h = scaled_size(dw, dh, short_limit)
    return w, h, fps


def plan(
    info: MediaInfo,
    request: Request,
    *,
    two_pass_at: int | None = None,
    quality: QualitySearch | None = None,
) -> Plan:
    """Work out how to turn ``info`` into what ``request`` asks. Raises PlanError when it can't.

    ``two_pass_at`` forces a two-pass encode at that size: the executor's fallback when a copy or a
    capped quality encode came out over its cap. ``quality`` is what the sample search measured
    (:mod:`hybrid.quality`) for a request with a VMAF target; without it such a request gets the
    level's usual CRF and a plan that says the quality was not searched.
    """
    base = _plan(info, request, two_pass_at)
    wanted = target_vmaf(request)
    if wanted is None:
        return base
    if quality is None:
        note = f"quality target VMAF {wanted:g}: not searched, using the level's usual CRF"
        return replace(
            base,
            reasons=(*base.reasons, note),
            quality=QualityPlan(
                target_vmaf=wanted,
                level=request.quality if request.min_vmaf is None else None,
                outcome="not-searched",
                crf=None,
                expected_vmaf=None,
                needed_size_bytes=None,
                search=None,
            ),
        )
    return decide_quality(info, request, base, quality, two_pass_at=two_pass_at)


def _plan(info: MediaInfo, request: Request, two_pass_at: int | None) -> Plan:
    v = info.video
    if v is None:  # probe refuses such inputs; a hand-built MediaInfo may not
        raise PlanError(f"{info.path} has no video stream")
    reasons: list[str] = []
    codec = request.codec
    start, end = _resolve_trim(info, request)
    duration = end - start
    trimmed = start > 0 or end < info.duration_s
    if trimmed:
        reasons.append(f"trimmed to {format_duration(start)}-{format_duration(end)}")

    # Frame rate: never raised; capped when asked.
    fps = v.fps
    if request.fps and request.fps < fps:
        fps = request.fps
        reasons.append(f"frame rate capped at {fps:g} fps as asked")

    # Picture: the short side is what "720p" means, whatever the orientation.
    dw, dh = v.display_width, v.display_height
    short_limit = min(dw, dh)
    if request.max_height and request.max_height < short_limit:
        short_limit = request.max_height
        reasons.append(f"limited to {request.max_height}p as asked")
    if request.max_width and request.max_width < max(dw, dh) * short_limit / min(dw, dh):
        short_limit = math.floor(request.max_width * min(dw, dh) / max(dw, dh))
        reasons.append(f"limited to {request.max_width} pixels wide as asked")

    audio = _audio_plan(info, request)
    if request.audio == "remove" and info.audio is not None:
        reasons.append("audio removed as asked")
    elif info.audio is None:
        reasons.append("the source has no audio")

    overhead = mp4_overhead_bytes(duration, fps, audio.sample_rate)
    # Share of the source this stretch of it accounts for: what "the source needs" for this output.
    source_share_bytes = round(info.size_bytes * duration / info.duration_s)
    target = request.target_size_bytes if two_pass_at is None else two_pass_at
    min_size = _min_size_bytes(duration, fps, dw, dh, audio, codec)

    if target is not None and target < min_size:
        raise PlanError(
            f"{format_size(target)} is too small for {format_duration(duration)} of video: "
            f"the smallest that works is {format_size(min_size)}"
            + ("" if audio.mode == "none" else " (or remove the audio)")
        )

    level_crf = QUALITY_CRF.get(request.quality or "", DEFAULT_CRF)
    crf = request.crf if request.crf is not None else level_crf[codec]
    w, h = scaled_size(dw, dh, short_limit)

    def finish(video: VideoPlan, out_audio: AudioPlan, budget: int, predicted: int) -> Plan:
        return Plan(
            input=info,
            request=request,
            video=video,
            audio=out_audio,
            duration_s=duration,
            trim_start_s=start if trimmed else None,
            trim_end_s=end if trimmed else None,
            budget_bytes=budget,
            overhead_bytes=overhead,
            predicted_size_bytes=predicted,
            min_size_bytes=min_size,
            reasons=tuple(reasons),
        )

    def encoded(mode: VideoMode, w: int, h: int, fps: float, bitrate_bps: int, crf: int | None) -> VideoPlan:
        return VideoPlan(
            encoder=ENCODERS[codec],
            codec=codec,
            mode=mode,
            width=w,
            height=h,
            fps=fps,
            fps_changed=not math.isclose(fps, v.fps),
            bitrate_bps=bitrate_bps,
            crf=crf,
            preset=request.preset,
            passes=2 if mode == "two-pass" else 1,
        )

    if two_pass_at is None and (target is None or target >= source_share_bytes):
        # Nothing to squeeze: keep the picture, let quality (CRF) decide, and cap by the target, or by
        # the source's own size so "compress" never makes a file larger.
        cap = target if target is not None else source_share_bytes
        if target is not None and _can_remux(info, request, audio, w, h, fps) and info.size_bytes <= cap:
            reasons.insert(
                0,
                f"the source already fits ({format_size(info.size_bytes)}) and is "
                "H.264/AAC: copying the streams into a new MP4, no re-encode",
            )
            video = VideoPlan(
                encoder="copy",
                codec="h264",
                mode="copy",
                width=dw,
                height=dh,
                fps=v.fps,
                fps_changed=False,
                bitrate_bps=v.bitrate_bps,
                crf=None,
                preset=request.preset,
                passes=0,
            )
            copied_audio = (
                audio
                if audio.mode == "none"
                else replace(
                    audio,
                    mode="copy",
                    bitrate_bps=info.audio.bitrate_bps if info.audio else None,
                    channels=info.audio.channels if info.audio else None,
                    sample_rate=info.audio.sample_rate if info.audio else None,
                )
            )
            return finish(video, copied_audio, cap, min(info.size_bytes, cap))
        budget = math.floor(cap * AIM)
        audio_bytes = _audio_bytes(audio, duration)
        cap_bps = max(1, math.floor((budget - overhead - audio_bytes) * 8 / duration))
        if target is None:
            reasons.insert(
                0,
                f"no target: quality-based encode (CRF {crf}), capped at the source's size "
                f"({format_size(cap)}) so it never grows",
            )
        else:
            reasons.insert(
                0,
                f"the target ({format_size(target)}) is more than this video needs "
                f"({format_size(source_share_bytes)}): quality-based encode (CRF {crf}) "
                "capped by the target, so the file is not inflated",
            )
        crf_estimate = round(
            w * h * fps * BPP_CRF_1080 * (1080 / min(w, h)) ** 0.25 * CODEC_EFFICIENCY[codec] * duration / 8
        )
        predicted = min(budget, crf_estimate + audio_bytes + overhead)
        return finish(encoded("crf", w, h, fps, cap_bps, crf), audio, budget, predicted)

    # Two-pass at the target.
    assert target is not None
    budget = math.floor(target * AIM)
    total_bps = (budget - overhead) * 8 / duration
    if audio.mode == "encode" and audio.bitrate_bps:
        share = max(AUDIO_FLOOR_BPS_PER_CHANNEL * (audio.channels or 2), AUDIO_MAX_SHARE * total_bps)
        if audio.bitrate_bps > share:
            tight = max(AUDIO_FLOOR_BPS_PER_CHANNEL * (audio.channels or 2), int(share // 1000) * 1000)
            reasons.append(f"audio reduced to {format_bitrate(tight)}: the budget is tight")
            audio = replace(audio, bitrate_bps=tight)
    audio_bytes = _audio_bytes(audio, duration)
    video_bps = math.floor((budget - overhead - audio_bytes) * 8 / duration)

    w, h, fps = _fit_picture(dw, dh, short_limit, fps, video_bps, codec, reasons)
    reasons.insert(
        0,
        f"two-pass {codec.upper() if codec != 'h264' else 'H.264'} at "
        f"{format_bitrate(video_bps)} to land just under {format_size(target)}",
    )
    predicted = overhead + audio_bytes + math.floor(video_bps * duration / 8)
    return finish(encoded("two-pass", w, h, fps, video_bps, None), audio, budget, predicted)


def _audio_bytes(audio: AudioPlan, duration_s: float) -> int:
    return math.ceil((audio.bitrate_bps or 0) * duration_s / 8) if audio.mode == "encode" else 0


def _fit_picture(
    dw: int, dh: int, short_limit: int, fps: float, video_bps: float, codec: Codec, reasons: list[str]
) -> tuple[int, int, float]:
    """Largest rung of the ladder the bitrate carries; fps capped at 30 first when starved."""
    candidates = [short_limit] + [r for r in LADDER if r < short_limit]
    for short in candidates:
        w, h = scaled_size(dw, dh, short)
        if video_bps / (w * h * fps) >= required_bpp(short, codec):
            break
        if fps > STARVED_FPS_CAP + 0.5:
            fps = STARVED_FPS_CAP
            reasons.append(
                f"frame rate capped at {STARVED_FPS_CAP:g} fps: "
                f"{format_bitrate(video_bps)} is too little for more"
            )
            if video_bps / (w * h * fps) >= required_bpp(short, codec):
                break
    if short < short_limit:
        label = _label(min(dw, dh), short_limit)
        reasons.append(f"downscaled to {short}p: {format_bitrate(video_bps)} is too little for {label}")
    return w, h, fps


def _label(src_short: int, short_limit: int) -> str:
    return f"{short_limit}p" if short_limit < src_short else f"the source's {src_short}p"


def _min_size_bytes(duration_s: float, fps: float, dw: int, dh: int, audio: AudioPlan, codec: Codec) -> int:
    """The smallest target this input can honestly be squeezed into."""
    short = min(LADDER[-1], min(dw, dh))
    w, h = scaled_size(dw, dh, short)
    min_fps = min(fps, STARVED_FPS_CAP)
    video_bps = w * h * min_fps * required_bpp(short, codec) * BPP_FLOOR_FRACTION
    audio_bps = AUDIO_FLOOR_BPS_PER_CHANNEL * (audio.channels or 0) if audio.mode != "none" else 0
    if audio.mode != "none" and audio.bitrate_bps:
        audio_bps = min(audio_bps, audio.bitrate_bps)
    overhead = mp4_overhead_bytes(duration_s, min_fps, audio.sample_rate)
    return math.ceil((video_bps + audio_bps) * duration_s / 8 / AIM + overhead / AIM)


# -- quality decision (pure: the search's measurements in, a plan out) --------------------------------


def vmaf_at_size(probes: tuple[QualityProbe, ...] | list[QualityProbe], video_bytes: float) -> float | None:
    """VMAF the probes (one picture size) predict for an output of ``video_bytes``.

    VMAF is close to linear in the logarithm of the size over a few CRF steps: interpolate between
    the two probes around the size, or extend the line through the nearest two outside them. None
    with no probes; with one, its score above it and the usual slope below it.
    """
    points = sorted({(p.video_bytes, p.vmaf) for p in probes if p.video_bytes > 0})
    if not points or video_bytes <= 0:
        return None
    x = math.log(video_bytes)
    if len(points) == 1:
        size, score = points[0]
        if video_bytes >= size:
            return score  # more bytes never score lower; never promise more either
        return max(0.0, score - VMAF_PER_LOG_SIZE * math.log(size / video_bytes))
    logs = [(math.log(b), q) for b, q in points]
    if x <= logs[0][0]:
        (x0, y0), (x1, y1) = logs[0], logs[1]
    elif x >= logs[-1][0]:
        (x0, y0), (x1, y1) = logs[-2], logs[-1]
    else:
        i = next(i for i in range(1, len(logs)) if logs[i][0] >= x)
        (x0, y0), (x1, y1) = logs[i - 1], logs[i]
    if x1 == x0:
        return max(y0, y1)
    value = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if x > logs[-1][0]:  # above the largest probe: never promise more than a small gain
        value = min(value, logs[-1][1] + 2.0)
    return max(0.0, min(100.0, value))


def _quality_cap(budget_bytes: int, overhead: int, audio_bytes: int, duration_s: float) -> tuple[int, int]:
    """VBV cap and buffer (bits/s, bits) that keep a CRF encode under ``budget_bytes``.

    x264's VBV bounds a stream of D seconds by maxrate * D + bufsize, so both are sized from what the
    video may use: with a buffer of B seconds, maxrate = video bits / (D + B).
    """
    buffer_s = min(VBV_BUFFER_S, duration_s / 4)
    video_bits = max(8000, (budget_bytes - overhead - audio_bytes) * 8)
    cap_bps = max(1000, math.floor(video_bits / (duration_s + buffer_s)))
    return cap_bps, math.floor(cap_bps * buffer_s)


def decide_quality(
    info: MediaInfo, request: Request, base: Plan, search: QualitySearch, *, two_pass_at: int | None = None
) -> Plan:
    """The plan for a VMAF target, from the plan without one (``base``) and the search's results.

    The quality CRF encode when its predicted size fits the budget (with a VBV cap so that the size
    guarantee holds whatever the prediction's error); otherwise the two-pass at the target, at the
    picture size the samples say looks best at that size, with the VMAF to expect.
    """
    wanted = search.target_vmaf
    level = request.quality if request.min_vmaf is None else None
    label = f"{level} (VMAF {wanted:g})" if level else f"VMAF {wanted:g}"
    target = two_pass_at if two_pass_at is not None else request.target_size_bytes
    forced_two_pass = two_pass_at is not None
    duration = base.duration_s
    full_audio = _audio_plan(info, request)
    audio_bytes = _audio_bytes(full_audio, duration)
    _, _, fps = requested_picture(info, request)
    overhead = mp4_overhead_bytes(duration, fps, full_audio.sample_rate)

    at_size = [p for p in search.probes if (p.width, p.height) == (search.width, search.height)]
    found = next((p for p in at_size if p.crf == search.crf), None) if search.crf is not None else None
    needed = None
    if found is not None:
        needed = math.ceil((found.video_bytes + audio_bytes + overhead) / AIM / CRF_FIT_MARGIN)
    searched = (
        f"{len(search.probes)} sample encodes"
        + (" of the whole input" if search.whole_input else f" of {search.samples} samples")
        + f", {search.elapsed_s:.1f} s"
        + (" (stopped at its time cap)" if search.capped else "")
    )

    # Without a target the cap is the source's own size, as for any CRF encode: never grow a file.
    cap = target if target is not None else round(info.size_bytes * duration / info.duration_s)
    budget = math.floor(cap * AIM)
    fits = found is not None and (
        target is None or found.video_bytes + audio_bytes + overhead <= budget * CRF_FIT_MARGIN
    )
    if fits and not forced_two_pass and base.video.mode != "copy":
        assert found is not None
        cap_bps, buffer_bits = _quality_cap(budget, overhead, audio_bytes, duration)
        predicted = min(budget, found.video_bytes + audio_bytes + overhead)
        reason = (
            f"quality {label}: the samples reach VMAF ~{found.vmaf:.1f} at CRF {found.crf}, "
            f"about {format_size(predicted)}: one CRF pass"
            + (f", capped at {format_bitrate(cap_bps)} to stay under {format_size(cap)}" if target else "")
            + f" ({searched})"
        )
        video = VideoPlan(
            encoder=ENCODERS[request.codec],
            codec=request.codec,
            mode="crf",
            width=search.width,
            height=search.height,
            fps=fps,
            fps_changed=info.video is not None and not math.isclose(fps, info.video.fps),
            bitrate_bps=cap_bps,
            crf=found.crf,
            preset=request.preset,
            passes=1,
            vbv_buffer_bits=buffer_bits,
        )
        kept = tuple(r for r in base.reasons if not r.startswith(("two-pass", "the target", "no target")))
        kept = tuple(
            r
            for r in kept
            if not r.startswith(("downscaled", "audio reduced", "frame rate capped at 30 fps:"))
        )
        return replace(
            base,
            video=video,
            audio=full_audio,
            budget_bytes=budget,
            overhead_bytes=overhead,
            predicted_size_bytes=predicted,
            reasons=(reason, *kept),
            quality=QualityPlan(
                target_vmaf=wanted,
                level=level,
                outcome="crf",
                crf=found.crf,
                expected_vmaf=round(found.vmaf, 2),
                needed_size_bytes=needed,
                search=search,
            ),
        )

    if base.video.mode != "two-pass" or target is None:
        # The quality cannot be reached (no CRF in range reached it) and there is no size to aim at:
        # the best CRF the search tried, under the same cap as any CRF encode.
        best = min(at_size, key=lambda p: p.crf, default=None)
        if best is None or base.video.mode == "copy":
            return replace(
                base,
                quality=QualityPlan(wanted, level, "not-searched", None, None, None, search),
            )
        reason = (
            f"quality {label}: not reached by the samples even at CRF {best.crf} "
            f"(VMAF ~{best.vmaf:.1f}): encoding at CRF {best.crf} ({searched})"
        )
        video = replace(base.video, crf=best.crf, width=search.width, height=search.height)
        return replace(
            base,
            video=video,
            reasons=(reason, *base.reasons),
            quality=QualityPlan(wanted, level, "crf", best.crf, round(best.vmaf, 2), needed, search),
        )

    # Two-pass at the target: the picture size the samples score best at this many bytes.
    video_bytes = (base.video.bitrate_bps or 0) * duration / 8
    by_picture: dict[tuple[int, int], list[QualityProbe]] = {}
    for p in search.probes:
        by_picture.setdefault((p.width, p.height), []).append(p)
    scores = {
        size: score
        for size, probes in by_picture.items()
        if (score := vmaf_at_size(probes, video_bytes)) is not None
    }
    reasons = list(base.reasons)
    video = base.video
    ladder = (base.video.width, base.video.height)
    if ladder in scores:  # switch away from the ladder's choice only on measured evidence
        best_size = max(scores, key=lambda size: (scores[size], size == ladder))
        if best_size != ladder and ladder in scores:
            reasons = [r for r in reasons if not r.startswith("downscaled")]
        if len(scores) > 1:
            ranked = ", ".join(
                f"{min(s)}p ~{scores[s]:.1f}" for s in sorted(scores, key=lambda s: -scores[s])
            )
            reasons.append(
                f"picture size chosen by quality at {format_bitrate(base.video.bitrate_bps or 0)}: "
                f"VMAF {ranked} (samples, scaled back to {min(search.width, search.height)}p)"
            )
        video = replace(video, width=best_size[0], height=best_size[1])
        expected: float | None = round(scores[best_size], 2)
    else:
        expected = None
    if expected is not None and expected >= wanted:
        verdict = f"quality {label}: VMAF ~{expected:.1f} expected at the target"
    elif expected is not None:
        # Whole points read better ("~89"), unless rounding would hide the shortfall ("~95, below 95").
        shown = f"{expected:.0f}" if round(expected) < wanted else f"{expected:.1f}"
        verdict = f"VMAF ~{shown} expected, below the {wanted:g} asked"
    else:
        verdict = f"quality {label}: the search could not estimate the VMAF at this size"
    if needed is not None and (expected is None or expected < wanted):
        verdict += f": allow {format_size(needed)} for {level or f'VMAF {wanted:g}'}"
    elif found is None and (expected is None or expected < wanted):
        verdict += " (no CRF the search tried reached it)"
    reasons.insert(1, f"{verdict} ({searched})")
    return replace(
        base,
        video=video,
        reasons=tuple(reasons),
        quality=QualityPlan(
            target_vmaf=wanted,
            level=level,
            outcome="two-pass",
            crf=search.crf,
            expected_vmaf=expected,
            needed_size_bytes=needed,
            search=search,
            shortfall=verdict if expected is None or expected < wanted else None,
        ),
    )
