"""Stopping a report cleanly on a signal: Ctrl-C (SIGINT), SIGTERM (what ``kill``, ``timeout`` and
CI cancellations send) and SIGHUP (a closed terminal) all become a KeyboardInterrupt in the code
that runs the report, so that it shuts the kernel down and removes its temporary files before
the process ends; the command then exits with 128 + the signal's number."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal (Ctrl-C, SIGTERM, SIGHUP) after it cleaned up; a KeyboardInterrupt.

    Attributes:
        signum: the signal (``signal.SIGINT``, ``SIGTERM`` or ``SIGHUP``); a command exits with
            128 + signum (130, 143, 129).
        folder: the ``*-FAILED`` folder holding the partial output, or None if nothing was written.
    """

    def __init__(self, signum: int, folder: Path | None = None):
        name = signal.Signals(signum).name
        where = f"partial output: {folder}" if folder else "nothing was written"
        super().__init__(f"report interrupted by {name}; {where}")
        self.signum, self.folder = signum, folder


@contextlib.contextmanager
def stopping_on_signals():
    """Returns a context in which (in the main thread) SIGTERM and SIGHUP raise :class:`Interrupted`
    as Ctrl-C raises KeyboardInterrupt, so that the code inside can clean up; once one arrived,
    later ones are ignored until the block ends, so the clean-up finishes. Handlers a program
    installed itself are left alone, and restored at the end. :func:`run` uses it; the ``mcviz``
    command wraps its whole work in it too."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    if hasattr(signal, "SIGHUP"):
        defaults[signal.SIGHUP] = signal.SIG_DFL
    previous = {s: signal.getsignal(s) for s in defaults}
    ours = [s for s, h in previous.items() if h is defaults[s]]

    def stop(signum, frame):
        for s in ours:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)

    for s in ours:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s in ours:
            signal.signal(s, previous[s])
