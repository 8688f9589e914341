"""``DaskSlots``: the task slots on a Dask cluster (``--executor dask``), with ``TaskSlots``' API.

The engine still traverses in this process; each leaf task attempt is sent to
the cluster as one Dask task. Workers need no shared file system: the run
folder travels with the task and what the task changed comes back.

- Files: the run folder (``run_folder.py`` says what travels: folders, files
  with their modes, symlinks that stay inside) is rebuilt on the worker in a
  temporary folder that becomes the task's ``cwd``; file contents are scattered
  once per content (keyed by sha256, so an unchanged file is sent once per run,
  not once per task). After the task, what it created, changed or removed is
  applied to the run folder before the engine sees the result, so ``catalog:
  put`` and later steps find the run folder as with the local executor.
  ``catalog: get`` files are in the run folder by then (the engine copies them
  before submitting), so they travel too. What could not be applied, and
  symlinks left out as leading outside, are noted in the task's log.
- On the worker the spec runs in a ``TaskSlots`` of that worker process (one
  per Dask worker, kept warm): the same runner, kernels, timeouts and cleanup
  as locally. Executed notebook and log text come back to the catalog paths
  the engine named in the spec; returned parameters are in the ``TaskResult``.
  On the LocalCluster we start, those slots are forked by a forkserver this
  process started with papermill imported, and a task goes to the idle worker
  whose kernel is most likely warm, as the local pool chooses a slot.
- A worker that dies mid-task is a ``FAIL`` naming it: the LocalCluster we
  start allows no task re-runs (``allowed-failures: 0``), so Dask raises
  ``KilledWorker`` at once; the engine's ``max_attempts`` decides about retries.
- ``cancel`` cancels the Dask future; the worker notices its task was released
  and kills the task's process.
- magnus' interaction API: the run's catalog (what was put in it, not the
  executed notebooks and logs) travels with the task when it is not already part
  of the run folder, and what the task put there comes back; the task reads a
  copy of the run log as it was when the task was sent.

Imports dask only here, and only when a ``DaskSlots`` is made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from . import context, run_folder
from .task import FAIL, TaskResult, TaskSpec

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]

_OUT = ".magnus-out"  # on the worker: executed notebook and log; hidden, so never taken for a task output
_PROGRESS_TOPIC = "magnus-jupyter-progress"
_RELEASED = ("cancelled", "released", "forgotten")
_FORKSERVER_ENV = "MAGNUS_JUPYTER_FORKSERVER"  # in our LocalCluster's workers: their slots' forkserver
_SERVER_EXIT = "magnus_jupyter.executor._server_exit"


@dataclasses.dataclass
class _Outcome:
    """What a task sends back from the worker: its result and the bytes the client needs."""

    result: TaskResult
    root: str  # the worker's working folder, to translate paths in messages
    changes: run_folder.Changes = dataclasses.field(default_factory=run_folder.Changes)
    notebook: bytes | None = None
    log: bytes | None = None
    catalog: run_folder.Changes | None = None  # what the task put in the catalog copy it was sent
    catalog_root: str = ""


@dataclasses.dataclass
class _Context:
    """What of the run context travels beside the run folder: the catalog's tree (if the catalog is not
    in the run folder; its files' data go as an argument of their own, which Dask resolves) and the run
    log's text."""

    catalog_tree: run_folder.Tree | None = None
    catalog_inside: str = ""  # the catalog's path in the run folder, when it travels with it
    run_log: bytes | None = None


def _engine_record(relative: str) -> bool:
    """The engine's own files in a catalog (executed notebooks, task logs): they never need to travel."""
    return os.sep not in relative and (".execution.log" in relative or relative.endswith("_out.ipynb"))


# ------------------------------------------------------------------ worker side

_pool_lock = threading.Lock()
_pool: Any = None
_owners: dict[str, str] = {}  # internal name -> the DaskSlots (its token) whose task runs here now


