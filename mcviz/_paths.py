"""Paths a user gives (a path parameter, a parameters file, a template notebook, an output folder),
checked in one place so that each is refused the same way: one line naming the argument, the path
(shortened) and what was expected, before anything is read or written.

An input path must be non-empty, without NUL bytes, at most :data:`MAX_PATH_CHARS` characters, exist,
be of the kind asked for (a regular file, a folder, or either) and be readable. An output folder
must not be a file, must be empty if it exists, and every folder that would hold it must be a
folder; whether it can really be written is only known by writing (see ``mcviz.reports.run``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mcviz._checks import PATH_LIMIT, shorten

MAX_PATH_CHARS = 4096  # Linux's PATH_MAX
KINDS = {"file": "an existing file", "folder": "an existing folder", "any": "an existing file or folder"}


def path_text(value, name: str, allowed: str) -> str:
    """Returns ``value`` (a str or ``os.PathLike``) as a non-empty path string; ``value`` is unchanged.

    Raises:
        TypeError: not a str or path. ValueError: empty, with a NUL byte, or too long.
    """
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be {allowed}, got {shorten(value)}")
    if not value.strip():
        raise ValueError(f"{name} must be {allowed}, got {value!r} (an empty path)")
    if "\x00" in value:
        raise ValueError(f"{name} must be {allowed}, got {shorten(value)} (a NUL byte in a path)")
    if len(value) > MAX_PATH_CHARS:
        too_long = f"over {MAX_PATH_CHARS:,} characters"
        raise ValueError(f"{name} must be {allowed}, got {shorten(value)} ({too_long})")
    if not utf8(value):  # bytes a report's notebook (UTF-8 JSON) could not record
        raise ValueError(f"{name} must be {allowed}, got {shorten(value)} (not UTF-8 text)")
    return value


def utf8(text: str) -> bool:
    """Returns whether ``text`` can be written as UTF-8 (command-line bytes that are not UTF-8
    arrive as lone surrogates, which a notebook's JSON cannot hold)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_path(value, name: str, *, kind: str = "any", allowed: str | None = None) -> Path:
    """Returns ``value`` as an absolute path (``~`` expanded) to an existing, readable file or
    folder of ``kind`` (``"file"``, ``"folder"`` or ``"any"``); nothing is read or changed.

    ``allowed`` replaces the phrase for what is allowed in messages (default: "an existing file").

    Raises:
        TypeError: not a str or path. ValueError: empty, not found, of the other kind, or not
            readable (one line naming ``name``).
    """
    allowed = allowed or KINDS[kind]
    text = path_text(value, name, allowed)
    path = Path(text).expanduser()

    def bad(why: str) -> ValueError:
        return ValueError(f"{name} must be {allowed}, got {shorten(text, PATH_LIMIT)} ({why})")

    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise bad("not found") from None
    except PermissionError:
        raise bad("not accessible: permission denied") from None
    except OSError as exc:
        raise bad((exc.strerror or type(exc).__name__).lower()) from None
    folder = stat.S_ISDIR(mode)
    if kind == "folder" and not folder:
        raise bad("a file, not a folder")
    if kind == "file" and folder:
        raise bad("a folder, not a file")
    if not folder and not stat.S_ISREG(mode):
        raise bad("not a regular file")
    if not os.access(path, os.R_OK | (os.X_OK if folder else 0)):
        raise bad("not readable: permission denied")
    return path.resolve()


def output_folder(value, name: str) -> Path:
    """Returns ``value`` as an absolute folder path that can be created (or is empty); nothing is
    created or changed.

    Raises:
        TypeError: not a str or path. ValueError: empty, or a file or a file in its way.
            FileExistsError: a folder that is not empty.
    """
    allowed = "a folder that is empty or can be created"
    text = path_text(value, name, allowed)
    path = Path(text).expanduser().absolute()
    if path.is_symlink() and not path.exists():
        shown = shorten(text, PATH_LIMIT)
        raise ValueError(f"{name} must be {allowed}, got {shown} (a broken symbolic link)")
    path = path.resolve()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{name} must be {allowed}, got {shorten(text, PATH_LIMIT)} (a file)")
        try:
            empty = next(path.iterdir(), None) is None
        except OSError as exc:
            shown = shorten(text, PATH_LIMIT)
            raise ValueError(f"{name} must be {allowed}, got {shown} ({_reason(exc)})") from None
        if not empty:
            raise FileExistsError(f"output folder {shorten(text, PATH_LIMIT)} exists and is not empty")
        return path
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                in_the_way = f"{shorten(str(parent), PATH_LIMIT)} is a file"
                raise ValueError(f"{name} must be {allowed}, got {shorten(text, PATH_LIMIT)} ({in_the_way})")
            break
    return path


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
