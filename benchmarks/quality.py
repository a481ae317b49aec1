"""Quality mode: hybrid's "visually lossless under a target" against a plain two-pass at the target.

For each clip in shared/media, plus a longer input made by looping one of them, two targets:

- **generous**: twice what the clip needs for VMAF 95 (the size hybrid's sample search predicts for
  the quality CRF, measured beforehand in a separate search whose cache is then dropped);
- **tight**: 40 % of that, so the quality cannot be reached (raised to 1.3x the smallest target hybrid
  accepts for the clip, so that the case is not simply refused).

Two ways to meet each target:

- **hybrid**: ``hybrid.compress(clip, Request(target_size_bytes=..., quality="visually-lossless"))``:
  the sample search, then a capped CRF encode or a two-pass at the target;
- **plain**: the ffmpeg wiki's two-pass at ``target * 8 / duration - audio`` with AAC audio at 128 kb/s,
  or at an eighth of the total when 128 kb/s would leave the video less than three quarters of it (what
  a careful user does at a tight target; the wiki's fixed 128 kb/s makes small targets impossible),
  same preset and binary.

Both outputs are scored the same way: full-file VMAF (vmaf_v0.6.1) against the source at the source's
picture size, frames aligned as :func:`hybrid.quality.measure_vmaf` does it (equal frame counts
compared frame by frame). Per case: sizes, VMAF (and hybrid's own sample estimate), wall times,
hybrid's search time and its share of the encode time.

    python -m benchmarks.quality              # all clips and the long input, preset medium
    python -m benchmarks.quality --quick      # 3 short clips, preset veryfast
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hybrid
from hybrid import HybridError, PlanError, Request, planner, quality
from hybrid.models import Event, StageStarted

from . import common

NAME = "quality"
LEVEL = "visually-lossless"
GENEROUS = 2.0  # x what the clip needs
TIGHT = 0.4
TIGHT_MIN_SIZE_FACTOR = 1.3
QUICK_CLIPS = ("motion-320p.mov", "phone-1080p-short.mp4", "ball-576p.mp4")
LONG_SOURCE = "phone-720p-hello.mp4"
LONG_LOOPS = 7  # 8 plays of 8.3 s: about a minute
PLAIN_AUDIO_BPS = 128_000
SEARCH_SHARE_GOAL = 0.25
TIGHT_VMAF_GOAL = 1.0


def build_long_input(work: Path) -> Path:
    """A minute of phone footage: one clip played eight times, streams copied (no re-encode)."""
    source = common.MEDIA_DIR / LONG_SOURCE
    out = work / f"long-{source.stem}-x{LONG_LOOPS + 1}.mp4"
    subprocess.run(
        [
            *(common.require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-stream_loop", str(LONG_LOOPS)),
            *("-i", str(source), "-c", "copy", "-movflags", "+faststart", str(out)),
        ],
        check=True,
    )
    return out


def full_vmaf(output: Path, source: Path, info: hybrid.MediaInfo) -> tuple[float, str, float]:
    """Whole-file VMAF of ``output`` against ``source``: (score, alignment, seconds it took)."""
    width, height, fps = planner.requested_picture(info, Request())
    align = quality.alignment_for(output, source)
    started = time.perf_counter()
    score = quality.measure_vmaf(
        output,
        source,
        width=width,
        height=height,
        fps=fps,
        subsample=quality.subsample_for(fps, quality.MEASURE_SCORED_FPS),
        align=align,
    )
    return round(score, 2), align, round(time.perf_counter() - started, 2)


def needs_bytes(info: hybrid.MediaInfo, preset: str) -> dict[str, Any]:
    """What the clip needs for the level: the search's predicted size at its quality CRF."""
    quality.clear_cache()
    started = time.perf_counter()
    plan = quality.plan_with_quality(info, Request(quality=LEVEL, preset=preset))
    q = plan.quality
    quality.clear_cache()  # the measured runs must pay for their own search
    return {
        "needs_bytes": plan.predicted_size_bytes if q is not None and q.crf is not None else None,
        "min_size_bytes": plan.min_size_bytes,
        "crf": q.crf if q is not None else None,
        "search_s": round(time.perf_counter() - started, 2),
    }


