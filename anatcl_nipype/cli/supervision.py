"""Keep a Nipype run stoppable: signals, dead workers, failing callbacks, leftover processes.

- SIGINT/SIGTERM raise :class:`RunInterrupted` in the main process (workers forked from it
  die the default way); the run's worker processes are then stopped and the temporary files
  of interrupted atomic writes removed, so nothing partial is left under a final name and
  re-running with the same work folder resumes.
- Nipype's MultiProc records a node's result in a future's done-callback; when the future
  itself failed (a worker killed, e.g. out of memory, or a node that cannot be sent to a
  worker) that callback raises in a thread, nothing is recorded and the scheduler polls
  forever. The supervised MultiProc (:func:`make_runner`) reports such a node as failed
  instead, and a dead worker (a broken pool, which can run nothing more) ends the run with
  :class:`SchedulerError`.
- An exception in the status callback becomes :class:`SchedulerError`, naming the node.

- Nipype's MultiProc runs a full ``gc.collect()`` after every node it runs in this process
  (the sinks, the CAT12 ROI reading): each walked torch and three copies of the graph,
  quadratic in the cohort. The heap as it is when the run starts is frozen for the run, so
  a collection walks only what the run made (``benchmarks/RESULTS.md``, Cohort scale).
- MultiProc's workers are started by a forkserver, never forked from this process: a
  process forked after torch ran keeps a dead OpenMP pool and blocks in its first parallel
  region (:mod:`anatcl_nipype.threads`).

>>> plugin_settings("MultiProc", {}, nprocs=4, mem_gb=8)
('MultiProc', {'n_procs': 4, 'mp_context': 'forkserver', 'memory_gb': 8.0})
"""

import contextlib
import functools
import gc
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from anatcl_nipype.errors import AnatCLError

#: Exit codes of an interrupted run: 128 + the signal number, as shells report them.
INTERRUPTED_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
INTERRUPTED_MESSAGE = "interrupted; rerun with the same -w to resume"
WORKER_GRACE_SECONDS = 5.0
#: How MultiProc's workers are started, and the module the forkserver loads for them.
WORKER_START = "forkserver"
WORKER_TEMPLATE = "anatcl_nipype.cli.worker_template"
WORKER_LOGGING = ("workflow_level", "interface_level", "utils_level")


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during a run (a ``KeyboardInterrupt``, so no
    ``except Exception`` in Nipype's loop swallows it)."""

    def __init__(self, signum):
        super().__init__(INTERRUPTED_MESSAGE)
        self.signum = signum
        self.exit_code = INTERRUPTED_EXIT.get(signum, 128 + int(signum))


class SchedulerError(AnatCLError):
    """The scheduler could not go on (a failing status callback, a broken worker pool)."""


def plugin_settings(plugin, plugin_args, nprocs=1, mem_gb=None):
    """The Nipype plugin name and its arguments from the command-line options.

    MultiProc (the default when ``nprocs > 1``) gets ``n_procs``, workers started by a
    forkserver and, when given, ``memory_gb``; explicit ``plugin_args`` win (a run with
    ``mp_context`` ``fork`` runs torch with one thread per worker).
    """
    plugin = plugin or ("MultiProc" if nprocs > 1 else "Linear")
    args = dict(plugin_args)
    if plugin == "MultiProc":
        args.setdefault("n_procs", nprocs)
        args.setdefault("mp_context", WORKER_START)
        if mem_gb is not None:
            args.setdefault("memory_gb", float(mem_gb))
    return plugin, args


def make_runner(plugin, plugin_args):
    """A plugin instance: MultiProc supervised (see the module's notes), others Nipype's."""
    if plugin == "MultiProc":
        start_worker_template(plugin, plugin_args)
        return _supervised_multiproc()(plugin_args=plugin_args)
    return plugin  # Nipype builds the others by name


def start_worker_template(plugin, plugin_args):
    """Start the forkserver MultiProc's workers fork from, loading
    :mod:`~anatcl_nipype.cli.worker_template`, when the run uses one (in the background:
    call it early, the imports then overlap this process's own work). Once per process."""
    if plugin != "MultiProc" or plugin_args.get("mp_context") != WORKER_START:
        return
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context(WORKER_START).set_forkserver_preload([WORKER_TEMPLATE])
    forkserver.ensure_running()


def _forkserver_pid():
    """The pid of this process's forkserver, if one was started."""
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None)


