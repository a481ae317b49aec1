"""The local executor: a Plan becomes a verified file, with ffmpeg on this machine.

Two-pass H.264 flow: encode the audio first and count its bytes exactly, so the video gets precisely
what is left; a fast first pass; a second pass that muxes the audio in and writes MP4 with the index
at the front; measure; if the file is over the target (or far under it), run only the second pass
again from the first pass's statistics with a corrected bitrate. The result is written to a work
folder beside the destination and renamed into place only once verified.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ffmpeg as ffmpeg_python
import psutil

from . import ffmpeg, planner, quality
from .errors import EncodeError, OutputError, ResourceError
from .models import (
    Event,
    MediaInfo,
    Message,
    Plan,
    QualitySearch,
    Request,
    Result,
    StageStarted,
    VmafMethod,
)
from .probe import from_ffmpeg_report, probe
from .units import format_size

EventSink = Callable[[Event], None]

OUTPUT_SUFFIXES = (".mp4", ".m4v", ".mov")
MAX_SECOND_PASSES = 3
USE_BUDGET_FLOOR = 0.95  # a two-pass output below this share of the target is re-aimed
DURATION_TOLERANCE_S = 0.25


def _ignore(_: Event) -> None:
    pass


def default_output(input_path: Path) -> Path:
    """``trip.mov`` -> ``trip-compressed.mp4`` beside it, or ``trip-compressed-2.mp4`` if taken."""
    base = input_path.with_name(f"{input_path.stem}-compressed.mp4")
    candidate, n = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{input_path.stem}-compressed-{n}.mp4")
        n += 1
    return candidate


def resolve_output(input_path: Path, output: Path | None, overwrite: bool) -> Path:
    """Check the destination before any work: never the input, never a silent clobber."""
    dest = default_output(input_path) if output is None else output
    if dest.suffix.lower() not in OUTPUT_SUFFIXES:
        raise OutputError(f"the output must be an MP4 file (.mp4, .m4v or .mov), not {dest.name}")
    if dest.exists() or dest.is_symlink():
        if _same_file(dest, input_path):
            raise OutputError(f"the output {dest} is the input: hybrid never overwrites its input")
        if dest.is_dir():
            raise OutputError(f"the output {dest} is a folder")
        if not overwrite:
            raise OutputError(f"{dest} already exists (use --overwrite to replace it)")
    elif dest.resolve() == input_path.resolve():
        raise OutputError(f"the output {dest} is the input: hybrid never overwrites its input")
    folder = dest.parent
    if not folder.exists():
        raise OutputError(f"the output folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"the output folder {folder} is not a folder")
    return dest


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def required_disk_bytes(plan: Plan) -> int:
    """What the encode writes at its peak: output, audio, x264's pass logs, and a margin."""
    size = plan.predicted_size_bytes if plan.video.mode != "copy" else plan.input.size_bytes
    audio = (
        math.ceil((plan.audio.bitrate_bps or 0) * plan.duration_s / 8) if plan.audio.mode == "encode" else 0
    )
    logs = 0
    if plan.video.mode == "two-pass":
        frames = math.ceil(plan.duration_s * plan.video.fps)
        macroblocks = math.ceil(plan.video.width / 16) * math.ceil(plan.video.height / 16)
        logs = frames * (macroblocks * 2 + 200)
    return math.ceil((size + audio + logs) * 1.1) + 1_000_000


def check_disk(plan: Plan, folder: Path) -> None:
    need = required_disk_bytes(plan)
    free = shutil.disk_usage(folder).free
    if free < need:
        raise ResourceError(
            f"not enough free disk in {folder}: the encode needs about {format_size(need)}, "
            f"{format_size(free)} is free"
        )


