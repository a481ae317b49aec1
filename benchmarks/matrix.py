"""The matrix: inputs x targets x paths, hybrid on both its paths against the tools users would pick.

Paths, all at the same x264 preset and the same target:

- **local**: ``hybrid.compress`` on this machine;
- **cloud**: ``hybrid``'s cloud executor against a ``hybrid serve`` node the benchmark starts on
  127.0.0.1 (or the node given with ``--cloud-url``); the node encodes with the same code, so the
  difference is the protocol: upload, agent, queue and render polling, download, verification;
- **baseline**: the ffmpeg wiki's two-pass with the naive bitrate ``target*8/duration - 128 kb/s``
  (``benchmarks.target_size.plain_two_pass``: same ffmpeg binary as hybrid);
- **handbrake**: ``HandBrakeCLI -e x264 --two-pass -b KBPS --crop 0:0:0:0`` at the same naive
  bitrate, when HandBrakeCLI is installed (Debian: ``apt-get install handbrake-cli``).

Inputs: the clips of shared/media at shares of their size; with ``--long`` (or ``--generated NAME``)
longer inputs built once from the clips by scaling and looping (cached in ``benchmarks/work/``), at
fixed targets: a 2-minute 1080p clip, a 10-minute 720p clip, and a ~475 MB 10-minute 1080p recording
(the product's headline case, under the render service's 500 MB upload limit).

Metrics per run: size, size/target, over target; wall time; CPU time of every process the run
started (hybrid's own Python included; for the cloud path the node's too); peak RSS of hybrid's
process, of the encoder (ffmpeg or HandBrakeCLI) and of the node; VMAF over the whole file
(frames aligned, subsampled); encodes and route; the cloud path's time split. Each hybrid run is a
child process of its own (``--worker``) so that its memory and CPU are its own.

    python -m benchmarks                  # the default matrix (the same as python -m benchmarks matrix)
    python -m benchmarks --quick          # 3 short clips, 1 target, local + cloud + baseline: < 5 min
    python -m benchmarks --long           # adds the generated 2- and 10-minute inputs (hours on 2 cores)
    python -m benchmarks.matrix --render benchmarks/results/matrix.json   # redo the report and plots
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from . import common, matrix_report
from .target_size import NAIVE_AUDIO_BPS, naive_video_bps, plain_two_pass

NAME = "matrix"
WORK_DIR = Path(__file__).resolve().parent / "work"  # generated inputs (ignored by git)
PATHS = ("local", "cloud", "baseline", "handbrake")
QUICK_PATHS = ("local", "cloud", "baseline")
QUICK_CLIPS = ("motion-320p.mov", "phone-1080p-short.mp4", "ball-576p.mp4")
# Two targets per clip (a VMAF-against-size curve needs two points); 10 % is where the naive formula
# mostly has nothing left for video (benchmarks/target_size.py covers it): --shares 0.5 0.25 0.1.
CLIP_SHARES = (0.5, 0.25)
QUICK_SHARES = (0.25,)
MB = 1_000_000
# Frames scored per second of video by libvmaf (every frame is still decoded and aligned).
VMAF_SCORED_FPS = 10.0
QUICK_VMAF_SCORED_FPS = 5.0
# veryfast, not hybrid's default medium: at medium the default matrix would take well over an hour on
# a busy 2-core machine (benchmarks/target_size.py compares hybrid and plain ffmpeg at medium).
DEFAULT_PRESET = "veryfast"
LONG_PRESET = "veryfast"


# -- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """A longer input built from the shared clips: a segment of several clips scaled to one picture
    size (letterboxed), with the talking phone clip's audio under it, looped to ``duration_s``."""

    name: str
    width: int
    height: int
    duration_s: int
    video: tuple[str, ...]  # x264 options for the segment: quality or bitrate
    targets: tuple[int, ...]  # bytes


