"""Batches: expansion, naming, manifests and exit codes as plain data; then real batches of real clips
through the command line (a broken file and a duplicate name among them), on a hybrid serve node on
127.0.0.1, and resumed after Ctrl-C. Encodes use short clips with preset veryfast.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hybrid import batch
from hybrid.batch import BatchReport, Item, Source, assign_outputs, expand, read_manifest
from hybrid.cli import is_batch, split_inputs
from hybrid.cloud.server import NodeConfig, RunningNode
from hybrid.probe import probe

from .conftest import clip, leftovers, run_cli

A, B, C = "motion-320p.mov", "game-cinepak.mkv", "screen-540p-tour.mp4"


def copy(src: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(clip(src).read_bytes())
    return dest


def all_leftovers(root: Path) -> list[str]:
    """Work folders or partial files anywhere below ``root``."""
    return [
        f"{d}/{name}" for d in [root, *(p for p in root.rglob("*") if p.is_dir())] for name in leftovers(d)
    ]


# -- plain data -----------------------------------------------------------------------------------


def names(sources: list[Source], **kwargs: object) -> list[str | None]:
    params: dict[str, object] = {
        "output_dir": None,
        "overwrite": False,
        "exists": lambda p: False,
        "finished": lambda i, p: False,
    }
    params.update(kwargs)
    got = assign_outputs(sources, **params)  # type: ignore[arg-type]
    return [str(n.output) if n.output else n.error for n in got]


def test_two_inputs_with_one_name_get_numbered_outputs_in_batch_order() -> None:
    sources = [Source(Path("a/clip.mov")), Source(Path("b/clip.mp4")), Source(Path("c/clip.mkv"))]
    assert names(sources, output_dir=Path("out")) == ["out/clip.mp4", "out/clip-2.mp4", "out/clip-3.mp4"]
    # Beside the inputs the single-file rule holds, and folders keep them apart.
    assert names(sources) == ["a/clip-compressed.mp4", "b/clip-compressed.mp4", "c/clip-compressed.mp4"]


def test_existing_files_are_passed_over_unless_they_are_this_jobs_finished_output() -> None:
    sources = [Source(Path("a/clip.mov")), Source(Path("b/clip.mp4"))]
    existing = {Path("out/clip.mp4"), Path("out/clip-2.mp4")}
    # Someone else's out/clip.mp4 and out/clip-2.mp4: new names, nothing replaced.
    got = names(sources, output_dir=Path("out"), exists=lambda p: p in existing)
    assert got == ["out/clip-3.mp4", "out/clip-4.mp4"]
    # The same files recorded as these jobs' own finished outputs: found again, marked done.
    done = assign_outputs(
        sources,
        output_dir=Path("out"),
        overwrite=False,
        exists=lambda p: p in existing,
        finished=lambda i, p: p == [Path("out/clip.mp4"), Path("out/clip-2.mp4")][i],
    )
    assert [(str(n.output), n.done) for n in done] == [("out/clip.mp4", True), ("out/clip-2.mp4", True)]
    # --overwrite: the first names, replaced.
    got = names(sources, output_dir=Path("out"), exists=lambda p: p in existing, overwrite=True)
    assert got == ["out/clip.mp4", "out/clip-2.mp4"]


def test_an_output_is_never_an_input_and_explicit_outputs_are_never_renamed() -> None:
    sources = [Source(Path("d/x.mp4")), Source(Path("d/y.mov"), output=Path("d/z.mp4")),
               Source(Path("d/w.mov"), output=Path("d/z.mp4"))]  # fmt: skip
    got = names(sources, output_dir=Path("d"), overwrite=True)
    assert got == ["d/x-2.mp4", "d/z.mp4", "d/z.mp4 is also the output of an earlier file"]


def test_exit_codes_of_a_batch() -> None:
    def report(*statuses: tuple[str, int]) -> BatchReport:
        items = [Item(i, Path(f"{i}.mp4"), None, s, 1, exit_code=c) for i, (s, c) in enumerate(statuses)]  # type: ignore[arg-type]
        return BatchReport(tuple(items), 1.0)

    assert report(("ok", 0), ("skipped", 0)).exit_code == 0
    assert report(("ok", 0), ("failed", 4)).exit_code == 20
    assert report(("failed", 4), ("failed", 3)).exit_code == 21
    assert report(("failed", 4), ("failed", 4)).exit_code == 4  # one reason: its own code
    assert report(("failed", 3)).exit_code == 3  # a batch of one behaves like one file


def test_folders_globs_and_what_they_leave_out(tmp_path: Path) -> None:
    for name in ("b.mov", "a.mp4", "a-compressed.mp4", ".hidden.mp4", "notes.txt", "sub/c.mkv", ".git/d.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    flat = [s.input.name for s in expand([str(tmp_path)], "under 1MB", recursive=False)]
    assert flat == ["a.mp4", "b.mov"]  # sorted; hidden, text and our own a-compressed.mp4 left out
    deep = expand([str(tmp_path)], None, recursive=True)
    assert [(s.input.name, str(s.subfolder)) for s in deep] == [
        ("a.mp4", "."),
        ("b.mov", "."),
        ("c.mkv", "sub"),
    ]
    # A glob expanded by hybrid (for shells that do not), a file named twice runs once.
    globbed = expand([str(tmp_path / "*.m*"), str(tmp_path / "a.mp4")], None, recursive=False)
    assert [s.input.name for s in globbed] == ["a.mp4", "b.mov"]
    (missing,) = expand([str(tmp_path / "*.avi")], None, recursive=False)
    assert missing.error and "no video files match" in missing.error and missing.exit_code == 3
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (empty,) = expand([str(tmp_path / "empty")], None, recursive=False)
    assert empty.error and "is a folder with no video files in it (--recursive" in empty.error


def test_manifests_csv_and_toml(tmp_path: Path) -> None:
    (tmp_path / "jobs.csv").write_text(
        "path,instruction,output\nclips/a.mp4,under 5MB,\nb.mov,,small/b.mp4\n\n", encoding="utf-8"
    )
    rows = read_manifest(tmp_path / "jobs.csv", "half the size", recursive=False)
    assert [(s.input, s.instruction, s.output) for s in rows] == [
        (tmp_path / "clips/a.mp4", "under 5MB", None),
        (tmp_path / "b.mov", "half the size", tmp_path / "small/b.mp4"),
    ]
    (tmp_path / "jobs.toml").write_text(
        '[[job]]\npath = "a.mp4"\ninstruction = "720p"\n\n[[job]]\npath = "b.mp4"\n', encoding="utf-8"
    )
    rows = read_manifest(tmp_path / "jobs.toml", None, recursive=False)
    assert [(s.input.name, s.instruction) for s in rows] == [("a.mp4", "720p"), ("b.mp4", None)]
    for name, text, fragment in [
        ("bad.csv", "file,instruction\na.mp4,x\n", "path[,instruction][,output]"),
        ("bad2.csv", "path,colour\na.mp4,red\n", "unknown column 'colour'"),
        ("bad.toml", '[[job]]\npath = "a.mp4"\ntarget = "5MB"\n', "job 1: unknown key 'target'"),
        ("bad2.toml", "[[job]\n", "not valid TOML"),
        ("empty.toml", "", "no jobs"),
        ("jobs.json", "{}", ".csv or a .toml"),
    ]:
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
            read_manifest(tmp_path / name, None, recursive=False)


def test_arguments_one_file_stays_a_single_compress(tmp_path: Path) -> None:
    video = str(clip(A))
    assert split_inputs((video, "under 1MB"), None, manifest=False) == ([video], "under 1MB")
    assert not is_batch([video], manifest=False, output_dir=False, recursive=False)
    assert is_batch([video, video], manifest=False, output_dir=False, recursive=False)
    assert is_batch([str(tmp_path)], manifest=False, output_dir=False, recursive=False)
    assert is_batch([str(tmp_path / "*.mp4")], manifest=False, output_dir=False, recursive=False)
    assert is_batch([video], manifest=False, output_dir=True, recursive=False)
    # A glob that matches files is an input, not an instruction, even without a media extension.
    (tmp_path / "x.mov").write_bytes(b"x")
    assert split_inputs((video, str(tmp_path / "*")), None, manifest=False) == (
        [video, str(tmp_path / "*")],
        None,
    )
    assert split_inputs(("under 5MB",), None, manifest=True) == ([], "under 5MB")


# -- real batches -------------------------------------------------------------------------------------


def clips_with_trouble(root: Path) -> list[str]:
    """a/clip.mov and b/clip.mkv (one output name), and a text file called broken.mp4."""
    copy(A, root / "a" / "clip.mov")
    copy(B, root / "b" / "clip.mkv")
    (root / "a" / "broken.mp4").write_text("not a video\n", encoding="utf-8")
    return [str(root / "a"), str(root / "b" / "clip.mkv")]


def check_batch_json(
    proc: subprocess.CompletedProcess[str], root: Path, path: str
) -> list[dict[str, object]]:
    assert proc.returncode == 20, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "hybrid: error: 1 of 3 files failed"
    results = json.loads(proc.stdout)
    assert [(r["input"], r["status"]) for r in results] == [
        (str(root / "a" / "broken.mp4"), "failed"),
        (str(root / "a" / "clip.mov"), "ok"),
        (str(root / "b" / "clip.mkv"), "ok"),
    ]
    assert results[0]["exit_code"] == 4 and "not a video" in str(results[0]["error"])
    assert [r["output"] for r in results[1:]] == [
        str(root / "out" / "clip.mp4"),
        str(root / "out" / "clip-2.mp4"),
    ]
    for r in results[1:]:
        out = Path(str(r["output"]))
        before = int(str(r["size_before_bytes"]))
        assert out.stat().st_size == r["size_bytes"] <= before // 2  # "half the size"
        assert r["path"] == path and r["mode"] == "two-pass"
        assert probe(out).video is not None
    assert all_leftovers(root) == []
    return list(results)


@pytest.mark.encode
def test_a_batch_with_a_broken_file_and_a_duplicate_name_then_a_rerun_skips(tmp_path: Path) -> None:
    inputs = clips_with_trouble(tmp_path)
    args = [
        "compress",
        *inputs,
        "half the size",
        "--preset",
        "veryfast",
        "-d",
        str(tmp_path / "out"),
        "--json",
    ]
    proc = run_cli(*args, "-j", "2")
    check_batch_json(proc, tmp_path, "local")
    ledger = json.loads((tmp_path / "out" / ".hybrid.json").read_text())["outputs"]
    assert sorted(ledger) == ["clip-2.mp4", "clip.mp4"]
    assert ledger["clip-2.mp4"]["input"] == str((tmp_path / "b" / "clip.mkv").resolve())
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.mp4")}

    again = run_cli(*args)
    assert again.returncode == 20, again.stderr
    assert [r["status"] for r in json.loads(again.stdout)] == ["failed", "skipped", "skipped"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.mp4")} == stamps

    # A changed instruction is a different job: new outputs beside the old ones, nothing replaced.
    other = run_cli("compress", *inputs, "under 150KB", "--preset", "veryfast", "-d", str(tmp_path / "out"))
    assert other.returncode == 20, other.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.mp4")) == [
        "clip-2.mp4", "clip-3.mp4", "clip-4.mp4", "clip.mp4",
    ]  # fmt: skip
    assert "input" in other.stdout and "before -> after" in other.stdout  # the summary table


@pytest.mark.encode
def test_a_manifest_with_mixed_instructions(tmp_path: Path) -> None:
    copy(A, tmp_path / "in" / "talk.mov")
    copy(B, tmp_path / "in" / "game.mkv")
    manifest = tmp_path / "jobs.toml"
    manifest.write_text(
        '[[job]]\npath = "in/talk.mov"\ninstruction = "under 150KB, no audio"\n\n'
        '[[job]]\npath = "in/game.mkv"\ninstruction = "240p"\noutput = "done/game-240.mp4"\n\n'
        '[[job]]\npath = "in/talk.mov"\n',
        encoding="utf-8",
    )
    (tmp_path / "done").mkdir()
    proc = run_cli("compress", "--manifest", str(manifest), "half the size", "--preset", "veryfast", "--json")
    assert proc.returncode == 0, proc.stderr
    talk, game, talk_half = json.loads(proc.stdout)
    assert talk["status"] == game["status"] == talk_half["status"] == "ok"
    assert talk["output"] == str(tmp_path / "in" / "talk-compressed.mp4")
    assert talk["size_bytes"] <= 150_000 and talk["audio"]["codec"] is None
    assert game["output"] == str(tmp_path / "done" / "game-240.mp4") and game["video"]["height"] == 240
    # The third row has no instruction: it takes the command line's, and a name of its own.
    assert talk_half["output"] == str(tmp_path / "in" / "talk-compressed-2.mp4")
    assert talk_half["size_bytes"] <= clip(A).stat().st_size // 2 and talk_half["audio"]["codec"] == "aac"
    assert all_leftovers(tmp_path) == []


@pytest.mark.encode
def test_the_same_batch_on_a_render_node(tmp_path: Path) -> None:
    inputs = clips_with_trouble(tmp_path)
    config = NodeConfig(data_dir=tmp_path / "node", heartbeat_s=0.01, anon_tokens_per_ip=1000)
    with RunningNode(config) as node:
        proc = run_cli(
            "compress", *inputs, "half the size", "--preset", "veryfast", "-d", str(tmp_path / "out"),
            "--json", "--cloud", "--cloud-url", node.url,
        )  # fmt: skip
        results = check_batch_json(proc, tmp_path, "cloud")
        # One session held both uploads, under names that keep the two clips apart.
        (session,) = node.node.q("SELECT session_id FROM sessions")
        files = node.node.q("SELECT filename FROM files WHERE session_id=?", session["session_id"])
        assert sorted(f["filename"] for f in files) == ["clip.mkv", "clip.mov"]
        renders = node.node.q("SELECT request FROM renders WHERE status='completed' ORDER BY created_at")
        asked = [json.loads(r["request"])["target_size_bytes"] for r in renders]
        assert asked == [r["target_size_bytes"] for r in results[1:]]  # each file got its own instruction
        # Too few credits for the batch: refused before any upload, with the numbers.
    poor = NodeConfig(data_dir=tmp_path / "poor", heartbeat_s=0.01, initial_credits=6)
    with RunningNode(poor) as node:
        env = {"HYBRID_CONFIG_DIR": str(tmp_path / "poor-config")}
        proc = run_cli("compress", *inputs, "half the size", "-d", str(tmp_path / "out2"), "--cloud",
                       "--cloud-url", node.url, env=env)  # fmt: skip
        assert proc.returncode == 12, proc.stderr
        assert "has 6 credits; this batch of 2 files needs about 10" in proc.stderr
        assert node.node.q("SELECT * FROM sessions") == []
    assert not (tmp_path / "out2").exists()


@pytest.mark.encode
def test_ctrl_c_mid_batch_keeps_finished_outputs_and_a_rerun_completes_it(tmp_path: Path) -> None:
    for name in (A, B, C):
        copy(name, tmp_path / "in" / name)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "hybrid", "compress", str(tmp_path / "in"), "half the size",
            "--preset", "veryfast", "-d", str(out), "-j", "1"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        # Wait for the first file to be finished and recorded, and the second to be under way.
        while not (out / ".hybrid.json").exists() or not list(out.glob(".hybrid-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert "interrupted" in stdout  # the report says what was stopped
    assert all_leftovers(tmp_path) == []
    finished = sorted(p.name for p in out.glob("*.mp4"))
    assert finished and len(finished) < 3
    recorded = json.loads((out / ".hybrid.json").read_text())["outputs"]
    assert sorted(recorded) == finished  # every output on disk is complete and recorded

    rerun = run_cli(*args[3:], "--json")
    assert rerun.returncode == 0, rerun.stderr
    results = json.loads(rerun.stdout)
    statuses = {Path(r["input"]).name: r["status"] for r in results}
    assert sorted(n for n, s in statuses.items() if s == "skipped") == sorted(
        Path(r["input"]).name for r in results if Path(str(r["output"])).name in finished
    )
    assert list(statuses.values()).count("ok") == 3 - len(finished)
    assert sorted(p.name for p in out.glob("*.mp4")) == sorted(Path(n).stem + ".mp4" for n in (A, B, C))
    assert all_leftovers(tmp_path) == []
    assert os.path.exists(out / ".hybrid.json")


@pytest.mark.encode
def test_a_cloud_batch_survives_a_lost_session_and_a_failed_render(tmp_path: Path) -> None:
    from hybrid.cloud.batch import run_cloud_batch
    from hybrid.cloud.client import ClientOptions
    from hybrid.cloud.config import Store
    from hybrid.cloud.executor import CloudSettings

    copy(A, tmp_path / "in" / "one.mov")
    copy(A, tmp_path / "in" / "two.mov")
    (tmp_path / "in" / "notes.avi").write_text("not a video\n", encoding="utf-8")
    sources = expand([str(tmp_path / "in")], "half the size", recursive=False)
    entries = batch.prepare(sources, batch.Settings({"preset": "veryfast"}), output_dir=None, overwrite=False)
    config = NodeConfig(data_dir=tmp_path / "node", heartbeat_s=0.01, anon_tokens_per_ip=1000)
    with RunningNode(config) as node:
        node.node.arm("lose_session", 1)  # the first upload finds its session gone
        node.node.arm("render_fail", 1)  # the first render fails: retried with a new render id
        options = ClientOptions(backoff_s=0.02, rate_limit_wait_s=0.05, sse_idle_s=20)
        report = run_cloud_batch(
            entries,
            on_event=lambda e: None,
            store=Store(tmp_path / "config"),
            settings=CloudSettings(base_url=node.url, options=options, poll_max_s=0.5),
        )
        assert len(node.node.q("SELECT * FROM sessions")) == 2
    assert [(i.input.name, i.status) for i in report.items] == [
        ("notes.avi", "failed"), ("one.mov", "ok"), ("two.mov", "ok"),
    ]  # fmt: skip
    assert report.exit_code == 20
    for item in report.items[1:]:
        assert item.output is not None and item.result is not None and item.result.path == "cloud"
        assert item.output.name == f"{item.input.stem}-compressed.mp4"
        assert item.output.stat().st_size <= clip(A).stat().st_size // 2
    assert all_leftovers(tmp_path) == []
