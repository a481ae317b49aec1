"""Target size: hybrid against the plain ffmpeg two-pass everyone writes, on the shared clips.

For each clip and each target (a share of the clip's size), two ways to hit the target:

- **hybrid**: ``hybrid.compress(clip, Request(target_size_bytes=..., preset=...), out)``;
- **plain**: the ffmpeg wiki's two-pass with the naive formula
  ``video bitrate = target * 8 / duration - 128 kb/s`` (audio at 128 kb/s AAC), same x264 preset and
  the same ffmpeg binary. When the formula gives no bitrate (<= 0), that case is "impossible by formula".

Per case: size, size/target, over target or not, wall and ffmpeg CPU time of each, the wall-time ratio
hybrid/plain, hybrid's encoder runs, the output resolution. Each measurement is repeated ``--repeat``
times (median times; sizes are deterministic and checked to be). The order of hybrid and plain
alternates between repeats so that a change in the machine's load does not favour one side.

    python -m benchmarks.target_size                # all clips, 50/25/10 %, preset medium
    python -m benchmarks.target_size --quick        # 3 short clips, 25 %, preset veryfast
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hybrid
from hybrid import HybridError, PlanError, Request
from hybrid.models import Event, StageStarted

from . import common

NAME = "target_size"
TARGET_SHARES = (0.50, 0.25, 0.10)
QUICK_SHARES = (0.25,)
QUICK_CLIPS = ("motion-320p.mov", "phone-1080p-short.mp4", "ball-576p.mp4")
NAIVE_AUDIO_BPS = 128_000
SIZE_GOAL = 0.97  # median size/target
WALL_GOAL = 1.05  # hybrid/plain wall time when hybrid needs no retry


# -- the two contenders ---------------------------------------------------------------------------


def naive_video_bps(target_bytes: int, duration_s: float) -> int:
    return math.floor(target_bytes * 8 / duration_s) - NAIVE_AUDIO_BPS


def plain_two_pass(ffmpeg_exe: str, clip: Path, video_bps: int, preset: str, out: Path) -> None:
    """The ffmpeg wiki's two-pass, run in ``out``'s folder so its pass logs land there."""
    common_args = [ffmpeg_exe, "-nostdin", "-hide_banner", "-y", "-i", str(clip)]
    video = ["-c:v", "libx264", "-preset", preset, "-b:v", str(video_bps)]
    pass1 = [*common_args, *video, "-pass", "1", "-an", "-f", "null", os.devnull]
    pass2 = [*common_args, *video, "-pass", "2", "-c:a", "aac", "-b:a", "128k"]
    pass2 += ["-movflags", "+faststart", str(out)]
    for argv in (pass1, pass2):
        proc = subprocess.run(argv, cwd=out.parent, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"plain ffmpeg exited {proc.returncode}: {tail}")


def run_hybrid(clip: Path, target: int, preset: str, work: Path) -> dict[str, Any]:
    out = work / "hybrid.mp4"
    repro = f"hybrid compress {clip} --target {target} --preset {preset} -o /tmp/repro.mp4 --json"
    marks: list[tuple[str, float]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, StageStarted):
            marks.append((event.stage, time.perf_counter()))

    started = time.perf_counter()
    try:
        result, timing = common.timed(
            lambda: hybrid.compress(
                clip, Request(target_size_bytes=target, preset=preset), out, on_event=on_event
            )
        )
    except PlanError as exc:
        return {"status": "refused", "message": str(exc)}
    except HybridError as exc:
        return {"status": "error", "error": type(exc).__name__, "message": str(exc), "repro": repro}
    size = out.stat().st_size
    record = {
        "status": "ok",
        "size_bytes": size,
        "result_size_bytes": result.size_bytes,
        "size_ratio": round(size / target, 4),
        "over_target": size > target,
        "wall_s": timing.wall_s,
        "child_cpu_s": timing.child_cpu_s,
        "encodes": result.encodes,
        "mode": result.mode,
        "width": result.width,
        "height": result.height,
        "notes": list(result.notes),
        "stages_s": stage_times(started, marks, started + timing.wall_s),
    }
    if size > target:
        record["repro"] = repro
    out.unlink()
    return record


def stage_times(started: float, marks: list[tuple[str, float]], ended: float) -> dict[str, float]:
    """Where hybrid's wall time went, per stage: "setup" is probing and planning, "place" the rename."""
    stages: dict[str, float] = {}
    bounds = [("setup", started), *marks, ("end", ended)]
    for (name, begin), (_, end) in itertools.pairwise(bounds):
        key = "place" if name == "done" else name
        stages[key] = round(stages.get(key, 0.0) + end - begin, 3)
    return stages