def _worker_pool(warm: bool, worker: Any = None) -> Any:
    """This Dask worker's own ``TaskSlots``, started once (``prestart`` or the first task) and kept."""
    global _pool
    import multiprocessing

    from .slots import TaskSlots

    with _pool_lock:
        if _pool is None:
            # Dask starts workers as daemonic processes, which multiprocessing forbids to have children;
            # our slot processes hold a lifeline to this one and die with it, which is what daemon buys.
            multiprocessing.current_process()._config.pop("daemon", None)  # type: ignore[attr-defined]
            _fork_from_our_forkserver()
            if worker is None:
                from distributed import get_worker

                worker = get_worker()

            def progress(name: str, done: int, total: int) -> None:
                owner = _owners.get(name)
                if owner is not None:
                    worker.log_event(_PROGRESS_TOPIC, [owner, name, done, total])

            _pool = TaskSlots(max(1, int(worker.state.nthreads)), on_progress=progress, warm_kernels=warm)
        return _pool


def _fork_from_our_forkserver() -> None:
    """In a worker of our LocalCluster, the pool's processes are forked by the forkserver the client
    started for them with papermill imported (``_Starting``), not by one this worker would start now,
    importing papermill on the way to its first task (~0.25 s of the demo's wall time). Anywhere else
    (a remote scheduler's workers) the pool starts a forkserver of its own, as locally."""
    from . import _procs

    address = os.environ.pop(_FORKSERVER_ENV, None)  # the slots' environment is the tasks'
    if address and os.path.exists(address):
        _procs.use_forkserver(address)


def prestart(warm: bool, dask_worker: Any = None) -> None:
    """Start this worker's pool (and warm kernel) in the background, so a first task does not wait."""
    threading.Thread(target=_worker_pool, args=(warm, dask_worker), name="magnus-prestart",
                     daemon=True).start()


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: our LocalCluster's workers start their pool while the cluster starts."""
    prestart(True, worker)


def run_remote(spec: TaskSpec, tree: run_folder.Tree, files: dict[str, bytes], warm: bool,
               owner: str = "", shipped: _Context | None = None,
               catalog_files: dict[str, bytes] | None = None) -> _Outcome:
    """Run ``spec`` on this Dask worker in a folder made of ``tree`` and the ``files``' contents; return
    the result and what the task changed in the folder (and in the catalog it was sent)."""
    from distributed import get_worker

    root = tempfile.mkdtemp(prefix="magnus-task-")
    try:
        since = time.time_ns()
        before = run_folder.build(root, tree, files)
        out = os.path.join(root, _OUT)
        os.makedirs(out)
        env, catalog_root, catalog_before = dict(spec.env), "", None
        shipped = shipped or _Context()
        if shipped.catalog_tree is not None:
            catalog_root = os.path.join(out, "catalog")
            catalog_before = run_folder.build(catalog_root, shipped.catalog_tree, catalog_files or {})
            env[context.CATALOG] = catalog_root
        elif shipped.catalog_inside:
            env[context.CATALOG] = os.path.join(root, shipped.catalog_inside)
        if shipped.run_log is not None:
            env[context.RUN_LOG] = os.path.join(out, "run_log.json")
            run_folder.write_file(env[context.RUN_LOG], shipped.run_log)
        local = dataclasses.replace(
            spec, cwd=root, env=env,
            notebook_output_path=(os.path.join(out, os.path.basename(spec.notebook_output_path))
                                  if spec.notebook_output_path else None),
            log_path=os.path.join(out, os.path.basename(spec.log_path)) if spec.log_path else None)
        pool = _worker_pool(warm)
        _owners[spec.internal_name] = owner  # cell progress goes to the client that sent the task
        future = pool.submit(local)
        worker = get_worker()
        key = worker.get_current_task()
        while True:
            try:
                result: TaskResult = future.result(timeout=0.2)
                break
            except FutureTimeout:
                state = worker.state.tasks.get(key)
                if state is None or state.state in _RELEASED:  # the client cancelled the task
                    pool.cancel(spec.internal_name)
        outcome = _Outcome(result, root, run_folder.changes(root, before, since))
        if catalog_before is not None:
            outcome.catalog = run_folder.changes(catalog_root, catalog_before, since)
            outcome.catalog_root = catalog_root
        for attribute, path in (("notebook", local.notebook_output_path), ("log", local.log_path)):
            if path and os.path.isfile(path):
                with open(path, "rb") as handle:
                    setattr(outcome, attribute, handle.read())
        return outcome
    finally:
        if _owners.get(spec.internal_name) == owner:
            _owners.pop(spec.internal_name, None)
        run_folder.remove(root)


# ------------------------------------------------------------------ client side