def stage_times(started: float, marks: list[tuple[str, float]], ended: float) -> dict[str, float]:
    stages: dict[str, float] = {}
    bounds = [("setup", started), *marks, ("end", ended)]
    for (name, begin), (_, end) in itertools.pairwise(bounds):
        key = "place" if name == "done" else name
        stages[key] = round(stages.get(key, 0.0) + end - begin, 3)
    return stages


def run_hybrid(clip: Path, info: hybrid.MediaInfo, target: int, preset: str, work: Path) -> dict[str, Any]:
    out = work / "hybrid.mp4"
    marks: list[tuple[str, float]] = []

    def on_event(event: Event) -> None:
        # The search announces itself again once it has measured the encoder's speed: one stage.
        if isinstance(event, StageStarted) and not (marks and marks[-1][0] == event.stage):
            marks.append((event.stage, time.perf_counter()))

    quality.clear_cache()
    request = Request(target_size_bytes=target, quality=LEVEL, preset=preset)
    started = time.perf_counter()
    try:
        result, timing = common.timed(lambda: hybrid.compress(clip, request, out, on_event=on_event))
    except PlanError as exc:
        return {"status": "refused", "message": str(exc)}
    except HybridError as exc:
        return {"status": "error", "error": type(exc).__name__, "message": str(exc)}
    stages = stage_times(started, marks, started + timing.wall_s)
    search_s = stages.get(quality.STAGE, 0.0)
    encode_s = round(sum(t for name, t in stages.items() if name.startswith(("pass", "encode"))), 3)
    vmaf, align, vmaf_s = full_vmaf(out, clip, info)
    record = {
        "status": "ok",
        "size_bytes": out.stat().st_size,
        "size_ratio": round(out.stat().st_size / target, 4),
        "over_target": out.stat().st_size > target,
        "mode": result.mode,
        "encodes": result.encodes,
        "width": result.width,
        "height": result.height,
        "vmaf": vmaf,
        "vmaf_estimate": result.vmaf,
        "alignment": align,
        "vmaf_measure_s": vmaf_s,
        "wall_s": timing.wall_s,
        "child_cpu_s": timing.child_cpu_s,
        "search_s": search_s,
        "encode_s": encode_s,
        "search_share_of_encode": round(search_s / encode_s, 3) if encode_s else None,
        "stages_s": stages,
        "notes": list(result.notes),
    }
    out.unlink()
    return record


def plain_audio_bps(target: int, duration_s: float, has_audio: bool) -> int:
    total = target * 8 / duration_s
    if not has_audio:
        return 0
    if total / 4 >= PLAIN_AUDIO_BPS:
        return PLAIN_AUDIO_BPS
    return max(16_000, round(total / 8 / 1000) * 1000)


def plain_two_pass(
    ffmpeg_exe: str, clip: Path, video_bps: int, audio_bps: int, preset: str, out: Path
) -> None:
    """The ffmpeg wiki's two-pass, run in ``out``'s folder so its pass logs land there."""
    common_args = [ffmpeg_exe, "-nostdin", "-hide_banner", "-y", "-i", str(clip)]
    video = ["-c:v", "libx264", "-preset", preset, "-b:v", str(video_bps)]
    pass1 = [*common_args, *video, "-pass", "1", "-an", "-f", "null", "/dev/null"]
    audio = ["-c:a", "aac", "-b:a", str(audio_bps)] if audio_bps else ["-an"]
    pass2 = [*common_args, *video, "-pass", "2", *audio, "-movflags", "+faststart", str(out)]
    for argv in (pass1, pass2):
        proc = subprocess.run(argv, cwd=out.parent, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"plain ffmpeg exited {proc.returncode}: {tail}")


def run_plain(
    ffmpeg_exe: str, clip: Path, info: hybrid.MediaInfo, target: int, preset: str, work: Path
) -> dict[str, Any]:
    audio_bps = plain_audio_bps(target, info.duration_s, info.audio is not None)
    video_bps = math.floor(target * 8 / info.duration_s) - audio_bps
    if video_bps <= 0:
        return {"status": "impossible", "message": f"nothing left for video at {target} bytes"}
    out = work / "plain.mp4"
    try:
        _, timing = common.timed(lambda: plain_two_pass(ffmpeg_exe, clip, video_bps, audio_bps, preset, out))
    except RuntimeError as exc:
        return {"status": "error", "error": "ffmpeg", "message": str(exc)}
    for leftover in work.glob("ffmpeg2pass-*"):
        leftover.unlink()
    vmaf, align, vmaf_s = full_vmaf(out, clip, info)
    record = {
        "status": "ok",
        "video_bps": video_bps,
        "audio_bps": audio_bps,
        "size_bytes": out.stat().st_size,
        "size_ratio": round(out.stat().st_size / target, 4),
        "over_target": out.stat().st_size > target,
        "vmaf": vmaf,
        "alignment": align,
        "vmaf_measure_s": vmaf_s,
        "wall_s": timing.wall_s,
        "child_cpu_s": timing.child_cpu_s,
    }
    out.unlink()
    return record