def run_plain(
    ffmpeg_exe: str, clip: Path, target: int, duration_s: float, preset: str, work: Path
) -> dict[str, Any]:
    video_bps = naive_video_bps(target, duration_s)
    if video_bps <= 0:
        return {
            "status": "impossible",
            "message": f"impossible by formula: {target * 8 / duration_s / 1000:.0f} kb/s in all, "
            f"minus 128 kb/s audio leaves {video_bps / 1000:.0f} kb/s for video",
            "video_bps": video_bps,
        }
    out = work / "plain.mp4"
    try:
        _, timing = common.timed(lambda: plain_two_pass(ffmpeg_exe, clip, video_bps, preset, out))
    except RuntimeError as exc:
        return {"status": "error", "error": "ffmpeg", "message": str(exc), "video_bps": video_bps}
    size = out.stat().st_size
    width = height = pix_fmt = None
    try:
        info = hybrid.probe(out)
        if info.video is not None:
            width, height = info.video.display_width, info.video.display_height
            pix_fmt = info.video.pix_fmt
    except HybridError:
        pass
    for leftover in work.glob("ffmpeg2pass-*"):
        leftover.unlink()
    out.unlink()
    return {
        "status": "ok",
        "video_bps": video_bps,
        "size_bytes": size,
        "size_ratio": round(size / target, 4),
        "over_target": size > target,
        "wall_s": timing.wall_s,
        "child_cpu_s": timing.child_cpu_s,
        "width": width,
        "height": height,
        "pix_fmt": pix_fmt,
    }


# -- repeats --------------------------------------------------------------------------------------


def merge_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from N runs of the same case: median times, the first run's everything else."""
    merged = dict(runs[0])
    if merged["status"] != "ok":
        return merged
    ok = [r for r in runs if r["status"] == "ok"]
    for key in ("wall_s", "child_cpu_s"):
        merged[key] = round(common.median(r[key] for r in ok) or 0.0, 3)
        merged[f"{key}_runs"] = [r[key] for r in ok]
    sizes = sorted({r["size_bytes"] for r in ok})
    if len(sizes) > 1 or len(ok) != len(runs):
        merged["varied"] = {"sizes": sizes, "statuses": [r["status"] for r in runs]}
    return merged


def run_case(
    ffmpeg_exe: str, clip: Path, info: hybrid.MediaInfo, share: float, preset: str, repeat: int
) -> dict[str, Any]:
    target = math.floor(info.size_bytes * share)
    hybrid_runs: list[dict[str, Any]] = []
    plain_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-") as tmp:
        work = Path(tmp)
        for i in range(repeat):
            order = ("hybrid", "plain") if i % 2 == 0 else ("plain", "hybrid")
            for who in order:
                if who == "hybrid":
                    hybrid_runs.append(run_hybrid(clip, target, preset, work))
                else:
                    plain_runs.append(run_plain(ffmpeg_exe, clip, target, info.duration_s, preset, work))
    h, p = merge_repeats(hybrid_runs), merge_repeats(plain_runs)
    both = h["status"] == "ok" and p["status"] == "ok"
    return {
        "clip": clip.name,
        "source_size_bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "source_has_audio": info.audio is not None,
        "target_share": share,
        "target_size_bytes": target,
        "hybrid": h,
        "plain": p,
        "wall_ratio": common.ratio(h.get("wall_s"), p.get("wall_s")) if both else None,
        "cpu_ratio": common.ratio(h.get("child_cpu_s"), p.get("child_cpu_s")) if both else None,
    }


# -- summary --------------------------------------------------------------------------------------


def _overhead_s(record: dict[str, Any]) -> float:
    stages = record.get("stages_s", {})
    return round(sum(t for name, t in stages.items() if not name.startswith(("pass", "encode"))), 3)


