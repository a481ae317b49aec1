"""Cloud overhead: a compress through a local ``hybrid serve`` node against the same compress done locally.

The node runs in its own process on 127.0.0.1 and encodes with the same code and settings, so the
difference in wall time is the protocol's cost: session, streamed upload, the agent's SSE reply,
export polling (short first, backing off towards the documented interval), streamed download, and
the client's own verification. Stage start times show where it goes.

Also measured: the client's peak RSS while uploading a ~400 MB file (it must stay flat: the upload
is streamed from disk in 256 kB chunks), in a child process of its own so nothing else counts.

    python -m benchmarks.cloud_overhead            # ~5 MB and ~100 MB inputs, and the 400 MB upload
    python -m benchmarks.cloud_overhead --quick    # the ~5 MB input and the 400 MB upload only

Inputs are built in a temporary folder by looping a shared clip with ``-stream_loop`` (no re-encode).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from hybrid.cloud.client import NemoClient
from hybrid.cloud.config import Store
from hybrid.cloud.executor import CloudSettings, compress_cloud
from hybrid.local import compress
from hybrid.models import Event, Request, StageStarted

from . import common

SOURCE = "phone-720p-hello.mp4"  # 4.3 MB, 8.3 s of 720p: the ~5 MB input as it is
INPUTS = {"5MB": (0, 0.4), "100MB": (22, 0.25)}  # loops of SOURCE, target as a share of the input
UPLOAD_LOOPS = 93  # ~403 MB


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cloud_overhead", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="only the ~5 MB input (and the upload)")
    parser.add_argument("--preset", default="veryfast", help="x264 preset for both paths (default veryfast)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per input and path (median reported)")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument("--upload-probe", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def loop_clip(ffmpeg_exe: str, source: Path, loops: int, dest: Path) -> Path:
    if loops == 0:
        shutil.copyfile(source, dest)
        return dest
    subprocess.run(
        [
            ffmpeg_exe,
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-stream_loop",
            str(loops),
            "-i",
            f"file:{source}",
            "-c",
            "copy",
            "-movflags",
            "+faststart",
            f"file:{dest}",
        ],
        check=True,
    )
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Node:
    """``hybrid serve`` in a child process, with its own config and data folders."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HYBRID_CONFIG_DIR": str(work / "node-config")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hybrid",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(work / "node"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit("the render node did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_pair(node: Node, source: Path, target: int, preset: str, work: Path, order: int) -> dict[str, Any]:
    request = Request(target_size_bytes=target, preset=preset)
    out: dict[str, Any] = {}

    def local_run() -> None:
        dest = work / "local.mp4"
        dest.unlink(missing_ok=True)
        started = time.monotonic()
        result = compress(source, request, dest)
        out["local"] = {"wall_s": round(time.monotonic() - started, 2), "size_bytes": result.size_bytes}

    def cloud_run() -> None:
        dest = work / "cloud.mp4"
        dest.unlink(missing_ok=True)
        marks: dict[str, float] = {}

        def sink(event: Event) -> None:
            if isinstance(event, StageStarted) and event.stage not in marks:
                marks[event.stage] = time.monotonic()

        started = time.monotonic()
        result = compress_cloud(
            source,
            request,
            dest,
            settings=CloudSettings(base_url=node.url),
            store=Store(work / "client-config"),
            on_event=sink,
        )
        wall = time.monotonic() - started
        stages = {k: round(v - started, 2) for k, v in sorted(marks.items(), key=lambda kv: kv[1])}
        out["cloud"] = {"wall_s": round(wall, 2), "size_bytes": result.size_bytes, "stage_start_s": stages}

    for run in (local_run, cloud_run) if order % 2 == 0 else (cloud_run, local_run):
        run()
    return out


def upload_probe(url: str, path: Path) -> None:
    """Child mode: upload ``path`` once, print the RSS before and the peak during, as JSON."""
    proc = psutil.Process()
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    with NemoClient(url, Store(path.parent / "probe-config")) as client:
        session = client.create_session().session_id
        before = proc.memory_info().rss
        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        try:
            client.upload(session, path)
            outcome = "accepted"
        except Exception as exc:  # reported, not raised: the memory is what is measured
            outcome = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        done.set()
    print(
        json.dumps(
            {
                "file_bytes": path.stat().st_size,
                "outcome": outcome,
                "upload_s": round(elapsed, 2),
                "rss_before_mb": round(before / 1e6, 1),
                "rss_peak_mb": round(max(peak[0], before) / 1e6, 1),
                "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3, 1),
            }
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.upload_probe:
        upload_probe(args.upload_probe[0], Path(args.upload_probe[1]))
        return 0
    common.exit_cleanly_on_sigterm()
    ffmpeg_exe = common.require_ffmpeg()
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    inputs = {k: v for k, v in INPUTS.items() if not args.quick or k == "5MB"}
    context = common.run_context(ffmpeg_exe, preset=args.preset, repeat=args.repeat, quick=args.quick)
    source = common.MEDIA_DIR / SOURCE
    cases: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-cloud-bench-") as tmp:
        work = Path(tmp)
        node = Node(work)
        try:
            for label, (loops, share) in inputs.items():
                clip = loop_clip(ffmpeg_exe, source, loops, work / f"input-{label}.mp4")
                size = clip.stat().st_size
                runs = [
                    run_pair(node, clip, int(size * share), args.preset, work, n) for n in range(args.repeat)
                ]
                local_s = common.median(r["local"]["wall_s"] for r in runs)
                cloud_s = common.median(r["cloud"]["wall_s"] for r in runs)
                case = {
                    "input": label,
                    "input_bytes": size,
                    "target_bytes": int(size * share),
                    "runs": runs,
                    "local_wall_s": local_s,
                    "cloud_wall_s": cloud_s,
                    "overhead_s": round((cloud_s or 0) - (local_s or 0), 2),
                }
                cases.append(case)
                print(f"{label}: local {local_s} s, cloud {cloud_s} s", file=sys.stderr)
                clip.unlink()
            big = loop_clip(ffmpeg_exe, source, UPLOAD_LOOPS, work / "upload-400MB.mp4")
            probe = subprocess.run(
                [sys.executable, "-m", "benchmarks.cloud_overhead", "--upload-probe", node.url, str(big)],
                capture_output=True,
                text=True,
                check=True,
                cwd=common.REPO_ROOT,
            )
            upload = json.loads(probe.stdout)
            print(f"400 MB upload: peak RSS {upload['rss_peak_mb']} MB", file=sys.stderr)
        finally:
            node.stop()
    context["load_average_end"] = common.load_average()
    data = {"context": context, "cases": cases, "upload_400mb": upload}
    rows = [
        (
            c["input"],
            common.fmt_bytes(c["input_bytes"]),
            common.fmt_bytes(c["target_bytes"]),
            c["local_wall_s"],
            c["cloud_wall_s"],
            c["overhead_s"],
            json.dumps(c["runs"][0]["cloud"]["stage_start_s"]),
        )
        for c in cases
    ]
    markdown = (
        "# Cloud overhead: through a local render node vs locally\n\n"
        + common.context_markdown(context)
        + "\n"
        + common.md_table(
            ["input", "size", "target", "local s", "cloud s", "overhead s", "cloud stage starts (s)"], rows
        )
        + f"\nClient during a {common.fmt_bytes(upload['file_bytes'])} upload: "
        f"RSS {upload['rss_before_mb']} MB before, peak {upload['rss_peak_mb']} MB "
        f"({upload['upload_s']} s, {upload['outcome']}).\n"
    )
    json_path, md_path = common.write_results(out_dir, "cloud_overhead", data, markdown)
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