def run_input(ffmpeg_exe: str, clip: Path, preset: str, label: str | None = None) -> list[dict[str, Any]]:
    info = hybrid.probe(clip)
    need = needs_bytes(info, preset)
    cases: list[dict[str, Any]] = []
    if need["needs_bytes"] is None:
        return [{"clip": label or clip.name, "kind": "-", "status": "no-quality-crf", "needs": need}]
    for kind, factor in (("generous", GENEROUS), ("tight", TIGHT)):
        target = math.floor(need["needs_bytes"] * factor)
        if kind == "tight":
            target = max(target, math.ceil(need["min_size_bytes"] * TIGHT_MIN_SIZE_FACTOR))
        with tempfile.TemporaryDirectory(prefix="hybrid-bench-quality-") as tmp:
            work = Path(tmp)
            h = run_hybrid(clip, info, target, preset, work)
            p = run_plain(ffmpeg_exe, clip, info, target, preset, work)
        both = h["status"] == "ok" and p["status"] == "ok"
        cases.append(
            {
                "clip": label or clip.name,
                "kind": kind,
                "duration_s": info.duration_s,
                "source_size_bytes": info.size_bytes,
                "needs": need,
                "target_size_bytes": target,
                "hybrid": h,
                "plain": p,
                "size_ratio_hybrid_plain": common.ratio(h.get("size_bytes"), p.get("size_bytes"))
                if both
                else None,
                "vmaf_delta": round(h["vmaf"] - p["vmaf"], 2) if both else None,
                "wall_ratio": common.ratio(h.get("wall_s"), p.get("wall_s")) if both else None,
            }
        )
        c = cases[-1]
        print(
            f"{c['clip']} {kind} ({common.fmt_bytes(target)}): hybrid {h.get('mode', h['status'])} "
            f"{common.fmt_bytes(h.get('size_bytes'))} VMAF {h.get('vmaf', '-')} "
            f"(search {h.get('search_s', '-')} s / encode {h.get('encode_s', '-')} s), plain "
            f"{common.fmt_bytes(p.get('size_bytes'))} VMAF {p.get('vmaf', '-')}",
            flush=True,
        )
    return cases