def summarise(cases: list[dict[str, Any]]) -> dict[str, Any]:
    def tool(key: str) -> dict[str, Any]:
        ok = [c[key] for c in cases if c[key]["status"] == "ok"]
        over = [c for c in cases if c[key]["status"] == "ok" and c[key]["over_target"]]
        return {
            "cases": len(cases),
            "produced": len(ok),
            "over_target": len(over),
            "over_target_rate": round(len(over) / len(ok), 4) if ok else None,
            "over_target_cases": [f"{c['clip']} @ {c['target_share']:.0%}" for c in over],
            "refused_or_impossible": sum(c[key]["status"] in ("refused", "impossible") for c in cases),
            "errors": sum(c[key]["status"] == "error" for c in cases),
            "median_size_ratio": common.median(r["size_ratio"] for r in ok),
            "min_size_ratio": min((r["size_ratio"] for r in ok), default=None),
            "max_size_ratio": max((r["size_ratio"] for r in ok), default=None),
        }

    both = [c for c in cases if c["wall_ratio"] is not None]
    no_retry = [c for c in both if c["hybrid"]["encodes"] == 2]
    same_res = [
        c
        for c in no_retry
        if (c["hybrid"]["width"], c["hybrid"]["height"]) == (c["plain"]["width"], c["plain"]["height"])
    ]
    hybrid_ok = [c["hybrid"] for c in cases if c["hybrid"]["status"] == "ok"]
    two_pass = [r for r in hybrid_ok if r["mode"] == "two-pass"]
    retried = [c for c in cases if c["hybrid"]["status"] == "ok" and c["hybrid"]["encodes"] > 2]
    summary: dict[str, Any] = {
        "hybrid": tool("hybrid"),
        "plain": tool("plain"),
        "compared_cases": len(both),
        "median_wall_ratio": common.median(c["wall_ratio"] for c in both),
        "median_cpu_ratio": common.median(c["cpu_ratio"] for c in both),
        "no_retry_cases": len(no_retry),
        "median_wall_ratio_no_retry": common.median(c["wall_ratio"] for c in no_retry),
        "median_cpu_ratio_no_retry": common.median(c["cpu_ratio"] for c in no_retry),
        # hybrid often downscales where plain keeps the source size: compare like with like too.
        "no_retry_same_resolution_cases": len(same_res),
        "median_wall_ratio_no_retry_same_resolution": common.median(c["wall_ratio"] for c in same_res),
        "median_cpu_ratio_no_retry_same_resolution": common.median(c["cpu_ratio"] for c in same_res),
        # Time hybrid spends outside the encoder passes (probe, plan, audio, verification).
        "median_hybrid_overhead_s": common.median(_overhead_s(r) for r in hybrid_ok),
        "median_hybrid_overhead_share": common.median(
            _overhead_s(r) / r["wall_s"] for r in hybrid_ok if r["wall_s"]
        ),
        "hybrid_modes": {
            m: sum(r["mode"] == m for r in hybrid_ok) for m in sorted({r["mode"] for r in hybrid_ok})
        },
        "hybrid_extra_encodes": sum(r["encodes"] - 2 for r in two_pass if r["encodes"] > 2),
        "hybrid_cases_with_extra_encodes": [
            f"{c['clip']} @ {c['target_share']:.0%}: {c['hybrid']['encodes']} encodes" for c in retried
        ],
    }
    h = summary["hybrid"]
    all_cases_answered = h["errors"] == 0
    summary["goals"] = {
        "hybrid_never_over_target": {
            "met": h["over_target"] == 0 and all_cases_answered,
            "value": f"{h['over_target']}/{h['produced']} over, {h['errors']} errors",
        },
        "median_size_ratio_at_least_0.97": {
            "met": h["median_size_ratio"] is not None and h["median_size_ratio"] >= SIZE_GOAL,
            "value": h["median_size_ratio"],
        },
        "wall_ratio_no_retry_at_most_1.05": {
            "met": summary["median_wall_ratio_no_retry"] is not None
            and summary["median_wall_ratio_no_retry"] <= WALL_GOAL,
            "value": summary["median_wall_ratio_no_retry"],
        },
    }
    return summary


# -- report ---------------------------------------------------------------------------------------


