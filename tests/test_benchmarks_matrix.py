"""The benchmark matrix's pure helpers (no encode, no timing: benchmarks measure, tests don't)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from benchmarks.matrix import split_times
from benchmarks.matrix_report import summarise, vmaf_at_equal_size


def _ok(size: int, vmaf: float, target: int) -> dict[str, Any]:
    return {
        "status": "ok",
        "size_bytes": size,
        "size_ratio": size / target,
        "over_target": size > target,
        "vmaf": vmaf,
        "wall_s": 1.0,
        "cpu_s": 1.0,
    }


def _case(name: str, target: int, paths: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "input": name,
        "target_size_bytes": target,
        "target_share": None,
        "paths": paths,
        "vs_baseline": {},
    }


def test_vmaf_at_equal_size_interpolates_in_log_size() -> None:
    # hybrid: 80 at 100 kB, 90 at 400 kB; the baseline's 200 kB sits halfway in log size: 85 there.
    cases = [
        _case("a", 410_000, {"local": _ok(400_000, 90, 410_000), "baseline": _ok(300_000, 80, 410_000)}),
        _case("a", 200_000, {"local": _ok(100_000, 80, 200_000), "baseline": _ok(200_000, 84, 200_000)}),
    ]
    deltas = vmaf_at_equal_size(cases, "local")
    at_200k = 80 + 10 * math.log(2) / math.log(4)
    assert deltas[0] == pytest.approx(at_200k - 84, abs=1e-3)
    # The baseline's 300 kB point is inside hybrid's range too; hybrid's two points are outside the
    # baseline's 200-300 kB range, so they give nothing.
    assert len(deltas) == 2


def test_one_target_per_input_gives_no_equal_size_comparison() -> None:
    cases = [_case("a", 100, {"local": _ok(95, 90, 100), "baseline": _ok(101, 91, 100)})]
    assert vmaf_at_equal_size(cases, "local") == []


def test_summary_counts_over_target_among_produced_outputs() -> None:
    cases = [
        _case("a", 100, {"local": _ok(95, 90, 100), "baseline": _ok(101, 91, 100)}),
        _case("b", 100, {"local": _ok(97, 90, 100), "baseline": {"status": "impossible"}}),
    ]
    summary = summarise({"cases": cases})
    assert summary["baseline"]["over_target"] == 1
    assert summary["baseline"]["over_target_rate"] == 1.0
    assert summary["baseline"]["refused_or_impossible"] == 1
    assert summary["local"]["over_target_rate"] == 0.0
    assert summary["local"]["median_size_ratio"] == pytest.approx(0.96)


def test_cloud_time_split_adds_up_to_the_wall_time() -> None:
    marks = [("session", 1.0), ("upload", 1.5), ("agent", 3.0), ("render", 4.0), ("download", 9.0)]
    split = split_times(0.0, marks, {"upload": 2.9, "download": 9.5}, 10.0)
    assert split == {
        "setup": 1.0,
        "session": 0.5,
        "upload": 1.5,
        "agent": 1.0,
        "queue_render": 5.0,
        "download": 0.5,
        "verify": 0.5,
    }
    assert sum(split.values()) == pytest.approx(10.0)