class _Workspace:
    """The run folder's files as scattered Dask data, one per content, hashed again only when changed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        # absolute path -> (its entry, digest included, and when it was hashed)
        self._hashes: dict[str, tuple[run_folder.Entry, int]] = {}
        self._blobs: dict[str, Any] = {}  # digest -> Future of the bytes on the cluster

    def snapshot(self, root: str, catalog: str | None = None
                 ) -> list[tuple[run_folder.Tree, dict[str, Any], list[str]]]:
        """The run folder (and the run's ``catalog`` folder, less the engine's records) as they are now:
        each one's tree (file digests included), relative path -> data future of each file, and the
        symlinks left out as leading outside it."""
        with self._lock:
            fresh: dict[str, bytes] = {}
            scanned = [self._scan(root, fresh)]
            if catalog is not None:
                scanned.append(self._scan(catalog, fresh, skip=_engine_record))
            if fresh:
                # on every worker, so one dying loses no file; a fresh key, as the old one may be lost
                keys = {d: f"magnus-file-{d}-{uuid.uuid4().hex[:8]}" for d in fresh}
                scattered = self._client.scatter({keys[d]: b for d, b in fresh.items()}, broadcast=True)
                for digest in fresh:
                    self._blobs[digest] = scattered[keys[digest]]
            live = {e.digest for tree, _ in scanned for e in tree.values() if e.kind == run_folder.FILE}
            for digest in [d for d in self._blobs if d not in live]:  # tasks in flight hold their own
                del self._blobs[digest]
            return [(tree, {r: self._blobs[e.digest] for r, e in tree.items() if e.kind == run_folder.FILE},
                     outside) for tree, outside in scanned]

    def _scan(self, root: str, fresh: dict[str, bytes],
              skip: Callable[[str], bool] | None = None) -> tuple[run_folder.Tree, list[str]]:
        """One folder's tree (less what ``skip`` names), hashing only files whose stat changed; contents the
        cluster does not hold yet go into ``fresh``."""
        found, outside = run_folder.scan(root)
        tree: run_folder.Tree = {}
        for relative, entry in found.items():
            if skip is not None and skip(relative):
                continue
            if entry.kind == run_folder.FILE:
                path = os.path.join(root, relative)
                known = self._hashes.get(path)
                if known is not None and known[0].same_stat(entry) and \
                        run_folder.settled(entry, known[1]) and self._held(known[0].digest):
                    entry = dataclasses.replace(entry, digest=known[0].digest)
                else:
                    hashed = time.time_ns()
                    try:
                        with open(path, "rb") as handle:
                            data = handle.read()
                    except OSError:
                        continue
                    entry = dataclasses.replace(entry, digest=run_folder.digest(data))
                    self._hashes[path] = (entry, hashed)
                    if not self._held(entry.digest):
                        fresh[entry.digest] = data
            tree[relative] = entry
        return tree, outside

    def _held(self, digest: str) -> bool:
        """Whether the cluster still has this content (all workers holding it may have died)."""
        blob = self._blobs.get(digest)
        return blob is not None and blob.status == "finished"

    def clear(self) -> None:
        with self._lock:
            self._blobs.clear()
            self._hashes.clear()


class _Job:
    __slots__ = ("spec", "future", "remote", "worker", "outside")

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.future: Future[TaskResult] = Future()
        self.future.set_running_or_notify_cancel()
        self.remote: Any = None
        self.worker = ""  # the worker we placed it on ("" : Dask's choice)
        self.outside: list[str] = []  # symlinks of the run folder not sent, as they lead outside it


class DaskSlots:
    """Run task specs on a Dask cluster: ``scheduler`` if given, else a LocalCluster of ``workers``."""

    executor_name = "dask"  # recorded in the run log's run_config

    def __init__(self, workers: int, *, on_progress: ProgressCallback | None = None,
                 warm_kernels: bool = True, scheduler: str | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self._warm = warm_kernels
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._closed = False
        self._cluster: Any = None
        self._server: Any = None  # the forkserver of our LocalCluster's task slots
        self._token = uuid.uuid4().hex  # tags this pool's cell-progress events on the cluster
        self._busy: dict[str, int] = {}  # our LocalCluster's worker address -> our tasks placed there
        self._since: dict[str, float] = {}  # worker address -> when its last notebook ended (kernel warming)
        try:
            if scheduler is None:
                starting = _adopt(workers, warm_kernels) or _Starting(workers, warm_kernels)
                self._cluster, self.client = starting.result()
                self._server = starting.server
            else:
                from distributed import Client

                self.client = Client(scheduler, set_as_default=False)
        except Exception as exc:
            self.close_cluster()
            from ..errors import ExecutionError

            where = scheduler or "a LocalCluster"
            raise ExecutionError(f"--executor dask: cannot connect to {where}: {type(exc).__name__}: "
                                 f"{exc}") from None
        self._workspace = _Workspace(self.client)
        with contextlib.suppress(Exception):  # only a head start: the first task starts the pool anyway
            self.client.run(prestart, warm_kernels)
        if on_progress is not None:
            self.client.subscribe_topic(_PROGRESS_TOPIC, self._progress)

    @classmethod
    def prepare(cls, workers: int, *, warm_kernels: bool = True) -> _Starting:
        """Start the LocalCluster now, in a background thread, for the ``DaskSlots(workers)`` the run
        makes at its first task: its worker processes start while the pipeline is validated and the run
        log set up, not after. Close what this returns once the run is over (a no-op if adopted)."""
        starting = _Starting(workers, warm_kernels)
        with _prepared_lock:
            _prepared.append(starting)
        return starting

    # ------------------------------------------------------------ public API

    def submit(self, spec: TaskSpec) -> Future[TaskResult]:
        """Send ``spec`` with the run folder's files; the future resolves once outputs are back here."""
        job = _Job(spec)
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit a task to a closed DaskSlots")
        where = ""
        try:
            shipped, catalog = _Context(), spec.env.get(context.CATALOG) or ""
            travels = _travels_with(spec.cwd, catalog)
            if travels is not None:
                shipped.catalog_inside = travels
            ship = bool(catalog) and travels is None and os.path.isdir(catalog)
            (tree, files, job.outside), *more = self._workspace.snapshot(spec.cwd, catalog if ship else None)
            catalog_files: dict[str, Any] = {}
            if more:
                shipped.catalog_tree, catalog_files, _ = more[0]
            run_log = spec.env.get(context.RUN_LOG) or ""
            if os.path.isfile(run_log):
                with open(run_log, "rb") as handle:
                    shipped.run_log = handle.read()
            key = f"magnus-task-{uuid.uuid4().hex}"
            where = self._place(spec)
            placed = {"workers": [where], "allow_other_workers": True} if where else {}
            job.remote = self.client.submit(run_remote, spec, tree, files, self._warm, self._token, shipped,
                                            catalog_files, key=key, pure=False, retries=0, **placed)
        except Exception as exc:
            self._unplace(where, spec)
            job.future.set_result(_fail(spec, f"the task cannot be sent to the Dask cluster: "
                                              f"{type(exc).__name__}: {exc}"))
            return job.future
        job.worker = where
        with self._lock:
            self._jobs[key] = job
        job.remote.add_done_callback(lambda _: self._finish(key))
        return job.future

    def cancel(self, internal_name: str) -> None:
        """Cancel every attempt of ``internal_name``: FAIL "cancelled" now; the worker kills the task."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.spec.internal_name == internal_name]
        for job in jobs:
            with contextlib.suppress(Exception):
                job.remote.cancel()
            _resolve(job, _fail(job.spec, "cancelled"))

    def close(self) -> None:
        """Cancel what is pending, disconnect, and stop the LocalCluster if we started it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            with contextlib.suppress(Exception):
                job.remote.cancel()
            _resolve(job, _fail(job.spec, "cancelled: the task pool was closed"))
        self._workspace.clear()
        with contextlib.suppress(Exception):
            self.client.close()
        self.close_cluster()

    def close_cluster(self) -> None:
        """Stop our LocalCluster, and multiprocessing's forkserver and resource tracker if ours started
        them and no pool still uses them, so a closed pool leaves no process behind (as
        ``TaskSlots.close`` does)."""
        if self._cluster is not None:
            _close_local(self._cluster, self._server)
            self._cluster = self._server = None

    def __enter__(self) -> DaskSlots:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ results

    def _place(self, spec: TaskSpec) -> str:
        """On our LocalCluster, the worker a task goes to, as the local pool picks a slot: a notebook to
        an idle worker whose kernel has been warming longest (most likely ready), another task to the one
        warming least; "" (Dask's choice) on a remote cluster or when no worker of ours is idle. Dask
        alone may give the next notebook to the worker that just finished one, its kernel still booting,
        while the other's kernel waits ready (~0.2 s per such step of the demo)."""
        if self._cluster is None:
            return ""
        try:
            workers = [n.worker_address for n in list(self._cluster.workers.values()) if n.worker_address]
        except Exception:
            return ""
        with self._lock:
            idle = [w for w in workers if not self._busy.get(w)]
            if not idle:
                return ""
            pick = min if spec.kind == "notebook" else max
            where = pick(idle, key=lambda w: self._since.get(w, 0.0))
            self._busy[where] = 1
        return str(where)

    def _unplace(self, where: str, spec: TaskSpec) -> None:
        if not where:
            return
        with self._lock:
            self._busy[where] = 0
            if spec.kind == "notebook":
                self._since[where] = time.monotonic()

    def _finish(self, key: str) -> None:
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is None:
            return
        self._unplace(job.worker, job.spec)
        if job.future.done():
            return
        try:
            outcome: _Outcome = job.remote.result()
            result = self._land(job.spec, outcome, job.outside)
        except CancelledError:
            result = _fail(job.spec, "cancelled")
        except Exception as exc:
            result = _fail(job.spec, _reason(exc))
        _resolve(job, result)

    @staticmethod
    def _land(spec: TaskSpec, outcome: _Outcome, outside: list[str]) -> TaskResult:
        """Apply what the task changed to the run folder; its notebook and log go into the catalog, with
        a note for each symlink not sent and each change not applied."""
        result = outcome.result
        notes = [f"symlink '{r}' leads out of the run folder: not sent to the Dask worker" for r in outside]
        notes += run_folder.apply(spec.cwd, outcome.changes)
        catalog = spec.env.get(context.CATALOG) or ""
        if outcome.catalog is not None and catalog:
            notes += run_folder.apply(catalog, outcome.catalog)
            result.message = result.message.replace(outcome.catalog_root, catalog)
        result.output_notebook = None
        if outcome.notebook is not None and spec.notebook_output_path:
            run_folder.write_file(spec.notebook_output_path, outcome.notebook)
            result.output_notebook = spec.notebook_output_path
        if spec.log_path and (outcome.log is not None or notes):
            text = (outcome.log or b"") + "".join(f"magnus-jupyter: {n}\n" for n in notes).encode()
            run_folder.write_file(spec.log_path, text)
        result.log_path = spec.log_path
        out = os.path.join(outcome.root, _OUT)
        for remote, here in ((os.path.join(out, os.path.basename(spec.notebook_output_path or "-")),
                              spec.notebook_output_path),
                             (os.path.join(out, os.path.basename(spec.log_path or "-")), spec.log_path),
                             (outcome.root, spec.cwd)):
            if here:
                result.message = result.message.replace(remote, here)
        return result

    def _progress(self, event: Any) -> None:
        _, message = event
        owner, name, done, total = message
        if owner == self._token and self._on_progress is not None:
            with contextlib.suppress(Exception):  # a broken display must not stop the run
                self._on_progress(name, int(done), int(total))