def _sweep_stale_workdirs(folder: Path) -> None:
    """Remove work folders left by a hybrid that was killed outright (SIGKILL, power loss): their
    name carries the pid, and a pid that no longer runs cannot be using them."""
    for path in folder.glob(".hybrid-*-*"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and path.is_dir() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _make_workdir(folder: Path) -> Path:
    _sweep_stale_workdirs(folder)
    try:
        return Path(tempfile.mkdtemp(prefix=f".hybrid-{os.getpid()}-", dir=folder))
    except PermissionError:
        raise OutputError(f"cannot write to the output folder {folder}: permission denied") from None
    except OSError as exc:
        raise OutputError(f"cannot write to the output folder {folder}: {exc.strerror}") from None


@dataclass
class _Run:
    """State of one compress: the work folder, the counters the result reports."""

    plan: Plan
    work: Path
    on_event: EventSink
    encodes: int = 0
    notes: list[str] | None = None

    def note(self, text: str) -> None:
        if self.notes is None:
            self.notes = []
        self.notes.append(text)
        self.on_event(Message(text))


def compress(
    input_path: Path | str,
    request: Request | None = None,
    output: Path | str | None = None,
    *,
    overwrite: bool = False,
    on_event: EventSink = _ignore,
    info: MediaInfo | None = None,
    plan: Plan | None = None,
    measure: bool = False,
) -> Result:
    """Compress one file locally. Returns the Result; raises a HybridError subclass on failure.

    The input is never modified; on any failure or interruption nothing is left behind. A request
    with a quality target (``quality`` or ``min_vmaf``) is planned after a sample search (unless
    ``plan`` is given); the result's VMAF is then the samples' estimate, or with ``measure`` the
    whole output's, measured against the source.
    """
    started = time.monotonic()
    input_path = Path(input_path)
    request = request or Request()
    dest = resolve_output(input_path, Path(output) if output is not None else None, overwrite)
    info = info or probe(input_path)
    the_plan = plan or quality.plan_with_quality(info, request, on_event=on_event)
    if the_plan.video.encoder != "copy":
        ffmpeg.require_encoder(the_plan.video.encoder)
    check_disk(the_plan, dest.parent)
    work = _make_workdir(dest.parent)
    run = _Run(plan=the_plan, work=work, on_event=on_event)
    if the_plan.quality is not None and the_plan.quality.shortfall:
        run.note(the_plan.quality.shortfall)  # "VMAF ~89 expected, below the 95 asked: allow 31 MB ..."
    try:
        produced, final_plan = _produce(run)
        verified = _verify(produced, final_plan, run)
        vmaf, vmaf_method = _vmaf(produced, final_plan, run, measure)
        _place(produced, dest, overwrite)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    v = verified.video
    assert v is not None
    return Result(
        output=dest,
        size_bytes=verified.size_bytes,
        target_size_bytes=request.target_size_bytes,
        duration_s=verified.duration_s,
        elapsed_s=round(time.monotonic() - started, 3),
        path="local",
        encodes=run.encodes,
        width=v.display_width,
        height=v.display_height,
        video_codec=v.codec,
        audio_codec=verified.audio.codec if verified.audio else None,
        mode=final_plan.video.mode,
        vmaf=vmaf,
        vmaf_method=vmaf_method,
        notes=tuple(run.notes or ()),
    )


def _vmaf(produced: Path, plan: Plan, run: _Run, measure: bool) -> tuple[float | None, VmafMethod | None]:
    """The output's VMAF: measured on the whole file when asked, else the search's estimate."""
    if measure:
        _stage(run, "measure VMAF")
        try:
            return round(quality.measure_output(produced, plan, on_event=run.on_event), 2), "measured-full"
        except EncodeError as exc:  # the file is good; only its score is unknown
            run.note(f"could not measure the VMAF: {exc.message}")
    if plan.quality is not None and plan.quality.expected_vmaf is not None:
        return plan.quality.expected_vmaf, "estimate-samples"
    return None, None


def _place(produced: Path, dest: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(produced, dest)
        return
    try:
        os.link(produced, dest)  # fails if something appeared at dest meanwhile: never clobber
    except FileExistsError:
        raise OutputError(f"{dest} appeared while encoding; not replacing it (use --overwrite)") from None
    except OSError:
        if dest.exists():
            raise OutputError(f"{dest} already exists (use --overwrite to replace it)") from None
        os.replace(produced, dest)


def _produce(run: _Run) -> tuple[Path, Plan]:
    plan = run.plan
    cap = plan.request.target_size_bytes
    if plan.video.mode == "copy":
        out = _remux(run)
        if cap is None or out.stat().st_size <= cap:
            return out, plan
        run.note(f"the copied file ({format_size(out.stat().st_size)}) is over the target: re-encoding")
        out.unlink()
        fallback = planner.plan(plan.input, plan.request, two_pass_at=cap, quality=_search_of(plan))
        return _two_pass(run, fallback), fallback
    if plan.video.mode == "crf":
        hard_cap = cap if cap is not None else plan.input.size_bytes
        out = _crf(run)
        if out.stat().st_size <= hard_cap:
            return out, plan
        run.note(
            f"the quality encode ({format_size(out.stat().st_size)}) is over the cap of "
            f"{format_size(hard_cap)}: switching to a two-pass encode at the cap"
        )
        out.unlink()
        fallback = planner.plan(plan.input, plan.request, two_pass_at=hard_cap, quality=_search_of(plan))
        return _two_pass(run, fallback), fallback
    return _two_pass(run, plan), plan


def _search_of(plan: Plan) -> QualitySearch | None:
    """The quality search a plan was made from, so a fallback plan keeps its measurements."""
    return plan.quality.search if plan.quality is not None else None


# -- argument building ---------------------------------------------------------------------------


def _input(plan: Plan) -> Any:
    options: dict[str, Any] = {}
    if plan.trim_start_s:
        options["ss"] = f"{plan.trim_start_s:.3f}"
    if plan.trim_end_s is not None:
        options["to"] = f"{plan.trim_end_s:.3f}"
    return ffmpeg_python.input(ffmpeg.file_arg(plan.input.path), **options)


def _video_stream(plan: Plan, source: Any = None) -> Any:
    # ffmpeg applies the display rotation before these filters (autorotate), so width and height
    # here are the picture as shown, and the output is stored upright with no rotation flag:
    # players that ignore rotation metadata still show it the right way up.
    stream = (source if source is not None else _input(plan))["v:0"]
    v = plan.video
    src = plan.input.video
    assert src is not None
    if v.fps_changed:
        stream = stream.filter("fps", fps=f"{v.fps:g}")
    # Always through scale: it resizes when the plan says so, and converts full-range sources (phone
    # MJPEG, yuvj*) to the limited range that every player assumes for H.264.
    stream = stream.filter("scale", v.width, v.height, flags="lanczos", out_range="tv")
    return stream.filter("format", "yuv420p")


def _metadata(plan: Plan) -> dict[str, Any]:
    # Keep when it was filmed; drop the rest of the source's tags (GPS location among them), since
    # compressed files are usually made to be shared.
    options: dict[str, Any] = {"map_metadata": "-1", "movflags": "+faststart"}
    if plan.input.creation_time:
        options["metadata"] = f"creation_time={plan.input.creation_time}"
    return options


# SVT-AV1 takes a number (0 slowest .. 13 fastest) where x264 and x265 take names; the names map onto
# the numbers SVT-AV1's own documentation pairs with them by speed.
SVT_AV1_PRESETS: dict[str, int] = {
    "ultrafast": 12,
    "superfast": 11,
    "veryfast": 10,
    "faster": 9,
    "fast": 8,
    "medium": 7,
    "slow": 6,
    "slower": 5,
    "veryslow": 4,
}


def _x265_value(path: Path) -> str:
    # x265-params is a ':'-separated key=value list that ffmpeg unescapes with backslashes: a work
    # folder with ':' or '=' in its name must not split the stats path.
    return re.sub(r"([\\:=])", r"\\\1", str(path))


def _video_options(
    plan: Plan, *, bitrate_bps: int | None, pass_no: int | None, passlog: Path
) -> dict[str, Any]:
    v = plan.video
    preset: str | int = SVT_AV1_PRESETS.get(v.preset, 7) if v.encoder == "libsvtav1" else v.preset
    options: dict[str, Any] = {"c:v": v.encoder, "preset": preset, "fps_mode": "vfr"}
    x265_params = ["log-level=error"]
    if v.mode == "crf":
        options["crf"] = v.crf
        if bitrate_bps:
            # VBV cap: with maxrate R and a buffer of B bits, a stream of D seconds holds at most
            # R*D + B bits; the planner's cap already accounts for the buffer below.
            options["maxrate"] = bitrate_bps
            options["bufsize"] = plan.video.vbv_buffer_bits or bitrate_bps * 2
    else:
        options["b:v"] = bitrate_bps
        if v.encoder == "libx265":
            # libx265 keeps its own two-pass statistics: ffmpeg's -pass/-passlogfile do not reach it.
            x265_params.append(f"pass={pass_no}:stats={_x265_value(passlog)}")
        else:  # libx264, and libsvtav1, whose ffmpeg wrapper keeps the stats in the passlog file
            options["pass"] = pass_no
            options["passlogfile"] = str(passlog)
    if v.codec == "h264":
        options["profile:v"] = "high"
    elif v.codec == "hevc":
        options["x265-params"] = ":".join(x265_params)
        options["tag:v"] = "hvc1"  # Apple players (QuickTime, iOS, Safari) refuse HEVC tagged hev1
    return options


def _compile(stream: Any) -> list[str]:
    return list(stream.global_args("-y").compile(cmd=ffmpeg.find_ffmpeg()))


# -- steps ---------------------------------------------------------------------------------------


def _stage(run: _Run, name: str) -> str:
    run.on_event(StageStarted(stage=name, total_s=run.plan.duration_s))
    return name


def _audio_options(plan: Plan) -> dict[str, Any]:
    a = plan.audio
    return {"c:a": "aac", "b:a": a.bitrate_bps, "ac": a.channels, "ar": a.sample_rate}


def _payload_bytes(path: Path) -> int:
    """Sum of the packet sizes in a file (its bytes without container overhead)."""
    proc = ffmpeg.run_capture(
        [
            ffmpeg.find_ffmpeg(),
            "-v",
            "error",
            "-nostdin",
            "-i",
            ffmpeg.file_arg(path),
            "-map",
            "0",
            "-c",
            "copy",
            "-f",
            "framecrc",
            "-",
        ]
    )
    total = 0
    for line in proc.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 5 and fields[4].isdigit():
            total += int(fields[4])
    return total


def _video_output(plan: Plan, audio_file: Path | None, out: Path, options: dict[str, Any]) -> Any:
    """The final MP4: the filtered video, plus the audio copied from ``audio_file`` (two-pass: encoded
    and measured during the first pass) or, without one, encoded from the source in this same run."""
    source = _input(plan)
    streams = [_video_stream(plan, source)]
    if audio_file is not None:
        streams.append(ffmpeg_python.input(ffmpeg.file_arg(audio_file))["a:0"])
        options = {**options, "c:a": "copy"}
    elif plan.audio.mode == "encode":
        streams.append(source["a:0"])
        options = {**options, **_audio_options(plan)}
    return ffmpeg_python.output(*streams, ffmpeg.file_arg(out), **options, **_metadata(plan))


def _two_pass(run: _Run, plan: Plan) -> Path:
    assert plan.request.target_size_bytes is not None or plan.budget_bytes is not None
    target = plan.budget_bytes / planner.AIM if plan.budget_bytes else 0
    hard_cap = (
        math.floor(target)
        if plan.request.target_size_bytes is None
        else min(plan.request.target_size_bytes, math.floor(target) + 1)
    )
    budget = plan.budget_bytes or 0
    passlog = run.work / "x264"
    # The first pass also encodes the audio (one decode of the source instead of two), so that the
    # second pass knows the audio's size to the byte.
    source = _input(plan)
    first = ffmpeg_python.output(
        _video_stream(plan, source),
        "-",
        f="null",
        **_video_options(plan, bitrate_bps=plan.video.bitrate_bps, pass_no=1, passlog=passlog),
        an=None,
    )
    audio_file: Path | None = None
    if plan.audio.mode == "encode":
        audio_file = run.work / "audio.m4a"
        first = ffmpeg_python.merge_outputs(
            first, ffmpeg_python.output(source["a:0"], ffmpeg.file_arg(audio_file), **_audio_options(plan))
        )
    ffmpeg.run(_compile(first), stage=_stage(run, "pass 1/2"), total_s=plan.duration_s, on_event=run.on_event)
    run.encodes += 1
    audio_bytes = _payload_bytes(audio_file) if audio_file else 0
    # The video gets exactly what the measured audio and the modelled overhead leave.
    bitrate = max(1000, math.floor((budget - plan.overhead_bytes - audio_bytes) * 8 / plan.duration_s))

    floor = math.ceil(hard_cap * USE_BUDGET_FLOOR)
    best: tuple[int, Path] | None = None  # the largest output so far that fits
    points: list[tuple[int, int]] = []  # (bitrate asked, size obtained) of each second pass
    attempts = MAX_SECOND_PASSES
    attempt = 0
    while attempt < attempts:
        attempt += 1
        out = run.work / f"output-{attempt}.mp4"
        options = _video_options(plan, bitrate_bps=bitrate, pass_no=2, passlog=passlog)
        label = "pass 2/2" if attempt == 1 else f"pass 2/2 (retry {attempt - 1})"
        result = ffmpeg.run(
            _compile(_video_output(plan, audio_file, out, options)),
            stage=_stage(run, label),
            total_s=plan.duration_s,
            on_event=run.on_event,
        )
        run.encodes += 1
        size = out.stat().st_size
        if size <= hard_cap:
            if best is None or size > best[0]:
                if best is not None:
                    best[1].unlink()
                best = (size, out)
            else:
                out.unlink()
            if size >= floor:
                return best[1]
            if _saturated(result.stderr) or _unmoved(points, bitrate, size):
                run.note(
                    f"the encoder reached lossless quality at {format_size(size)} "
                    f"({size / hard_cap:.0%} of the target): this video needs no more"
                )
                return best[1]
        # Re-aim from what this output really holds (its overhead measured, the audio known to the
        # byte), between the results so far when they bracket the window.
        points.append((bitrate, size))
        payload = _payload_bytes(out) if out.exists() else 0
        overhead = max(0, size - payload) if payload else plan.overhead_bytes
        aim = (floor + hard_cap) // 2
        next_bitrate = next_second_pass_bitrate(points, aim, fixed_bytes=overhead + audio_bytes)
        correction = next_bitrate / bitrate
        over = size > hard_cap
        if over:
            out.unlink()
            if attempt == attempts and best is None and attempts == MAX_SECOND_PASSES:
                attempts += 1  # nothing fits yet: one more, safer try rather than failing
                next_bitrate = math.floor(next_bitrate * 0.97)
        elif attempt == attempts:
            break
        run.note(
            f"second pass came out {format_size(size)}, "
            + ("over" if over else "well under")
            + f" the {format_size(hard_cap)} target: re-running it at {correction:.3f}x the bitrate"
        )
        bitrate = max(1000, next_bitrate)
    if best is None:
        raise EncodeError(
            f"could not fit {format_size(hard_cap)} after {attempts} second passes; "
            "try a slightly larger target"
        )
    run.note(
        f"output is {best[0] / hard_cap:.1%} of the target: the closest of {attempts} second passes that fits"
    )
    return best[1]


def next_second_pass_bitrate(points: list[tuple[int, int]], aim_bytes: int, *, fixed_bytes: int) -> int:
    """The bitrate for the next second pass, from the (bitrate, size) pairs seen so far.

    x264's size is not proportional to the bitrate asked, least of all on short clips where one
    keyframe is much of the file: so when earlier passes landed on both sides of the aim, interpolate
    between the nearest two (regula falsi); otherwise scale the video part (size minus the audio and
    container bytes, which do not move) by what it should have been.
    """
    below = [p for p in points if p[1] <= aim_bytes]
    above = [p for p in points if p[1] > aim_bytes]
    if below and above:
        lo = max(below, key=lambda p: p[1])
        hi = min(above, key=lambda p: p[1])
        if hi[1] != lo[1]:
            share = (aim_bytes - lo[1]) / (hi[1] - lo[1])
            return max(1000, math.floor(lo[0] + share * (hi[0] - lo[0])))
    bitrate, size = points[-1]
    video_actual = max(1, size - fixed_bytes)
    video_wanted = max(1, aim_bytes - fixed_bytes)
    return max(1000, math.floor(bitrate * video_wanted / video_actual))


_AVG_QP = re.compile(r"frame [IPB]:\s*\d+\s+Avg QP:\s*([\d.]+)")


def _saturated(stderr: str) -> bool:
    """x264 says every frame type was coded at a QP of about 2 or less: visually lossless already,
    more bitrate cannot buy anything visible."""
    qps = [float(q) for q in _AVG_QP.findall(stderr)]
    return bool(qps) and max(qps) < 2.0


def _unmoved(points: list[tuple[int, int]], bitrate: int, size: int) -> bool:
    """A clearly higher bitrate than an earlier pass gave the same size: the encoder is at its floor."""
    return any(bitrate > 1.1 * b and abs(size - s) <= 0.01 * s for b, s in points)


def _crf(run: _Run) -> Path:
    plan = run.plan
    out = run.work / "output.mp4"
    options = _video_options(plan, bitrate_bps=plan.video.bitrate_bps, pass_no=None, passlog=run.work / "x")
    stream = _video_output(plan, None, out, options)
    ffmpeg.run(_compile(stream), stage=_stage(run, "encode"), total_s=plan.duration_s, on_event=run.on_event)
    run.encodes += 1
    return out


def _remux(run: _Run) -> Path:
    plan = run.plan
    out = run.work / "output.mp4"
    streams = [_input(plan)["v:0"]]
    if plan.audio.mode != "none":
        streams.append(_input(plan)["a:0"])
    stream = ffmpeg_python.output(*streams, ffmpeg.file_arg(out), c="copy", **_metadata(plan))
    ffmpeg.run(_compile(stream), stage=_stage(run, "copy"), total_s=plan.duration_s, on_event=run.on_event)
    return out


# -- verification ----------------------------------------------------------------------------------


def _verify(path: Path, plan: Plan, run: _Run) -> MediaInfo:
    """The file decodes, has the expected streams and duration, and fits the target."""
    _stage(run, "verify")
    # One ffmpeg run reads the file back and decodes its first and last two seconds (a broken mux
    # shows there; a full decode would cost another pass); its report describes the streams.
    ffmpeg_bin = ffmpeg.find_ffmpeg()
    proc = ffmpeg.run_capture(
        [ffmpeg_bin, "-hide_banner", "-nostdin", "-loglevel", "level+info",
         "-t", "2", "-i", ffmpeg.file_arg(path), "-sseof", "-2", "-i", ffmpeg.file_arg(path),
         "-map", "0:v:0", "-map", "1:v:0", "-f", "null", "-"]
    )  # fmt: skip
    report = proc.stderr.decode("utf-8", "replace")
    try:
        info = from_ffmpeg_report(path, report)
    except Exception as exc:
        raise EncodeError(f"the encoded file does not read back: {exc}", stderr=report) from exc
    problems = [ln for ln in report.splitlines() if "[error]" in ln or "[fatal]" in ln]
    if proc.returncode != 0 or problems:
        raise EncodeError(
            f"the output does not decode cleanly: {ffmpeg.last_meaningful_lines(chr(10).join(problems))}",
            stderr=report,
        )
    cap = plan.request.target_size_bytes
    if cap is None and plan.video.mode == "crf":
        cap = plan.input.size_bytes
    if cap is not None and info.size_bytes > cap:
        raise EncodeError(f"the output is {format_size(info.size_bytes)}, over the {format_size(cap)} target")
    expected_codec = plan.video.codec
    if info.video is None or info.video.codec != expected_codec:
        raise EncodeError(f"the output has no {expected_codec} video stream")
    if (plan.audio.mode == "none") != (info.audio is None):
        raise EncodeError("the output's audio stream is not what was planned")
    if abs(info.duration_s - plan.duration_s) > max(DURATION_TOLERANCE_S, 2 / plan.video.fps):
        raise EncodeError(
            f"the output lasts {info.duration_s:.2f} s where {plan.duration_s:.2f} s were expected: "
            "the input is probably truncated or damaged"
        )
    with contextlib.suppress(Exception):
        run.on_event(StageStarted(stage="done", total_s=0))
    return info