@functools.cache
def _supervised_multiproc():
    """Nipype's MultiProc where a failed worker future fails its node instead of hanging
    (built on first use: Nipype's plugins are not imported before a run)."""
    from concurrent.futures import BrokenExecutor

    from nipype.pipeline.plugins.multiproc import MultiProcPlugin

    class SupervisedMultiProcPlugin(MultiProcPlugin):
        broken_pool = None  # the BrokenExecutor once a worker died

        def __init__(self, plugin_args=None):
            super().__init__(plugin_args=plugin_args)
            if self.plugin_args.get("mp_context") not in (None, "fork"):
                self.pool.shutdown(wait=False)  # no worker started yet: replaced by one
                self.pool = worker_pool(self.processors, self._cwd, self.plugin_args)

        def _generate_dependency_list(self, graph):
            import bids.layout.writing  # noqa: F401  the sinks run here: import before freezing

            super()._generate_dependency_list(graph)
            gc.freeze()  # see the module's notes

        def run(self, graph, config, updatehash=False):
            try:
                return super().run(graph, config, updatehash=updatehash)
            finally:
                gc.unfreeze()

        def _async_callback(self, future):
            if future.exception() is None:  # a failed future is reported by _get_result
                super()._async_callback(future)

        def _get_result(self, taskid):
            future = self._task_obj.get(taskid)
            if future is None or not future.done() or future.exception() is None:
                return super()._get_result(taskid)
            error = future.exception()
            if isinstance(error, BrokenExecutor):
                self.broken_pool = error
            return {"result": None, "taskid": taskid, "traceback": [  # lines, as Nipype's
                f"the worker running this node failed ({type(error).__name__}: {error})\n"]}

        def _prerun_check(self, graph):
            try:
                super()._prerun_check(graph)
            except RuntimeError:
                raise SchedulerError(resources_message(graph.nodes(), self.memory_gb,
                                                       self.processors)) from None

        def _send_procs_to_workers(self, *args, **kwargs):
            if self.broken_pool is None:
                try:
                    return super()._send_procs_to_workers(*args, **kwargs)
                except BrokenExecutor as error:
                    self.broken_pool = error
            raise SchedulerError(
                f"a worker process died ({self.broken_pool}); it was killed from outside, e.g. "
                "out of memory (try fewer --nprocs or --mem-gb); rerun with the same -w to "
                "resume")

    SupervisedMultiProcPlugin.__name__ = "MultiProcPlugin"  # Nipype names the plugin so
    return SupervisedMultiProcPlugin


