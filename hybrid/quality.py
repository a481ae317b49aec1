"""Quality search: the largest CRF whose output still scores the VMAF asked, measured on samples.

How it works (the I/O half; the decision is :func:`hybrid.planner.decide_quality`, a pure function):

1. A few short samples spread over the input (the whole input when it is short) are decoded once into
   one lossless reference file, resampled to a constant frame rate (the source's, or the one asked
   for) at the reference picture size (the source's, or the one asked for).
2. Each probe encodes that reference at one CRF and picture size with the plan's encoder and preset,
   and scores it with the bundled ffmpeg's libvmaf (model vmaf_v0.6.1) against the reference: both
   sides retimed to start at zero, resampled to the same frame rate and scaled to the reference size,
   so that frame N is compared with frame N. Without that, variable-frame-rate phone footage drifts
   a frame or two apart and scores some 30 points too low.
3. An interpolated binary search over CRF finds the largest one that reaches the target; when the
   target size cannot hold it, a few more probes measure the VMAF each candidate picture size reaches
   at the target size.
4. Each probe predicts the full output's video size from the samples' packet sizes: each sample
   starts with a forced keyframe the full encode does not have, so keyframes and the other frames are
   scaled up separately.

The search stops at a time cap, a share of the estimated encode time, and reports itself as its own
progress stage. Probe results are cached per input for the life of the process, so planning and then
compressing the same file (or the executor's fallback) measures nothing twice.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from . import ffmpeg, planner
from .errors import EncodeError
from .models import (
    Codec,
    Event,
    MediaInfo,
    Plan,
    Progress,
    QualityProbe,
    QualitySearch,
    Request,
    StageStarted,
)

EventSink = Callable[[Event], None]

STAGE = "quality search"
TIME_SHARE = 0.25  # the search may take this share of the estimated encode time
MIN_PROBES = 3  # whatever the cap: a bracket and one interpolation step
MAX_CRF_PROBES = 6
MAX_PROBES = 10
# The samples' VMAF came out within about a point of the whole output's on the shared clips, more
# often above than below: a CRF passes when its samples score this much over the target.
SAMPLE_MARGIN = 0.5

# Samples: about 4 % of the input in all (at least 1 s, at most 20 s), in 2 to 8 pieces of 0.5-4 s;
# inputs up to WHOLE_INPUT_MAX_S are used whole.
WHOLE_INPUT_MAX_S = 3.0
SAMPLE_SHARE = 0.04
SAMPLE_TOTAL_MIN_S = 1.0
SAMPLE_TOTAL_MAX_S = 20.0
SAMPLE_MIN_S = 0.5
SAMPLE_MAX_S = 4.0
SAMPLE_COUNT_MAX = 8

# CRF search space per codec, and where a search for VMAF 95 starts (moving CRF_PER_VMAF per point).
CRF_RANGE: dict[Codec, tuple[int, int]] = {"h264": (12, 40), "hevc": (14, 42), "av1": (18, 55)}
CRF_AT_95: dict[Codec, int] = {"h264": 22, "hevc": 25, "av1": 32}
CRF_PER_VMAF = 0.75
VMAF_PER_CRF = 0.8  # slope assumed until two probes measure it
LOG_SIZE_PER_CRF = 0.11  # a CRF step changes the size by about 11 %
PIXEL_SIZE_EXPONENT = 0.7  # size grows as pixels ** 0.7 at the same CRF
ENCODER_KEYINT = 250  # x264/x265 default GOP: the full encode's keyframes, besides scene cuts

# libvmaf scores every n-th frame (features still see every frame): about 10 scored frames a second
# for the search and 15 for a full measurement is within 0.3 VMAF of scoring all of them.
SEARCH_SCORED_FPS = 10.0
MEASURE_SCORED_FPS = 15.0

# Before anything is measured: x264 "medium" pixel throughput on a small machine, and the presets'
# relative speeds. Only for the first draw of the progress bar; the cap uses measured speed.
PRIOR_PIXELS_PER_S = 25e6
PRESET_SPEED = {"ultrafast": 8.0, "superfast": 6.0, "veryfast": 4.0, "faster": 2.5, "fast": 1.5}

_VMAF_SCORE = re.compile(r"VMAF score: ([\d.]+)")


def _ignore(_: Event) -> None:
    pass


# -- samples ---------------------------------------------------------------------------------------


def sample_layout(start_s: float, duration_s: float) -> tuple[tuple[float, ...], float, bool]:
    """Where the samples go: (start times, length of each, whole input?). Pure, for tests.

    Evenly spread, each centred in its share of the input, so a video whose content changes over time
    is seen at its start, middle and end rather than in one place.
    """
    if duration_s <= WHOLE_INPUT_MAX_S:
        return (start_s,), duration_s, True
    total = min(max(duration_s * SAMPLE_SHARE, SAMPLE_TOTAL_MIN_S), SAMPLE_TOTAL_MAX_S)
    count = min(SAMPLE_COUNT_MAX, max(2, round(duration_s / 20)))
    length = min(max(total / count, SAMPLE_MIN_S), SAMPLE_MAX_S)
    if count * length >= duration_s / 2:
        return (start_s,), duration_s, True
    step = duration_s / count
    starts = tuple(round(start_s + step * (i + 0.5) - length / 2, 3) for i in range(count))
    return starts, length, False


def frames_per_sample(length_s: float, fps: float) -> int:
    return max(1, round(length_s * fps))


def subsample_for(fps: float, scored_fps: float) -> int:
    return max(1, math.floor(fps / scored_fps))


@dataclass(frozen=True)
class _Reference:
    path: Path
    frames: int
    seconds: float


def _fps_arg(fps: float) -> str:
    return f"{fps:.6f}".rstrip("0").rstrip(".")


Align = Literal["frames", "time"]


def _aligned(width: int, height: int, fps: float, align: Align) -> str:
    """The filters both sides of a VMAF comparison go through: the same frame grid, size and range.

    ``frames``: both sides hold the same frames (hybrid passes every source frame through unless the
    frame rate changes), so frame N is given the time N / fps on both: exact whatever the source's
    timestamps were (phone files' variable rates, a first frame stamped apart from the rest).
    ``time``: the frame counts differ (a new frame rate), so both are retimed to start at zero and
    resampled to ``fps``: each tick of the grid takes the frame shown at that moment.
    """
    rate = _fps_arg(fps)
    timing = f"setpts=N/({rate}*TB)" if align == "frames" else f"setpts=PTS-STARTPTS,fps={rate}"
    return f"{timing},scale={width}:{height}:flags=bicubic:out_range=tv,format=yuv420p"


def _make_reference(
    info: MediaInfo,
    starts: tuple[float, ...],
    length: float,
    whole: bool,
    plan: Plan,
    ref: tuple[int, int, float],
    work: Path,
) -> _Reference:
    width, height, fps = ref
    out = work / "reference.mkv"
    argv = [ffmpeg.find_ffmpeg(), "-y"]
    if whole:
        if plan.trim_start_s:
            argv += ["-ss", f"{plan.trim_start_s:.3f}"]
        if plan.trim_end_s is not None:
            argv += ["-to", f"{plan.trim_end_s:.3f}"]
        argv += ["-i", ffmpeg.file_arg(info.path)]
    else:
        for start in starts:
            argv += ["-ss", f"{start:.3f}", "-t", f"{length:.3f}", "-i", ffmpeg.file_arg(info.path)]
    # Whole frames per sample, so that sample i starts at frame i * per_sample exactly: the probes
    # force a keyframe there, and one a frame off would leave the encoder's own scene-cut keyframe
    # beside it, counted as a scene cut of the input.
    cut = "" if whole else f",trim=end_frame={frames_per_sample(length, fps)}"
    # The source's own frames, as the output will have them (every frame passed through), unless the
    # request lowers the frame rate: then the same fps filter as the encode.
    resample = f",fps={_fps_arg(fps)}" if plan.video.fps_changed else ""
    pieces = [
        f"[{i}:v:0]setpts=PTS-STARTPTS{resample}{cut},"
        f"scale={width}:{height}:flags=lanczos:out_range=tv,format=yuv420p[s{i}]"
        for i in range(len(starts))
    ]
    joined = "".join(f"[s{i}]" for i in range(len(starts)))
    graph = ";".join(pieces) + f";{joined}concat=n={len(starts)}:v=1:a=0[ref]"
    # Lossless and fast: the reference must be the source's pixels, and is read once per probe.
    argv += ["-filter_complex", graph, "-map", "[ref]", "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast"]
    argv += ["-fps_mode", "passthrough", "-an", "-sn", ffmpeg.file_arg(out)]
    ffmpeg.run(argv, stage=STAGE)
    packets = _packets(out)
    if not packets:
        raise EncodeError("the quality search could not read any frames from the input")
    return _Reference(path=out, frames=len(packets), seconds=len(packets) / fps)


def _packets(path: Path) -> list[tuple[int, bool]]:
    """(size, keyframe?) of each video packet, read without decoding."""
    argv = [ffmpeg.find_ffmpeg(), "-v", "error", "-nostdin", "-i", ffmpeg.file_arg(path)]
    proc = ffmpeg.run_capture([*argv, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
    out: list[tuple[int, bool]] = []
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 5 and fields[4].isdigit():
            flags = next((f[2:] for f in fields[6:] if f.startswith("F=")), None)
            key = flags is None or bool(int(flags, 16) & 1)
            out.append((int(fields[4]), key))
    return out


def predict_video_bytes(
    packets: list[tuple[int, bool]], forced_keys: int, output_frames: int, keyint: int = ENCODER_KEYINT
) -> int:
    """The full output's video bytes from a sample encode's packets. Pure, for tests.

    Every sample starts with a keyframe (``forced_keys`` of them) that the full encode would not have
    there: keyframes are counted at the full encode's own rate (one per ``keyint`` frames, plus the
    scene cuts the samples showed), the other frames at their average size.
    """
    if not packets:
        return 0
    frames = len(packets)
    if frames >= output_frames:  # the whole input: nothing to extrapolate
        return round(sum(size for size, _ in packets) * output_frames / frames)
    keys = [size for size, key in packets if key]
    others = [size for size, key in packets if not key]
    if not keys or not others:
        return round(sum(size for size, _ in packets) * output_frames / frames)
    natural_keys = max(0, len(keys) - forced_keys) * output_frames / frames
    full_keys = min(output_frames, math.ceil(output_frames / keyint) + natural_keys)
    key_mean = sum(keys) / len(keys)
    other_mean = sum(others) / len(others)
    return round(key_mean * full_keys + other_mean * (output_frames - full_keys))


# -- VMAF ------------------------------------------------------------------------------------------


def vmaf_threads() -> int:
    return max(1, min(os.cpu_count() or 2, 8))


def measure_vmaf(
    distorted: Path,
    reference: Path,
    *,
    width: int,
    height: int,
    fps: float,
    subsample: int = 1,
    reference_start_s: float | None = None,
    reference_end_s: float | None = None,
    align: Align = "frames",
    stage: str = STAGE,
    total_s: float = 0.0,
    on_event: EventSink = _ignore,
) -> float:
    """Mean VMAF (vmaf_v0.6.1) of ``distorted`` against ``reference``, on aligned frames.

    Both go through the same timing (see ``align``), are scaled to ``width`` x ``height`` (the
    reference's size: a smaller distorted picture is scaled back up, as a viewer's player would)
    and converted to limited-range 4:2:0, so frame N of one is compared with frame N of the other.
    ``reference_start_s``/``reference_end_s`` trim the reference (a source the output was cut from).
    """
    argv = [ffmpeg.find_ffmpeg(), "-i", ffmpeg.file_arg(distorted)]
    if reference_start_s:
        argv += ["-ss", f"{reference_start_s:.3f}"]
    if reference_end_s is not None:
        argv += ["-to", f"{reference_end_s:.3f}"]
    argv += ["-i", ffmpeg.file_arg(reference)]
    aligned = _aligned(width, height, fps, align)
    graph = (
        f"[0:v:0]{aligned}[dist];[1:v:0]{aligned}[ref];"
        f"[dist][ref]libvmaf=model=version=vmaf_v0.6.1:n_threads={vmaf_threads()}"
        f":n_subsample={max(1, subsample)}:shortest=1"
    )
    argv += ["-filter_complex", graph, "-an", "-f", "null", "-"]
    result = ffmpeg.run(argv, stage=stage, total_s=total_s, on_event=on_event)
    scores = _VMAF_SCORE.findall(result.stderr)
    if not scores:
        raise EncodeError(
            f"libvmaf gave no score: {ffmpeg.last_meaningful_lines(result.stderr)}", stderr=result.stderr
        )
    return float(scores[-1])


def measure_output(
    output: Path, plan: Plan, *, on_event: EventSink = _ignore, subsample: int | None = None
) -> float:
    """VMAF of a finished output against its source (trimmed as planned), over the whole file."""
    info = plan.input
    width, height, fps = planner.requested_picture(info, plan.request)
    align: Align = "time" if plan.video.fps_changed else "frames"
    if align == "frames" and plan.trim_start_s is None and plan.trim_end_s is None:
        align = alignment_for(output, info.path)
    return measure_vmaf(
        output,
        info.path,
        width=width,
        height=height,
        fps=fps,
        subsample=subsample or subsample_for(fps, MEASURE_SCORED_FPS),
        reference_start_s=plan.trim_start_s,
        reference_end_s=plan.trim_end_s,
        align=align,
        stage="measure VMAF",
        total_s=plan.duration_s,
        on_event=on_event,
    )


def alignment_for(distorted: Path, reference: Path) -> Align:
    """``frames`` when both files hold the same number of frames (one either way: an encoder may
    drop a last frame with no duration), else ``time``. Counts packets, decodes nothing."""
    return "frames" if abs(len(_packets(distorted)) - len(_packets(reference))) <= 1 else "time"


# -- the search ------------------------------------------------------------------------------------

_CacheKey = tuple[str, int, int, float, float, int, int, float, str, str]


@dataclass
class _Cached:
    probes: dict[tuple[int, int, int], QualityProbe] = field(default_factory=dict)
    encode_speed: float | None = None  # seconds of samples encoded per wall second
    probe_cost_s: float | None = None  # wall seconds of one probe (encode + VMAF)


_CACHE: dict[_CacheKey, _Cached] = {}


def clear_cache() -> None:
    _CACHE.clear()


def _cache_key(info: MediaInfo, request: Request, plan: Plan, ref: tuple[int, int, float]) -> _CacheKey:
    st = info.path.stat()
    start = plan.trim_start_s or 0.0
    return (
        str(info.path.resolve()),
        st.st_size,
        st.st_mtime_ns,
        round(start, 3),
        round(plan.duration_s, 3),
        ref[0],
        ref[1],
        round(ref[2], 4),
        planner.ENCODERS[request.codec],
        request.preset,
    )


class _Search:
    def __init__(
        self, info: MediaInfo, request: Request, base: Plan, on_event: EventSink, time_share: float
    ) -> None:
        self.info, self.request, self.base, self.on_event = info, request, base, on_event
        self.target = planner.target_vmaf(request) or 95.0
        self.aim = self.target + SAMPLE_MARGIN
        self.codec: Codec = request.codec
        self.ref_size = planner.requested_picture(info, request)
        self.starts, self.length, self.whole = sample_layout(base.trim_start_s or 0.0, base.duration_s)
        self.cache = _CACHE.setdefault(_cache_key(info, request, base, self.ref_size), _Cached())
        self.output_frames = max(1, round(base.duration_s * self.ref_size[2]))
        self.time_share = time_share
        self.started = time.monotonic()
        self.work: Path | None = None
        self.reference: _Reference | None = None
        self.capped = False
        self.new_probes = 0
        passes = 1.6 if base.video.mode == "two-pass" else 1.0  # x264's first pass is the faster one
        self.passes = passes
        self.cap_s = self._cap_from(self.cache.encode_speed) or self._prior_cap()
        self.on_event(StageStarted(stage=STAGE, total_s=round(self.cap_s, 2)))

    # -- time --
    def _prior_cap(self) -> float:
        w, h, fps = self.ref_size
        speed = PRIOR_PIXELS_PER_S * PRESET_SPEED.get(self.request.preset, 1.0) / (w * h * fps)
        return self._cap_from(speed) or 1.0

    def _cap_from(self, speed: float | None) -> float | None:
        if not speed:
            return None
        return self.time_share * self.encode_estimate(speed)

    def encode_estimate(self, speed: float | None = None) -> float:
        speed = speed or self.cache.encode_speed
        if not speed:
            return 0.0
        return self.base.duration_s / speed * self.passes

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _tick(self) -> None:
        self.on_event(Progress(stage=STAGE, done_s=min(self.elapsed(), self.cap_s), total_s=self.cap_s))

    def allowed(self) -> bool:
        """May one more probe run? Always the first MIN_PROBES; then while it fits in the cap."""
        done = len(self.cache.probes)
        if done < MIN_PROBES:
            return True
        if done >= MAX_PROBES:
            return False
        cost = self.cache.probe_cost_s or 0.0
        if self.elapsed() + cost > self.cap_s:
            self.capped = True
            return False
        return True

    # -- probing --
    def probe(self, crf: int, width: int, height: int, *, force: bool = False) -> QualityProbe | None:
        lo, hi = CRF_RANGE[self.codec]
        crf = min(hi, max(lo, crf))
        key = (crf, width, height)
        if key in self.cache.probes:
            return self.cache.probes[key]
        if not force and not self.allowed():
            return None
        began = time.monotonic()
        ref = self._reference()
        out = self._work() / f"probe-{crf}-{width}x{height}.mkv"
        encode_began = time.monotonic()
        self._encode(ref, crf, width, height, out)
        encode_s = time.monotonic() - encode_began
        packets = _packets(out)
        forced = 1 if self.whole else len(self.starts)
        video_bytes = predict_video_bytes(packets, forced, self.output_frames)
        rw, rh, fps = self.ref_size
        score = measure_vmaf(
            out, ref.path, width=rw, height=rh, fps=fps, subsample=subsample_for(fps, SEARCH_SCORED_FPS)
        )
        out.unlink(missing_ok=True)
        result = QualityProbe(
            crf=crf, width=width, height=height, video_bytes=video_bytes, vmaf=round(score, 3)
        )
        self.cache.probes[key] = result
        self.new_probes += 1
        self.cache.probe_cost_s = time.monotonic() - began
        if self.cache.encode_speed is None and encode_s > 0:
            # Samples are encoded at the reference size; scale the speed to this probe's picture.
            self.cache.encode_speed = ref.seconds / encode_s * (width * height) / (rw * rh)
            self.cap_s = self._cap_from(self.cache.encode_speed) or self.cap_s
            self.on_event(StageStarted(stage=STAGE, total_s=round(self.cap_s, 2)))
        self._tick()
        return result

    def _work(self) -> Path:
        if self.work is None:
            self.work = Path(tempfile.mkdtemp(prefix="hybrid-quality-"))
        return self.work

    def _reference(self) -> _Reference:
        if self.reference is None:
            self.reference = _make_reference(
                self.info, self.starts, self.length, self.whole, self.base, self.ref_size, self._work()
            )
        return self.reference

    def _encode(self, ref: _Reference, crf: int, width: int, height: int, out: Path) -> None:
        from .local import SVT_AV1_PRESETS  # local imports this module: import at use

        encoder = planner.ENCODERS[self.codec]
        preset: str = self.request.preset
        if encoder == "libsvtav1":
            preset = str(SVT_AV1_PRESETS.get(preset, 7))
        chain = f"scale={width}:{height}:flags=lanczos,format=yuv420p"
        argv = [ffmpeg.find_ffmpeg(), "-y", "-i", ffmpeg.file_arg(ref.path), "-map", "0:v:0", "-vf", chain]
        argv += ["-c:v", encoder, "-preset", preset, "-crf", str(crf)]
        if not self.whole:
            # Each sample starts a new scene for the encoder, as it would after a cut: a keyframe
            # that predict_video_bytes then discounts.
            per_sample = frames_per_sample(self.length, self.ref_size[2])
            argv += ["-force_key_frames", f"expr:eq(mod(n,{per_sample}),0)"]
        if encoder == "libx265":
            argv += ["-x265-params", "log-level=error"]
        argv += ["-fps_mode", "passthrough", "-an", ffmpeg.file_arg(out)]
        ffmpeg.run(argv, stage=STAGE)

    def at(self, width: int, height: int) -> list[QualityProbe]:
        return [p for p in self.cache.probes.values() if (p.width, p.height) == (width, height)]

    # -- phase 1: the largest CRF that reaches the target --
    def search_crf(self) -> int | None:
        w, h, _ = self.ref_size
        lo, hi = CRF_RANGE[self.codec]
        crf = round(CRF_AT_95[self.codec] + (95.0 - self.target) * CRF_PER_VMAF)
        for _ in range(MAX_CRF_PROBES):
            if self.probe(crf, w, h) is None:
                break
            nxt = self.next_crf(self.at(w, h), lo, hi)
            if nxt is None or any(p.crf == nxt for p in self.at(w, h)):
                break
            crf = nxt
        passing = [p.crf for p in self.at(w, h) if p.vmaf >= self.aim]
        return max(passing) if passing else None

    def next_crf(self, probes: list[QualityProbe], lo: int, hi: int) -> int | None:
        """Interpolated binary search: between the best passing and the nearest failing CRF, where the
        line through them crosses the target; outside a bracket, a step by the measured slope."""
        target = self.aim
        passing = sorted((p for p in probes if p.vmaf >= target), key=lambda p: p.crf)
        failing = sorted((p for p in probes if p.vmaf < target), key=lambda p: p.crf)
        best = passing[-1] if passing else None
        above = [p for p in failing if best is None or p.crf > best.crf]
        slope = _slope(probes) or VMAF_PER_CRF
        if best is not None and above:
            fail = above[0]
            if fail.crf - best.crf <= 1:
                return None
            share = (best.vmaf - target) / max(1e-6, best.vmaf - fail.vmaf)
            guess = best.crf + round(share * (fail.crf - best.crf))
            return min(fail.crf - 1, max(best.crf + 1, guess))
        if best is not None:
            if best.crf >= hi:
                return None
            step = min(8, max(1, round((best.vmaf - target) / slope)))
            return min(hi, best.crf + step)
        worst = failing[0]
        if worst.crf <= lo:
            return None
        step = min(8, max(1, round((target - worst.vmaf) / slope)))
        return max(lo, worst.crf - step)

    # -- phase 2: VMAF at the target size, per picture size --
    def probe_at_size(
        self, width: int, height: int, video_bytes: float, start_crf: int, *, force_first: bool = False
    ) -> None:
        """Probes around the CRF whose output is ``video_bytes``, so VMAF there is interpolated;
        ``force_first``: at least one probe at this size, whatever the time cap."""
        for attempt in range(2):
            probes = self.at(width, height)
            below = [p for p in probes if p.video_bytes <= video_bytes]
            above = [p for p in probes if p.video_bytes > video_bytes]
            if below and above:
                near_below = max(below, key=lambda p: p.video_bytes)
                near_above = min(above, key=lambda p: p.video_bytes)
                if math.log(near_above.video_bytes / max(1, near_below.video_bytes)) < 0.35:
                    return
            if probes:
                nearest = min(probes, key=lambda p: abs(math.log(p.video_bytes / video_bytes)))
                crf = nearest.crf + round(math.log(nearest.video_bytes / video_bytes) / LOG_SIZE_PER_CRF)
            else:
                crf = start_crf
            lo, hi = CRF_RANGE[self.codec]
            crf = min(hi, max(lo, crf))
            if any(p.crf == crf for p in probes):
                crf += 1 if all(p.video_bytes > video_bytes for p in probes) else -1
                if any(p.crf == crf for p in probes) or not lo <= crf <= hi:
                    return
            if self.probe(crf, width, height, force=force_first and attempt == 0 and not probes) is None:
                return

    def crf_for_size(self, width: int, height: int, video_bytes: float) -> int | None:
        """The CRF the probes so far put nearest to ``video_bytes`` at this picture size."""
        probes = self.at(width, height)
        if not probes:
            return None
        nearest = min(probes, key=lambda p: abs(math.log(p.video_bytes / video_bytes)))
        return nearest.crf + round(math.log(nearest.video_bytes / video_bytes) / LOG_SIZE_PER_CRF)

    def close(self) -> None:
        if self.work is not None:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    def result(self, crf: int | None) -> QualitySearch:
        w, h, _ = self.ref_size
        return QualitySearch(
            target_vmaf=self.target,
            width=w,
            height=h,
            crf=crf,
            probes=tuple(sorted(self.cache.probes.values(), key=lambda p: (-p.width, p.crf))),
            samples=len(self.starts),
            sample_s=round(self.length * len(self.starts), 3),
            whole_input=self.whole,
            elapsed_s=round(self.elapsed(), 3),
            time_cap_s=round(self.cap_s, 3),
            capped=self.capped,
            encode_estimate_s=round(self.encode_estimate(), 3),
        )


def _slope(probes: list[QualityProbe]) -> float | None:
    """VMAF lost per CRF step, from the two probes nearest each other (None with fewer than two)."""
    ordered = sorted(probes, key=lambda p: p.crf)
    pairs = [(a, b) for a, b in itertools.pairwise(ordered) if b.crf > a.crf]
    if not pairs:
        return None
    a, b = min(pairs, key=lambda pair: pair[1].crf - pair[0].crf)
    slope = (a.vmaf - b.vmaf) / (b.crf - a.crf)
    return slope if slope > 0.05 else None


def _lower_rung(width: int, height: int) -> tuple[int, int] | None:
    """The next rung of the planner's ladder below this picture, aspect kept."""
    short = min(width, height)
    lower = next((r for r in planner.LADDER if r < short), None)
    if lower is None:
        return None
    return planner.scaled_size(width, height, lower)


