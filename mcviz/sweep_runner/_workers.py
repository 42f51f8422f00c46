"""Where the runs execute: a local pool of spawned worker processes, or a Dask cluster.

Both run :func:`run_point` (one report, ``mcviz.reports.run``) and turn every way a run can end
into a plain dict, so that nothing but a dict ever crosses a process boundary:

- ``{"status": "done", "folder": ...}``;
- ``{"status": "failed", "error": ..., "where": ..., "folder": ..., "lost": bool}``: ``lost``
  when the kernel died or did not start, or the worker was killed (retried once), not when a
  cell raised.

The local pool is one single-process ``ProcessPoolExecutor`` (spawn, never fork: a forked
papermill can silently skip execution) per worker slot: a killed worker breaks only its own slot,
so exactly the run it held is lost, and the slot gets a fresh process. Each worker keeps its
imports (warm) and runs one report at a time, since papermill changes the process's working
directory while it runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing
import os
import signal
import threading
import time

_ONE_AT_A_TIME = threading.Lock()  # papermill chdirs: one report per process (Dask runs threads)
LOST_WORKER = "the worker process died (killed or out of memory)"


def run_point(template, values: dict, out_dir: str, timeout: float | None) -> dict:
    """Return how one report run ended (a dict, see the module docstring); never raises for a
    failed run. KeyboardInterrupt (Ctrl-C, or SIGTERM in a pool worker) still propagates."""
    from mcviz import reports

    with _ONE_AT_A_TIME:
        try:
            folder = reports.run(template, values, out_dir, timeout=timeout)
            return {"status": "done", "folder": str(folder), "pid": os.getpid()}
        except reports.ReportError as exc:
            # the kernel died, or never answered (e.g. a port taken between choosing and binding it)
            lost = type(exc.__cause__).__name__ == "DeadKernelError" or any(
                text in exc.error for text in ("kernel died", "Kernel didn't respond")
            )
            return _failed(exc.error, exc.where, str(exc.folder), lost=lost)
        except reports.ParameterError as exc:  # a bad parameter only the run found (NothingFits)
            return _failed(f"ParameterError: {' '.join(str(exc).split())}", "the run", None)
        except Exception as exc:  # noqa: BLE001 - any other failure is recorded, never raised
            text = (str(exc).strip().splitlines() or [""])[0]
            return _failed(f"{type(exc).__name__}: {text}".rstrip(": "), "the run", None)


def _failed(error: str, where: str, folder: str | None, lost: bool = False) -> dict:
    return {"status": "failed", "error": error, "where": where, "folder": folder, "lost": lost}


ORPHAN_GRACE_S = 10.0


def _init_worker() -> None:
    """Pool worker start-up: SIGTERM stops the run cleanly (its kernel is shut down and the run
    left as -FAILED), the worker stops itself when the sweep's process dies (a spawned pool worker
    holds both ends of its task queue, so it would otherwise wait forever), and the heavy imports
    are paid once."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the kernels; the sweep stops the pool
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    import jupyter_client  # noqa: F401
    import nbformat  # noqa: F401
    import papermill  # noqa: F401

    import mcviz._html  # noqa: F401
    import mcviz.reports  # noqa: F401


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)  # stop the running report cleanly...
    time.sleep(ORPHAN_GRACE_S)
    os._exit(1)  # ...then leave


