"""Estimates: the router's local encode time estimate against the real encode, and the calibration's cost.

For every clip in the shared media folder (at presets medium and veryfast) and for a 2-minute 1080p
input built from them, it takes a fresh snapshot, estimates the local compress as the router does,
runs it (``hybrid.local.compress``, target half the input), and reports actual / estimated:

- "calibrated": from the calibration alone (what a first job on this machine sees);
- "refined": with the correction learnt from the real encodes before it in this run (what the router
  sees once hybrid has been used a little).

Both for wall time (what the user waits; it moves with the machine's load, sampled at the snapshot)
and for CPU time (ffmpeg's user + system time: the speed model itself, whatever the load).

The calibration runs in a fresh config folder (the user's cache is not touched), ``--repeat`` times,
to show its cost and how much it varies.

    python -m benchmarks.estimates            # all clips, both presets, and the 2-minute 1080p input
    python -m benchmarks.estimates --quick    # three clips at veryfast, no long input
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid import local, resources
from hybrid.models import Request
from hybrid.planner import plan as make_plan
from hybrid.probe import probe

from . import common

LONG_SOURCE = "phone-720p-hello.mp4"  # 8.3 s, looped and scaled to 1080p
LONG_SECONDS = 120
QUICK_CLIPS = ("motion-320p.mov", "phone-720p-hello.mp4", "screen-540p-tour.mp4")
TARGET_SHARE = 0.5


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.estimates", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="three clips at veryfast, no long input")
    parser.add_argument(
        "--preset", default=None, help="one x264 preset instead of medium and veryfast (long input: medium)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="calibration runs (default 3)")
    parser.add_argument("--out", type=Path, help="results folder")
    return parser.parse_args(argv)


def build_long_input(ffmpeg_exe: str, dest: Path) -> Path:
    """A 2-minute 1080p H.264 camera-like file: a clip looped and scaled up (built once per run)."""
    source = common.MEDIA_DIR / LONG_SOURCE
    # At 12 Mb/s, like a phone's 1080p: half of it (the target) still keeps 1080p in the plan.
    subprocess.run(
        [ffmpeg_exe, "-v", "error", "-nostdin", "-y", "-stream_loop", "-1", "-i", f"file:{source}",
         "-t", str(LONG_SECONDS), "-vf", "scale=1920:1080:flags=bicubic", "-c:v", "libx264",
         "-preset", "veryfast", "-b:v", "12M", "-c:a", "aac", "-b:a", "128k", f"file:{dest}"],
        check=True,
    )  # fmt: skip
    return dest


def measure_case(path: Path, preset: str, work: Path, label: str | None = None) -> dict[str, Any]:
    info = probe(path)
    request = Request(target_size_bytes=int(info.size_bytes * TARGET_SHARE), preset=preset)
    the_plan = make_plan(info, request)
    res = resources.snapshot(work)
    cal = resources.cached_calibration(res.ffmpeg_version, res.cpu_model)
    assert cal is not None, "calibrate first"
    correction = resources.load_correction(the_plan.video.codec)
    calibrated = resources.estimate_local_s(the_plan, res, cal, resources.Correction())
    refined = resources.estimate_local_s(the_plan, res, cal, correction)
    cpu_estimate = resources.local_cpu_s(the_plan, cal)
    out = work / f"out-{path.stem}-{preset}.mp4"
    result, timing = common.timed(
        lambda: local.compress(path, request, out, overwrite=True, info=info, plan=the_plan)
    )
    out.unlink(missing_ok=True)
    share = resources.encodes_share(the_plan, result.encodes)
    if share is not None:
        resources.record_local(the_plan.video.codec, cpu_estimate * share, timing.child_cpu_s)
    case = {
        "input": label or path.name,
        "input_bytes": info.size_bytes,
        "duration_s": round(the_plan.duration_s, 2),
        "source": f"{info.video.width}x{info.video.height} {info.video.codec}" if info.video else None,
        "output": f"{the_plan.video.width}x{the_plan.video.height}",
        "mode": the_plan.video.mode,
        "preset": preset,
        "encodes": result.encodes,
        "cpu_busy": res.cpu_busy,
        "competing_threads": res.competing_threads,
        "estimate_calibrated_s": round(calibrated, 2),
        "estimate_refined_s": round(refined, 2),
        "correction_before": correction.factor,
        "actual_s": result.elapsed_s,
        "ratio_calibrated": common.ratio(result.elapsed_s, calibrated),
        "ratio_refined": common.ratio(result.elapsed_s, refined),
        # The estimate assumes the second pass hits first time; a re-run pass is extra work it did
        # not predict. These ratios compare like with like.
        "ratio_calibrated_same_encodes": common.ratio(result.elapsed_s, calibrated * (share or 1.0)),
        "ratio_refined_same_encodes": common.ratio(result.elapsed_s, refined * (share or 1.0)),
        "estimate_cpu_s": round(cpu_estimate, 2),
        "estimate_cpu_refined_s": round(cpu_estimate * correction.factor, 2),
        "actual_cpu_s": timing.child_cpu_s,
        "cpu_ratio_calibrated": common.ratio(timing.child_cpu_s, cpu_estimate),
        "cpu_ratio_refined": common.ratio(timing.child_cpu_s, cpu_estimate * correction.factor),
        "cpu_ratio_refined_same_encodes": common.ratio(
            timing.child_cpu_s, cpu_estimate * correction.factor * (share or 1.0)
        ),
    }
    print(
        f"{case['input']} {preset}: estimate {calibrated:.1f} s (refined {refined:.1f} s), "
        f"actual {result.elapsed_s:.1f} s, {result.encodes} encodes; CPU estimate {cpu_estimate:.1f} s "
        f"(refined {cpu_estimate * correction.factor:.1f} s), actual {timing.child_cpu_s:.1f} s",
        file=sys.stderr,
    )
    return case


def summary(cases: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ratios = [c[key] for c in cases if c.get(key)]
    if not ratios:
        return {}
    return {
        "median": round(statistics.median(ratios), 3),
        "min": min(ratios),
        "max": max(ratios),
        "within_25_percent": sum(1 for r in ratios if 0.75 <= r <= 1.25),
        "count": len(ratios),
    }


def render(data: dict[str, Any]) -> str:
    cal = data["calibration"]
    lines = [
        "# Estimates: local encode time, estimated against actual\n",
        common.context_markdown(data["context"]),
        f"Calibration: {cal['runs']} runs, cost {cal['cost_s_median']} s median "
        f"({', '.join(str(c) for c in cal['cost_s'])} s); x264 medium "
        f"{cal['encode_cpu_s_per_mpx_median']} CPU s per megapixel "
        f"(runs: {', '.join(str(v) for v in cal['encode_cpu_s_per_mpx'])}).\n",
        'Ratio = actual / estimated (1.0 is perfect; the aim is 0.75-1.25). "Calibrated" uses the '
        'calibration alone; "refined" also the correction learnt from the encodes above it in the table. '
        "Competing = other processes' CPU-hungry threads at the snapshot (the machine is shared).\n",
        common.md_table(
            [
                "input",
                "preset",
                "output",
                "mode",
                "encodes",
                "competing",
                "estimate",
                "refined",
                "actual",
                "ratio (cal.)",
                "ratio (refined)",
            ],
            [
                [
                    c["input"],
                    c["preset"],
                    c["output"],
                    c["mode"],
                    c["encodes"],
                    c["competing_threads"],
                    c["estimate_calibrated_s"],
                    c["estimate_refined_s"],
                    c["actual_s"],
                    c["ratio_calibrated"],
                    c["ratio_refined"],
                ]
                for c in data["cases"]
            ],
        ),
        "\nCPU time (the speed model, whatever the load):\n",
        common.md_table(
            [
                "input",
                "preset",
                "encodes",
                "CPU estimate",
                "refined",
                "actual CPU",
                "ratio (cal.)",
                "ratio (refined)",
                "ratio (refined, same encodes)",
            ],
            [
                [
                    c["input"],
                    c["preset"],
                    c["encodes"],
                    c["estimate_cpu_s"],
                    c["estimate_cpu_refined_s"],
                    c["actual_cpu_s"],
                    c["cpu_ratio_calibrated"],
                    c["cpu_ratio_refined"],
                    c["cpu_ratio_refined_same_encodes"],
                ]
                for c in data["cases"]
            ],
        ),
        "",
    ]
    for key, label in (
        ("ratio_calibrated", "wall, calibrated"),
        ("ratio_refined", "wall, refined"),
        ("ratio_refined_same_encodes", "wall, refined, re-run second passes counted"),
        ("cpu_ratio_calibrated", "CPU, calibrated"),
        ("cpu_ratio_refined", "CPU, refined"),
        ("cpu_ratio_refined_same_encodes", "CPU, refined, re-run second passes counted"),
    ):
        s = data["summary"].get(key) or {}
        if s:
            lines.append(
                f"- {label}: median ratio {s['median']}, range {s['min']}-{s['max']}, "
                f"{s['within_25_percent']}/{s['count']} within ±25%"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.exit_cleanly_on_sigterm()
    ffmpeg_exe = common.require_ffmpeg()
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    presets = [args.preset] if args.preset else (["veryfast"] if args.quick else ["medium", "veryfast"])
    context = common.run_context(ffmpeg_exe, presets=presets, repeat=args.repeat, quick=args.quick)
    clips = [c for c in common.clips() if not args.quick or c.name in QUICK_CLIPS]
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-estimates-bench-") as tmp:
        work = Path(tmp)
        os.environ["HYBRID_CONFIG_DIR"] = str(work / "config")  # a fresh cache, not the user's
        cals = [resources.calibrate(force=True) for _ in range(max(1, args.repeat))]
        print(f"calibration: {[c.cost_s for c in cals]} s", file=sys.stderr)
        for preset in presets:
            for path in clips:
                cases.append(measure_case(path, preset, work))
        if not args.quick:
            long_input = build_long_input(ffmpeg_exe, work / "long-1080p.mp4")
            cases.append(measure_case(long_input, args.preset or "medium", work, label="2-min 1080p (built)"))
    context["load_average_end"] = common.load_average()
    data = {
        "context": context,
        "calibration": {
            "runs": len(cals),
            "cost_s": [c.cost_s for c in cals],
            "cost_s_median": common.median(c.cost_s for c in cals),
            "encode_cpu_s_per_mpx": [c.encode_cpu_s_per_mpx for c in cals],
            "encode_cpu_s_per_mpx_median": common.median(c.encode_cpu_s_per_mpx for c in cals),
            "cpu_busy": [c.cpu_busy for c in cals],
        },
        "cases": cases,
        "summary": {
            key: summary(cases, key)
            for key in (
                "ratio_calibrated",
                "ratio_refined",
                "ratio_calibrated_same_encodes",
                "ratio_refined_same_encodes",
                "cpu_ratio_calibrated",
                "cpu_ratio_refined",
                "cpu_ratio_refined_same_encodes",
            )
        },
    }
    paths = common.write_results(out_dir, "estimates", data, render(data))
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