SEGMENT_CLIPS = ("phone-720p-hello.mp4", "diver-mjpeg.mov", "screen-540p-tour.mp4", "ball-576p.mp4")
AUDIO_CLIP = "phone-720p-hello.mp4"
# All behind --long: on a busy 2-core machine the 2-minute input alone takes some 40 minutes through the
# four paths (it was meant for the default matrix; measured too slow here, it moved).
RECIPES = (
    Recipe("mix-1080p-2min.mp4", 1920, 1080, 120, ("-crf", "18"), (25 * MB,)),
    Recipe("mix-720p-10min.mp4", 1280, 720, 600, ("-crf", "20"), (50 * MB,)),
    # "a 500MB 10-minute recording", kept under the render service's 500 MB upload limit
    Recipe(
        "recording-1080p-10min-475MB.mp4",
        1920,
        1080,
        600,
        ("-b:v", "6200k", "-maxrate", "6400k", "-bufsize", "12800k"),
        (25 * MB, 100 * MB),
    ),
)


def build_input(ffmpeg_exe: str, recipe: Recipe, media: Path, work: Path) -> Path:
    """The recipe's file, built once (segment, then a stream-copied loop) and kept in ``work``."""
    dest = work / recipe.name
    if dest.exists():
        return dest
    work.mkdir(parents=True, exist_ok=True)
    segment = work / f".segment-{recipe.name}"
    w, h = recipe.width, recipe.height
    argv = [ffmpeg_exe, "-nostdin", "-v", "error", "-y"]
    for name in SEGMENT_CLIPS:
        argv += ["-i", f"file:{media / name}"]
    argv += ["-stream_loop", "-1", "-i", f"file:{media / AUDIO_CLIP}"]
    fit = (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease:flags=lanczos:out_range=tv,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=30,format=yuv420p"
    )
    pieces = [f"[{i}:v:0]{fit}[v{i}]" for i in range(len(SEGMENT_CLIPS))]
    joined = "".join(f"[v{i}]" for i in range(len(SEGMENT_CLIPS)))
    graph = ";".join(pieces) + f";{joined}concat=n={len(SEGMENT_CLIPS)}:v=1:a=0[v]"
    argv += ["-filter_complex", graph, "-map", "[v]", "-map", f"{len(SEGMENT_CLIPS)}:a:0", "-shortest"]
    argv += ["-c:v", "libx264", "-preset", "veryfast", *recipe.video, "-g", "60", "-color_range", "tv"]
    argv += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", f"file:{segment}"]
    subprocess.run(argv, check=True)
    partial = work / f".partial-{recipe.name}"
    loop = [ffmpeg_exe, "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", f"file:{segment}"]
    loop += ["-t", str(recipe.duration_s), "-c", "copy", "-movflags", "+faststart", f"file:{partial}"]
    subprocess.run(loop, check=True)
    os.replace(partial, dest)
    segment.unlink()
    return dest


@dataclass(frozen=True)
class Case:
    input: Path
    kind: str  # "clip" or "generated"
    target_bytes: int
    target_share: float | None  # of the input's size, for the clips
    preset: str