def _cell(record: dict[str, Any]) -> tuple[str, str, str, str]:
    """size, size/target, over?, resolution for one tool's record."""
    status = record["status"]
    if status == "ok":
        res = f"{record['width']}x{record['height']}" if record.get("width") else "?"
        return (
            common.fmt_bytes(record["size_bytes"]),
            f"{record['size_ratio']:.3f}",
            "**OVER**" if record["over_target"] else "no",
            res,
        )
    label = {"refused": "refused", "impossible": "impossible by formula", "error": "**ERROR**"}[status]
    return label, "-", "-", "-"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_markdown(data: dict[str, Any]) -> str:
    ctx, cases, s = data["context"], data["cases"], data["summary"]
    h, p = s["hybrid"], s["plain"]
    out = ["# Benchmark: target size (hybrid vs plain ffmpeg two-pass)\n"]
    out.append(
        "For each clip in shared/media and each target (a share of the clip's file size): hybrid "
        "(`hybrid.compress`) against the ffmpeg wiki's two-pass with the naive bitrate "
        "`target*8/duration - 128 kb/s` (`-c:a aac -b:a 128k`, `-movflags +faststart`), same x264 "
        "preset, same ffmpeg binary. Times are medians over the repeats; hybrid's time includes its "
        "probe, separate audio encode and output verification. CPU = user+system time of the ffmpeg "
        "processes, less sensitive to the machine's other load than wall time.\n"
    )
    out.append(common.context_markdown(ctx))
    out.append("\n## Summary\n")
    goals = s["goals"]
    verdict = {True: "met", False: "**not met**"}
    out.append(
        common.md_table(
            ["", "hybrid", "plain two-pass"],
            [
                ["cases", h["cases"], p["cases"]],
                ["outputs produced", h["produced"], p["produced"]],
                [
                    "refused / impossible by formula",
                    h["refused_or_impossible"],
                    p["refused_or_impossible"],
                ],
                ["errors", h["errors"], p["errors"]],
                [
                    "over target",
                    f"{h['over_target']} ({_pct(h['over_target_rate'])})",
                    f"{p['over_target']} ({_pct(p['over_target_rate'])})",
                ],
                ["median size/target", _num(h["median_size_ratio"]), _num(p["median_size_ratio"])],
                [
                    "size/target range",
                    f"{_num(h['min_size_ratio'])} - {_num(h['max_size_ratio'])}",
                    f"{_num(p['min_size_ratio'])} - {_num(p['max_size_ratio'])}",
                ],
            ],
        )
    )
    out.append("")
    out.append(
        f"- wall time hybrid/plain, median over {s['compared_cases']} cases where both produced a file: "
        f"{_num(s['median_wall_ratio'], 2)} (ffmpeg CPU time: {_num(s['median_cpu_ratio'], 2)})"
    )
    out.append(
        f"- the same over the {s['no_retry_cases']} cases where hybrid needed no retry (2 encodes): "
        f"{_num(s['median_wall_ratio_no_retry'], 2)} (CPU: {_num(s['median_cpu_ratio_no_retry'], 2)})"
    )
    out.append(
        f"- the same over the {s['no_retry_same_resolution_cases']} of those where both outputs have the "
        f"same resolution (elsewhere hybrid downscaled, which saves it encoding work): "
        f"{_num(s['median_wall_ratio_no_retry_same_resolution'], 2)} "
        f"(CPU: {_num(s['median_cpu_ratio_no_retry_same_resolution'], 2)})"
    )
    if s["median_hybrid_overhead_s"] is not None:
        out.append(
            f"- hybrid's time outside the encoder passes (probe, plan, separate audio encode, "
            f"verification), median: {s['median_hybrid_overhead_s']:.2f} s per case, "
            f"{s['median_hybrid_overhead_share']:.0%} of its wall time"
        )
    extra = s["hybrid_cases_with_extra_encodes"]
    out.append(
        f"- hybrid modes: {s['hybrid_modes']}; extra second passes (retries): {s['hybrid_extra_encodes']}"
        + (f" ({'; '.join(extra)})" if extra else "")
    )
    if h["over_target_cases"]:
        out.append(f"- hybrid over target: {', '.join(h['over_target_cases'])}")
    if p["over_target_cases"]:
        out.append(f"- plain over target: {', '.join(p['over_target_cases'])}")
    out.append("\nGoals:\n")
    out.append(
        f"- hybrid under target in 100% of cases: {verdict[goals['hybrid_never_over_target']['met']]} "
        f"({goals['hybrid_never_over_target']['value']})"
    )
    out.append(
        f"- median size/target >= {SIZE_GOAL}: {verdict[goals['median_size_ratio_at_least_0.97']['met']]} "
        f"({_num(goals['median_size_ratio_at_least_0.97']['value'])})"
    )
    out.append(
        f"- wall time <= {WALL_GOAL}x plain when no retry is needed: "
        f"{verdict[goals['wall_ratio_no_retry_at_most_1.05']['met']]} "
        f"({_num(goals['wall_ratio_no_retry_at_most_1.05']['value'], 2)}; the ffmpeg CPU-time ratio, "
        f"which the machine's other load disturbs less, is {_num(s['median_cpu_ratio_no_retry'], 2)}; "
        f"at equal output resolution {_num(s['median_wall_ratio_no_retry_same_resolution'], 2)} wall, "
        f"{_num(s['median_cpu_ratio_no_retry_same_resolution'], 2)} CPU)"
    )
    out.append("\n## Cases\n")
    rows = []
    for c in cases:
        hs, hr, ho, hres = _cell(c["hybrid"])
        ps, pr, po, pres = _cell(c["plain"])
        hrec, prec = c["hybrid"], c["plain"]
        rows.append(
            [
                c["clip"],
                f"{c['target_share']:.0%} ({common.fmt_bytes(c['target_size_bytes'])})",
                hs,
                hr,
                ho,
                ps,
                pr,
                po,
                _num(hrec.get("wall_s"), 2),
                _num(prec.get("wall_s"), 2),
                _num(c["wall_ratio"], 2),
                _num(c["cpu_ratio"], 2),
                hrec.get("encodes", "-"),
                hrec.get("mode", "-"),
                hres,
                pres,
            ]
        )
    out.append(
        common.md_table(
            [
                "clip",
                "target",
                "hybrid size",
                "hybrid size/target",
                "hybrid over",
                "plain size",
                "plain size/target",
                "plain over",
                "hybrid s",
                "plain s",
                "wall ratio",
                "CPU ratio",
                "encodes",
                "mode",
                "hybrid res",
                "plain res",
            ],
            rows,
        )
    )
    notes = []
    for c in cases:
        for key in ("hybrid", "plain"):
            rec = c[key]
            if rec["status"] in ("refused", "error", "impossible"):
                notes.append(
                    f"- {c['clip']} @ {c['target_share']:.0%}, {key} {rec['status']}: {rec['message']}"
                )
            for note in rec.get("notes", []):
                notes.append(f"- {c['clip']} @ {c['target_share']:.0%}, hybrid: {note}")
            if "repro" in rec:
                notes.append(f"  - reproduce: `{rec['repro']}`")
            if "varied" in rec:
                notes.append(f"- {c['clip']} @ {c['target_share']:.0%}, {key} varied: {rec['varied']}")
    if notes:
        out.append("\n## Notes\n")
        out.append("\n".join(notes) + "\n")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.target_size", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{len(QUICK_CLIPS)} short clips, one target, preset veryfast"
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default benchmarks/results, quick: .../quick)"
    )
    parser.add_argument("--preset", help="x264 preset for both tools (default medium, quick: veryfast)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; times are medians")
    parser.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips (file names)")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="encode nothing: recompute the summary and rewrite the report from an earlier JSON result",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    if args.render:
        data = json.loads(args.render.read_text())
        data["summary"] = summarise(data["cases"])
        json_path, md_path = common.write_results(
            args.out or args.render.parent, NAME, data, render_markdown(data)
        )
        print(f"wrote {json_path} and {md_path}")
        return 0
    preset = args.preset or ("veryfast" if args.quick else "medium")
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    shares = QUICK_SHARES if args.quick else TARGET_SHARES
    selected = common.clips()
    wanted = args.clips or (QUICK_CLIPS if args.quick else None)
    if wanted:
        missing = set(wanted) - {c.name for c in selected}
        if missing:
            raise SystemExit(f"no such clips in {common.MEDIA_DIR}: {', '.join(sorted(missing))}")
        selected = [c for c in selected if c.name in wanted]
    ffmpeg_exe = common.require_ffmpeg()
    context = common.run_context(
        ffmpeg_exe,
        preset=preset,
        repeat=args.repeat,
        quick=args.quick,
        target_shares=list(shares),
        clips=len(selected),
        naive_audio_bps=NAIVE_AUDIO_BPS,
    )
    cases = []
    total = len(selected) * len(shares)
    for clip in selected:
        info = hybrid.probe(clip)
        for share in shares:
            case = run_case(ffmpeg_exe, clip, info, share, preset, args.repeat)
            cases.append(case)
            hr, pr = case["hybrid"], case["plain"]
            print(
                f"[{len(cases)}/{total}] {clip.name} @ {share:.0%}: "
                f"hybrid {hr.get('size_ratio', hr['status'])} ({hr.get('wall_s', '-')} s, "
                f"{hr.get('encodes', '-')} encodes), plain {pr.get('size_ratio', pr['status'])} "
                f"({pr.get('wall_s', '-')} s)",
                flush=True,
            )
    context["load_average_end"] = common.load_average()
    data = {"benchmark": NAME, "context": context, "cases": cases, "summary": summarise(cases)}
    json_path, md_path = common.write_results(out_dir, NAME, data, render_markdown(data))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
