"""This machine, measured: a psutil snapshot (Resources), x264's speed here (Calibration), and the time
estimates (Estimates) the router weighs.

Three kinds of function live here, kept apart so the router's inputs can be built by hand in a test:

- I/O: :func:`snapshot` (psutil, the disk, the battery, the config), :func:`check_cloud` (one bounded
  TCP connect to the configured base URL, nothing else), :func:`calibrate` (a short generated encode);
- the cache in the user config dir (``speed.json``): the calibration, keyed by the ffmpeg version and
  the CPU model, with the correction learnt from real encodes, and the cloud speeds seen per base URL;
- pure estimates: :func:`estimate_local_s`, :func:`estimate_cloud`, :func:`estimate`.

The local model counts CPU work, not wall time, because this machine is shared: a calibration run while
someone else encodes takes longer in wall time but about the same CPU time. Wall time is then the CPU
work divided by the cores x264 can use now (fewer when other processes keep the CPU busy), times the
correction seen in this machine's real encodes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import psutil

from . import ffmpeg
from .errors import FFmpegNotFoundError
from .models import Plan

# -- the snapshot ------------------------------------------------------------------------------------

REACH_TIMEOUT_S = 1.0  # offline must mean local without a wait a user would notice
LOAD_SAMPLE_S = 0.2
MAX_UPLOAD_BYTES = 500 * 10**6  # the render service's documented limit
CLOUD_VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".webm", ".mkv")
REFUSAL_MEMORY_S = 24 * 3600  # a "no credits" or "plan required" answer is believed for a day

Reachability = Literal["reachable", "unreachable", "unchecked"]


@dataclass(frozen=True)
class CloudState:
    """What is known about the render service without a job: its URL, whether it answered a connect,
    whether there is a token or one could be had, and a refusal it gave recently (credits, plan)."""

    base_url: str
    reachable: Reachability = "unchecked"
    reach_detail: str | None = None  # why it is unreachable, in words
    has_token: bool = False  # NEMO_TOKEN, or a stored token
    anonymous_allowed: bool = True  # config ``anonymous_tokens: false`` turns anonymous tokens off
    refusal: str | None = None  # a recent refusal that makes the service unusable, in words


@dataclass(frozen=True)
class Resources:
    """This machine now. ``cpu_busy`` is the share of all cores other processes used over a short
    sample (0..1), ``competing_threads`` how many threads of other processes wanted a CPU meanwhile;
    battery fields are None on a machine without one."""

    logical_cores: int
    physical_cores: int
    cpu_busy: float
    competing_threads: float
    available_memory_bytes: int
    free_disk_bytes: int  # where the output and its work folder go
    temp_free_bytes: int  # the system temporary folder (quality-search samples)
    battery_percent: float | None
    plugged_in: bool | None
    cpu_model: str
    ffmpeg_ok: bool
    ffmpeg_problem: str | None
    ffmpeg_version: str | None
    cloud: CloudState


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(errors="replace"), re.M)
        if found:
            return found.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def _runnable() -> int | None:
    """Threads running or waiting for a CPU right now (Linux), not counting the one reading."""
    try:
        field = Path("/proc/loadavg").read_text().split()[3]
        return max(0, int(field.split("/")[0]) - 1)
    except (OSError, IndexError, ValueError):
        return None


def sample_load(seconds: float = LOAD_SAMPLE_S) -> tuple[float, float]:
    """(share of all cores busy, CPU-hungry threads of other processes) over a short sample.

    Not the load average: hybrid's own previous encode would still show in the 1-minute average, and
    the question is what others use now. The busy share alone saturates at 100 % however many
    processes compete; the run queue says how many, which decides x264's share of the CPU.
    """
    psutil.cpu_percent(interval=None)
    counts: list[int] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n = _runnable()
        if n is not None:
            counts.append(n)
        time.sleep(seconds / 10)
    busy = min(1.0, max(0.0, psutil.cpu_percent(interval=None) / 100))
    cores = psutil.cpu_count(logical=True) or 1
    queue = sum(counts) / len(counts) if counts else 0.0
    return busy, round(max(busy * cores, queue), 2)


def _cpu_busy() -> float:
    return sample_load()[0]


def cloud_state(base_url: str, config: Mapping[str, Any], *, has_token: bool, now: float) -> CloudState:
    """The cloud as the config knows it (no network). Pure."""
    refusal = config.get("cloud_refusal")
    refused: str | None = None
    if (
        isinstance(refusal, dict)
        and refusal.get("url") == base_url
        and isinstance(refusal.get("at"), (int, float))
        and now - float(refusal["at"]) < REFUSAL_MEMORY_S
    ):
        refused = str(refusal.get("reason") or "it refused the last job")
    return CloudState(
        base_url=base_url,
        has_token=has_token,
        anonymous_allowed=config.get("anonymous_tokens") is not False,
        refusal=refused,
    )


def snapshot(output_folder: Path, *, cloud_url: str | None = None) -> Resources:
    """Measure this machine now (about 0.2 s, for the CPU sample). The cloud is not contacted: see
    :func:`check_cloud`, which the caller runs only when the cloud could be chosen."""
    from .cloud.config import Store, env_token, resolve_base_url

    store = Store()
    config = store.config()
    base_url = resolve_base_url(cloud_url, store)
    creds_token = False
    with contextlib.suppress(OSError):
        creds_token = bool(_read_json(store.credentials_path).get("token"))
    battery = None
    with contextlib.suppress(Exception):  # psutil raises odd things on machines without sensors
        battery = psutil.sensors_battery()
    try:
        version: str | None = ffmpeg.ffmpeg_version()
        ok, problem = True, None
    except FFmpegNotFoundError as exc:
        version, ok, problem = None, False, exc.message
    busy, competing = sample_load()
    return Resources(
        logical_cores=psutil.cpu_count(logical=True) or 1,
        physical_cores=psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True) or 1,
        cpu_busy=busy,
        competing_threads=competing,
        available_memory_bytes=psutil.virtual_memory().available,
        free_disk_bytes=_free_bytes(output_folder),
        temp_free_bytes=_free_bytes(Path(tempfile.gettempdir())),
        battery_percent=float(battery.percent) if battery is not None else None,
        plugged_in=bool(battery.power_plugged) if battery is not None else None,
        cpu_model=cpu_model(),
        ffmpeg_ok=ok,
        ffmpeg_problem=problem,
        ffmpeg_version=version,
        cloud=cloud_state(base_url, config, has_token=bool(env_token()) or creds_token, now=time.time()),
    )


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def check_cloud(state: CloudState, timeout_s: float = REACH_TIMEOUT_S) -> CloudState:
    """One TCP connect to the base URL's host and port, bounded by ``timeout_s`` in total (name lookup
    included: it runs in a thread we stop waiting for). No request is sent, nothing else is contacted."""
    parts = urlsplit(state.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return replace(
            state, reachable="unreachable", reach_detail=f"{state.base_url!r} is not an http(s) URL"
        )
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return replace(state, reachable="unreachable", reach_detail=f"{state.base_url!r} has a bad port")
    outcome: dict[str, str] = {}

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                outcome["ok"] = "yes"
        except OSError as exc:
            outcome["error"] = exc.strerror or type(exc).__name__

    worker = threading.Thread(target=connect, daemon=True, name="hybrid-reach")
    worker.start()
    worker.join(timeout_s + 0.1)
    if outcome.get("ok"):
        return replace(state, reachable="reachable", reach_detail=None)
    detail = outcome.get("error") or f"no answer within {timeout_s:g} s"
    return replace(state, reachable="unreachable", reach_detail=f"{host}:{port}: {detail}")


# -- calibration -------------------------------------------------------------------------------------

CAL_WIDTH, CAL_HEIGHT, CAL_FPS, CAL_FRAMES = 640, 360, 30, 60  # 2 s of 360p: about 1.5 CPU seconds
# testsrc2 alone is flat colour that x264 codes at half the cost of real footage; with this much
# temporal noise (sensor grain) it costs about what the phone and camera clips in shared/media do
# (measured: clean 0.045, grain 0.083, a camera clip 0.084 CPU s per megapixel at 576p, medium).
CAL_GRAIN = 6
SPEED_FILE = "speed.json"

# x264's CPU cost relative to "medium", measured here (user CPU time of each preset on the 720p phone
# clip, decoding subtracted). Slower presets beyond "slow" follow x264's documented ordering.
PRESET_COST: dict[str, float] = {
    "ultrafast": 0.20,
    "superfast": 0.26,
    "veryfast": 0.34,
    "faster": 0.53,
    "fast": 0.67,
    "medium": 1.0,
    "slow": 1.33,
    "slower": 2.6,
    "veryslow": 5.5,
}
# A two-pass encode's passes against one single-pass encode of the same preset: ffmpeg's libx264 runs
# the first pass with x264's fast first-pass settings, and the second pass reads the first's
# macroblock-tree statistics instead of computing its own lookahead (measured on two clips: 0.27-0.30
# and 0.58-0.68).
FIRST_PASS_COST = 0.28
SECOND_PASS_COST = 0.65
# Encoders that were not calibrated, against libx264 at the same preset name (rough; refined by the
# correction each codec learns from real encodes).
CODEC_COST: dict[str, float] = {"h264": 1.0, "hevc": 5.0, "av1": 2.5}
# Decoding cost against H.264 of the same picture size (old intra codecs are cheap, VP9 dearer).
DECODE_COST: dict[str, float] = {"h264": 1.0, "hevc": 1.5, "vp9": 1.6, "av1": 2.0, "mjpeg": 1.2}
# H.264 decoding and the scaler against x264 medium, per megapixel (measured on the phone clips: 0.0028
# against 0.07 CPU s).
DECODE_SHARE = 0.04
RUN_OVERHEAD_S = 0.1  # wall: starting one ffmpeg process, opening the input
RUN_CPU_S = 0.1  # CPU: the same, plus x264's and the scaler's set-up
VERIFY_DECODE_S = 4.0  # verification decodes the first and last two seconds of the output


@dataclass(frozen=True)
class Calibration:
    """x264 on this machine: CPU seconds per megapixel encoded at preset medium (single pass), and per
    megapixel decoded and scaled, for one ffmpeg version and CPU model."""

    ffmpeg_version: str
    cpu_model: str
    encode_cpu_s_per_mpx: float
    decode_cpu_s_per_mpx: float
    measured_at: float
    cost_s: float  # wall seconds the calibration took
    cpu_busy: float  # others' share of the CPU while it ran


@dataclass(frozen=True)
class Correction:
    """How real local encodes compared with their estimates: actual / estimated, smoothed."""

    factor: float = 1.0
    samples: int = 0


@dataclass(frozen=True)
class CloudSpeed:
    """What was seen on one base URL: upload bits per second, service seconds per second of media."""

    upload_bps: float | None = None
    service_s_per_media_s: float | None = None


def speed_path() -> Path:
    from .cloud.config import config_dir

    return config_dir() / SPEED_FILE


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(data), handle, indent=2)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def cached_calibration(version: str | None, model: str) -> Calibration | None:
    """The stored calibration when it was made with this ffmpeg and this CPU, else None."""
    raw = _read_json(speed_path()).get("calibration")
    if not isinstance(raw, dict):
        return None
    try:
        cal = Calibration(**raw)
    except TypeError:
        return None
    if cal.ffmpeg_version != version or cal.cpu_model != model or cal.encode_cpu_s_per_mpx <= 0:
        return None
    return cal


def load_correction(codec: str) -> Correction:
    raw = _read_json(speed_path()).get("corrections", {})
    entry = raw.get(codec) if isinstance(raw, dict) else None
    if isinstance(entry, dict):
        with contextlib.suppress(TypeError, ValueError):
            return Correction(factor=float(entry["factor"]), samples=int(entry["samples"]))
    return Correction()


def load_cloud_speed(base_url: str) -> CloudSpeed:
    raw = _read_json(speed_path()).get("cloud", {})
    entry = raw.get(base_url) if isinstance(raw, dict) else None
    if isinstance(entry, dict):
        with contextlib.suppress(TypeError):
            return CloudSpeed(**entry)
    return CloudSpeed()


def _update(**sections: Any) -> None:
    path = speed_path()
    data = _read_json(path)
    data.update(sections)
    _write_json(path, data)


@dataclass(frozen=True)
class _Measured:
    wall_s: float
    cpu_s: float


def _measure(argv: list[str]) -> _Measured:
    """Run ffmpeg and take its own CPU time from wait4 (not RUSAGE_CHILDREN: a render node's ffmpeg
    may be running in another thread of this process)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise FFmpegNotFoundError(
            f"the calibration encode failed (exit {proc.returncode}): {ffmpeg.last_meaningful_lines(stderr)}"
        )
    return _Measured(wall_s=time.perf_counter() - started, cpu_s=usage.ru_utime + usage.ru_stime)