def search(
    info: MediaInfo,
    request: Request,
    base: Plan | None = None,
    *,
    on_event: EventSink = _ignore,
    time_share: float = TIME_SHARE,
) -> QualitySearch:
    """Measure what CRF (and, at a tight target, which picture size) reaches the request's VMAF.

    ``base`` is the plan without the search (made here when not given). Raises PlanError when the
    request has no VMAF target.
    """
    base = base or planner.plan(info, request)
    if planner.target_vmaf(request) is None:
        from .errors import PlanError

        raise PlanError("no quality target to search for (use --quality or --min-vmaf)")
    run = _Search(info, request, base, on_event, time_share)
    try:
        crf = run.search_crf()
        interim = run.result(crf)
        decided = planner.plan(info, request, quality=interim)
        if decided.video.mode == "two-pass" and decided.video.bitrate_bps:
            # The quality does not fit: measure what the target size buys, at the picture size the
            # ladder picked (first, whatever the cap: it is what the user is told to expect) and at
            # the other candidate, so the decision can pick the better looking one.
            video_bytes = decided.video.bitrate_bps * decided.duration_s / 8
            w, h, _ = run.ref_size
            ladder = (base.video.width, base.video.height) if base.video.mode == "two-pass" else (w, h)
            other = (w, h) if ladder != (w, h) else _lower_rung(w, h)
            at_reference = run.crf_for_size(w, h, video_bytes) or CRF_AT_95[run.codec]
            for n, (rw, rh) in enumerate([ladder] if other is None else [ladder, other]):
                # A smaller picture spends fewer bytes at the same CRF: start lower by that much.
                fewer = PIXEL_SIZE_EXPONENT * math.log((w * h) / (rw * rh)) / LOG_SIZE_PER_CRF
                start = run.crf_for_size(rw, rh, video_bytes) or at_reference - round(fewer)
                run.probe_at_size(rw, rh, video_bytes, start, force_first=n == 0)
        return run.result(crf)
    finally:
        run.close()
        on_event(Progress(stage=STAGE, done_s=run.cap_s, total_s=run.cap_s))


def plan_with_quality(
    info: MediaInfo, request: Request, *, on_event: EventSink = _ignore, time_share: float = TIME_SHARE
) -> Plan:
    """The plan for ``request``; with a VMAF target, after a sample search decides CRF and size."""
    base = planner.plan(info, request)
    if planner.target_vmaf(request) is None or base.video.mode == "copy":
        return base
    found = search(info, request, base, on_event=on_event, time_share=time_share)
    return planner.plan(info, request, quality=found)
