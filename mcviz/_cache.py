"""The cache folder's plumbing: where it is, bounded reads, atomic writes, degrading to no cache.

mcviz keeps two caches in one folder, ``$MCVIZ_CACHE_DIR`` (default ``~/.cache/mcviz``): trained
baselines (``mcv.train.baseline``) and measured rows (``mcv.engine.run``). A cache saves time; it
is never needed for a result, so:

- a folder that cannot be read or written (read-only, a file where the folder should be, a path
  under a file, no permission, a full disk) makes caching degrade to "no cache": the work goes on,
  nothing half-written is left, and ONE ``UserWarning`` per folder and process says so;
- :func:`read` returns at most ``limit`` bytes (a bigger file is refused, never loaded), and every
  cache validates an entry as strictly as a fresh result before trusting it (the callers do).

:func:`load_trained` and :func:`store_trained` are the baseline cache's entries (``mcv.train``
keeps the key). This module imports nothing from mcviz: ``train`` and ``engine`` both use it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import pandas as pd
import torch
from torch import nn

_WARNED: set[str] = set()  # folders already reported unusable: one warning each per process


class Invalid(ValueError):
    """A cache entry that must not be trusted (the caller recomputes it with a warning)."""


def folder() -> Path:
    """Returns the cache folder: ``$MCVIZ_CACHE_DIR``, or ``~/.cache/mcviz`` when it is unset or empty."""
    env = os.environ.get("MCVIZ_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mcviz"


def read(path: Path, limit: int) -> bytes | None:
    """Returns the bytes of the entry ``path``, or None when there is none or it cannot be read.

    Raises:
        Invalid: the entry is larger than ``limit`` bytes (it is not read).
    """
    try:
        if not path.is_file():
            return None
        size = path.stat().st_size
        if size > limit:
            raise Invalid(f"{size:,} bytes, more than the {limit:,} an entry of this kind can hold")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except (OSError, ValueError) as e:  # no permission, a path under a file, a NUL in the path...
        if isinstance(e, Invalid):
            raise
        return None


def write(path: Path, save: Callable[[IO[bytes]], None]) -> bool:
    """Returns True after writing ``path`` atomically with ``save(file)`` (a temporary file in the
    same folder, then ``os.replace``); returns False, with one warning per folder, when the folder
    cannot be written. Nothing half-written or temporary is ever left behind."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        with os.fdopen(fd, "wb") as f:
            save(f)
        os.replace(tmp, path)
        return True
    except (OSError, ValueError) as e:
        _unusable(path.parent, e)
        return False
    finally:
        if tmp is not None and os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def reason(error: Exception) -> str:
    """Returns why an entry was not trusted, for a warning: the error's type and, for a failed
    check (:class:`Invalid`, TypeError, ValueError), its message, on one line of at most 200
    characters."""
    text = type(error).__name__
    if isinstance(error, (Invalid, TypeError, ValueError)) and type(error).__module__ != "json.decoder":
        text += f": {error}"
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


def _unusable(where: Path, error: Exception) -> None:
    key = str(where)
    if key in _WARNED:
        return
    _WARNED.add(key)
    why = " ".join(f"{type(error).__name__}: {error}".split())[:200]
    warnings.warn(
        f"the cache folder {where} cannot be written ({why}); continuing without a cache (set "
        "MCVIZ_CACHE_DIR to a writable folder to keep results)",
        stacklevel=4,
    )


def load_trained(path: Path, key: str, fmt: int, model: nn.Module, columns: Sequence[str], epochs: int):
    """Loads the trained weights cached at ``path`` into ``model`` and returns their history (a
    DataFrame of ``columns``), or returns None when there is no entry.

    Raises:
        Invalid, or whatever ``torch.load`` raises: the entry is not exactly what ``key`` names (its
            own key and format, the model's tensor names, shapes and dtypes with finite values, a
            history of ``epochs`` rows in range); ``model`` is then left unchanged.
    """
    expected = model.state_dict()
    limit = 2 * sum(t.numel() * t.element_size() for t in expected.values()) + 2**20
    raw = read(path, limit)
    if raw is None:
        return None
    entry = torch.load(io.BytesIO(raw), weights_only=True)  # never runs a pickled payload
    if not isinstance(entry, dict) or set(entry) != {"key", "format", "state_dict", "history"}:
        raise Invalid("not a trained-model entry")
    if entry["key"] != key or entry["format"] != fmt:
        raise Invalid("its key or format is not the one asked for")
    state = entry["state_dict"]
    if not isinstance(state, dict) or list(state) != list(expected):
        raise Invalid("its tensors are not the model's")
    for name, t in state.items():
        ref = expected[name]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            raise Invalid(f"tensor {name!r} is not a {ref.dtype} tensor of shape {tuple(ref.shape)}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise Invalid(f"tensor {name!r} holds NaN or infinite values")
    history = _history(entry["history"], list(columns), epochs)
    model.load_state_dict(state)
    return history


def store_trained(path: Path, key: str, fmt: int, model: nn.Module, history: pd.DataFrame) -> bool:
    """Returns whether ``model``'s weights and ``history`` were cached at ``path`` (see :func:`write`)."""
    entry = {"key": key, "format": fmt, "state_dict": model.state_dict(),
             "history": history.to_dict(orient="list")}  # fmt: skip
    return write(path, lambda f: torch.save(entry, f))


def _history(rows, columns: list[str], epochs: int) -> pd.DataFrame:
    """Returns the cached history as a DataFrame: epochs 1..``epochs``, a finite loss >= 0 and
    every other column in [0, 1]; raises Invalid otherwise."""
    if not isinstance(rows, dict) or list(rows) != columns:
        raise Invalid(f"its history does not have the columns {', '.join(columns)}")
    if rows["epoch"] != list(range(1, epochs + 1)):
        raise Invalid(f"its history's epochs are not 1 to {epochs}")
    for name in columns[1:]:
        values, high = rows[name], math.inf if name == "loss" else 1
        ok = isinstance(values, list) and len(values) == epochs
        if not ok or not all(type(v) in (int, float) and 0 <= v <= high and math.isfinite(v) for v in values):
            raise Invalid(f"its history's {name} is not {epochs} finite numbers in [0, {high}]")
    return pd.DataFrame(rows, columns=columns)