class _Starting:
    """A LocalCluster and its client, being started by a background thread; ``result()`` waits."""

    def __init__(self, workers: int, warm: bool) -> None:
        self.workers = workers
        self.warm = warm
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._adopted = False
        self._value: tuple[Any, Any] | None = None
        self.server: Any = None  # the forkserver our workers fork their task slots from
        self._error: BaseException | None = None
        threading.Thread(target=self._start, name="magnus-dask-start", daemon=True).start()

    def _start(self) -> None:
        try:
            _start_forkserver()
            try:
                from . import _procs, slots

                # the slots' forkserver imports papermill on the other core while the first imports
                # distributed and this process too; on one, papermill would delay the Dask workers
                env = {}
                if _procs.SHARED_FORKSERVER:
                    self.server, address = _procs.start_forkserver([*slots._PRELOAD, _SERVER_EXIT])
                    env[_FORKSERVER_ENV] = address
                import dask
                from distributed import Client, LocalCluster

                with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                      "distributed.worker.daemon": False,
                                      "distributed.worker.multiprocessing-method": "forkserver"}), \
                        warnings.catch_warnings():
                    # no dashboard; its bare HTTP server moves off a busy port, on 127.0.0.1 like the rest
                    warnings.filterwarnings("ignore", message="Port .* is already in use")
                    cluster = LocalCluster(n_workers=self.workers, processes=True, threads_per_worker=1,
                                           host="127.0.0.1", dashboard_address=None, memory_limit=0,
                                           silence_logs=logging.ERROR, env=env,
                                           preload=[__name__] if self.warm else [])
            except BaseException:
                _close_local(None, self.server)  # releases the forkservers
                raise
            try:
                client = Client(cluster, set_as_default=False)
            except BaseException:
                _close_local(cluster, self.server)
                raise
            self._value = (cluster, client)
        except BaseException as exc:
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> tuple[Any, Any]:
        """``(cluster, client)``, now owned by the caller; or the error."""
        self._done.wait()
        with self._lock:
            self._adopted = True
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def close(self) -> None:
        """Stop the cluster unless a ``DaskSlots`` adopted it (a stub or refused run never does)."""
        with _prepared_lock:
            if self in _prepared:
                _prepared.remove(self)
        with self._lock:
            if self._adopted:
                return
            self._adopted = True
        self._done.wait()
        if self._value is not None:
            cluster, client = self._value
            with contextlib.suppress(Exception):
                client.close()
            _close_local(cluster, self.server)


