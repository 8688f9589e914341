"""``run_folder``: a run folder copied to a worker's folder, changed there by a "task", and the changes
applied back give the folder the task left, whatever it did; nothing outside the run folder is read or
written. Plain folders stand in for the two machines (``tests/dask`` runs it on a real cluster)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from magnus_jupyter.executor import run_folder
from magnus_jupyter.executor.run_folder import DIR, FILE, LINK, Entry


def _view(root: Path) -> dict[str, tuple[str, int, str, bytes]]:
    """What travels of ``root``: kind, mode, link target and content of each entry."""
    tree, _ = run_folder.scan(str(root))
    return {r: (e.kind, e.mode, e.target, (root / r).read_bytes() if e.kind == FILE else b"")
            for r, e in tree.items()}


def _send(run: Path, worker: Path) -> tuple[run_folder.Tree, int]:
    """What ``DaskSlots`` does before the task: the run folder's tree, with digests, built on the worker."""
    tree, _ = run_folder.scan(str(run))
    contents = {r: (run / r).read_bytes() for r, e in tree.items() if e.kind == FILE}
    tree = {r: dataclasses.replace(e, digest=run_folder.digest(contents[r])) if e.kind == FILE else e
            for r, e in tree.items()}
    worker.mkdir()
    since = time.time_ns()
    return run_folder.build(str(worker), tree, contents), since


def _round_trip(tmp_path: Path, task: Callable[[Path], None]) -> list[str]:
    """Run ``task`` in a worker copy of ``tmp_path/run``, apply its changes; the two folders must agree."""
    run, worker = tmp_path / "run", tmp_path / "worker"
    before, since = _send(run, worker)
    task(worker)
    notes = run_folder.apply(str(run), run_folder.changes(str(worker), before, since))
    assert _view(run) == _view(worker)
    return notes


def _populate(run: Path) -> None:
    for path, text in (("a.txt", "a long line\n"), ("gone/inner/x.txt", "x\n"), ("keep/y.txt", "y\n"),
                       ("bin/tool.sh", "#!/bin/sh\n"), ("kind/file", "f\n")):
        (run / path).parent.mkdir(parents=True, exist_ok=True)
        (run / path).write_text(text)
    (run / "kind" / "dir").mkdir()
    (run / "kind" / "dir" / "z.txt").write_text("z\n")
    (run / "empty").mkdir()
    (run / "link").symlink_to("a.txt")
    (run / "bin" / "tool.sh").chmod(0o755)


def test_what_a_task_does_comes_back_as_it_left_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _populate(run)

    def task(here: Path) -> None:
        assert (here / "empty").is_dir() and os.access(here / "bin" / "tool.sh", os.X_OK)
        assert os.readlink(here / "link") == "a.txt"
        (here / "new" / "deeper" / "empty").mkdir(parents=True)
        (here / "new" / "file.txt").write_text("new\n")
        (here / "a.txt").write_text("short")
        shutil.rmtree(here / "gone")
        (here / "bin" / "tool.sh").chmod(0o700)
        (here / "keep").chmod(0o555)  # a read-only folder: made so after what is in it
        (here / "kind" / "file").unlink()
        (here / "kind" / "file").mkdir()  # a file becomes a folder
        shutil.rmtree(here / "kind" / "dir")
        (here / "kind" / "dir").write_text("now a file\n")  # and a folder a file
        (here / "link").unlink()
        (here / "link").symlink_to("new/file.txt")  # retargeted
        (here / "abs").symlink_to(here / "new" / "file.txt")  # absolute, inside: comes back relative
        (here / "empty").rmdir()

    try:
        assert _round_trip(tmp_path, task) == []
        assert os.readlink(run / "abs") == os.path.join("new", "file.txt")
        assert not (run / "gone").exists() and (run / "new" / "deeper" / "empty").is_dir()
        assert stat.S_IMODE((run / "keep").stat().st_mode) == 0o555
    finally:
        (run / "keep").chmod(0o755)
        (tmp_path / "worker" / "keep").chmod(0o755)