def calibrate(*, force: bool = False) -> Calibration:
    """This machine's x264 speed: cached, or measured now (2 s of a generated 360p clip, a few seconds).

    Measured again when the ffmpeg version or the CPU model differs from the cached one, or ``force``.
    """
    exe = ffmpeg.find_ffmpeg()
    version = ffmpeg.ffmpeg_version()
    model = cpu_model()
    if not force:
        cached = cached_calibration(version, model)
        if cached is not None:
            return cached
    started = time.perf_counter()
    busy = _cpu_busy()
    size = f"{CAL_WIDTH}x{CAL_HEIGHT}"
    # The picture goes through the same scale/format chain as a real encode.
    chain = f"scale={CAL_WIDTH}:{CAL_HEIGHT}:flags=lanczos:out_range=tv,format=yuv420p"
    base = [exe, "-nostdin", "-hide_banner", "-v", "error"]
    with tempfile.TemporaryDirectory(prefix="hybrid-calibrate-") as tmp:
        source = Path(tmp) / "source.mp4"
        # A camera-like H.264 input, made once and decoded by both timed runs below.
        _measure([*base, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={CAL_FPS}",
                  "-vf", f"noise=alls={CAL_GRAIN}:allf=t", "-frames:v", str(CAL_FRAMES), "-c:v", "libx264",
                  "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p", "-y",
                  ffmpeg.file_arg(source)])  # fmt: skip
        read = [*base, "-i", ffmpeg.file_arg(source), "-vf", chain]
        decode = _measure([*read, "-f", "null", "-"])
        encode = _measure([*read, "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-f", "null", "-"])
    mpx = CAL_WIDTH * CAL_HEIGHT * CAL_FRAMES / 1e6
    # The difference of the two runs is the encoder alone: process start and decoding cancel out.
    encode_cost = max(1e-4, encode.cpu_s - decode.cpu_s) / mpx
    cal = Calibration(
        ffmpeg_version=version,
        cpu_model=model,
        encode_cpu_s_per_mpx=round(encode_cost, 6),
        # Decoding the grainy source is no guide to decoding camera footage (grain at CRF 18 is a far
        # denser stream), so decoding scales with the measured encoder speed instead.
        decode_cpu_s_per_mpx=round(encode_cost * DECODE_SHARE, 6),
        measured_at=round(time.time(), 3),
        cost_s=round(time.perf_counter() - started, 3),
        cpu_busy=round(busy, 3),
    )
    # A new calibration starts the learnt corrections afresh: they corrected the old one.
    _update(calibration=asdict(cal), corrections={})
    return cal


