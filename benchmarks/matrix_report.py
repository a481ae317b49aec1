"""The matrix's report: the summary per path, the Markdown tables and the PNG plots, from its JSON.

Pure functions of the JSON data (plots aside), so ``python -m benchmarks.matrix --render FILE`` can
redo them without encoding anything. matplotlib is a benchmark-only extra (``pip install -e .[bench]``);
without it the JSON and the Markdown are still written.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import common

NAME = "matrix"
PATH_ORDER = ("local", "cloud", "baseline", "handbrake")
LABELS = {
    "local": "hybrid local",
    "cloud": "hybrid cloud",
    "baseline": "ffmpeg two-pass (naive)",
    "handbrake": "HandBrakeCLI two-pass",
}
COLORS = {"local": "#1f77b4", "cloud": "#17becf", "baseline": "#d62728", "handbrake": "#ff7f0e"}
MARKERS = {"local": "o", "cloud": "s", "baseline": "X", "handbrake": "D"}
PLOTS = {
    "size": "matrix-size-target.png",
    "time": "matrix-wall-time.png",
    "vmaf": "matrix-vmaf-size.png",
}


def paths_of(data: dict[str, Any]) -> list[str]:
    present = {p for c in data["cases"] for p in c["paths"]}
    return [p for p in PATH_ORDER if p in present]


def target_label(case: dict[str, Any]) -> str:
    size = common.fmt_bytes(case["target_size_bytes"])
    share = case.get("target_share")
    return f"{share:.0%} ({size})" if share is not None else size


def case_label(case: dict[str, Any]) -> str:
    return f"{case['input']} @ {target_label(case)}"


# -- summary ----------------------------------------------------------------------------------------


def _interp(points: list[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation in ``points`` (sorted by x) at ``x``; None outside their range."""
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if len(points) == 1 and points[0][0] == x:
        return points[0][1]
    return None


def vmaf_at_equal_size(cases: list[dict[str, Any]], path: str, other: str = "baseline") -> list[float]:
    """VMAF differences ``path - other`` at equal output size, per input.

    Each path's outputs of one input (one per target) make a curve of VMAF against log size. Where one
    path's output size lies within the other's range of sizes, the other's VMAF at that size is
    interpolated (linearly in log size) and the difference taken; both directions are pooled. An
    input with a single target gives no difference (nothing to interpolate between).
    """

    def curves() -> dict[str, dict[str, list[tuple[float, float]]]]:
        out: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for c in cases:
            for p in (path, other):
                rec = c["paths"].get(p, {})
                if rec.get("status") == "ok" and rec.get("vmaf") is not None:
                    point = (math.log(rec["size_bytes"]), float(rec["vmaf"]))
                    out.setdefault(c["input"], {}).setdefault(p, []).append(point)
        return out

    deltas: list[float] = []
    for by_path in curves().values():
        mine, theirs = sorted(by_path.get(path, [])), sorted(by_path.get(other, []))
        if len(mine) < 2 and len(theirs) < 2:
            continue
        for x, v in theirs:
            at = _interp(mine, x)
            if at is not None:
                deltas.append(round(at - v, 3))
        for x, v in mine:
            at = _interp(theirs, x)
            if at is not None:
                deltas.append(round(v - at, 3))
    return deltas


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    cases = data["cases"]
    summary: dict[str, Any] = {}
    for path in paths_of(data):
        recs = [c["paths"][path] for c in cases if path in c["paths"]]
        ok = [r for r in recs if r["status"] == "ok"]
        over = [
            c
            for c in cases
            if c["paths"].get(path, {}).get("status") == "ok" and c["paths"][path]["over_target"]
        ]
        ratios = [c["vs_baseline"][path] for c in cases if path in c.get("vs_baseline", {})]
        deltas = vmaf_at_equal_size(cases, path) if path != "baseline" else []
        same_case_vmaf = [
            (c["paths"][path]["vmaf"] - c["paths"]["baseline"]["vmaf"])
            for c in cases
            if path != "baseline"
            and c["paths"].get(path, {}).get("vmaf") is not None
            and c["paths"].get("baseline", {}).get("vmaf") is not None
        ]
        entry: dict[str, Any] = {
            "cases": len(recs),
            "produced": len(ok),
            "not_installed": sum(r["status"] == "not installed" for r in recs),
            "refused_or_impossible": sum(r["status"] in ("refused", "impossible") for r in recs),
            "errors": sum(r["status"] == "error" for r in recs),
            "over_target": len(over),
            "over_target_rate": round(len(over) / len(ok), 4) if ok else None,
            "over_target_cases": [case_label(c) for c in over],
            "median_size_ratio": common.median(r["size_ratio"] for r in ok),
            "min_size_ratio": min((r["size_ratio"] for r in ok), default=None),
            "max_size_ratio": max((r["size_ratio"] for r in ok), default=None),
            "median_wall_ratio": common.median(r["wall"] for r in ratios),
            "median_cpu_ratio": common.median(r["cpu"] for r in ratios),
            "compared_cases": len(ratios),
            "median_wall_s": common.median(r.get("wall_s") for r in ok),
            "median_vmaf": common.median(r.get("vmaf") for r in ok),
            "median_vmaf_minus_baseline_same_target": common.median(same_case_vmaf),
            "vmaf_minus_baseline_equal_size": deltas,
            "median_vmaf_minus_baseline_equal_size": common.median(deltas),
            "median_hybrid_peak_rss_bytes": common.median(r.get("hybrid_peak_rss_bytes") for r in ok),
            "median_encoder_peak_rss_bytes": common.median(r.get("encoder_peak_rss_bytes") for r in ok),
            "max_encoder_peak_rss_bytes": max(
                (r["encoder_peak_rss_bytes"] for r in ok if r.get("encoder_peak_rss_bytes")), default=None
            ),
            "extra_encodes": sum(max(0, r.get("encodes", 2) - 2) for r in ok if r.get("mode") == "two-pass"),
        }
        if path == "cloud":
            for part in ("setup", "session", "upload", "agent", "queue_render", "download", "verify"):
                entry[f"median_{part}_s"] = common.median(r.get("stages_s", {}).get(part) for r in ok)
            entry["median_node_peak_rss_bytes"] = common.median(r.get("node_peak_rss_bytes") for r in ok)
            entry["identical_to_local"] = sum(r.get("same_output_as") == "local" for r in ok)
        summary[path] = entry
    return summary