def test_a_file_rewritten_within_its_clock_tick_with_the_same_size_is_seen(tmp_path: Path) -> None:
    """A file written just before the task can change again with the same size and mtime (a coarse file
    system clock): its content is compared, not its stat."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "recent.txt").write_text("0123456789")

    def task(here: Path) -> None:
        st = (here / "recent.txt").stat()
        (here / "recent.txt").write_text("abcdefghij")
        os.utime(here / "recent.txt", ns=(st.st_atime_ns, st.st_mtime_ns))

    _round_trip(tmp_path, task)
    assert (run / "recent.txt").read_text() == "abcdefghij"


def test_links_out_of_the_folder_stay_behind_and_nothing_is_written_through_one(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    (run / "inside.txt").write_text("inside\n")
    (run / "out").symlink_to(outside)
    (run / "out_file").symlink_to("../outside/secret.txt")
    (run / "chain").symlink_to("out_file")
    (run / "via").symlink_to(os.path.join("..", "run", "inside.txt"))  # leaves, comes back in
    (run / "abs").symlink_to(run / "inside.txt")

    tree, outside_links = run_folder.scan(str(run))
    assert outside_links == ["chain", "out", "out_file"]
    assert {r: e.target for r, e in tree.items() if e.kind == LINK} == {"via": "inside.txt",
                                                                       "abs": "inside.txt"}
    worker = tmp_path / "worker"
    before, since = _send(run, worker)
    assert not any((worker / name).is_symlink() for name in ("out", "out_file", "chain"))
    (worker / "out").mkdir()
    (worker / "out" / "planted.txt").write_text("planted\n")
    (worker / "out_file").write_text("replaces a link it was not sent\n")
    (worker / "made").symlink_to("/etc/hostname")
    notes = run_folder.apply(str(run), run_folder.changes(str(worker), before, since))

    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert os.readlink(run / "out_file") == "../outside/secret.txt"
    assert not (run / "made").is_symlink()
    assert notes == [
        "symlink 'made' the task made leads out of its folder: not brought back",
        "'out' is not written: the run folder has a symlink there the task was not sent",
        "'out/planted.txt' is not written: a symlink the task was not sent is on its way",
        "'out_file' is not written: the run folder has a symlink there the task was not sent"]


def test_a_removed_folder_keeps_what_the_task_was_not_sent(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_folder, "MAX_FILE", 100)
    run = tmp_path / "run"
    (run / "data" / "__pycache__").mkdir(parents=True)
    (run / "data" / "small.txt").write_text("small\n")
    (run / "data" / "big.bin").write_bytes(b"x" * 101)
    (run / "data" / ".hidden").write_text("hidden\n")
    worker = tmp_path / "worker"
    before, since = _send(run, worker)
    assert sorted(p.name for p in (worker / "data").iterdir()) == ["small.txt"]
    shutil.rmtree(worker / "data")
    notes = run_folder.apply(str(run), run_folder.changes(str(worker), before, since))
    assert notes == ["folder 'data' the task removed is kept: it holds files the task was not sent"]
    assert sorted(p.name for p in (run / "data").iterdir()) == [".hidden", "__pycache__", "big.bin"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root is not held back by folder modes")
def test_a_task_folder_with_read_only_folders_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "task"
    (root / "locked" / "inner").mkdir(parents=True)
    (root / "locked" / "inner" / "f").write_text("f")
    (root / "locked" / "inner").chmod(0o500)
    (root / "locked").chmod(0o000)
    run_folder.remove(str(root))
    assert not root.exists()


def test_the_tree_of_a_folder_is_what_travels(tmp_path: Path) -> None:
    (tmp_path / "a" / "node_modules").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    (tmp_path / "a" / "f").write_text("f")
    os.mkfifo(tmp_path / "fifo")
    tree, _ = run_folder.scan(str(tmp_path))
    assert sorted(tree) == ["a", "a/f"]
    assert tree["a"] == Entry(DIR, stat.S_IMODE((tmp_path / "a").stat().st_mode))
    assert tree["a/f"].kind == FILE and tree["a/f"].size == 1
