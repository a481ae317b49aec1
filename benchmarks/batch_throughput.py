"""Batch throughput: the shared clips as one ``hybrid compress FOLDER -d OUT`` batch, ``--jobs 1`` against
``--jobs 2``, to decide (and keep checking) the default number of concurrent local jobs.

x264 already spreads one encode over every core, so running two files at once only helps by the share
of each job that is serial (probing, audio, x264's start and end, verification) or waiting. Each round
runs both settings back to back, alternating which goes first, so a neighbour's load hits both alike;
wall time, the children's CPU time and the load average are kept per run.

    python -m benchmarks.batch_throughput                       # preset medium, 2 rounds
    python -m benchmarks.batch_throughput --quick               # preset veryfast, 1 round
    python -m benchmarks.batch_throughput --preset veryfast --repeat 3

The instruction is "60% smaller" (each clip's target is 40 % of its own size).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from . import common

INSTRUCTION = "60% smaller"
JOBS = (1, 2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_throughput", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="preset veryfast, one round")
    parser.add_argument("--preset", default=None, help="x264 preset (default medium; veryfast with --quick)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds (default 2; 1 with --quick)")
    parser.add_argument("--out", type=Path, help="results folder")
    return parser.parse_args(argv)


def run_batch(folder: Path, jobs: int, preset: str, scratch: Path) -> dict[str, Any]:
    out = scratch / f"out-{jobs}"
    argv = [sys.executable, "-m", "hybrid", "compress", str(folder), INSTRUCTION, "--preset", preset,
            "-d", str(out), "-j", str(jobs), "--json"]  # fmt: skip
    load = common.load_average()
    proc, timing = common.timed(
        lambda: subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    )
    shutil.rmtree(out, ignore_errors=True)
    try:
        items = json.loads(proc.stdout)
    except ValueError:
        items = []
    files = len(items)
    return {
        "jobs": jobs,
        "exit_code": proc.returncode,
        "files": files,
        "ok": sum(1 for i in items if i.get("status") == "ok"),
        "wall_s": timing.wall_s,
        "child_cpu_s": timing.child_cpu_s,
        "clips_per_min": round(files / timing.wall_s * 60, 2) if timing.wall_s else None,
        "load_average_before": load,
        "failures": [f"{i['input']}: {i['error']}" for i in items if i.get("status") != "ok"],
        "stderr_tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else [],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    preset = args.preset or ("veryfast" if args.quick else "medium")
    rounds = args.repeat or (1 if args.quick else 2)
    clips = common.clips()
    context = common.run_context(imageio_ffmpeg.get_ffmpeg_exe(), preset=preset, rounds=rounds,
                                 instruction=INSTRUCTION, clips=[c.name for c in clips])  # fmt: skip
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-batch-") as tmp:
        scratch = Path(tmp)
        for n in range(rounds):
            order = JOBS if n % 2 == 0 else tuple(reversed(JOBS))
            for jobs in order:
                run = {"round": n + 1, **run_batch(common.MEDIA_DIR, jobs, preset, scratch)}
                runs.append(run)
                print(
                    f"round {n + 1} --jobs {jobs}: {run['files']} files, {run['ok']} ok, "
                    f"{run['wall_s']:.1f} s, {run['clips_per_min']} clips/min "
                    f"(load {run['load_average_before']})",
                    flush=True,
                )
    summary = {
        jobs: {
            "median_wall_s": common.median(r["wall_s"] for r in runs if r["jobs"] == jobs),
            "median_clips_per_min": common.median(r["clips_per_min"] for r in runs if r["jobs"] == jobs),
            "median_child_cpu_s": common.median(r["child_cpu_s"] for r in runs if r["jobs"] == jobs),
        }
        for jobs in JOBS
    }
    speedup = common.ratio(summary[1]["median_wall_s"], summary[2]["median_wall_s"])
    data = {"context": context, "runs": runs, "summary": summary, "speedup_2_over_1": speedup}
    table = common.md_table(
        ["round", "--jobs", "files", "ok", "wall s", "clips/min", "child CPU s", "load before"],
        [
            (
                r["round"],
                r["jobs"],
                r["files"],
                r["ok"],
                r["wall_s"],
                r["clips_per_min"],
                r["child_cpu_s"],
                r["load_average_before"],
            )
            for r in runs
        ],
    )
    cores = context["machine"]["logical_cores"]
    markdown = (
        "# Batch throughput: --jobs 1 against --jobs 2\n\n"
        f'{len(clips)} clips, "{INSTRUCTION}", preset {preset}, {rounds} round(s), {cores} cores, '
        f"load at start {context['load_average_start']}.\n\n{table}\n"
        f"Median wall time: --jobs 1 {summary[1]['median_wall_s']} s, "
        f"--jobs 2 {summary[2]['median_wall_s']} s (2 jobs {speedup}x as fast).\n"
    )
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    paths = common.write_results(out_dir, "batch_throughput", data, markdown)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
