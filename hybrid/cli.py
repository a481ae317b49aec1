"""The command line: the only place that prints, draws progress bars or exits.

Every HybridError becomes one line on stderr and its documented exit code (see ``errors.py``);
Ctrl-C and SIGTERM exit 130 after the core has cleaned up.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

import click
from tqdm import tqdm

from . import __version__, batch, batch_cli, dispatch, local, planner, profiles, quality, router
from .batch import MEDIA_SUFFIXES  # a last positional with one of these suffixes is never an instruction
from .cloud.commands import COMMANDS as CLOUD_COMMANDS
from .cloud.commands import cloud_options, pop_cloud_params, run_cloud_compress
from .errors import HybridError, Interrupted
from .intent import Intent, build_request, parse_instruction
from .models import Event, MediaInfo, Message, Plan, Progress, Request, Result, StageStarted, to_jsonable
from .probe import probe
from .units import format_bitrate, format_duration, format_size, format_size_both, parse_bitrate, parse_size

log = logging.getLogger("hybrid")

F = TypeVar("F", bound=Callable[..., Any])


# -- parameter types -------------------------------------------------------------------------------


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class BitrateType(click.ParamType):  # type: ignore[type-arg]
    name = "bitrate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_bitrate(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class ResolutionType(click.ParamType):  # type: ignore[type-arg]
    """``720p``, ``720``, ``4k`` or ``1920x1080`` -> (short side, long side or None)."""

    name = "resolution"
    NAMED: ClassVar[dict[str, int]] = {
        "4k": 2160,
        "uhd": 2160,
        "2k": 1440,
        "qhd": 1440,
        "fhd": 1080,
        "hd": 720,
        "sd": 480,
    }

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[int, int | None]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text in self.NAMED:
            return self.NAMED[text], None
        if "x" in text:
            try:
                a, b = (int(x) for x in text.split("x", 1))
            except ValueError:
                self.fail(f"not a resolution: {value!r} (try 720p or 1280x720)", param, ctx)
            if a <= 0 or b <= 0:
                self.fail(f"not a resolution: {value!r}", param, ctx)
            return min(a, b), max(a, b)
        try:
            short = int(text.rstrip("p"))
        except ValueError:
            self.fail(f"not a resolution: {value!r} (try 720p, 1080, 4k or 1280x720)", param, ctx)
        if short < 16:
            self.fail(f"{value!r} is too small a resolution", param, ctx)
        return short, None


SIZE, BITRATE, RESOLUTION = SizeType(), BitrateType(), ResolutionType()


# -- output ---------------------------------------------------------------------------------------


class TqdmHandler(logging.Handler):
    """Log lines written through tqdm so progress bars are not torn."""

    def emit(self, record: logging.LogRecord) -> None:
        tqdm.write(self.format(record), file=sys.stderr)


class ProgressDrawer:
    """Turns the core's events into tqdm bars (one per stage) and messages."""

    def __init__(self, *, bars: bool, quiet: bool) -> None:
        self.bars = bars
        self.quiet = quiet
        self.bar: tqdm | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            self.close()
            if self.bars and event.total_s > 0:
                self.bar = tqdm(
                    total=round(event.total_s, 2),
                    desc=f"{event.stage:<14}",
                    unit="s",
                    file=sys.stderr,
                    leave=False,
                    dynamic_ncols=True,
                    bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                    "[{elapsed}<{remaining}]",
                )
        elif isinstance(event, Progress):
            if self.bar is not None:
                self.bar.n = round(min(event.done_s, self.bar.total), 2)
                self.bar.refresh()
        elif isinstance(event, Message) and not self.quiet:
            tqdm.write(f"hybrid: {event.text}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def describe_input(plan: Plan) -> str:
    info = plan.input
    v = info.video
    assert v is not None
    parts = [f"{v.display_width}x{v.display_height}", f"{v.fps:g} fps", v.codec]
    if v.rotation:
        parts.append(f"rotated {v.rotation}°")
    audio = "no audio"
    if info.audio:
        rate = f" {format_bitrate(info.audio.bitrate_bps)}" if info.audio.bitrate_bps else ""
        audio = f"{info.audio.codec} {info.audio.channels}ch{rate}"
    return (
        f"{info.path.name}: {', '.join(parts)}; {audio}; "
        f"{format_duration(info.duration_s)}, {format_size(info.size_bytes)}"
    )


def render_plan(plan: Plan, decision: dispatch.Decision | None = None) -> str:
    v, a, r = plan.video, plan.audio, plan.request
    lines = [f"Input    {describe_input(plan)}"]
    asked = describe_request(r)
    if asked:
        lines.append(f"Asked    {asked}")
    target = format_size_both(r.target_size_bytes) if r.target_size_bytes else "none (quality-based)"
    lines.append(f"Target   {target}")
    if v.mode == "copy":
        lines.append(f"Video    copy (no re-encode), {v.width}x{v.height} @ {v.fps:g} fps")
    elif v.mode == "crf":
        cap = f", capped at {format_bitrate(v.bitrate_bps)}" if v.bitrate_bps else ""
        lines.append(
            f"Video    {v.encoder} CRF {v.crf}{cap}, {v.width}x{v.height} @ {v.fps:g} fps, "
            f"preset {v.preset}, 1 pass"
        )
    else:
        lines.append(
            f"Video    {v.encoder} two-pass at {format_bitrate(v.bitrate_bps or 0)}, "
            f"{v.width}x{v.height} @ {v.fps:g} fps, preset {v.preset}"
        )
    if a.mode == "none":
        lines.append("Audio    none")
    elif a.mode == "copy":
        lines.append(f"Audio    copy ({a.codec})")
    else:
        lines.append(
            f"Audio    AAC-LC {format_bitrate(a.bitrate_bps or 0)}, {a.channels}ch, "
            f"{(a.sample_rate or 0) / 1000:g} kHz"
        )
    if plan.trim_start_s is not None or plan.trim_end_s is not None:
        lines.append(
            f"Trim     {format_duration(plan.trim_start_s or 0)} to "
            f"{format_duration(plan.trim_end_s or plan.input.duration_s)}"
        )
    predicted = "at most " if v.mode != "two-pass" else "~"
    lines.append(
        f"Size     {predicted}{format_size_both(plan.predicted_size_bytes)} predicted "
        f"(container overhead ~{format_size(plan.overhead_bytes)})"
    )
    if plan.quality is not None:
        lines.append(f"Quality  {describe_quality(plan)}")
    lines.append("Route    " + (describe_route(decision) if decision else "local (ffmpeg on this machine)"))
    lines.append("Why      " + "\n         ".join(f"- {reason}" for reason in plan.reasons))
    return "\n".join(lines)


def describe_route(decision: dispatch.Decision) -> str:
    """The route line: both estimates, what was chosen and why (and what the estimate rests on)."""
    text = router.describe(decision.route, decision.resources.logical_cores)
    if decision.estimates.local_basis == "prior":
        text += "; local estimate rough (x264 not yet measured here: hybrid plan --calibrate)"
    return text


def describe_quality(plan: Plan) -> str:
    """The quality target and the search's outcome, on one line."""
    q = plan.quality
    assert q is not None
    asked = f"VMAF ≥ {q.target_vmaf:g}" + (f" ({q.level})" if q.level else "")
    if q.outcome == "not-searched" or q.search is None:
        return f"{asked}; not searched"
    s = q.search
    how = "the whole input" if s.whole_input else f"{s.samples} samples, {s.sample_s:g} s"
    searched = f"search: {len(s.probes)} probes on {how}, {s.elapsed_s:.1f} s" + (
        f" (capped at {s.time_cap_s:.1f} s)" if s.capped else f" (cap {s.time_cap_s:.1f} s)"
    )
    found = f"CRF {q.crf} reaches it" if q.crf is not None else "no CRF tried reaches it"
    expected = f"VMAF ~{q.expected_vmaf:.1f} expected" if q.expected_vmaf is not None else "VMAF unknown"
    needed = f"; needs ~{format_size(q.needed_size_bytes)}" if q.needed_size_bytes else ""
    return f"{asked}; {found}{needed}; {q.outcome}, {expected} (estimate); {searched}"


def _setting_text(r: Request, name: str) -> str | None:
    """How one Request setting reads in the plan, or None when it says nothing."""
    start, end = r.trim_start_s, r.trim_end_s
    texts: dict[str, str | None] = {
        "profile": r.profile,
        "target_size_bytes": format_size(r.target_size_bytes) if r.target_size_bytes else None,
        "max_height": (f"{r.max_width}x{r.max_height} box" if r.max_width else f"{r.max_height}p")
        if r.max_height
        else "source resolution",
        "fps": f"≤{r.fps:g} fps" if r.fps else None,
        "codec": r.codec,
        "audio": "no audio" if r.audio == "remove" else "keep audio",
        "audio_bitrate_bps": f"audio ≤{format_bitrate(r.audio_bitrate_bps)}" if r.audio_bitrate_bps else None,
        "quality": f"quality {r.quality}" if r.quality else None,
        "min_vmaf": f"VMAF ≥{r.min_vmaf:g}" if r.min_vmaf is not None else None,
        "trim_start_s": None
        if not start
        else f"from {format_duration(start)}"
        if start >= 0
        else f"the last {format_duration(-start)}",
        "trim_end_s": None
        if end is None
        else f"to {format_duration(end)}"
        if end >= 0
        else f"cut the last {format_duration(-end)}",
        "preset": f"preset {r.preset}",
    }
    return texts.get(name)


def describe_request(request: Request) -> str:
    """The settings that did not come from defaults, each with its origin: "25.00 MB (instruction)"."""
    parts = []
    for name in (
        "profile", "target_size_bytes", "max_height", "fps", "codec", "audio", "audio_bitrate_bps",
        "quality", "min_vmaf", "trim_start_s", "trim_end_s", "preset",
    ):  # fmt: skip
        source = request.sources.get(name, "default")
        text = _setting_text(request, name)
        if source != "default" and text is not None:
            parts.append(f"{text} ({source})")
    return ", ".join(parts)


def plan_json(plan: Plan, decision: dispatch.Decision | None = None) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(plan)
    if decision is None:
        data["route"] = {"path": "local", "reason": "not routed"}
        return data
    r, est = decision.route, decision.estimates
    data["route"] = {
        "path": r.path,
        "reason": r.reason,
        "local_estimate_s": r.local_estimate_s,
        "cloud_estimate_s": r.cloud_estimate_s,
        "local_basis": est.local_basis,
        "cloud_upload_s": r.cloud_upload_s,
        "local_problem": r.local_problem,
        "cloud_problem": r.cloud_problem,
        "cloud_reachable": decision.resources.cloud.reachable,
    }
    return data


def result_json(result: Result) -> dict[str, Any]:
    return {
        "output": str(result.output),
        "size_bytes": result.size_bytes,
        "target_size_bytes": result.target_size_bytes,
        "duration_s": result.duration_s,
        "elapsed_s": result.elapsed_s,
        "path": result.path,
        "mode": result.mode,
        "encodes": result.encodes,
        "video": {"codec": result.video_codec, "width": result.width, "height": result.height},
        "audio": {"codec": result.audio_codec},
        "notes": list(result.notes),
        "vmaf": result.vmaf,
        "vmaf_method": result.vmaf_method,
        "route_reason": result.route_reason,
        "fell_back_from": result.fell_back_from,
        "fallback_reason": result.fallback_reason,
    }


def render_result(result: Result) -> str:
    share = ""
    if result.target_size_bytes:
        ratio = result.size_bytes / result.target_size_bytes
        share = f" ({ratio:.1%} of the {format_size(result.target_size_bytes)} target)"
    return (
        f"{result.output}: {format_size(result.size_bytes)}{share}, {result.width}x{result.height}, "
        f"{format_duration(result.duration_s)}, {result.video_codec}"
        f"{'+' + result.audio_codec if result.audio_codec else ''}; "
        f"{result.mode}, {result.encodes} encode{'s' if result.encodes != 1 else ''}, "
        f"{format_duration(result.elapsed_s)}" + _vmaf_text(result) + _moved_text(result)
    )


def _moved_text(result: Result) -> str:
    if result.fell_back_from is None:
        return ""
    return f"; made on the {result.path} path after the {result.fell_back_from} path failed"


def _vmaf_text(result: Result) -> str:
    if result.vmaf is None:
        return ""
    if result.vmaf_method == "measured-full":
        return f"; VMAF {result.vmaf:.1f} (measured on the whole file)"
    return f"; VMAF ~{result.vmaf:.1f} (estimate from samples; --measure for the whole file)"


# -- options shared by plan and compress -----------------------------------------------------------


def request_options(func: F) -> F:
    options = [
        click.option("--target", "-t", type=SIZE, help="Size ceiling: 25MB, 49.5MB, 24MiB, 800KB, bytes."),
        click.option(
            "--max-height",
            type=click.IntRange(16, 8640),
            help="Largest short side, as in 720p (a portrait video counts its width).",
        ),
        click.option(
            "--resolution", type=RESOLUTION, help="720p, 1080, 4k or 1920x1080 (a box, either way up)."
        ),
        click.option("--fps", type=click.FloatRange(1, 240, min_open=False), help="Frame rate cap."),
        click.option("--no-audio", is_flag=True, help="Drop the audio."),
        click.option("--audio-bitrate", type=BITRATE, help="Audio bitrate cap, e.g. 96k."),
        click.option(
            "--preset",
            type=click.Choice(
                [
                    "ultrafast",
                    "superfast",
                    "veryfast",
                    "faster",
                    "fast",
                    "medium",
                    "slow",
                    "slower",
                    "veryslow",
                ]
            ),
            default=None,
            help="Encoder speed preset (default medium; mapped onto SVT-AV1's numbers for AV1).",
        ),
        click.option(
            "--codec", type=click.Choice(["h264", "hevc", "av1"]), help="Video codec (default h264)."
        ),
        click.option(
            "--quality",
            type=click.Choice(list(planner.QUALITY_VMAF)),
            help="Quality to reach when the size allows it: "
            + ", ".join(f"{name} (VMAF {vmaf:g})" for name, vmaf in planner.QUALITY_VMAF.items())
            + "; a sample search finds the encode that reaches it.",
        ),
        click.option(
            "--min-vmaf",
            type=click.FloatRange(1, 100),
            metavar="N",
            help="Custom quality floor as a VMAF score (0-100), e.g. 95; wins over --quality.",
        ),
        click.option(
            "--profile", "profile_name", metavar="NAME", help="Platform profile (see: hybrid profiles)."
        ),
        click.option(
            "--prompt", metavar="TEXT", help='The instruction, e.g. "under 25MB for Discord, no audio".'
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages."),
        click.option("--verbose", "-v", is_flag=True, help="Log the ffmpeg command lines."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def option_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The Request settings given as explicit command-line options (and only those)."""
    out: dict[str, Any] = {}
    if params.get("target") is not None:
        out["target_size_bytes"] = params["target"]
    if params.get("resolution") is not None:
        out["max_height"], out["max_width"] = params["resolution"]
    if params.get("max_height") is not None:
        out["max_height"] = params["max_height"]
    if params.get("fps") is not None:
        out["fps"] = params["fps"]
    if params.get("no_audio"):
        out["audio"] = "remove"
    if params.get("audio_bitrate") is not None:
        out["audio_bitrate_bps"] = params["audio_bitrate"]
    if params.get("min_vmaf") is not None:
        out["min_vmaf"] = params["min_vmaf"]
    for name in ("preset", "codec", "quality"):
        if params.get(name) is not None:
            out[name] = params[name]
    return out


def looks_like_instruction(text: str) -> bool:
    """Not an existing path and no media file extension: the words of an instruction."""
    # os.path.exists, not Path.exists: a path we may not look into is "not known to exist" here, and
    # the input check then says "permission denied" instead of a traceback.
    return not os.path.exists(text) and Path(text).suffix.lower() not in MEDIA_SUFFIXES


def split_arguments(args: tuple[str, ...], prompt: str | None) -> tuple[Path, str | None]:
    """``INPUT [INSTRUCTION]`` -> the input path and the instruction (positional or ``--prompt``)."""
    if not args:
        raise click.UsageError("missing INPUT: the video file to work on")
    positional = list(args)
    instruction = None
    if len(positional) >= 2 and looks_like_instruction(positional[-1]):
        instruction = positional.pop()
    if len(positional) > 1:
        raise click.UsageError(
            f"one INPUT at a time ({len(positional)} given); quote the instruction as one argument"
        )
    if len(args) == 1 and looks_like_instruction(args[0]) and " " in args[0].strip():
        raise click.UsageError(f"missing INPUT before the instruction {args[0]!r}")
    if prompt is not None:
        if instruction is not None:
            raise click.UsageError("give the instruction once: as the last argument or with --prompt")
        instruction = prompt
    return Path(positional[0]), instruction


def split_inputs(
    args: tuple[str, ...], prompt: str | None, *, manifest: bool
) -> tuple[list[str], str | None]:
    """``INPUT... [INSTRUCTION]`` -> the inputs (files, folders, globs) and the instruction.

    As :func:`split_arguments`, for any number of inputs: the last argument is the instruction when it
    is not an existing path, has no media extension and is not a glob that matches something.
    """
    if not args and not manifest:
        raise click.UsageError("missing INPUT: the video file to work on")
    positional = list(args)
    instruction = None
    last = positional[-1] if positional else ""
    if (len(positional) >= 2 or (manifest and positional)) and _is_instruction(last):
        instruction = positional.pop()
    if len(args) == 1 and not manifest and _is_instruction(args[0]) and " " in args[0].strip():
        raise click.UsageError(f"missing INPUT before the instruction {args[0]!r}")
    if prompt is not None:
        if instruction is not None:
            raise click.UsageError("give the instruction once: as the last argument or with --prompt")
        instruction = prompt
    return positional, instruction


def _is_instruction(text: str) -> bool:
    return looks_like_instruction(text) and not (batch.has_glob(text) and glob.glob(text))


def is_batch(inputs: list[str], *, manifest: bool, output_dir: bool, recursive: bool) -> bool:
    """Anything that can name more than one file is a batch (a list in --json); one plain file is not."""
    if manifest or output_dir or recursive or len(inputs) != 1:
        return True
    only = inputs[0]
    return os.path.isdir(only) or (batch.has_glob(only) and not os.path.lexists(only))


@dataclass(frozen=True)
class Job:
    """What the plan and compress commands work out before planning."""

    info: MediaInfo
    request: Request
    intent: Intent | None
    profile: profiles.Profile | None


def prepare(input_path: Path, instruction: str | None, params: dict[str, Any]) -> Job:
    """Probe the input, understand the instruction, pick the profile, merge it all into a Request."""
    table = profiles.load_profiles()
    intent = (
        parse_instruction(instruction, aliases=profiles.alias_table(table))
        if instruction is not None
        else None
    )
    options = option_settings(params)
    name = params.get("profile_name") or (intent.profile if intent else None)
    profile = profiles.get_profile(name, table) if name else None
    if params.get("profile_name"):
        options["profile"] = profile.name if profile else None
    info = probe(input_path)
    request = build_request(options, intent, profile, input_size_bytes=info.size_bytes)
    return Job(info=info, request=request, intent=intent, profile=profile)


def plan_job(
    job: Job, quiet: bool, *, on_event: Callable[[Event], None] | None = None, search: bool = True
) -> Plan:
    """Plan the job; refuse what the profile forbids (too long), warn where an override exceeds it.

    With a quality target (and ``search``), a sample search runs first: its progress goes to
    ``on_event`` and its outcome into the plan.
    """
    if search and planner.target_vmaf(job.request) is not None:
        the_plan = quality.plan_with_quality(job.info, job.request, on_event=on_event or (lambda _: None))
    else:
        the_plan = planner.plan(job.info, job.request)
    if job.profile is not None:
        profiles.check_duration(job.profile, the_plan.duration_s)
        target = job.request.target_size_bytes
        if target is not None and target > job.profile.max_bytes and not quiet:
            origin = job.request.sources.get("target_size_bytes")
            click.echo(
                f"hybrid: note: the {format_size(target)} target (from the {origin}) is over the "
                f"{job.profile.name} limit of {format_size(job.profile.max_bytes)}",
                err=True,
            )
    return the_plan


def _setup_logging(verbose: bool) -> None:
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("hybrid: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.WARNING)
    log.propagate = False


# -- commands -------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hybrid")
def cli() -> None:
    """Compress videos to a size you name, locally with ffmpeg.

    \b
    hybrid compress trip.mov --target 25MB -o trip-small.mp4
    hybrid plan trip.mov --target 25MB          # what would happen, nothing encoded
    """


@cli.command()
@click.argument("args", metavar="INPUT [INSTRUCTION]", nargs=-1)
@click.option(
    "--calibrate",
    is_flag=True,
    help="Measure x264's speed on this machine now if not yet done (a few seconds, cached), so the "
    "local estimate is measured rather than rough.",
)
@request_options
@cloud_options
def plan(
    args: tuple[str, ...],
    prompt: str | None,
    calibrate: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **params: Any,
) -> None:
    """Show how INPUT would be compressed, without encoding it.

    With a quality target (--quality, --min-vmaf, "without losing quality") a few short samples are
    encoded and scored first, as compress would, so the plan shows the CRF and VMAF to expect.

    INSTRUCTION says what you want in plain words: "under 25MB for Discord, no audio".
    """
    _setup_logging(verbose)
    path = pop_cloud_params(params)
    input_path, instruction = split_arguments(args, prompt)
    job = prepare(input_path, instruction, params)
    drawer = ProgressDrawer(bars=not quiet and not as_json and sys.stderr.isatty(), quiet=quiet or as_json)
    try:
        the_plan = plan_job(job, quiet or as_json, on_event=drawer)
    finally:
        drawer.close()
    decision = dispatch.decide(
        the_plan, input_path.parent, forced=path.forced, cloud_url=path.cloud_url,
        max_wait_s=path.max_wait_s, calibrate=calibrate or None,
    )  # fmt: skip
    if as_json:
        data = plan_json(the_plan, decision)
        if job.intent is not None:
            data["instruction"] = {"text": instruction, "understood": list(job.intent.phrases)}
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_plan(the_plan, decision))


@cli.command()
@click.argument("args", metavar="INPUT... [INSTRUCTION]", nargs=-1)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Where to write (default: INPUT-compressed.mp4 beside the input).",
)
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option(
    "--measure",
    is_flag=True,
    help="Measure the output's VMAF on the whole file (a full decode) instead of the samples' estimate.",
)
@click.option(
    "--output-dir",
    "-d",
    type=click.Path(path_type=Path, file_okay=False),
    help="Batch: write every output into this folder (created if missing) as NAME.mp4.",
)
@click.option("--recursive", "-r", is_flag=True, help="Batch: look for videos in subfolders too.")
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Batch: a .csv or .toml listing path, instruction and (optionally) output per file.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 64),
    default=None,
    help="Batch: files encoded at once (default: 2 with 2+ cores and the memory for it, else 1).",
)
@request_options
@cloud_options
def compress(
    args: tuple[str, ...],
    prompt: str | None,
    output: Path | None,
    overwrite: bool,
    measure: bool,
    output_dir: Path | None,
    recursive: bool,
    manifest: Path | None,
    jobs: int | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **params: Any,
) -> None:
    """Compress INPUT to an MP4 that fits the target; or many: files, folders, globs, a --manifest.

    INSTRUCTION says what you want in plain words: "under 25MB for Discord, no audio", "half the size",
    "first 30 seconds at 720p", "压缩到50MB以下". Options given explicitly win over it.
    """
    _setup_logging(verbose)
    path = pop_cloud_params(params)
    inputs, instruction = split_inputs(args, prompt, manifest=manifest is not None)
    if is_batch(
        inputs, manifest=manifest is not None, output_dir=output_dir is not None, recursive=recursive
    ):
        if output is not None:
            raise click.UsageError("-o names one output: for several inputs use -d OUTDIR")
        batch_cli.run_batch(
            inputs=inputs, instruction=instruction, manifest=manifest, recursive=recursive,
            output_dir=output_dir, overwrite=overwrite,
            settings=batch.Settings(option_settings(params), params.get("profile_name"), measure),
            workers=jobs, as_json=as_json, quiet=quiet, result_json=result_json,
            cloud=path.cloud, cloud_url=path.cloud_url,
        )  # fmt: skip
        return
    input_path = Path(inputs[0])
    job = prepare(input_path, instruction, params)
    info, request = job.info, job.request
    bars = not quiet and not as_json and sys.stdout.isatty() and sys.stderr.isatty()
    drawer = ProgressDrawer(bars=bars, quiet=quiet)
    try:
        # The quality search runs here, locally, before the plan is shown; a render node decides
        # its own encode, so the cloud path gets the plan without one.
        the_plan = plan_job(job, quiet or as_json, on_event=drawer, search=not path.cloud)
    finally:
        drawer.close()
    decision = dispatch.decide(
        the_plan, (output or input_path).parent, forced=path.forced, cloud_url=path.cloud_url,
        max_wait_s=path.max_wait_s,
    )  # fmt: skip
    if not quiet and not as_json:
        click.echo(render_plan(the_plan, decision), err=not sys.stdout.isatty())

    def run_cloud(sink: Callable[[Event], None]) -> Result:
        return run_cloud_compress(
            input_path, request, output, overwrite=overwrite, drawer=sink, bars=bars, quiet=quiet,
            cloud_url=path.cloud_url, info=info, plan=the_plan,
        )  # fmt: skip

    def run_local(sink: Callable[[Event], None]) -> Result:
        return local.compress(
            input_path, request, output, overwrite=overwrite, on_event=sink, info=info, plan=the_plan,
            measure=measure,
        )  # fmt: skip

    try:
        result = dispatch.execute(
            decision, the_plan, run_local=run_local, run_cloud=run_cloud, on_event=drawer,
            record_speed=not measure,
        )  # fmt: skip
    finally:
        drawer.close()
    if as_json:
        click.echo(json.dumps(result_json(result), indent=2))
    elif not quiet:
        click.echo(render_result(result))


@cli.command(name="profiles")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def list_profiles(as_json: bool) -> None:
    """List the platform profiles (bundled, and yours in the config dir's profiles/ folder)."""
    table = profiles.load_profiles()
    if as_json:
        click.echo(json.dumps({name: to_jsonable(p) for name, p in sorted(table.items())}, indent=2))
        return
    for profile in sorted(table.values(), key=lambda p: p.name):
        click.echo(profiles.describe(profile))
    click.echo(f"\nYour own profiles go in {profiles.user_profiles_dir()} (same keys; same name replaces).")


for _command in CLOUD_COMMANDS:  # credits, status, login, logout, serve (hybrid/cloud/commands.py)
    cli.add_command(_command)


# -- entry point ----------------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Interrupted("terminated")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to one line and an exit code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(args=argv, prog_name="hybrid", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("hybrid: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, Interrupted):
        click.echo("hybrid: interrupted; nothing was left behind", err=True)
        sys.exit(130)
    except HybridError as exc:
        click.echo(f"hybrid: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # a bug: say so in one line, keep the traceback for --debug
        if os.environ.get("HYBRID_DEBUG"):
            raise
        click.echo(
            f"hybrid: internal error: {type(exc).__name__}: {exc} "
            "(set HYBRID_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)
