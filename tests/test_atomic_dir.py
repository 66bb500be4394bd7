"""The one writer of cache folders (built-in datasets, converted checkpoints, feature entries): all or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_transfer._cache import TMP_PREFIX, write_dir_atomically


def writer(text: str):
    def write(folder: Path) -> None:
        (folder / "data.txt").write_text(text)
        (folder / "done").touch()

    return write


def is_complete(folder: Path) -> bool:
    return (folder / "done").exists()


def test_writes_the_folder_and_leaves_no_temporary_one(tmp_path):
    final = tmp_path / "cache" / "entry"
    assert write_dir_atomically(final, writer("mine"), is_complete)
    assert (final / "data.txt").read_text() == "mine"
    assert sorted(p.name for p in final.parent.iterdir()) == ["entry"]


def test_the_loser_of_a_race_keeps_the_winners_copy(tmp_path):
    final = tmp_path / "entry"

    def racing(folder: Path) -> None:  # another process publishes while this one is still writing
        write_dir_atomically(final, writer("winner"), is_complete)
        writer("loser")(folder)

    assert not write_dir_atomically(final, racing, is_complete)
    assert (final / "data.txt").read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_an_incomplete_folder_in_the_way_is_replaced(tmp_path):
    final = tmp_path / "entry"
    final.mkdir()
    (final / "data.txt").write_text("half-written by a killed process")
    assert write_dir_atomically(final, writer("whole"), is_complete)
    assert (final / "data.txt").read_text() == "whole" and is_complete(final)
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # the stale copy was removed, not left aside


def test_a_failed_write_leaves_nothing(tmp_path):
    def failing(folder: Path) -> None:
        (folder / "partial").write_text("x")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_dir_atomically(tmp_path / "entry", failing, is_complete)
    assert not any(p.name.startswith(TMP_PREFIX) or p.name == "entry" for p in tmp_path.iterdir())