def worker_pool(processors, cwd, plugin_args):
    """MultiProc's pool for workers that do not inherit this process's memory: each starts
    in ``cwd`` with this process's Nipype log levels, as a forked one would."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from nipype import config

    settings = {key: config.get("logging", key) for key in WORKER_LOGGING}
    return ProcessPoolExecutor(
        max_workers=processors, initializer=start_worker, initargs=(cwd, settings),
        mp_context=multiprocessing.get_context(plugin_args["mp_context"]))


def stop_quietly_on_interrupt():
    """SIGINT and SIGTERM end this process at once and quietly, as a worker forked from the
    command line would end (Ctrl-C reaches the whole process group; the main process alone
    reports it).

    The worker forkserver calls it while loading its template, before it starts ignoring
    SIGINT itself: a forkserver's child gets the actions its server had then, so a worker
    cannot die with a ``KeyboardInterrupt`` traceback while it is still starting."""
    for signum in INTERRUPTED_EXIT:
        signal.signal(signum, signal.SIG_DFL)


def start_worker(cwd, log_levels):
    """A MultiProc worker's first step: the default action for SIGINT and SIGTERM (first,
    for a worker that was spawned), Nipype's own set-up, then the parent's log levels."""
    stop_quietly_on_interrupt()
    from nipype import config, logging
    from nipype.pipeline.plugins.multiproc import process_initializer

    process_initializer(cwd)
    for key, value in log_levels.items():
        config.set("logging", key, value)
    logging.update_logging(config)


def resources_message(nodes, memory_gb, processors):
    """Why MultiProc refuses to start: the largest node against the limits given."""
    nodes = list(nodes)
    biggest = max(nodes, key=lambda node: (node.mem_gb, node.n_procs))
    busiest = max(nodes, key=lambda node: node.n_procs)
    return (f"a node needs more than this run allows: {biggest.fullname} needs "
            f"{biggest.mem_gb:g} GB and {busiest.fullname} {busiest.n_procs} thread(s), the "
            f"run allows {memory_gb:g} GB (--mem-gb) and {processors} process(es) "
            "(--nprocs); raise --mem-gb or --nprocs, or lower --omp-nthreads")


def first_crash_message(report):
    """The error ending a ``--stop-on-first-crash`` run, naming the first failure."""
    who, reason = next(iter(report.failed.items()))
    return (f"stopped at the first crash (--stop-on-first-crash): {who}: {reason}; fix it "
            "and rerun with the same -w to resume")


class GuardedCallback:
    """Wrap a Nipype status callback: its exception becomes :class:`SchedulerError`, and a
    signal received during the run ends it."""

    def __init__(self, callback):
        self.callback = callback

    def __call__(self, node, status):
        if pending_interrupt():  # raised where Nipype caught it: end the run now
            raise pending_interrupt()
        try:
            self.callback(node, status)
        except Exception as error:
            where = "".join(traceback.format_exception_only(type(error), error)).strip()
            raise SchedulerError(f"the progress callback failed on node {node.fullname} "
                                 f"({status}): {where}; the run was stopped") from error


@contextlib.contextmanager
def signals_interrupt_run():
    """SIGINT/SIGTERM raise :class:`RunInterrupted` in this process for the ``with`` block.

    Processes forked inside the block inherit the handler; in them it restores the default
    action and re-sends the signal, so a worker told to stop does stop. The signal is also
    remembered (:func:`pending_interrupt`): Nipype records an exception raised while a light
    node runs in this process as that node's failure, and the run must still end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # Python delivers signals to the main thread only: nothing to set up here
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        for name in INTERRUPTED_EXIT:  # a second signal must not break the clean-up
            signal.signal(name, signal.SIG_IGN)
        _received.append(signum)
        raise RunInterrupted(signum)

    previous = {name: signal.signal(name, handler) for name in INTERRUPTED_EXIT}
    _received.clear()
    try:
        yield
    finally:
        for name, action in previous.items():
            signal.signal(name, action)


_received = []  # the signals received during this process's run


def pending_interrupt():
    """The :class:`RunInterrupted` of a signal received during the run, else None."""
    return RunInterrupted(_received[0]) if _received else None


def stop_workers(runner, spared=(), grace=WORKER_GRACE_SECONDS):
    """Stop the processes this one started during the run: every descendant not in
    ``spared`` (those that were there before it), and the forkserver the workers came from
    (SIGTERM, then SIGKILL after ``grace`` s)."""
    pool = getattr(runner, "pool", None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
    forkserver = _forkserver_pid()
    children = [pid for pid in descendants(os.getpid())
                if pid not in set(spared) or pid == forkserver]
    for pid in children:
        _send(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in children:
        if _alive(pid):
            _send(pid, signal.SIGKILL)
    for pid in children:
        if pid != forkserver:  # multiprocessing reaps its forkserver, then starts another
            _reap(pid)


def descendants(pid):
    """Every living descendant of ``pid`` (from ``/proc``, Linux)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                if child not in found:
                    found.append(child)
                    queue.append(child)
    return found


def remove_partial_outputs(output_dir):
    """Delete what interrupted writes left inside ``output_dir``: the temporary files of
    :func:`anatcl_nipype.files.atomic_write` (``.<name>.<random>.tmp``) and the staging
    folders of derivatives sinks no living process holds. Nothing outside ``output_dir``.
    """
    from anatcl_nipype.interfaces.bids import STAGING_DIR, remove_stale_staging

    removed = []
    if output_dir is None or not Path(output_dir).is_dir():
        return removed
    remove_stale_staging(Path(output_dir) / STAGING_DIR)
    with contextlib.suppress(OSError):
        (Path(output_dir) / STAGING_DIR).rmdir()  # only when empty
    for leftover in Path(output_dir).rglob(".*.tmp"):
        if leftover.is_file() and not leftover.is_symlink():
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _send(pid, signum):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _reap(pid):
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