class LocalPool:
    """``workers`` spawned worker processes, each running one report at a time."""

    def __init__(self, workers: int):
        self.capacity = workers
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[cf.ProcessPoolExecutor | None] = [None] * workers
        self._busy: dict[cf.Future, int] = {}

    def submit(self, *args) -> cf.Future:
        free = next(i for i in range(self.capacity) if i not in self._busy.values())
        if self._slots[free] is None:
            self._slots[free] = cf.ProcessPoolExecutor(1, mp_context=self._context, initializer=_init_worker)
        try:
            future = self._slots[free].submit(run_point, *args)
        except cf.process.BrokenProcessPool:  # its idle worker died: start a fresh one
            self._slots[free].shutdown(wait=False)
            self._slots[free] = cf.ProcessPoolExecutor(1, mp_context=self._context, initializer=_init_worker)
            future = self._slots[free].submit(run_point, *args)
        self._busy[future] = free
        return future

    def wait(self, futures, timeout: float) -> list:
        done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def outcome(self, future: cf.Future) -> dict:
        slot = self._busy.pop(future)
        try:
            return future.result()
        except cf.process.BrokenProcessPool:
            broken, self._slots[slot] = self._slots[slot], None  # a fresh process next time
            broken.shutdown(wait=False)
            return _failed(f"WorkerLost: {LOST_WORKER}", "the run", None, lost=True)
        except KeyboardInterrupt:  # SIGTERM from outside: the run stopped cleanly
            return _failed("WorkerLost: the worker was stopped (SIGTERM)", "the run", None, lost=True)

    def close(self, now: bool = False, grace: float = 20.0) -> None:
        """Stop the workers; ``now``: stop running reports too (SIGTERM, then SIGKILL after ``grace`` s),
        and wait for their kernels to end as well (SIGKILL after ``grace`` s): a kernel that outlived
        its worker would otherwise print its "Parent appears to have exited" warning to the terminal
        after the sweep's last line, or be left running."""
        executors = [ex for ex in self._slots if ex is not None]
        processes = [p for ex in executors for p in (getattr(ex, "_processes", None) or {}).values()]
        kernels = _descendants(processes) if now else []
        if now:
            for p in processes:
                with contextlib.suppress(OSError, ValueError):
                    p.terminate()
        for ex in executors:
            ex.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.join(grace if now else None)
            if p.is_alive():
                p.kill()
                p.join()
        if kernels:
            import psutil

            _, alive = psutil.wait_procs(kernels, timeout=grace)
            for k in alive:
                with contextlib.suppress(psutil.Error):
                    k.kill()
            psutil.wait_procs(alive, timeout=grace)
        self._slots = [None] * self.capacity
        self._busy.clear()


def _descendants(processes) -> list:
    """Returns the ``psutil.Process`` of every process started under the worker ``processes``
    (their kernels), found while the workers still live (an orphan is re-parented and lost)."""
    import psutil

    out = []
    for p in processes:
        with contextlib.suppress(psutil.Error, ValueError, TypeError):
            out += psutil.Process(p.pid).children(recursive=True)
    return out


class DaskPool:
    """Runs on a Dask distributed cluster: ``scheduler`` is its address or a ``distributed.Client``.

    The sweep folder (and a template given by path) must be at the same path on every worker.
    A worker runs one report at a time however many threads it has: start workers with
    ``--nthreads 1`` and as many workers as cores.
    """

    capacity = math.inf

    def __init__(self, scheduler, connect_timeout: float = 5.0):
        try:
            import distributed
        except ImportError:
            raise ValueError(
                "--scheduler needs Dask distributed: pip install 'mcviz[dask]'"
            ) from None
        self._distributed = distributed
        self._own = not isinstance(scheduler, distributed.Client)
        self._futures: set = set()
        if not self._own:
            self.client = scheduler
            return
        try:
            self.client = distributed.Client(scheduler, timeout=connect_timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise ValueError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {connect_timeout:g} s ({text})"
            ) from None

    def submit(self, *args):
        future = self.client.submit(run_point, *args, pure=False)
        self._futures.add(future)
        return future

    def wait(self, futures, timeout: float) -> list:
        futures, deadline = list(futures), time.monotonic() + timeout
        while True:  # distributed.wait would need a default client, which a sweep never installs
            done = [f for f in futures if f.done()]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def outcome(self, future) -> dict:
        self._futures.discard(future)
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - KilledWorker, a closed connection, cancellation
            name = type(exc).__name__
            return _failed(f"WorkerLost: {LOST_WORKER} ({name})", "the run", None, lost=True)

    def close(self, now: bool = False) -> None:
        """Forget the runs not collected (the scheduler cancels those not started; a running report
        finishes and keeps its folder, which a rerun reuses); close the connection if it is ours."""
        with contextlib.suppress(Exception):
            self.client.cancel(list(self._futures))
        self._futures.clear()
        if self._own:
            with contextlib.suppress(Exception):
                self.client.close(timeout=10)


def default_workers() -> int:
    """Return the number of cores this process may use (one single-threaded run per core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