def plan_cases(args: argparse.Namespace, ffmpeg_exe: str) -> list[Case]:
    cases: list[Case] = []
    if not args.no_clips:
        clips = common.clips()
        wanted = args.clips or (QUICK_CLIPS if args.quick else None)
        if wanted:
            missing = set(wanted) - {c.name for c in clips}
            if missing:
                raise SystemExit(f"no such clips in {common.MEDIA_DIR}: {', '.join(sorted(missing))}")
            clips = [c for c in clips if c.name in wanted]
        shares = args.shares or (QUICK_SHARES if args.quick else CLIP_SHARES)
        cases += [
            Case(clip, "clip", math.floor(clip.stat().st_size * share), share, args.preset)
            for clip in clips
            for share in shares
        ]
    known = {r.name for r in RECIPES}
    unknown = set(args.generated or ()) - known
    if unknown:
        raise SystemExit(
            f"no generated input {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    for recipe in RECIPES:
        chosen = recipe.name in args.generated if args.generated else args.long and not args.quick
        if not chosen:
            continue
        print(f"input {recipe.name} (built once, cached in {WORK_DIR})", flush=True)
        path = build_input(ffmpeg_exe, recipe, common.MEDIA_DIR, WORK_DIR)
        preset = args.long_preset or LONG_PRESET
        cases += [Case(path, "generated", t, None, preset) for t in recipe.targets]
    return cases


# -- the hybrid paths, each in a child process ------------------------------------------------------


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Child mode: one hybrid compress (local or cloud), timed and measured from inside."""
    import hybrid
    from hybrid import HybridError, PlanError, Request
    from hybrid.models import Event, StageStarted, Transfer

    marks: list[tuple[str, float]] = []
    last_transfer: dict[str, float] = {}

    def on_event(event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, StageStarted):
            marks.append((event.stage, now))
        elif isinstance(event, Transfer):
            last_transfer[event.stage] = now

    request = Request(target_size_bytes=job["target"], preset=job["preset"])
    source, out = Path(job["input"]), Path(job["output"])
    cpu_self = resource.getrusage(resource.RUSAGE_SELF)
    cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    record: dict[str, Any]
    try:
        if job["path"] == "cloud":
            from hybrid.cloud.config import Store
            from hybrid.cloud.executor import CloudSettings, compress_cloud

            result = compress_cloud(
                source,
                request,
                out,
                overwrite=True,
                settings=CloudSettings(base_url=job["cloud_url"]),
                store=Store(Path(job["store"])),
                on_event=on_event,
            )
        else:
            result = hybrid.compress(source, request, out, overwrite=True, on_event=on_event)
    except PlanError as exc:
        record = {"status": "refused", "message": str(exc)}
    except HybridError as exc:
        record = {"status": "error", "error": type(exc).__name__, "message": str(exc)}
    else:
        record = {
            "status": "ok",
            "encodes": result.encodes,
            "route": f"{result.path} {result.mode}",
            "mode": result.mode,
            "width": result.width,
            "height": result.height,
        }
    ended = time.perf_counter()
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    record["wall_s"] = round(ended - started, 3)
    record["self_cpu_s"] = round(
        self_after.ru_utime + self_after.ru_stime - cpu_self.ru_utime - cpu_self.ru_stime, 3
    )
    record["child_cpu_s"] = round(
        children_after.ru_utime + children_after.ru_stime - cpu_children.ru_utime - cpu_children.ru_stime,
        3,
    )
    record["hybrid_peak_rss_bytes"] = self_after.ru_maxrss * 1024  # kilobytes on Linux
    record["stages_s"] = split_times(started, marks, last_transfer, ended)
    return record


def split_times(
    started: float, marks: list[tuple[str, float]], last_transfer: dict[str, float], ended: float
) -> dict[str, float]:
    """Where a run's wall time went.

    Local: per stage ("setup" is probing and planning, "place" the rename). Cloud: ``setup`` (probe,
    plan), ``session``, ``upload`` (until the agent is asked), ``agent`` (the instruction and the
    agent's reply), ``queue_render`` (from the export request until the node says done: queueing,
    rendering, and the client's polling interval), ``download`` (until the last byte), ``verify``
    (the client's verification of the file, and the rename).
    """
    first: dict[str, float] = {}
    for stage, at in marks:
        first.setdefault(stage, at)
    if "upload" in first:
        session_start = first.get("session", first["upload"])
        upload_end = first.get("agent", last_transfer.get("upload", ended))
        render_start = first.get("render", upload_end)
        download_start = first.get("download", ended)
        download_end = last_transfer.get("download", download_start)
        split = {
            "setup": session_start - started,
            "session": first["upload"] - session_start,
            "upload": upload_end - first["upload"],
            "agent": render_start - upload_end,
            "queue_render": download_start - render_start,
            "download": download_end - download_start,
            "verify": ended - download_end,
        }
        return {k: round(v, 3) for k, v in split.items()}
    stages: dict[str, float] = {}
    bounds = [("setup", started), *marks, ("end", ended)]
    for (name, begin), (_, end) in itertools.pairwise(bounds):
        key = "place" if name == "done" else name.split(" (")[0]
        stages[key] = round(stages.get(key, 0.0) + end - begin, 3)
    return stages


class Node:
    """``hybrid serve`` in a child process on 127.0.0.1 with plenty of credits, or a remote URL."""

    def __init__(self, work: Path, url: str | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.ps: psutil.Process | None = None
        self.store = work / "client-config"
        if url:
            self.url = url
            return
        from .cloud_overhead import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable,
            "-m",
            "hybrid",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(work / "node"),
        ]
        argv += ["--credits", "1000000000"]
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, "HYBRID_CONFIG_DIR": str(work / "node-config")},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(work / "node.log").open("wb"),
        )
        self.ps = psutil.Process(self.proc.pid)
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"the render node did not start: see {work / 'node.log'}")

    def cpu_s(self) -> float:
        """The node's CPU time so far, with that of the encoders it has waited for."""
        if self.ps is None:
            return 0.0
        try:
            t = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_hybrid(path: str, case: Case, out: Path, node: Node | None) -> dict[str, Any]:
    job = {
        "path": path,
        "input": str(case.input),
        "target": case.target_bytes,
        "preset": case.preset,
        "output": str(out),
        "cloud_url": node.url if node else None,
        "store": str(node.store) if node else None,
    }
    node_cpu_before = node.cpu_s() if node else 0.0
    with common.PeakRss() as peaks:
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.matrix", "--worker", json.dumps(job)],
            cwd=common.REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"status": "error", "error": "worker", "message": f"exit {proc.returncode}: {tail}"}
    record: dict[str, Any] = json.loads(lines[-1])
    record["cpu_s"] = round(record["self_cpu_s"] + record["child_cpu_s"], 3)
    if node is not None and node.ps is not None:
        node_cpu = round(node.cpu_s() - node_cpu_before, 3)
        record["node_cpu_s"] = node_cpu
        record["cpu_s"] = round(record["cpu_s"] + node_cpu, 3)
        record["node_peak_rss_bytes"] = peaks.peak(lambda _name, pid: pid == node.proc.pid)  # type: ignore[union-attr]
    record["encoder_peak_rss_bytes"] = peaks.peak(lambda name, _pid: name.startswith("ffmpeg"))
    return record


# -- the other tools ----------------------------------------------------------------------------------


def run_tool(fn: Callable[[], None], encoder_name: str) -> dict[str, Any]:
    with common.PeakRss() as peaks:
        try:
            _, timing = common.timed(fn)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            return {"status": "error", "error": encoder_name, "message": str(exc)}
    return {
        "status": "ok",
        "wall_s": timing.wall_s,
        "cpu_s": timing.child_cpu_s,
        "child_cpu_s": timing.child_cpu_s,
        "encoder_peak_rss_bytes": peaks.peak(lambda name, _pid: name.startswith(encoder_name[:15])),
        "encodes": 2,
    }


def handbrake_two_pass(exe: str, source: Path, video_bps: int, preset: str, out: Path) -> None:
    """HandBrakeCLI's two-pass at the naive bitrate; no auto-crop, AAC 128 kb/s, fast start."""
    argv = [exe, "-i", str(source), "-o", str(out), "-f", "av_mp4", "-O", "-e", "x264"]
    argv += ["--encoder-preset", preset, "-b", str(video_bps // 1000), "--two-pass", "--crop", "0:0:0:0"]
    argv += ["-E", "av_aac", "-B", str(NAIVE_AUDIO_BPS // 1000)]
    proc = subprocess.run(argv, cwd=out.parent, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"HandBrakeCLI exited {proc.returncode}: {tail}")


def run_path(
    path: str,
    case: Case,
    out: Path,
    *,
    ffmpeg_exe: str,
    handbrake: str | None,
    node: Node | None,
    duration_s: float,
) -> dict[str, Any]:
    if path in ("local", "cloud"):
        record = run_hybrid(path, case, out, node if path == "cloud" else None)
    else:
        if path == "handbrake" and handbrake is None:
            return {"status": "not installed", "message": "HandBrakeCLI is not installed"}
        video_bps = naive_video_bps(case.target_bytes, duration_s)
        if video_bps <= 0:
            return {
                "status": "impossible",
                "message": f"the naive formula leaves {video_bps / 1000:.0f} kb/s for video",
                "video_bps": video_bps,
            }
        if path == "baseline":
            record = run_tool(
                lambda: plain_two_pass(ffmpeg_exe, case.input, video_bps, case.preset, out), "ffmpeg"
            )
        else:
            assert handbrake is not None
            record = run_tool(
                lambda: handbrake_two_pass(handbrake, case.input, video_bps, case.preset, out), "HandBrakeCLI"
            )
        record["video_bps"] = video_bps
        record["route"] = f"{path} two-pass"
        for leftover in out.parent.glob("ffmpeg2pass-*"):
            leftover.unlink()
    if record["status"] == "ok":
        if not out.exists():
            return {"status": "error", "error": "no output", "message": f"{path} made no file"}
        size = out.stat().st_size
        record["size_bytes"] = size
        record["size_ratio"] = round(size / case.target_bytes, 4)
        record["over_target"] = size > case.target_bytes
        if "width" not in record:
            record.update(_picture(out))
    return record


def _picture(path: Path) -> dict[str, Any]:
    import hybrid

    try:
        info = hybrid.probe(path)
    except hybrid.HybridError:
        return {}
    if info.video is None:
        return {}
    return {"width": info.video.display_width, "height": info.video.display_height}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def merge_repeats(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from N runs: median times, CPU and memory; the first run's everything else."""
    merged = dict(runs[0])
    ok = [r for r in runs if r["status"] == "ok"]
    if merged["status"] != "ok" or not ok:
        return merged
    for key in ("wall_s", "cpu_s", "child_cpu_s", "self_cpu_s", "node_cpu_s"):
        if key in merged:
            merged[key] = common.median(r.get(key) for r in ok)
            merged[f"{key}_runs"] = [r.get(key) for r in ok]
    for key in ("hybrid_peak_rss_bytes", "encoder_peak_rss_bytes", "node_peak_rss_bytes"):
        if key in merged:
            value = common.median(r.get(key) for r in ok)
            merged[key] = int(value) if value is not None else None
    if "stages_s" in merged:
        names = {name for r in ok for name in r.get("stages_s", {})}
        merged["stages_s"] = {
            name: round(common.median(r.get("stages_s", {}).get(name) for r in ok) or 0.0, 3)
            for name in names
        }
    sizes = sorted({r["size_bytes"] for r in ok})
    if len(sizes) > 1 or len(ok) != len(runs):
        merged["varied"] = {"sizes": sizes, "statuses": [r["status"] for r in runs]}
    return merged


def repro(path: str, case: Case, cloud_url: str | None) -> str:
    if path in ("local", "cloud"):
        cloud = f" --cloud --cloud-url {cloud_url or 'URL'}" if path == "cloud" else ""
        options = f"--target {case.target_bytes} --preset {case.preset}{cloud}"
        return f"hybrid compress {case.input} {options} -o /tmp/r.mp4"
    if case.kind == "clip":
        return f"python -m benchmarks --clips {case.input.name} --shares {case.target_share} --paths {path}"
    return f"python -m benchmarks --no-clips --generated {case.input.name} --paths {path}"


def run_case(
    case: Case,
    paths: Sequence[str],
    repeat: int,
    *,
    ffmpeg_exe: str,
    handbrake: str | None,
    node: Node | None,
    scored_fps: float,
) -> dict[str, Any]:
    import hybrid

    info = hybrid.probe(case.input)
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in paths}
    vmaf: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(
        prefix="hybrid-matrix-", dir=WORK_DIR if WORK_DIR.exists() else None
    ) as tmp:
        work = Path(tmp)
        for i in range(repeat):
            # Rotate the order so that a change in the machine's load does not favour one path.
            order = list(paths[i % len(paths) :]) + list(paths[: i % len(paths)])
            for path in order:
                folder = work / f"{path}-{i}"
                folder.mkdir()
                record = run_path(
                    path,
                    case,
                    folder / "out.mp4",
                    ffmpeg_exe=ffmpeg_exe,
                    handbrake=handbrake,
                    node=node,
                    duration_s=info.duration_s,
                )
                runs[path].append(record)
        # VMAF once per path (the first repeat's output); identical files are measured once.
        by_hash: dict[str, dict[str, float] | None] = {}
        for path in paths:
            out = work / f"{path}-0" / "out.mp4"
            if runs[path][0]["status"] != "ok" or not out.exists():
                continue
            digest = _sha256(out)
            if digest not in by_hash:
                try:
                    scores = common.full_vmaf(ffmpeg_exe, out, case.input, scored_fps=scored_fps)
                    by_hash[digest] = {k: round(v, 3) for k, v in scores.items()}
                except Exception as exc:  # reported in the results, not raised: the sizes still count
                    vmaf[f"{path}_error"] = f"{type(exc).__name__}: {exc}"
                    by_hash[digest] = None
            else:
                vmaf[f"{path}_same_file_as"] = next(
                    p for p in paths if p in vmaf and vmaf.get(f"{p}_digest") == digest
                )
            vmaf[path] = by_hash[digest]
            vmaf[f"{path}_digest"] = digest
            if path == "handbrake":
                vmaf["handbrake_x264"] = common.x264_of_file(out)
    records = {p: merge_repeats(r) for p, r in runs.items()}
    for path, rec in records.items():
        if rec["status"] == "ok":
            rec.update(vmaf.get(path) or {"vmaf": None})
            rec["output_sha256"] = vmaf.get(f"{path}_digest")
            if path in ("local", "cloud") and vmaf.get(f"{path}_same_file_as"):
                rec["same_output_as"] = vmaf[f"{path}_same_file_as"]
            if rec["over_target"]:
                rec["repro"] = repro(path, case, node.url if node and path == "cloud" else None)
        if path in vmaf and f"{path}_error" in vmaf:
            rec["vmaf_error"] = vmaf[f"{path}_error"]
    base = records.get("baseline", {})
    v = info.video
    return {
        "input": case.input.name,
        "kind": case.kind,
        "source_size_bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "source_width": v.display_width if v else None,
        "source_height": v.display_height if v else None,
        "source_fps": v.fps if v else None,
        "source_has_audio": info.audio is not None,
        "target_share": case.target_share,
        "target_size_bytes": case.target_bytes,
        "preset": case.preset,
        "paths": records,
        "handbrake_x264": vmaf.get("handbrake_x264"),
        "vs_baseline": {
            p: {
                "wall": common.ratio(r.get("wall_s"), base.get("wall_s")),
                "cpu": common.ratio(r.get("cpu_s"), base.get("cpu_s")),
            }
            for p, r in records.items()
            if p != "baseline" and r["status"] == "ok" and base.get("status") == "ok"
        },
    }


# -- command line ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="3 short clips, 1 target, local+cloud+baseline")
    parser.add_argument(
        "--long", action="store_true", help="add the generated inputs: 2 and 10 minutes (an hour or more)"
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default benchmarks/results, quick: .../quick)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs per measurement, medians reported (default 1)",
    )
    parser.add_argument("--preset", help=f"x264 preset for the clips (default {DEFAULT_PRESET})")
    parser.add_argument("--long-preset", help=f"x264 preset for the generated inputs (default {LONG_PRESET})")
    parser.add_argument("--cloud-url", help="a remote render node instead of one started on 127.0.0.1")
    parser.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips of shared/media")
    parser.add_argument(
        "--shares",
        nargs="+",
        type=float,
        metavar="SHARE",
        help="the clips' targets as shares of their size (default 0.5 0.25, quick 0.25)",
    )
    parser.add_argument("--no-clips", action="store_true", help="none of the shared clips")
    parser.add_argument(
        "--generated",
        nargs="+",
        metavar="NAME",
        help="only these generated inputs ("
        + ", ".join(r.name for r in RECIPES)
        + "), with or without --long",
    )
    parser.add_argument("--paths", nargs="+", choices=PATHS, help="only these paths (baseline is always run)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="encode nothing: redo report and plots")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.render:
        data = json.loads(args.render.read_text())
        out_dir = args.out or args.render.parent
        for path in matrix_report.write(out_dir, data):
            print(f"wrote {path}")
        return 0
    common.exit_cleanly_on_sigterm()
    started = time.monotonic()
    args.preset = args.preset or DEFAULT_PRESET
    # Once by default: sizes and VMAF do not change between runs, and on a busy 2-core machine two runs
    # of the default matrix took over 1.5 hours. Timings want --repeat 3 on a quiet machine.
    repeat = args.repeat or 1
    paths = list(args.paths or (QUICK_PATHS if args.quick else PATHS))
    if "baseline" not in paths:
        paths.append("baseline")  # ratios are against it
    out_dir = args.out or (common.QUICK_RESULTS_DIR if args.quick else common.RESULTS_DIR)
    ffmpeg_exe = common.require_ffmpeg()
    handbrake = shutil.which("HandBrakeCLI")
    scored_fps = QUICK_VMAF_SCORED_FPS if args.quick else VMAF_SCORED_FPS
    cases = plan_cases(args, ffmpeg_exe)
    context = common.run_context(
        ffmpeg_exe,
        quick=args.quick,
        long=args.long,
        preset=args.preset,
        long_preset=args.long_preset or LONG_PRESET,
        repeat=repeat,
        paths=paths,
        clip_target_shares=list(args.shares or (QUICK_SHARES if args.quick else CLIP_SHARES)),
        vmaf_scored_fps=scored_fps,
        vmaf_method=common.vmaf_method(),
        vmaf_threads=common.VMAF_THREADS,
        naive_audio_bps=NAIVE_AUDIO_BPS,
        cloud_node=args.cloud_url or "hybrid serve started on 127.0.0.1",
    )
    context["versions"]["handbrake"] = common.handbrake_version(handbrake) if handbrake else "not installed"
    load_samples: list[list[float] | None] = [common.load_average()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hybrid-matrix-node-") as tmp:
        node = Node(Path(tmp), args.cloud_url) if "cloud" in paths else None
        try:
            for n, case in enumerate(cases, 1):
                result = run_case(
                    case,
                    paths,
                    repeat,
                    ffmpeg_exe=ffmpeg_exe,
                    handbrake=handbrake,
                    node=node,
                    scored_fps=scored_fps,
                )
                result["load_average"] = common.load_average()
                load_samples.append(result["load_average"])
                results.append(result)
                print(matrix_report.progress_line(n, len(cases), result), flush=True)
        finally:
            if node is not None:
                node.stop()
    context["load_average_end"] = common.load_average()
    context["load_average_1min_median"] = common.median(s[0] for s in load_samples if s)
    context["runtime_s"] = round(time.monotonic() - started, 1)
    if context["versions"]["handbrake"] != "not installed":
        context["versions"]["handbrake_x264"] = next(
            (c["handbrake_x264"] for c in results if c["handbrake_x264"]), None
        )
    data = {"benchmark": NAME, "context": context, "cases": results}
    for path in matrix_report.write(out_dir, data):
        print(f"wrote {path}")
    print(f"runtime {context['runtime_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