def record_local(codec: str, estimated_cpu_s: float, actual_cpu_s: float) -> Correction:
    """Learn from one real local encode: smooth actual / estimated CPU time into the codec's correction.

    CPU time, not wall time: how hard this user's videos are for x264 is worth learning; how busy the
    machine happened to be during one encode is not (the snapshot sees that each time)."""
    if estimated_cpu_s <= 0 or actual_cpu_s <= 0:
        return load_correction(codec)
    old = load_correction(codec)
    seen = min(4.0, max(0.25, actual_cpu_s / estimated_cpu_s))
    # Each real encode moves it halfway (geometrically): one outlier on a shared machine must not
    # swing it far, and a steady difference is learnt within a few encodes.
    factor = math.exp(0.5 * math.log(old.factor) + 0.5 * math.log(seen))
    new = Correction(factor=round(factor, 4), samples=old.samples + 1)
    data = _read_json(speed_path()).get("corrections", {})
    corrections = dict(data) if isinstance(data, dict) else {}
    corrections[codec] = asdict(new)
    _update(corrections=corrections)
    return new


def record_cloud(base_url: str, *, upload_bps: float | None, service_s_per_media_s: float | None) -> None:
    """Remember what one cloud job on ``base_url`` showed (smoothed with what was seen before)."""
    old = load_cloud_speed(base_url)

    def blend(a: float | None, b: float | None) -> float | None:
        if b is None or b <= 0:
            return a
        return round(b if a is None else math.sqrt(a * b), 4)

    new = CloudSpeed(
        upload_bps=blend(old.upload_bps, upload_bps),
        service_s_per_media_s=blend(old.service_s_per_media_s, service_s_per_media_s),
    )
    data = _read_json(speed_path()).get("cloud", {})
    cloud = dict(data) if isinstance(data, dict) else {}
    cloud[base_url] = asdict(new)
    _update(cloud=cloud)


