"""The command line's side of batches: the bars, the per-file lines, the summary table, the JSON.

``cli.py`` decides that a command is a batch and calls :func:`run_batch`; everything printed for a
batch is printed here (the core, ``batch.py``, only reports events).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from . import batch
from .batch import BatchEvent, BatchReport, Item, JobEvent, JobFinished, JobStarted
from .errors import BatchError
from .models import Message, Progress, StageStarted, Transfer, Waiting
from .units import format_duration, format_size


class BatchDrawer:
    """An overall bar (files done of all) and, below it, one bar per running job for its stage.

    Without bars (not a terminal), one line per finished file on stderr instead.
    """

    def __init__(self, *, bars: bool, quiet: bool, total: int, workers: int) -> None:
        self.bars = bars
        self.quiet = quiet
        self.total = total
        self.done = 0
        self.overall: tqdm | None = None
        self.job_bars: dict[int, tqdm] = {}
        if bars:
            self.overall = tqdm(
                total=total, desc="batch", unit="file", file=sys.stderr, position=0, leave=False,
                dynamic_ncols=True, bar_format="{desc:<14} {n}/{total} files |{bar}| [{elapsed}<{remaining}]",
            )  # fmt: skip
        self.workers = workers

    def __call__(self, event: BatchEvent) -> None:
        if isinstance(event, batch.Preparing):
            if self.overall is not None:
                self.overall.set_description_str(f"probing {event.index + 1}/{event.total}")
        elif isinstance(event, JobFinished):
            if self.overall is not None and self.done == 0:
                self.overall.set_description_str("batch")
            self._close_slot(event.slot)
            self.done += 1
            if self.overall is not None:
                self.overall.update(1)
            if not self.quiet:
                self._write(f"hybrid: [{self.done}/{self.total}] {item_line(event.item)}")
        elif isinstance(event, JobStarted):
            self._close_slot(event.slot)
            if self.overall is not None:
                self.overall.set_description_str("batch")
        elif isinstance(event, JobEvent):
            inner = event.event
            if isinstance(inner, Message):
                if not self.quiet:
                    self._write(f"hybrid: {event.input.name}: {inner.text}")
            elif self.bars:
                self._draw(event.slot, event.input, inner)

    def _draw(self, slot: int, name: Path, inner: Any) -> None:
        label = f"{_short(name.name, 24)} {getattr(inner, 'stage', '')}"
        if isinstance(inner, StageStarted):
            self._close_slot(slot)
            if inner.total_s > 0:
                self.job_bars[slot] = self._bar(slot, label, inner.total_s, "s")
        elif isinstance(inner, Progress):
            bar = self.job_bars.get(slot)
            if bar is not None:
                bar.n = round(min(inner.done_s, bar.total), 2)
                bar.refresh()
        elif isinstance(inner, (Transfer, Waiting)):
            bar = self.job_bars.get(slot)
            if bar is None or not str(bar.desc).endswith(inner.stage):
                self._close_slot(slot)
                is_bytes = isinstance(inner, Transfer)
                # The agent reports no percentage, only that it is alive: a counter, not a bar.
                total = inner.total_bytes if isinstance(inner, Transfer) else 100 if inner.progress else None
                bar = self.job_bars[slot] = self._bar(slot, label, total or 0, "B" if is_bytes else "%")
            value = inner.done_bytes if isinstance(inner, Transfer) else (inner.progress or 0)
            bar.n = value
            bar.refresh()

    def _bar(self, slot: int, label: str, total: float, unit: str) -> tqdm:
        return tqdm(
            total=round(total, 2) if total else None, desc=label, unit=unit, unit_scale=unit == "B",
            file=sys.stderr, position=slot, leave=False, dynamic_ncols=True,
        )  # fmt: skip

    def _close_slot(self, slot: int) -> None:
        bar = self.job_bars.pop(slot, None)
        if bar is not None:
            bar.close()

    def _write(self, text: str) -> None:
        tqdm.write(text, file=sys.stderr)

    def close(self) -> None:
        for slot in list(self.job_bars):
            self._close_slot(slot)
        if self.overall is not None:
            self.overall.close()
            self.overall = None


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _sizes(item: Item) -> str:
    if item.size_before_bytes is None:
        return "-"
    after = format_size(item.size_after_bytes) if item.size_after_bytes is not None else "-"
    return f"{format_size(item.size_before_bytes)} -> {after}"


def item_line(item: Item) -> str:
    if item.status in ("ok", "skipped"):
        ratio = f" ({item.ratio:.0%})" if item.ratio is not None else ""
        how = "already done, skipped" if item.status == "skipped" else format_duration(item.elapsed_s)
        return f"{item.status} {item.input} -> {item.output}: {_sizes(item)}{ratio}, {how}"
    return f"{item.status} {reason(item)}"


def reason(item: Item) -> str:
    """The file and its error, naming the file once (most errors already start with its path)."""
    error = item.error or item.status
    return error if str(item.input) in error else f"{item.input}: {error}"


def render_report(report: BatchReport) -> str:
    """The summary table, then the reason of each failure, then one line of totals."""
    if not report.items:
        return "no video files to compress"
    header = ("input", "output", "before -> after", "ratio", "path", "time", "status")
    rows = [header]
    for item in report.items:
        rows.append(
            (
                str(item.input),
                str(item.output) if item.output else "-",
                _sizes(item),
                f"{item.ratio:.0%}" if item.ratio is not None else "-",
                item.result.path if item.result else ("-" if item.status != "skipped" else "done"),
                format_duration(item.elapsed_s) if item.status in ("ok", "failed") else "-",
                item.status if item.status != "failed" else f"failed ({item.exit_code})",
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[c]) for c, cell in enumerate(row)).rstrip() for row in rows]
    for item in report.items:
        if item.status == "failed":
            lines.append(reason(item))
    before = sum(i.size_before_bytes or 0 for i in report.items if i.status in ("ok", "skipped"))
    after = sum(i.size_after_bytes or 0 for i in report.items if i.status in ("ok", "skipped"))
    counts = ", ".join(
        f"{report.count(s)} {s}" for s in ("ok", "skipped", "failed", "interrupted") if report.count(s)
    )
    total = f"{len(report.items)} file{'s' if len(report.items) != 1 else ''}: {counts}"
    if before:
        total += f"; {format_size(before)} -> {format_size(after)}"
    lines.append(f"{total}; {format_duration(report.elapsed_s)}")
    return "\n".join(lines)


def item_json(item: Item, result_json: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """One file's JSON: the single-file result's keys when it ran, plus input/status/error/sizes."""
    data: dict[str, Any] = result_json(item.result) if item.result is not None else {}
    data.update(
        {
            "input": str(item.input),
            "output": str(item.output) if item.output else None,
            "status": item.status,
            "size_before_bytes": item.size_before_bytes,
            "size_bytes": item.size_after_bytes,
            "ratio": round(item.ratio, 4) if item.ratio is not None else None,
            "elapsed_s": round(item.elapsed_s, 3),
            "error": item.error,
            "exit_code": {"failed": item.exit_code, "interrupted": 130}.get(item.status, 0),
        }
    )
    return data


def run_batch(
    *,
    inputs: Sequence[str],
    instruction: str | None,
    manifest: Path | None,
    recursive: bool,
    output_dir: Path | None,
    overwrite: bool,
    settings: batch.Settings,
    workers: int | None,
    as_json: bool,
    quiet: bool,
    result_json: Callable[[Any], dict[str, Any]],
    cloud: bool = False,
    cloud_url: str | None = None,
) -> None:
    """Expand, prepare, run, report; raise BatchError (20, 21 or the shared code) when files failed."""
    sources = batch.expand(inputs, instruction, recursive=recursive)
    if manifest is not None:
        try:
            sources = batch.read_manifest(manifest, instruction, recursive=recursive) + sources
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--manifest") from None
    if output_dir is not None and output_dir.exists() and not output_dir.is_dir():
        raise click.BadParameter(f"{output_dir} is not a folder", param_hint="--output-dir")
    jobs = workers or (1 if cloud else batch.default_workers())
    bars = not quiet and not as_json and sys.stdout.isatty() and sys.stderr.isatty()
    drawer = BatchDrawer(bars=bars, quiet=quiet or as_json, total=len(sources), workers=jobs)
    try:
        entries = batch.prepare(
            sources, settings, output_dir=output_dir, overwrite=overwrite, shared_instruction=instruction,
            on_event=drawer,
        )  # fmt: skip
        if cloud:
            from .cloud.batch import run_cloud_batch

            report = run_cloud_batch(entries, cloud_url=cloud_url, on_event=drawer)
        else:
            report = batch.run_jobs(entries, batch.local_executor(settings), workers=jobs, on_event=drawer)
    except batch.BatchInterrupted as exc:
        drawer.close()
        _show(exc.report, as_json=as_json, quiet=quiet, result_json=result_json)
        raise
    finally:
        drawer.close()
    _show(report, as_json=as_json, quiet=quiet, result_json=result_json)
    code = report.exit_code
    if code:
        failed = report.count("failed")
        if failed == len(report.items) == 1:
            raise BatchError(reason(report.items[0]), code)
        raise BatchError(f"{failed} of {len(report.items)} files failed", code)


def _show(
    report: BatchReport, *, as_json: bool, quiet: bool, result_json: Callable[[Any], dict[str, Any]]
) -> None:
    if as_json:
        click.echo(json.dumps([item_json(item, result_json) for item in report.items], indent=2))
    elif not quiet:
        click.echo(render_report(report))