_prepared_lock = threading.Lock()
_prepared: list[_Starting] = []


def _adopt(workers: int, warm: bool) -> _Starting | None:
    """A cluster ``DaskSlots.prepare`` is starting for exactly this pool, if any."""
    with _prepared_lock:
        for starting in _prepared:
            if starting.workers == workers and starting.warm == warm:
                _prepared.remove(starting)
                return starting
    return None


class _KilledOnPurpose(logging.Filter):
    """Drops distributed's INFO record, with its traceback, that a comm to a worker closed: ours are
    killed on purpose when their cluster closes, and by then the cluster's silenced logs are restored,
    so the line (and ``CommClosedError``) would end a successful command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO


_quiet_close = _KilledOnPurpose()


def _close_local(cluster: Any, server: Any) -> None:
    """Stop a LocalCluster we started, without its graceful worker shutdown (~0.3 s): nothing of ours
    is left on the workers by now, so their processes are killed first (their slot workers, kernels
    and tasks follow through their lifelines), then the nannies and scheduler close at once, then the
    slots' forkserver and (if no local pool uses them) multiprocessing's forkserver and tracker."""
    batched = logging.getLogger("distributed.batched")
    if _quiet_close not in batched.filters:
        batched.addFilter(_quiet_close)
    for nanny in list(getattr(cluster, "workers", {}).values()):
        process = getattr(getattr(nanny, "process", None), "process", None)
        pid = getattr(process, "pid", None)
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        cluster.close()
    if server is not None:
        with contextlib.suppress(Exception):
            server._stop()
    from . import slots

    slots._release_forkserver()


def _start_forkserver() -> None:
    """Our LocalCluster's worker processes are forked from multiprocessing's forkserver (shared with
    the local executor's pools, counted with them, stopped with the last), started here with
    ``distributed`` preloaded: it imports ``distributed`` on the other core while this process does,
    and a worker then starts in a fork, not an interpreter importing it again (~0.35 s each, on
    the way to a first task). A forkserver already running (a local pool's) serves them as it is."""
    import multiprocessing
    from multiprocessing import forkserver

    from . import slots

    slots._hold_forkserver()
    try:
        multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed", _SERVER_EXIT])
        forkserver.ensure_running()
    except BaseException:
        slots._release_forkserver()
        raise


def _travels_with(cwd: str, folder: str) -> str | None:
    """``folder``'s path in the run folder ``cwd`` when it travels with it (inside, no hidden part)."""
    if not folder:
        return None
    relative = os.path.relpath(os.path.realpath(folder), os.path.realpath(cwd))
    parts = relative.split(os.sep)
    if relative == "." or parts[0] == ".." or any(p.startswith(".") for p in parts):
        return None
    return relative


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return f"the Dask worker running the task died (KilledWorker: {exc})"
    return f"the task failed on the Dask cluster: {name}: {exc}"


def _fail(spec: TaskSpec, message: str) -> TaskResult:
    from .runners import now

    stamp = now()
    return TaskResult(FAIL, message, start_time=stamp, end_time=stamp, log_path=spec.log_path)


def _resolve(job: _Job, result: TaskResult) -> None:
    with contextlib.suppress(InvalidStateError):
        job.future.set_result(result)