# -- estimates (pure) --------------------------------------------------------------------------------

# Before any calibration: a slow laptop's x264 medium, deliberately pessimistic (about a third of this
# 2-core machine's speed) so that an uncalibrated "local is fine" holds on slower machines too.
PRIOR = Calibration(
    ffmpeg_version="prior",
    cpu_model="prior",
    encode_cpu_s_per_mpx=0.2,
    decode_cpu_s_per_mpx=0.2 * DECODE_SHARE,
    measured_at=0.0,
    cost_s=0.0,
    cpu_busy=0.0,
)

# The render service, as documented: "30-90 seconds for a 30-second clip" (the middle: 2 s a second),
# after an agent reply ("edits 10-30 s"). Bandwidths: assumed until measured or configured.
DOC_RENDER_S_PER_MEDIA_S = 2.0
DOC_AGENT_S = 20.0
ASSUMED_UPLOAD_BPS = 10e6
ASSUMED_DOWNLOAD_BPS = 50e6

Basis = Literal["measured", "configured", "assumed", "documented"]


def usable_cores(resources: Resources) -> float:
    """Cores x264 gets now. On an idle machine its threading is good but not perfect; with other
    CPU-hungry threads the scheduler shares the cores thread by thread, and x264 runs 1.5 frame
    threads per core plus its lookahead (so it gets more than one process's share)."""
    cores = max(1, resources.logical_cores)
    wanted = 1 + 0.8 * (cores - 1)
    threads = 1.5 * cores + 1
    share = cores * threads / (threads + max(0.0, resources.competing_threads))
    return max(0.1, min(wanted, share))