# -- summary --------------------------------------------------------------------------------------


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [c for c in cases if c.get("vmaf_delta") is not None]
    generous = [c for c in ok if c["kind"] == "generous"]
    tight = [c for c in ok if c["kind"] == "tight"]
    hybrid_ok = [c["hybrid"] for c in cases if c.get("hybrid", {}).get("status") == "ok"]
    shares = [r["search_share_of_encode"] for r in hybrid_ok if r["search_share_of_encode"] is not None]
    long_shares = [
        c["hybrid"]["search_share_of_encode"]
        for c in ok
        if c["clip"].startswith("long-") and c["hybrid"]["search_share_of_encode"] is not None
    ]
    reached = [c for c in generous if c["hybrid"]["vmaf"] >= 95]
    smaller = [c for c in generous if c["hybrid"]["size_bytes"] < c["plain"]["size_bytes"]]
    close = [c for c in tight if c["vmaf_delta"] >= -TIGHT_VMAF_GOAL]
    over = [c for c in ok if c["hybrid"]["over_target"]]
    summary: dict[str, Any] = {
        "cases": len(cases),
        "compared": len(ok),
        "hybrid_over_target": [f"{c['clip']} {c['kind']}" for c in over],
        "generous": {
            "cases": len(generous),
            "hybrid_vmaf_at_least_95": len(reached),
            "hybrid_vmaf_median": common.median(c["hybrid"]["vmaf"] for c in generous),
            "plain_vmaf_median": common.median(c["plain"]["vmaf"] for c in generous),
            "hybrid_smaller_than_plain": len(smaller),
            "median_size_ratio_hybrid_plain": common.median(c["size_ratio_hybrid_plain"] for c in generous),
            "hybrid_modes": sorted({c["hybrid"]["mode"] for c in generous}),
        },
        "tight": {
            "cases": len(tight),
            "within_1_vmaf_of_plain": len(close),
            "median_vmaf_delta": common.median(c["vmaf_delta"] for c in tight),
            "min_vmaf_delta": min((c["vmaf_delta"] for c in tight), default=None),
            "hybrid_vmaf_median": common.median(c["hybrid"]["vmaf"] for c in tight),
            "plain_vmaf_median": common.median(c["plain"]["vmaf"] for c in tight),
        },
        "median_search_share_of_encode": _round(common.median(shares)),
        "max_search_share_of_encode": max(shares, default=None),
        "long_input_search_share_of_encode": _round(common.median(long_shares)),
        "median_estimate_error": common.median(
            abs(r["vmaf_estimate"] - r["vmaf"]) for r in hybrid_ok if r.get("vmaf_estimate") is not None
        ),
        "median_wall_ratio": common.median(c["wall_ratio"] for c in ok),
    }
    g, t = summary["generous"], summary["tight"]
    summary["goals"] = {
        "vmaf_95_when_the_budget_allows": {
            "met": bool(generous) and len(reached) == len(generous),
            "value": f"{len(reached)}/{len(generous)} generous cases at >= 95",
        },
        "smaller_than_plain_on_generous_targets": {
            "met": bool(generous) and len(smaller) == len(generous),
            "value": f"{len(smaller)}/{len(generous)}, "
            f"median size ratio {g['median_size_ratio_hybrid_plain']}",
        },
        "within_1_vmaf_of_plain_on_tight_targets": {
            "met": bool(tight) and len(close) == len(tight),
            "value": f"{len(close)}/{len(tight)}, median delta {t['median_vmaf_delta']}",
        },
        "search_at_most_25pct_of_encode": {
            "met": summary["median_search_share_of_encode"] is not None
            and summary["median_search_share_of_encode"] <= SEARCH_SHARE_GOAL,
            "value": f"median {summary['median_search_share_of_encode']}, "
            f"long input {summary['long_input_search_share_of_encode']}",
        },
    }
    return summary


