"""mcviz._paths: every path a user gives (path parameters, -f, a template, -o) is refused alike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest_reports import listing
from helpers import one_line

from mcviz import _paths


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("x")
    return tmp_path


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("folder", "folder", "folder"),
        ("folder", "any", "folder"),
        ("file.txt", "file", "file.txt"),
        (Path("file.txt"), "any", "file.txt"),
        ("./folder/../file.txt", "file", "file.txt"),
    ],
)
def test_check_path_accepts_and_returns_absolute(tree, value, kind, expected):
    assert _paths.check_path(value, "p", kind=kind) == tree / expected


def test_check_path_expands_home(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree))
    assert _paths.check_path("~/folder", "p", kind="folder") == tree / "folder"


@pytest.mark.parametrize(
    ("value", "kind", "error", "message"),
    [
        (
            "file.txt",
            "folder",
            ValueError,
            "p must be an existing folder, got 'file.txt' (a file, not a folder)",
        ),
        ("folder", "file", ValueError, "p must be an existing file, got 'folder' (a folder, not a file)"),
        ("nope", "any", ValueError, "p must be an existing file or folder, got 'nope' (not found)"),
        ("file.txt/x", "any", ValueError, "got 'file.txt/x' (not found)"),  # a path under a file
        ("", "folder", ValueError, "p must be an existing folder, got '' (an empty path)"),
        ("  ", "folder", ValueError, "(an empty path)"),
        ("a\x00b", "any", ValueError, "(a NUL byte in a path)"),
        ("x" * 5000, "any", ValueError, "(over 4,096 characters)"),
        (
            "caf\udce9",
            "any",
            ValueError,
            "got 'caf\\udce9' (not UTF-8 text)",
        ),  # argv bytes that are not UTF-8
        ("/dev/null", "file", ValueError, "got '/dev/null' (not a regular file)"),
        (3, "any", TypeError, "p must be an existing file or folder, got 3"),
        (b"folder", "any", TypeError, "got b'folder'"),
        (None, "any", TypeError, "got None"),
    ],
)
def test_check_path_refuses_with_one_line(tree, value, kind, error, message):
    with pytest.raises(error) as info:
        _paths.check_path(value, "p", kind=kind)
    text = one_line(info)
    assert message in text and len(text) < 300


def test_check_path_refuses_an_unreadable_one(tree, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as root, permissions cannot refuse
    with pytest.raises(ValueError, match=r"got 'folder' \(not readable: permission denied\)"):
        _paths.check_path("folder", "p", kind="folder")


def test_output_folder(tree):
    assert _paths.output_folder("new/deeper", "-o") == tree / "new" / "deeper"
    assert _paths.output_folder("folder", "-o") == tree / "folder"  # empty: fine
    assert listing(tree) == ["file.txt", "folder"]  # nothing was created


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (
            "file.txt",
            ValueError,
            "-o must be a folder that is empty or can be created, got 'file.txt' (a file)",
        ),
        ("file.txt/run", ValueError, f"got 'file.txt/run' ('{os.sep}"),  # a file in the way
        ("", ValueError, "got '' (an empty path)"),
        ("nonempty", FileExistsError, "output folder 'nonempty' exists and is not empty"),
        (3, TypeError, "-o must be a folder that is empty or can be created, got 3"),
    ],
)
def test_output_folder_refuses_with_one_line(tree, value, error, message):
    (tree / "nonempty").mkdir()
    (tree / "nonempty" / "keep").write_text("")
    with pytest.raises(error) as info:
        _paths.output_folder(value, "-o")
    assert message in one_line(info)
    assert listing(tree) == ["file.txt", "folder", "nonempty", "nonempty/keep"]


def test_output_folder_refuses_a_broken_link(tree):
    (tree / "link").symlink_to(tree / "gone")
    with pytest.raises(ValueError, match=r"got 'link' \(a broken symbolic link\)"):
        _paths.output_folder("link", "-o")
