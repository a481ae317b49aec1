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
from .models import AudioPlan, Codec, MediaInfo, Plan, Request, VideoPlan
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
# How much less bitrate a codec needs than H.264 for the same picture.
CODEC_EFFICIENCY: dict[Codec, float] = {"h264": 1.0, "hevc": 0.65, "av1": 0.55}

# Bits per pixel per frame that H.264 needs for an acceptable picture at 1080p. Larger pictures need
# fewer bits per pixel, smaller ones more; the 4th root fits the usual bitrate ladders (1080p30 at
# ~2 Mb/s, 720p30 at ~1 Mb/s, 360p30 at ~0.3 Mb/s).
BPP_1080 = 0.032
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


def plan(info: MediaInfo, request: Request, *, two_pass_at: int | None = None) -> Plan:
    """Work out how to turn ``info`` into what ``request`` asks. Raises PlanError when it can't.

    ``two_pass_at`` forces a two-pass encode at that size: the executor's fallback when a copy or a
    capped quality encode came out over its cap.
    """
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
            return Plan(
                input=info,
                request=request,
                video=video,
                audio=copied_audio,
                duration_s=duration,
                trim_start_s=None,
                trim_end_s=None,
                budget_bytes=cap,
                overhead_bytes=overhead,
                predicted_size_bytes=min(info.size_bytes, cap),
                min_size_bytes=min_size,
                reasons=tuple(reasons),
            )
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
        video = VideoPlan(
            encoder=ENCODERS[codec],
            codec=codec,
            mode="crf",
            width=w,
            height=h,
            fps=fps,
            fps_changed=not math.isclose(fps, v.fps),
            bitrate_bps=cap_bps,
            crf=crf,
            preset=request.preset,
            passes=1,
        )
        return Plan(
            input=info,
            request=request,
            video=video,
            audio=audio,
            duration_s=duration,
            trim_start_s=start if trimmed else None,
            trim_end_s=end if trimmed else None,
            budget_bytes=budget,
            overhead_bytes=overhead,
            predicted_size_bytes=predicted,
            min_size_bytes=min_size,
            reasons=tuple(reasons),
        )

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
    video = VideoPlan(
        encoder=ENCODERS[codec],
        codec=codec,
        mode="two-pass",
        width=w,
        height=h,
        fps=fps,
        fps_changed=not math.isclose(fps, v.fps),
        bitrate_bps=video_bps,
        crf=None,
        preset=request.preset,
        passes=2,
    )
    return Plan(
        input=info,
        request=request,
        video=video,
        audio=audio,
        duration_s=duration,
        trim_start_s=start if trimmed else None,
        trim_end_s=end if trimmed else None,
        budget_bytes=budget,
        overhead_bytes=overhead,
        predicted_size_bytes=overhead + audio_bytes + math.floor(video_bps * duration / 8),
        min_size_bytes=min_size,
        reasons=tuple(reasons),
    )


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