def _n(x: Any, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_markdown(data: dict[str, Any]) -> str:
    ctx, cases, s = data["context"], data["cases"], data["summary"]
    out = ["# Benchmark: quality mode (hybrid, visually lossless under a target, vs plain two-pass)\n"]
    out.append(__doc__.split("\n\n", 1)[1].split("    python -m")[0].strip() + "\n")
    out.append(common.context_markdown(ctx))
    if ctx.get("merged"):
        out.append(f"- merged from two runs: {ctx['merged']}")
    out.append("\n## Goals\n")
    verdict = {True: "met", False: "**not met**"}
    for name, goal in s["goals"].items():
        out.append(f"- {name.replace('_', ' ')}: {verdict[goal['met']]} ({goal['value']})")
    g, t = s["generous"], s["tight"]
    out.append(
        "\nPlain's size is the wiki formula's, which ignores the container: at tight targets it lands a few "
        "percent over the target (marked **over**), which buys it VMAF that hybrid, never over, cannot have."
    )
    out.append("\n## Summary\n")
    out.append(
        f"- generous targets ({g['cases']}): hybrid median VMAF {_n(g['hybrid_vmaf_median'])} vs plain "
        f"{_n(g['plain_vmaf_median'])}; hybrid smaller in {g['hybrid_smaller_than_plain']}, median size "
        f"hybrid/plain {_n(g['median_size_ratio_hybrid_plain'], 3)}; modes {g['hybrid_modes']}"
    )
    out.append(
        f"- tight targets ({t['cases']}): hybrid median VMAF {_n(t['hybrid_vmaf_median'])} vs plain "
        f"{_n(t['plain_vmaf_median'])}; median delta {_n(t['median_vmaf_delta'])}, worst "
        f"{_n(t['min_vmaf_delta'])}"
    )
    out.append(
        f"- search time / encode time: median {_n(s['median_search_share_of_encode'], 3)}, worst "
        f"{_n(s['max_search_share_of_encode'], 3)}, "
        f"long input {_n(s['long_input_search_share_of_encode'], 3)}"
    )
    out.append(
        f"- hybrid's VMAF estimate (samples) vs the full-file measurement: median error "
        f"{_n(s['median_estimate_error'])}; wall time hybrid/plain median {_n(s['median_wall_ratio'])}"
    )
    if s["hybrid_over_target"]:
        out.append(f"- hybrid over target: {', '.join(s['hybrid_over_target'])}")
    out.append("\n## Cases\n")
    rows = []
    for c in cases:
        h, p = c.get("hybrid", {}), c.get("plain", {})
        if "target_size_bytes" not in c:
            rows.append([c["clip"], c.get("status"), *["-"] * 12])
            continue
        rows.append(
            [
                c["clip"],
                c["kind"],
                common.fmt_bytes(c["target_size_bytes"]),
                f"{h.get('mode', h.get('status'))} {h.get('width', '')}x{h.get('height', '')}",
                common.fmt_bytes(h.get("size_bytes")),
                _n(h.get("vmaf")),
                _n(h.get("vmaf_estimate")),
                common.fmt_bytes(p.get("size_bytes")) + (" **over**" if p.get("over_target") else ""),
                _n(p.get("vmaf")),
                _n(c["vmaf_delta"]),
                _n(h.get("search_s")),
                _n(h.get("encode_s")),
                _n(h.get("search_share_of_encode"), 3),
                f"{_n(h.get('wall_s'))} / {_n(p.get('wall_s'))}",
            ]
        )
    out.append(
        common.md_table(
            [
                "input",
                "target",
                "size",
                "hybrid mode",
                "hybrid size",
                "hybrid VMAF",
                "estimate",
                "plain size",
                "plain VMAF",
                "delta",
                "search s",
                "encode s",
                "search/encode",
                "wall s hybrid / plain",
            ],
            rows,
        )
    )
    notes = [
        f"- {c['clip']} {c['kind']}: {note}" for c in cases for note in c.get("hybrid", {}).get("notes", [])
    ]
    notes += [
        f"- {c['clip']} {c['kind']} {who}: {c[who]['status']}: {c[who].get('message')}"
        for c in cases
        for who in ("hybrid", "plain")
        if who in c and c[who]["status"] != "ok"
    ]
    if notes:
        out.append("\n## Notes\n")
        out.append("\n".join(notes) + "\n")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short clips, no long input, preset veryfast")
    parser.add_argument(
        "--out", type=Path, help="results folder (default benchmarks/results, quick: .../quick)"
    )
    parser.add_argument("--preset", help="x264 preset for both (default medium, quick: veryfast)")
    parser.add_argument("--repeat", type=int, default=1, help="accepted for symmetry; one run per case")
    parser.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips (file names)")
    parser.add_argument("--no-long", action="store_true", help="skip the long looped input")
    parser.add_argument("--render", type=Path, metavar="JSON", help="re-render a results file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    if args.render:
        data = json.loads(args.render.read_text())
        data["summary"] = summarise(data["cases"])
        paths = common.write_results(args.out or args.render.parent, NAME, data, render_markdown(data))
        print(f"wrote {paths[0]} and {paths[1]}")
        return 0
    preset = args.preset or ("veryfast" if args.quick else "medium")
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    selected = common.clips()
    wanted = args.clips or (QUICK_CLIPS if args.quick else None)
    if wanted:
        selected = [c for c in selected if c.name in wanted]
    ffmpeg_exe = common.require_ffmpeg()
    long_input = not args.quick and not args.no_long
    context = common.run_context(
        ffmpeg_exe,
        preset=preset,
        level=LEVEL,
        target_vmaf=planner.QUALITY_VMAF[LEVEL],
        generous=GENEROUS,
        tight=TIGHT,
        clips=len(selected),
        long_input=f"{LONG_SOURCE} x{LONG_LOOPS + 1}" if long_input else None,
        quick=args.quick,
    )
    cases: list[dict[str, Any]] = []
    for clip in selected:
        cases += run_input(ffmpeg_exe, clip, preset)
    if long_input:
        with tempfile.TemporaryDirectory(prefix="hybrid-bench-long-") as tmp:
            long_clip = build_long_input(Path(tmp))
            cases += run_input(ffmpeg_exe, long_clip, preset, label=long_clip.name)
    context["load_average_end"] = common.load_average()
    data = {"benchmark": NAME, "context": context, "cases": cases, "summary": summarise(cases)}
    json_path, md_path = common.write_results(out_dir, NAME, data, render_markdown(data))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