# -- Markdown -------------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"


def _signed(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f}"


def progress_line(n: int, total: int, case: dict[str, Any]) -> str:
    parts = []
    for path in PATH_ORDER:
        rec = case["paths"].get(path)
        if rec is None:
            continue
        if rec["status"] == "ok":
            parts.append(
                f"{path} {rec['size_ratio']:.3f} {rec['wall_s']:.1f}s vmaf {_num(rec.get('vmaf'), 1)}"
            )
        else:
            parts.append(f"{path} {rec['status']}")
    return f"[{n}/{total}] {case_label(case)}: " + "; ".join(parts)


def summary_table(data: dict[str, Any], summary: dict[str, Any]) -> str:
    paths = paths_of(data)
    s = summary

    def row(name: str, fn: Any) -> list[str]:
        return [name, *(fn(s[p], p) for p in paths)]

    rows = [
        row("outputs / cases", lambda e, _p: f"{e['produced']} / {e['cases']}"),
        row(
            "over target",
            lambda e, _p: f"{e['over_target']} ({_pct(e['over_target_rate'])})" if e["produced"] else "-",
        ),
        row("median size/target", lambda e, _p: _num(e["median_size_ratio"])),
        row("size/target range", lambda e, _p: f"{_num(e['min_size_ratio'])} - {_num(e['max_size_ratio'])}"),
        row(
            "refused or impossible / not installed / errors",
            lambda e, _p: f"{e['refused_or_impossible']} / {e['not_installed']} / {e['errors']}",
        ),
        row(
            "wall time / baseline (median)",
            lambda e, p: "1" if p == "baseline" else _num(e["median_wall_ratio"], 2),
        ),
        row(
            "CPU time / baseline (median)",
            lambda e, p: "1" if p == "baseline" else _num(e["median_cpu_ratio"], 2),
        ),
        row("median VMAF", lambda e, _p: _num(e["median_vmaf"], 1)),
        row(
            "VMAF - baseline, same target (median)",
            lambda e, p: "-" if p == "baseline" else _signed(e["median_vmaf_minus_baseline_same_target"]),
        ),
        row(
            "VMAF - baseline, equal size (median, n)",
            lambda e, p: (
                "-"
                if p == "baseline"
                else f"{_signed(e['median_vmaf_minus_baseline_equal_size'])} "
                f"({len(e['vmaf_minus_baseline_equal_size'])})"
            ),
        ),
        row("peak RSS, hybrid process (median)", lambda e, _p: _mb(e["median_hybrid_peak_rss_bytes"])),
        row(
            "peak RSS, encoder (median / max)",
            lambda e, _p: (
                f"{_mb(e['median_encoder_peak_rss_bytes'])} / {_mb(e['max_encoder_peak_rss_bytes'])}"
            ),
        ),
        row(
            "extra second passes (retries)",
            lambda e, p: str(e["extra_encodes"]) if p in ("local", "cloud") else "-",
        ),
    ]
    headers = ["", *(LABELS[p] for p in paths)]
    return common.md_table(headers, rows)