def local_cpu_s(plan: Plan, cal: Calibration) -> float:
    """CPU seconds of all the ffmpeg runs the plan's local encode makes (the plan's own search done)."""
    v, src = plan.video, plan.input.video
    duration = plan.duration_s
    in_mpx = (src.width * src.height / 1e6) if src is not None else 0.0
    in_fps = src.fps if src is not None and src.fps > 0 else v.fps
    decode_factor = DECODE_COST.get(src.codec if src is not None else "h264", 0.5)
    decode_once = duration * in_fps * in_mpx * cal.decode_cpu_s_per_mpx * decode_factor
    out_mpx_s = duration * v.fps * v.width * v.height / 1e6
    if v.mode == "copy":
        return RUN_CPU_S + plan.input.size_bytes / 300e6  # a remux reads and writes, decodes nothing
    encode_full = out_mpx_s * cal.encode_cpu_s_per_mpx * PRESET_COST.get(v.preset, 1.0) * CODEC_COST[v.codec]
    verify = min(duration, VERIFY_DECODE_S) * v.fps * v.width * v.height / 1e6 * cal.decode_cpu_s_per_mpx
    if v.mode == "two-pass":
        passes = encode_full * (FIRST_PASS_COST + SECOND_PASS_COST)
        return 2 * decode_once + passes + verify + runs(plan) * RUN_CPU_S
    return decode_once + encode_full + verify + runs(plan) * RUN_CPU_S


