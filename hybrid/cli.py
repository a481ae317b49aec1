"""The command line: the only place that prints, draws progress bars or exits.

Every HybridError becomes one line on stderr and its documented exit code (see ``errors.py``);
Ctrl-C and SIGTERM exit 130 after the core has cleaned up.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, TypeVar

import click
from tqdm import tqdm

from . import __version__, local, planner
from .errors import HybridError, Interrupted
from .models import Event, Message, Plan, Progress, Request, Result, Source, StageStarted, to_jsonable
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


def render_plan(plan: Plan) -> str:
    v, a, r = plan.video, plan.audio, plan.request
    lines = [f"Input    {describe_input(plan)}"]
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
    lines.append("Route    local (ffmpeg on this machine)")
    lines.append("Why      " + "\n         ".join(f"- {reason}" for reason in plan.reasons))
    return "\n".join(lines)


def plan_json(plan: Plan) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(plan)
    data["route"] = {"path": "local", "reason": "local execution (the only path in this version)"}
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
        f"{format_duration(result.elapsed_s)}"
    )


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
            help="x264 preset (default medium).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages."),
        click.option("--verbose", "-v", is_flag=True, help="Log the ffmpeg command lines."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_request(params: dict[str, Any]) -> Request:
    sources: dict[str, Source] = {}
    fields: dict[str, Any] = {}
    if params.get("target") is not None:
        fields["target_size_bytes"] = params["target"]
    if params.get("resolution") is not None:
        short, long = params["resolution"]
        fields["max_height"] = short
        if long:
            fields["max_width"] = long
    if params.get("max_height") is not None:
        fields["max_height"] = params["max_height"]
    if params.get("fps") is not None:
        fields["fps"] = params["fps"]
    if params.get("no_audio"):
        fields["audio"] = "remove"
    if params.get("audio_bitrate") is not None:
        fields["audio_bitrate_bps"] = params["audio_bitrate"]
    if params.get("preset") is not None:
        fields["preset"] = params["preset"]
    for name in fields:
        sources[name] = "option"
    return Request(**fields, sources=sources)


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
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@request_options
def plan(input_path: Path, as_json: bool, quiet: bool, verbose: bool, **params: Any) -> None:
    """Show how INPUT would be compressed, without encoding anything."""
    _setup_logging(verbose)
    request = build_request(params)
    the_plan = planner.plan(probe(input_path), request)
    if as_json:
        click.echo(json.dumps(plan_json(the_plan), indent=2))
    else:
        click.echo(render_plan(the_plan))


@cli.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Where to write (default: INPUT-compressed.mp4 beside the input).",
)
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@request_options
def compress(
    input_path: Path,
    output: Path | None,
    overwrite: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    **params: Any,
) -> None:
    """Compress INPUT to an H.264 MP4 that fits the target."""
    _setup_logging(verbose)
    request = build_request(params)
    info = probe(input_path)
    the_plan = planner.plan(info, request)
    bars = not quiet and not as_json and sys.stdout.isatty() and sys.stderr.isatty()
    if not quiet and not as_json:
        click.echo(render_plan(the_plan), err=not sys.stdout.isatty())
    drawer = ProgressDrawer(bars=bars, quiet=quiet)
    try:
        result = local.compress(
            input_path, request, output, overwrite=overwrite, on_event=drawer, info=info, plan=the_plan
        )
    finally:
        drawer.close()
    if as_json:
        click.echo(json.dumps(result_json(result), indent=2))
    elif not quiet:
        click.echo(render_result(result))


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
