import os

import pytest

from fine_tune import io
from fine_tune.io import atomic_write_dir, atomic_write_json, atomic_write_text


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "first\n")
    assert path.read_text() == "first\n"

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(path, "second\n")
    assert path.read_text() == "first\n"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_json_is_canonical(tmp_path):
    path = atomic_write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


def test_atomic_write_dir_replaces_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "model"

    def write_v1(folder):
        (folder / "weights").write_text("v1")
        (folder / "stale").write_text("x")

    atomic_write_dir(target, write_v1)
    atomic_write_dir(target, lambda folder: (folder / "weights").write_text("v2"))
    assert sorted(p.name for p in target.iterdir()) == ["weights"]
    assert (target / "weights").read_text() == "v2"

    def broken(folder):
        (folder / "weights").write_text("half")
        raise RuntimeError("crashed mid-save")

    with pytest.raises(RuntimeError, match="mid-save"):
        atomic_write_dir(target, broken)
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