def runs(plan: Plan) -> int:
    """ffmpeg processes a local encode starts: passes, the audio's and output's byte counts, verify."""
    return 4 if plan.video.mode == "two-pass" else 2


def encodes_share(plan: Plan, encodes: int) -> float | None:
    """How a run that made ``encodes`` encoder runs compares with the estimate's (which assumes the
    second pass hits the target first time); None when the run does not fit the plan's model (a
    quality encode that fell back to two-pass)."""
    if plan.video.mode == "two-pass" and encodes >= 2:
        return (FIRST_PASS_COST + (encodes - 1) * SECOND_PASS_COST) / (FIRST_PASS_COST + SECOND_PASS_COST)
    if plan.video.mode == "crf" and encodes == 1:
        return 1.0
    return None


def estimate_local_s(plan: Plan, resources: Resources, cal: Calibration, correction: Correction) -> float:
    """Wall seconds of the local encode here and now: the CPU work (as corrected by real encodes) on
    the cores x264 gets now, plus starting its processes."""
    cpu = local_cpu_s(plan, cal) * correction.factor
    return cpu / usable_cores(resources) + runs(plan) * RUN_OVERHEAD_S


@dataclass(frozen=True)
class CloudEstimate:
    total_s: float
    upload_s: float
    service_s: float  # agent, render and polling
    download_s: float
    upload_bps: float
    upload_basis: Basis
    service_basis: Basis


def estimate_cloud(plan: Plan, speed: CloudSpeed, config: Mapping[str, Any] | None = None) -> CloudEstimate:
    """Upload + the service's time + download. Bandwidth: configured (``upload_mbps``,
    ``download_mbps``) beats measured beats assumed; the service's time: measured on this base URL,
    else the documented render time."""
    config = config or {}
    upload_basis: Basis
    if isinstance(config.get("upload_mbps"), (int, float)) and config["upload_mbps"] > 0:
        up, upload_basis = float(config["upload_mbps"]) * 1e6, "configured"
    elif speed.upload_bps:
        up, upload_basis = speed.upload_bps, "measured"
    else:
        up, upload_basis = ASSUMED_UPLOAD_BPS, "assumed"
    down = ASSUMED_DOWNLOAD_BPS
    if isinstance(config.get("download_mbps"), (int, float)) and config["download_mbps"] > 0:
        down = float(config["download_mbps"]) * 1e6
    duration = plan.duration_s
    service_basis: Basis
    if speed.service_s_per_media_s:
        service, service_basis = speed.service_s_per_media_s * duration, "measured"
    else:
        service, service_basis = DOC_AGENT_S + max(30.0, DOC_RENDER_S_PER_MEDIA_S * duration), "documented"
    upload = plan.input.size_bytes * 8 / up
    download = plan.predicted_size_bytes * 8 / down
    return CloudEstimate(
        total_s=round(upload + service + download, 1),
        upload_s=round(upload, 1),
        service_s=round(service, 1),
        download_s=round(download, 1),
        upload_bps=up,
        upload_basis=upload_basis,
        service_basis=service_basis,
    )


LocalBasis = Literal["calibrated", "calibrated+refined", "prior"]


@dataclass(frozen=True)
class Estimates:
    """Both paths' expected wall time for one plan; ``local_basis`` says what the local one rests on,
    ``calibration`` the measurement it came from (None: the prior)."""

    local_s: float
    local_basis: LocalBasis
    cloud: CloudEstimate
    calibration: Calibration | None = None


def estimate(
    plan: Plan,
    resources: Resources,
    cal: Calibration | None,
    correction: Correction,
    speed: CloudSpeed,
    config: Mapping[str, Any] | None = None,
) -> Estimates:
    """Pure: the two estimates from what was measured (``cal`` None: the pessimistic prior)."""
    basis: LocalBasis = (
        "prior" if cal is None else ("calibrated+refined" if correction.samples else "calibrated")
    )
    local_s = estimate_local_s(plan, resources, cal or PRIOR, correction if cal is not None else Correction())
    return Estimates(
        local_s=round(local_s, 1),
        local_basis=basis,
        cloud=estimate_cloud(plan, speed, config),
        calibration=cal,
    )