def _rss(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f}"


def cases_table(data: dict[str, Any]) -> str:
    rows = []
    for c in data["cases"]:
        first = True
        for path in paths_of(data):
            rec = c["paths"].get(path)
            if rec is None:
                continue
            lead = [c["input"], target_label(c)] if first else ["", ""]
            first = False
            ratios = c.get("vs_baseline", {}).get(path, {})
            if rec["status"] != "ok":
                status = {"error": "**ERROR**", "impossible": "impossible by formula"}.get(
                    rec["status"], rec["status"]
                )
                rows.append([*lead, LABELS[path], status, *["-"] * 11])
                continue
            res = f"{rec.get('width')}x{rec.get('height')}" if rec.get("width") else "?"
            rows.append(
                [
                    *lead,
                    LABELS[path],
                    common.fmt_bytes(rec["size_bytes"]),
                    f"{rec['size_ratio']:.3f}",
                    "**OVER**" if rec["over_target"] else "no",
                    _num(rec.get("wall_s"), 1),
                    "1" if path == "baseline" else _num(ratios.get("wall"), 2),
                    _num(rec.get("cpu_s"), 1),
                    "1" if path == "baseline" else _num(ratios.get("cpu"), 2),
                    _num(rec.get("vmaf"), 1),
                    _rss(rec.get("hybrid_peak_rss_bytes")),
                    _rss(rec.get("encoder_peak_rss_bytes")),
                    str(rec.get("encodes", "-")),
                    res,
                ]
            )
    headers = [
        "input",
        "target",
        "path",
        "size",
        "size/target",
        "over",
        "wall s",
        "wall / base",
        "CPU s",
        "CPU / base",
        "VMAF",
        "hybrid RSS MB",
        "encoder RSS MB",
        "encodes",
        "output",
    ]
    return common.md_table(headers, rows)


def cloud_table(data: dict[str, Any]) -> str:
    rows = []
    for c in data["cases"]:
        rec = c["paths"].get("cloud")
        if not rec or rec["status"] != "ok":
            continue
        st = rec.get("stages_s", {})
        rows.append(
            [
                c["input"],
                target_label(c),
                _num(rec["wall_s"], 1),
                _num(st.get("upload"), 2),
                _num(st.get("agent"), 2),
                _num(st.get("queue_render"), 2),
                _num(st.get("download"), 2),
                _num((st.get("setup") or 0) + (st.get("session") or 0) + (st.get("verify") or 0), 2),
                _num(c["paths"].get("local", {}).get("wall_s"), 1),
                _rss(rec.get("node_peak_rss_bytes")),
            ]
        )
    headers = [
        "input",
        "target",
        "cloud wall s",
        "upload s",
        "agent s",
        "queue+render s",
        "download s",
        "probe+session+verify s",
        "local wall s",
        "node RSS MB",
    ]
    return common.md_table(headers, rows)


def render_markdown(data: dict[str, Any], summary: dict[str, Any], plots: Iterable[str]) -> str:
    ctx = data["context"]
    paths = paths_of(data)
    out = ["# Benchmark matrix: hybrid local and cloud against ffmpeg and HandBrake\n"]
    out.append(
        "Every input at every target through every path, at the same x264 preset: hybrid locally "
        "(`hybrid.compress`), hybrid through a render node (`hybrid serve` on 127.0.0.1), the ffmpeg "
        "wiki's two-pass with the naive bitrate `target*8/duration - 128 kb/s` (same ffmpeg as hybrid), "
        "and HandBrakeCLI's two-pass at that bitrate (`--crop 0:0:0:0`, AAC 128 kb/s). Times, CPU and "
        "memory are medians of the repeats; ratios are against the baseline in the same run. CPU = "
        "user+system time of every process the run started (for hybrid its own Python too, and for the "
        "cloud path the node's). VMAF: vmaf_v0.6.1 over the whole output against the source, the output "
        "scaled back to the source's size, subsampled as the settings say; frames aligned both by index "
        "and by time (fps filter), the better score kept (a misalignment only lowers it; neither is "
        "right for every tool's output, see benchmarks/common.py).\n"
    )
    out.append(common.context_markdown(ctx))
    out.append(
        f"- runtime: {_num(ctx.get('runtime_s'), 0)} s; median 1-minute load average between cases: "
        f"{_num(ctx.get('load_average_1min_median'), 2)} on {ctx['machine']['logical_cores']} cores"
    )
    v = ctx["versions"]
    if "handbrake" in paths:
        out.append(f"- HandBrakeCLI: {v['handbrake']} (x264 {v.get('handbrake_x264') or '?'})")
    out.append("\n## Summary\n")
    out.append(summary_table(data, summary))
    if "cloud" in paths and summary["cloud"]["produced"]:
        s = summary["cloud"]
        out.append(
            f"\nCloud path, median seconds: probe and plan {_num(s['median_setup_s'], 2)}, session "
            f"{_num(s['median_session_s'], 2)}, upload {_num(s['median_upload_s'], 2)}, agent "
            f"{_num(s['median_agent_s'], 2)}, queue+render {_num(s['median_queue_render_s'], 2)}, download "
            f"{_num(s['median_download_s'], 2)}, verify {_num(s['median_verify_s'], 2)}; node peak RSS "
            f"{_mb(s['median_node_peak_rss_bytes'])}; "
            f"{s['identical_to_local']} of {s['produced']} outputs byte-identical to the local path's."
        )
    out.append(
        '\n"VMAF - baseline, equal size": each path\'s outputs of one input make a curve of VMAF against '
        "log size; where one path's size falls within the other's range, the other's VMAF there is "
        'interpolated and the difference taken (inputs with one target give none). "Same target" '
        "compares the outputs made for the same target, whatever their sizes.\n"
    )
    out.append("## Plots\n")
    out.extend(f"![{name}]({name})" for name in plots)
    out.append("\n## Cases\n")
    out.append(cases_table(data))
    if "cloud" in paths:
        out.append("\n## Cloud path: where the time went\n")
        out.append(cloud_table(data))
    notes = []
    for c in data["cases"]:
        for path, rec in c["paths"].items():
            if rec["status"] in ("refused", "error", "impossible"):
                notes.append(f"- {case_label(c)}, {path} {rec['status']}: {rec.get('message')}")
            if rec.get("repro"):
                notes.append(f"- {case_label(c)}, {path} over target; reproduce: `{rec['repro']}`")
            if rec.get("varied"):
                notes.append(f"- {case_label(c)}, {path} varied between repeats: {rec['varied']}")
            if rec.get("vmaf_error"):
                notes.append(f"- {case_label(c)}, {path} VMAF failed: {rec['vmaf_error']}")
    if notes:
        out.append("\n## Notes\n")
        out.append("\n".join(notes) + "\n")
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip() + "\n"


# -- plots ------------------------------------------------------------------------------------------


def _short(case: dict[str, Any]) -> str:
    name = re.sub(r"\.(mp4|mov|mkv|avi|webm)$", "", case["input"])
    if case["input"].endswith(".webm"):
        name += " (webm)"
    return f"{name} @ {target_label(case)}"


def _plain_log_axis(axis: Any) -> None:
    """A log axis labelled 0.5, 1, 2, 5, 10 ... rather than in powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot(out_dir: Path, data: dict[str, Any]) -> list[str]:
    """Write the three PNGs; returns their file names (none when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    cases, paths = data["cases"], paths_of(data)
    labels = [_short(c) for c in cases]
    n = len(cases)
    height = max(3.0, 0.32 * n + 1.6)
    offsets = {p: (i - (len(paths) - 1) / 2) * 0.18 for i, p in enumerate(paths)}
    written = []

    # 1. size / target per case
    fig, ax = plt.subplots(figsize=(8.5, height))
    ax.axvspan(1.0, 10, color="#d62728", alpha=0.07, lw=0)
    ax.axvline(1.0, color="#d62728", lw=1)
    top = 1.05
    for p in paths:
        xs, ys = [], []
        for i, c in enumerate(cases):
            rec = c["paths"].get(p, {})
            if rec.get("status") == "ok":
                xs.append(rec["size_ratio"])
                ys.append(i + offsets[p])
        top = max([top, *xs])
        ax.scatter(xs, ys, label=LABELS[p], color=COLORS[p], marker=MARKERS[p], s=34, zorder=3)
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, min(top * 1.05, 3.0))
    ax.set_xlabel("output size / target (over 1 = over the target)")
    ax.set_title("Output size against the target, per case", pad=26)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(paths), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out_dir / PLOTS["size"], dpi=90)
    plt.close(fig)
    written.append(PLOTS["size"])

    # 2. wall time per path: seconds, and the ratio to the baseline
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, height), sharey=True)
    for p in paths:
        ys, secs = [], []
        rys, ratios = [], []
        for i, c in enumerate(cases):
            rec = c["paths"].get(p, {})
            if rec.get("status") == "ok":
                ys.append(i + offsets[p])
                secs.append(rec["wall_s"])
            r = c.get("vs_baseline", {}).get(p, {}).get("wall")
            if r is not None:
                rys.append(i + offsets[p])
                ratios.append(r)
        left.barh(ys, secs, height=0.17, color=COLORS[p], label=LABELS[p])
        if p != "baseline":
            right.scatter(ratios, rys, color=COLORS[p], marker=MARKERS[p], s=34, label=LABELS[p], zorder=3)
    left.set_xscale("log")
    walls = [
        r["wall_s"] for c in cases for r in c["paths"].values() if r.get("status") == "ok" and r["wall_s"]
    ]
    if walls:  # bars on a log axis need a floor well below the shortest, or they look cut off
        left.set_xlim(min(walls) / 3, max(walls) * 1.3)
    _plain_log_axis(left.xaxis)
    left.set_xlabel("wall time, s (log scale)")
    left.set_yticks(range(n), labels, fontsize=8)
    left.invert_yaxis()
    left.grid(axis="x", alpha=0.3)
    left.set_title("seconds", fontsize=9)
    right.axvline(1.0, color=COLORS["baseline"], lw=1)
    right.set_xscale("log")
    _plain_log_axis(right.xaxis)
    right.set_xlabel("wall time / ffmpeg two-pass (log scale; under 1 = faster)")
    right.grid(axis="x", alpha=0.3)
    right.set_title("against the baseline, same run", fontsize=9)
    handles, names = left.get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.3 / height),
        ncol=len(paths),
        fontsize=8,
    )
    ctx = data.get("context", {})
    runs = ctx.get("settings", {}).get("repeat", 1)
    load = ctx.get("load_average_1min_median")
    cores = ctx.get("machine", {}).get("logical_cores", "?")
    how = "one run each" if runs == 1 else f"median of {runs} runs"
    where = f"; load average ~{load:.1f} on {cores} cores" if isinstance(load, (int, float)) else ""
    fig.suptitle(f"Wall time per path ({how}{where})", y=0.995)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / height))
    fig.savefig(out_dir / PLOTS["time"], dpi=90)
    plt.close(fig)
    written.append(PLOTS["time"])

    # 3. VMAF against size, one panel per input
    inputs = list(dict.fromkeys(c["input"] for c in cases))
    cols = min(4, len(inputs))
    rows = math.ceil(len(inputs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows + 0.6), squeeze=False)
    for ax, name in zip(axes.flat, inputs, strict=False):
        mine = [c for c in cases if c["input"] == name]
        for c in mine:
            ax.axvline(c["target_size_bytes"] / 1e6, color="grey", lw=0.8, ls=":")
        for p in paths:
            pts = sorted(
                (c["paths"][p]["size_bytes"] / 1e6, c["paths"][p]["vmaf"])
                for c in mine
                if c["paths"].get(p, {}).get("status") == "ok" and c["paths"][p].get("vmaf") is not None
            )
            if pts:
                xs, ys = zip(*pts, strict=True)
                # The cloud path's outputs are usually the local path's, byte for byte: drawn smaller on top.
                style, size = ("--", 3.5) if p == "cloud" else ("-", 6.0)
                ax.plot(xs, ys, style, color=COLORS[p], marker=MARKERS[p], ms=size, lw=1.2, label=LABELS[p])
        ax.set_xscale("log")
        _plain_log_axis(ax.xaxis)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.set_xlabel("output size, MB (dotted: targets)", fontsize=7)
        ax.set_ylabel("VMAF", fontsize=7)
    for ax in list(axes.flat)[len(inputs) :]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    top = 1 - 0.75 / fig.get_figheight()
    fig.legend(
        handles, names, loc="upper center", bbox_to_anchor=(0.5, top + 0.02), ncol=len(paths), fontsize=8
    )
    fig.suptitle("VMAF against output size (up and left is better)", y=0.995, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, top - 0.02))
    fig.savefig(out_dir / PLOTS["vmaf"], dpi=80)
    plt.close(fig)
    written.append(PLOTS["vmaf"])
    return written


def write(out_dir: Path, data: dict[str, Any]) -> list[Path]:
    """Summary into the data, then matrix.json, matrix.md and the plots into ``out_dir``."""
    data["summary"] = summarise(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = plot(out_dir, data)
    json_path, md_path = common.write_results(
        out_dir, NAME, data, render_markdown(data, data["summary"], plots)
    )
    return [json_path, md_path, *(out_dir / p for p in plots)]
