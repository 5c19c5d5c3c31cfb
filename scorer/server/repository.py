"""The model repository: which versions are on disk, which are loaded, which one serves.

Layout::

    <repository>/<model>/<version>/manifest.json   a bundle (version: a non-negative integer)
    <repository>/<model>/<version>/<file>.pmml     or exactly one PMML file
    <repository>/<model>/config.json               optional: {"version_policy": ...,
                                                              "features": ...}

Serving reads an immutable :class:`ModelView` per model from one dict that is replaced as a
whole whenever something changes (publishing is a single reference assignment, atomic in
CPython), so a request never takes a lock and never sees a half-made change. A request keeps
the :class:`LoadedVersion` it resolved until it finishes: a swap or an unload only drops the
repository's reference, and the version's memory goes when the last request using it ends.

Loading, verifying and warming a new version happens on background threads. Until the new
version is ready, the versions it replaces keep serving; a version that fails stays out of
service (state UNAVAILABLE, with the reason) and is retried only when its files change.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, InputError, ModelNotFoundError, NotReadyError
from ..model import Model, load
from .codec import ModelSchema
from .metrics import Metrics

log = logging.getLogger("tablescore.server")

MANIFEST = "manifest.json"
CONFIG = "config.json"
_VERSION_RE = re.compile(r"[0-9]+")

# Triton's model states (RepositoryIndex)
READY = "READY"
LOADING = "LOADING"
UNAVAILABLE = "UNAVAILABLE"

#: a parallel kernel launch threshold above this is not warmed (it would cost memory)
_MAX_WARM_ROWS = 65_536
#: config.json holds a version policy: a few hundred bytes. A bigger file is refused unread
#: (a scan reads it every poll, and a huge or deeply nested one must not stall or crash it)
MAX_CONFIG_BYTES = 64 * 1024

#: what a version directory looks like on disk: (relative path, inode, mtime ns, size) of
#: every file in it, sorted; a version is (re)loaded when its stamp changes
Stamp = tuple[tuple[str, int, int, int], ...]
# Testing hook: every load sleeps this long before reading the bundle, so tests can hold a load
# in progress (load concurrency, shutdown). Read once at import; never set in production.
_DEBUG_LOAD_DELAY_S = float(os.environ.get("TABLESCORE_SERVE_DEBUG_LOAD_DELAY_S", "0") or 0)

#: files stamped per version directory; a bundle has a manifest and a few dozen tables
_MAX_STAMP_FILES = 10_000

#: client-supplied strings longer than this are shortened where error messages echo them
ECHO_CHARS = 200
#: longest file name (bytes) the usual filesystems accept: no model directory is longer
_MAX_NAME_BYTES = 255


def shorten(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as an error message should echo it: at most ``limit`` characters.

    Error details travel back in gRPC trailers, which clients cap (tritonclient / grpc-core:
    8 KiB by default); echoing a 100 KB model name in full made the client see
    RESOURCE_EXHAUSTED instead of the error. A shortened string keeps its start and says how
    long the original was.

    Parameters
    ----------
    text : str
        A string the client sent (model name, version, ...).
    limit : int
        Characters kept.

    Returns
    -------
    str
        ``text`` itself, or its first ``limit`` characters, an ellipsis and the length.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def version_key(version: str) -> tuple[int, str]:
    """Sort key of a version directory name: numeric, then textual ("01" after "1")."""
    return int(version), version


# --- version policy ------------------------------------------------------------------------
@dataclass(frozen=True)
class VersionPolicy:
    """Which of a model's versions are served (Triton's ``version_policy``).

    ``{"latest": {"num_versions": N}}`` (default N = 1), ``{"all": {}}`` or
    ``{"specific": {"versions": [1, 3]}}``.
    """

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, d: Any) -> VersionPolicy:
        """Parse the ``version_policy`` value of ``config.json``; ValueError if malformed."""
        if not isinstance(d, dict) or len(d) != 1:
            raise ValueError('version_policy must be one of {"latest": {"num_versions": N}}, '
                             '{"all": {}}, {"specific": {"versions": [...]}}')
        kind, body = next(iter(d.items()))
        body = body or {}
        if not isinstance(body, dict):  # ({"specific": [1]}: refused, not an AttributeError)
            raise ValueError(f"version_policy.{kind} must be an object, e.g. "
                             '{"specific": {"versions": [1, 2]}}')
        if kind == "latest":
            n = body.get("num_versions", 1)
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ValueError("version_policy.latest.num_versions must be a positive integer")
            return cls("latest", num_versions=n)
        if kind == "all":
            return cls("all")
        if kind == "specific":
            vs = body.get("versions")
            if (not isinstance(vs, list) or not vs
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                               for v in vs)):
                raise ValueError("version_policy.specific.versions must be a non-empty list of "
                                 "non-negative integers")
            return cls("specific", versions=tuple(sorted(set(vs))))
        raise ValueError(f"version_policy '{kind}' unknown (latest, all, specific)")

    def select(self, versions: Iterable[str]) -> list[str]:
        """The versions to serve out of ``versions`` (those with a bundle), oldest first."""
        ordered = sorted(versions, key=version_key)
        if self.kind == "latest":
            return ordered[-self.num_versions:]
        if self.kind == "all":
            return ordered
        wanted = set(self.versions)
        return [v for v in ordered if int(v) in wanted]

    def describe(self) -> str:
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        if self.kind == "all":
            return "all"
        return "specific " + ", ".join(str(v) for v in self.versions)


# --- serving-side objects --------------------------------------------------------------------
class VersionStats:
    """Counters behind Triton's ModelStatistics for one loaded version."""

    __slots__ = (
        "_lock",
        "execution_count",
        "fail_count",
        "fail_ns",
        "infer_ns",
        "inference_count",
        "input_ns",
        "last_inference_ms",
        "output_ns",
        "success_count",
        "success_ns",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.success_count = self.success_ns = self.fail_count = self.fail_ns = 0
        self.input_ns = self.infer_ns = self.output_ns = 0
        self.inference_count = self.execution_count = self.last_inference_ms = 0

    def success(self, rows: int, total_ns: int, input_ns: int, infer_ns: int,
                output_ns: int, *, executions: int = 1) -> None:
        with self._lock:
            self.success_count += 1
            self.success_ns += total_ns
            self.input_ns += input_ns
            self.infer_ns += infer_ns
            self.output_ns += output_ns
            self.inference_count += rows
            # adaptive batching: one kernel call scores several requests
            self.execution_count += executions
            self.last_inference_ms = int(time.time() * 1000)

    def failure(self, total_ns: int) -> None:
        with self._lock:
            self.fail_count += 1
            self.fail_ns += total_ns

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {k: getattr(self, k) for k in self.__slots__ if k != "_lock"}


@dataclass(eq=False)
class LoadedVersion:
    """One version ready to score. Immutable once published, except its statistics."""

    name: str
    version: str
    model: Model
    path: Path
    stamp: Stamp
    loaded_at: float
    #: rows from which some step runs its parallel kernel (None: no parallel kernel)
    parallel_rows: int | None
    #: the model's tensor interface
    schema: ModelSchema
    stats: VersionStats = field(default_factory=VersionStats)
    #: raw ModelInfer responses without their data, by (output names, rows): a cache the
    #: servicer fills (see InferenceServicer._response)
    responses: dict[tuple[tuple[str, ...], int], Any] = field(default_factory=dict, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint or ""


@dataclass(frozen=True)
class VersionStatus:
    """What RepositoryIndex reports for one version."""

    version: str
    state: str
    reason: str = ""
    #: False: on disk, but the version policy does not serve it (NOT_FOUND, not UNAVAILABLE)
    servable: bool = True


@dataclass(frozen=True)
class ModelView:
    """A model as requests see it: immutable, replaced as a whole on every change."""

    name: str
    ready: dict[str, LoadedVersion]
    default: LoadedVersion | None
    statuses: tuple[VersionStatus, ...]
    policy: VersionPolicy
    unloaded: bool = False
    #: why the model's directory or config cannot be used ("" if it can)
    error: str = ""
    #: the model's config.json object as last read validly ({} if none): stages read their
    #: sections (``features``) from it
    config: dict[str, Any] = field(default_factory=dict)

    def status(self, version: str) -> VersionStatus | None:
        return next((s for s in self.statuses if s.version == version), None)

    def ready_versions(self) -> list[str]:
        """Ready versions, newest first."""
        return sorted(self.ready, key=version_key, reverse=True)

    def why_not_ready(self) -> str:
        if self.error:
            return self.error
        if self.unloaded:
            return "unloaded by RepositoryModelUnload; RepositoryModelLoad loads it again"
        parts = [f"version {s.version}: {s.state.lower()}" + (f" ({s.reason})" if s.reason else "")
                 for s in self.statuses if s.servable]
        return "; ".join(parts) if parts else "no version directory holds a bundle"


# --- disk state ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DiskVersion:
    path: Path  # what scorer.load gets: the bundle directory or a .pmml file
    stamp: Stamp


@dataclass
class _DiskModel:
    versions: dict[str, _DiskVersion]
    pending: set[str]  # version directories without a bundle (yet)
    policy: VersionPolicy | None
    policy_error: str | None
    #: the model directory itself could not be read (a symlink loop, permissions, ...)
    error: str | None = None
    #: config.json as read (for pipeline stages: the features binding); {} if none
    config: dict[str, Any] = field(default_factory=dict)


def _unreadable(error: str) -> _DiskModel:
    return _DiskModel({}, set(), None, None, error)


def _stamp(vdir: Path) -> Stamp:
    """The stamp of every file under the version directory ``vdir``.

    Stamping the manifest alone missed a bundle copied file by file in name order (what an
    object-store sync does: ``manifest.json`` before ``tables/``): the load failed on a
    missing table and was never retried when the tables arrived. Names, sizes, mtimes and
    inodes come from directory listings and one ``stat`` per file: cheap next to a load, and
    a bundle replaced by rename gets new inodes even when mtimes and sizes repeat.

    Raises
    ------
    OSError
        The directory changed under the scan or cannot be read.
    """
    out: list[tuple[str, int, int, int]] = []
    stack = [(vdir, "")]
    while stack:
        d, prefix = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                rel = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    stack.append((Path(e.path), rel + "/"))
                    continue
                st = e.stat()
                out.append((rel, st.st_ino, st.st_mtime_ns, st.st_size))
                if len(out) > _MAX_STAMP_FILES:
                    raise OSError(f"more than {_MAX_STAMP_FILES} files in the version "
                                  "directory")
    out.sort()
    return tuple(out)


def _scan_model(model_dir: Path) -> _DiskModel:
    """What is on disk for one model. Never raises: a problem with one version directory
    makes that version pending, one with the model directory or its config is reported in
    the result, so that one bad model never stops the scan of the others."""
    try:
        return _scan_model_dir(model_dir)
    except Exception as exc:  # whatever it is, it must stay this model's
        if not isinstance(exc, OSError):
            log.exception("model directory scan failed", extra={
                "event": "scan_failed", "model": model_dir.name})
        return _unreadable(f"cannot read the model directory: {type(exc).__name__}: {exc}")


def _scan_model_dir(model_dir: Path) -> _DiskModel:
    versions: dict[str, _DiskVersion] = {}
    pending: set[str] = set()
    # OSError (not a directory, a symlink loop, no permission) propagates: the caller
    # reports the model as unreadable instead of treating it as empty (which would unload it)
    entries = list(os.scandir(model_dir))
    for e in entries:
        if not _VERSION_RE.fullmatch(e.name):
            continue  # hidden temp dirs of atomic writers, files, anything else
        try:
            if not e.is_dir():
                continue
        except OSError:  # a symlink loop or the like: a version that cannot be read
            pending.add(e.name)
            continue
        vdir = Path(e.path)
        try:
            manifest = vdir / MANIFEST
            if manifest.is_file():
                versions[e.name] = _DiskVersion(vdir, _stamp(vdir))
                continue
            pmml = sorted(p for p in vdir.glob("*.pmml") if p.is_file())
            if len(pmml) == 1:
                versions[e.name] = _DiskVersion(pmml[0], _stamp(vdir))
                continue
        except OSError:  # removed while scanning
            pass
        pending.add(e.name)
    policy = error = None
    config: dict[str, Any] = {}
    cfg = model_dir / CONFIG
    if cfg.is_file():
        try:
            policy, config = _read_config(cfg)
        except RecursionError:  # json's decoder recurses once per nesting level
            error = f"{CONFIG}: nested too deeply"
        except (OSError, ValueError) as exc:
            error = f"{CONFIG}: {exc}"
        except Exception as exc:  # (any other surprise in a config is the config's fault:
            # the previous policy stays in force, the directory is still followed)
            error = f"{CONFIG}: {type(exc).__name__}: {exc}"
    return _DiskModel(versions, pending, policy, error, config=config)


def _read_config(cfg: Path) -> tuple[VersionPolicy, dict[str, Any]]:
    """The version policy in ``config.json`` and the whole object; ValueError (or
    RecursionError) if invalid."""
    with open(cfg, "rb") as f:
        raw = f.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"larger than {MAX_CONFIG_BYTES} bytes; refused unread")
    data = json.loads(raw.decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("config.json must hold a JSON object")
    if "version_policy" in data:
        return VersionPolicy.from_json(data["version_policy"]), data
    return VersionPolicy(), data


@dataclass
class _ModelState:
    name: str
    disk: _DiskModel
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    loaded: dict[str, LoadedVersion] = field(default_factory=dict)
    loading: dict[str, tuple[Stamp, Future[None]]] = field(default_factory=dict)
    failed: dict[str, tuple[Stamp, str]] = field(default_factory=dict)
    unloaded: bool = False
    policy_error: str | None = None
    #: a valid config.json (or none) has been read: until then an invalid one blocks loading
    has_policy: bool = False
    #: the model directory could not be read at the last scan (the previous scan stands)
    error: str | None = None
    #: config.json of the last valid read
    config: dict[str, Any] = field(default_factory=dict)

    def blocked(self) -> str | None:
        """Why nothing of this model can be loaded now, if that is so."""
        if self.error and not self.loaded:
            return self.error
        if not self.has_policy and self.policy_error:
            return f"invalid {self.policy_error}; nothing loads until it is fixed"
        return None


# --- warm-up ---------------------------------------------------------------------------------
def parallel_rows(model: Model) -> int | None:
    """Smallest batch for which one of the model's steps runs a parallel kernel.

    The server warms the parallel kernels with it and, on Numba's non-threadsafe workqueue
    threading layer, serialises such batches."""
    return model.parallel_min_rows


def _sample_columns(model: Model) -> dict[str, np.ndarray]:
    """One valid row as columns: a verification row if the bundle has them, else zeros."""
    v = model.bundle.verification
    if v is not None and v.inputs and len(next(iter(v.inputs.values()))):
        return {k: np.asarray(c)[:1] for k, c in v.inputs.items()}
    cols: dict[str, np.ndarray] = {}
    for f in model.bundle.inputs:
        if f.type == "string":
            cols[f.name] = np.array([f.categories[0] if f.categories else ""], dtype=object)
        else:
            cols[f.name] = np.zeros(1)
    return cols


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def warm(model: Model) -> None:
    """Score dummy batches through every path a request can take, so the first request does
    not pay for Numba dispatch compilation or thread-pool start-up."""
    model.score_arrays(_sample_columns(model))  # one tensor per column
    fields = model.bundle.inputs
    if any(f.type == "string" for f in fields):
        return  # only all-numeric models accept one 2-D tensor
    n = len(fields)
    try:
        # one 2-D tensor: the input copy kernel is specialised per dtype the codec passes on,
        # and per writeability (the codec passes read-only arrays)
        for dtype in (np.float64, np.float32, np.int64, np.int32):
            model.score_arrays(_read_only(np.zeros((1, n), dtype=dtype)))
        rows = parallel_rows(model)
        if rows is not None and rows <= _MAX_WARM_ROWS:
            model.score_arrays(_read_only(np.zeros((rows, n))))
    except InputError:
        pass  # the model refuses all-zero rows: the kernels were dispatched all the same


# --- load threads ----------------------------------------------------------------------------
class RepositoryClosedError(NotReadyError):
    """A load was abandoned because the repository closed (the server is shutting down)."""


class _LoadWorkers:
    """A small pool of daemon threads that run loads and settle their futures.

    Not a ThreadPoolExecutor: its workers are joined at interpreter exit, so a SIGTERM
    during a 20 s load made the process exit only when the load was done, whatever
    ``--grace`` said. These threads never hold up the exit, and :meth:`shutdown` settles the
    futures of loads still queued or running, so whoever waits for them returns at once.

    Parameters
    ----------
    threads : int
        Loads run at once.
    name : str
        Thread name prefix.
    """

    def __init__(self, threads: int, name: str) -> None:
        self._size = threads
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Future[None], Callable[[], None]] | None] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._pending: set[Future[None]] = set()  # queued or running
        self._closed = False

    def submit(self, fn: Callable[[], None]) -> Future[None]:
        """Run ``fn`` on a load thread; its future settles when it returns or raises."""
        fut: Future[None] = Future()
        with self._lock:
            if self._closed:
                fut.set_exception(RepositoryClosedError("the repository is closed"))
                return fut
            self._pending.add(fut)
            if len(self._threads) < self._size:  # threads start on first use
                t = threading.Thread(target=self._run, daemon=True,
                                     name=f"{self._name}-{len(self._threads)}")
                self._threads.append(t)
                t.start()
        self._queue.put((fut, fn))
        return fut

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fut, fn = item
            if fut.set_running_or_notify_cancel():
                try:
                    fn()
                except BaseException as exc:  # handed to the waiter
                    _settle(fut, exc)
                else:
                    _settle(fut, None)
            with self._lock:
                self._pending.discard(fut)

    def shutdown(self) -> None:
        """Fail every queued or running load's future; end the threads once idle."""
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, set()
            threads = len(self._threads)
        for fut in pending:
            _settle(fut, RepositoryClosedError("the server is shutting down; the load was "
                                               "abandoned"))
        for _ in range(threads):
            self._queue.put(None)


def _settle(fut: Future[None], exc: BaseException | None) -> None:
    """Complete ``fut`` unless shutdown has already."""
    try:
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
    except InvalidStateError:
        pass


# --- the repository --------------------------------------------------------------------------
class Repository:
    """Watches a repository directory and keeps the served versions in step with it.

    Parameters
    ----------
    root : path-like
        The repository directory.
    poll_interval : float
        Seconds between scans in the watcher thread; 0 disables the watcher.
    load_threads : int
        Threads that load new versions.
    metrics : Metrics, optional
        Where to count loads, failures and ready versions.
    load_waiters : int
        Callers that :meth:`load_model` lets wait for loads at once; more are refused with
        NotReadyError at once. The server reserves this many request threads on top of its
        ``threads``, so waiting loads never take the threads inference and health need.
    """

    def __init__(self, root: str | os.PathLike[str], *, poll_interval: float = 1.0,
                 load_threads: int = 2, metrics: Metrics | None = None,
                 load_waiters: int = 2) -> None:
        self.root = Path(root)
        self.poll_interval = poll_interval
        self.metrics = metrics or Metrics()
        self._lock = threading.RLock()  # guards _models; publishing happens under it
        self._scan_lock = threading.Lock()  # one scan at a time (watcher vs RPC)
        self._models: dict[str, _ModelState] = {}
        self._views: dict[str, ModelView] = {}
        self._loader = _LoadWorkers(load_threads, "tablescore-load")
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._closed = False
        self.load_waiters = load_waiters
        self._waiters = threading.BoundedSemaphore(load_waiters)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> list[Future[None]]:
        """Scan once, start loading what is there, start the watcher; return the loads."""
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository '{self.root}' is not a directory")
        futures = self.poll()
        if self.poll_interval > 0:
            self._watcher = threading.Thread(target=self._watch, name="tablescore-watch",
                                             daemon=True)
            self._watcher.start()
        return futures

    def close(self) -> None:
        """Stop watching and loading; loaded versions stay usable by their holders."""
        self._closed = True
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self._loader.shutdown()  # loads in progress are abandoned; their waiters return

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
            except Exception:  # a scan error must not end the watcher
                log.exception("repository scan failed", extra={"event": "scan_failed",
                                                              "repository": str(self.root)})

    # --- reading (request path, lock-free) ----------------------------------------------------
    def views(self) -> dict[str, ModelView]:
        """The current snapshot: model name -> view."""
        return self._views

    def view(self, name: str) -> ModelView:
        """The model's view; ModelNotFoundError if the repository has no such model."""
        v = self._views.get(name)
        if v is None:
            raise ModelNotFoundError(f"unknown model '{shorten(name)}'")
        return v

    def resolve(self, name: str, version: str = "") -> LoadedVersion:
        """The version that serves a request for ``name`` / ``version`` ("" = default).

        Raises
        ------
        ModelNotFoundError
            Unknown model, unknown version, or a version the version policy does not serve.
        NotReadyError
            The version (or, for the default, every version) is loading or failed to load.
        """
        view = self.view(name)  # the name is a model's from here on: short enough to echo
        if not version:
            if view.default is None:
                raise NotReadyError(f"model '{name}' is not ready: {view.why_not_ready()}")
            return view.default
        lv = view.ready.get(version)
        if lv is not None:
            return lv
        st = view.status(version)
        if st is None:
            ready = ", ".join(view.ready_versions()) or "none"
            raise ModelNotFoundError(f"unknown version '{shorten(version)}' of model '{name}' "
                                     f"(ready versions: {ready})")
        if not st.servable:
            raise ModelNotFoundError(f"model '{name}' version {version} is not served: "
                                     f"{st.reason}")
        raise NotReadyError(f"model '{name}' version {version} is not ready: "
                            f"{st.state.lower()}" + (f" ({st.reason})" if st.reason else ""))

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.resolve(name, version)
        except (ModelNotFoundError, NotReadyError):
            return False
        return True

    # --- scanning and reconciling -------------------------------------------------------------
    def poll(self) -> list[Future[None]]:
        """Scan the repository once and reconcile every model; returns loads started."""
        with self._scan_lock:
            try:
                entries = list(os.scandir(self.root))
            except OSError as exc:
                log.warning("cannot list the repository", extra={
                    "event": "scan_failed", "repository": str(self.root), "error": str(exc)})
                return []
            disk: dict[str, _DiskModel] = {}
            for e in sorted(entries, key=lambda e: e.name):
                if e.name.startswith("."):
                    continue
                try:
                    is_dir = e.is_dir()
                except OSError as exc:
                    # a symlink loop or an unreadable entry: that model is unreadable, the
                    # others are scanned as usual
                    disk[e.name] = _unreadable(f"cannot read the model directory: {exc}")
                    continue
                if is_dir:
                    disk[e.name] = _scan_model(self.root / e.name)
            with self._lock:
                for gone in set(self._models) - set(disk):
                    st = self._models.pop(gone)
                    for v in list(st.loaded):
                        self._unload(st, v, why="model directory removed")
                futures: list[Future[None]] = []
                for name, dm in disk.items():
                    st = self._models.get(name)
                    if st is None:
                        st = self._models[name] = _ModelState(name, dm)
                    if dm.error is not None:
                        if dm.error != st.error:
                            log.warning("model directory unreadable; what it served goes on "
                                        "serving", extra={"event": "scan_failed", "model": name,
                                                         "error": dm.error})
                        st.error = dm.error
                        continue  # the previous scan of it stands
                    st.error = None
                    st.disk = dm
                    self._apply_policy(st, dm)
                    futures += self._reconcile(st)
                self._publish()
            return futures

    def _apply_policy(self, st: _ModelState, dm: _DiskModel) -> None:
        policy = dm.policy or VersionPolicy()
        error = dm.policy_error
        if not error and st.has_policy and dm.versions and not policy.select(dm.versions):
            # (a typo such as "specific": {"versions": [9]} would unload every version: kept
            # as an invalid config is, the previous policy goes on serving)
            error = (f"{CONFIG}: version policy {policy.describe()} selects none of the "
                     f"versions on disk ({', '.join(sorted(dm.versions, key=int))})")
        if error:
            if error != st.policy_error:
                log.warning("bad model config; " + (
                    "keeping the previous version policy" if st.has_policy else
                    "the model does not load until it is fixed"), extra={
                    "event": "config_invalid", "model": st.name, "error": error})
            st.policy_error = error
            return
        st.policy_error = None
        st.has_policy = True
        st.policy = policy
        if dm.config != st.config:  # a new object only on change: stages cache by identity
            st.config = dm.config

    def _reconcile(self, st: _ModelState) -> list[Future[None]]:
        """Start the loads and do the unloads that bring ``st`` in line with disk and policy.

        Call with ``self._lock`` held, then :meth:`_publish`.
        """
        cands = dict(st.disk.versions)
        for v in st.disk.pending:
            lv = st.loaded.get(v)
            if lv is not None and v not in cands:
                # its directory is being written again in place (no manifest yet): what is
                # loaded goes on answering for it until the new files load (or it is deleted)
                cands[v] = _DiskVersion(lv.path, lv.stamp)
        target = [] if st.unloaded or st.blocked() else st.policy.select(cands)
        started = []
        for v in target:
            d = cands[v]
            cur = st.loaded.get(v)
            if cur is not None and cur.stamp == d.stamp:
                continue
            if v in st.loading and st.loading[v][0] == d.stamp:
                continue
            if v in st.failed and st.failed[v][0] == d.stamp:
                continue  # retried only when its files change (or on RepositoryModelLoad)
            fut = self._loader.submit(functools.partial(self._load, st.name, v, d))
            st.loading[v] = (d.stamp, fut)
            started.append(fut)
            log.info("loading model version", extra={
                "event": "model_loading", "model": st.name, "version": v, "path": str(d.path)})
        keep = {v for v in target if v in st.loaded}
        current = [v for v in target if v in st.loaded and st.loaded[v].stamp == cands[v].stamp]
        if (len(current) < len(target) and not st.unloaded) or st.blocked():
            # a wanted version is still loading or failed: whatever serves now goes on serving
            # (even if its directory is gone: the model is in memory) until it is replaced
            keep |= set(st.loaded)
        for v in list(st.loaded):
            if v not in keep:
                self._unload(st, v, why="unloaded by request" if st.unloaded else
                             f"replaced (version policy {st.policy.describe()})")
        for v in list(st.failed):
            if v not in cands:
                del st.failed[v]
        return started

    def _unload(self, st: _ModelState, version: str, *, why: str) -> None:
        # Dropping the reference is the whole unload: requests still scoring on this version
        # hold their own reference and finish; the memory goes with the last of them.
        lv = st.loaded.pop(version)
        try:
            self.metrics.loaded.remove(st.name, version)
        except KeyError:
            pass
        log.info("model version unloaded", extra={
            "event": "model_unloaded", "model": st.name, "version": version, "reason": why,
            "fingerprint": lv.fingerprint})

    def _publish(self) -> None:
        views = {}
        for name, st in self._models.items():
            statuses = []
            blocked = st.blocked()
            target = set([] if st.unloaded or blocked else st.policy.select(st.disk.versions))
            for v in sorted(set(st.disk.versions) | st.disk.pending | set(st.loaded),
                            key=version_key):
                if v in st.loaded:
                    reason = ""
                    if st.error:
                        reason = f"serving; {st.error}"
                    elif v in st.loading:
                        reason = "serving; a changed bundle is loading"
                    elif v in st.failed:
                        reason = f"serving the previous files; reload failed: {st.failed[v][1]}"
                    elif v not in target:
                        reason = "serving until a newer version is ready"
                    statuses.append(VersionStatus(v, READY, reason))
                elif v in st.loading:
                    statuses.append(VersionStatus(v, LOADING))
                elif v in st.failed:
                    statuses.append(VersionStatus(v, UNAVAILABLE,
                                                  f"failed to load: {st.failed[v][1]}"))
                elif v in st.disk.pending:
                    statuses.append(VersionStatus(
                        v, UNAVAILABLE, f"no {MANIFEST} yet (bundle not complete)"))
                elif st.unloaded:
                    statuses.append(VersionStatus(v, UNAVAILABLE, "unloaded"))
                elif blocked:
                    statuses.append(VersionStatus(v, UNAVAILABLE, blocked))
                else:
                    statuses.append(VersionStatus(
                        v, UNAVAILABLE, f"not in version policy '{st.policy.describe()}'",
                        servable=False))
            ready = dict(st.loaded)
            default = ready[max(ready, key=version_key)] if ready else None
            views[name] = ModelView(name, ready, default, tuple(statuses), st.policy,
                                    st.unloaded, blocked or "", st.config)
        self._views = views  # the atomic swap

    # --- loading ------------------------------------------------------------------------------
    def _load(self, name: str, version: str, d: _DiskVersion) -> None:
        with self._lock:
            st = self._models.get(name)
            if (st is None or st.loading.get(version, (None,))[0] != d.stamp
                    or self._closed):
                return  # superseded while queued (files still arriving): skip the work
        t0 = time.perf_counter()
        if _DEBUG_LOAD_DELAY_S:
            time.sleep(_DEBUG_LOAD_DELAY_S)
        try:
            # checks hashes and fingerprint, reproduces verification rows; a server needs only
            # what the kernels hold, not the parameter tables as read
            model = load(d.path, keep_tables=False, name=name)  # errors name the served name
            warm(model)
            lv = LoadedVersion(name, version, model, d.path, d.stamp, time.time(),
                               parallel_rows(model), ModelSchema(model))
        except Exception as exc:
            reason = str(exc) if isinstance(exc, BundleError) else f"{type(exc).__name__}: {exc}"
            log.error("model version failed to load; it does not serve", extra={
                "event": "model_load_failed", "model": name, "version": version,
                "path": str(d.path), "error": reason},
                exc_info=None if isinstance(exc, BundleError) else exc)
            self.metrics.loads.labels(name, "failed").inc()
            self.metrics.load_failures.labels(name, version).inc()
            # what clients read (RepositoryIndex, UNAVAILABLE): paths relative to the
            # repository, not the server's file system layout (the log keeps them whole)
            for root in {str(self.root), str(self.root.resolve())}:
                reason = reason.replace(f"{root}{os.sep}", "")
            with self._lock:
                st = self._models.get(name)
                if st is not None and st.loading.get(version, (None,))[0] == d.stamp:
                    del st.loading[version]
                    st.failed[version] = (d.stamp, reason)
                    self._reconcile(st)
                    self._publish()
            return
        seconds = time.perf_counter() - t0
        with self._lock:
            st = self._models.get(name)
            if st is None or st.loading.get(version, (None,))[0] != d.stamp or self._closed:
                return  # superseded while loading (files changed, model removed, closing)
            del st.loading[version]
            st.failed.pop(version, None)
            st.loaded[version] = lv
            self.metrics.loaded.labels(name, version).set(1)
            self._reconcile(st)
            self._publish()
        self.metrics.loads.labels(name, "ok").inc()
        self.metrics.load_seconds.labels(name).observe(seconds)
        log.info("model version ready", extra={
            "event": "model_ready", "model": name, "version": version,
            "fingerprint": lv.fingerprint, "schema_version": model.bundle.schema_version,
            "load_ms": round(seconds * 1e3, 1)})

    # --- explicit control (RepositoryModelLoad / Unload) --------------------------------------
    def load_model(self, name: str, *, timeout: float | None = None) -> ModelView:
        """Load ``name`` now (also after an unload, or to retry failed versions) and wait.

        The load runs on the repository's load threads; the caller only waits for it, and
        callers asking for a model whose load is in progress wait for that same load. At most
        ``load_waiters`` callers wait at once: a caller's thread is a request thread, and
        request threads waiting on slow loads must not starve inference and health checks.

        Raises
        ------
        ModelNotFoundError
            No directory ``name`` in the repository.
        NotReadyError
            ``load_waiters`` callers are waiting already (retry later), or the repository
            closed while waiting.
        BundleError
            No version of the model could be loaded; the message gives each reason.
        """
        if not self._waiters.acquire(blocking=False):
            raise NotReadyError(
                f"{self.load_waiters} model loads are in progress already; retry "
                f"RepositoryModelLoad of '{shorten(name)}' when they have finished")
        try:
            return self._load_model(name, timeout)
        finally:
            self._waiters.release()

    def _load_model(self, name: str, timeout: float | None) -> ModelView:
        with self._scan_lock:
            if not self._is_model_dir(name):
                raise ModelNotFoundError(f"unknown model '{shorten(name)}' (no such directory "
                                         f"in the repository)")
            with self._lock:
                st = self._models.get(name)
                if st is not None:
                    st.unloaded = False
                    st.failed.clear()  # an explicit load retries failed versions
        self.poll()
        # (a load the watcher superseded, its files having changed, ends early: the new one
        # is waited for too, until none of this model's loads is in progress)
        done = self.wait_loading(timeout, model=name)
        if self._closed:
            raise RepositoryClosedError("the server is shutting down; the load was abandoned")
        view = self.view(name)
        if view.default is None:
            if not done:  # still loading when the wait ended: not a failure (UNAVAILABLE)
                raise NotReadyError(f"model '{name}' is still loading: "
                                    f"{view.why_not_ready()}; ask again later")
            raise BundleError(f"model '{name}' failed to load: {view.why_not_ready()}")
        return view

    def unload_model(self, name: str) -> None:
        """Unload every version of ``name``; the watcher leaves it unloaded until
        :meth:`load_model`."""
        with self._lock:
            st = self._models.get(name)
            if st is None:
                raise ModelNotFoundError(f"unknown model '{shorten(name)}'")
            st.unloaded = True
            self._reconcile(st)
            self._publish()

    def _is_model_dir(self, name: str) -> bool:
        if not _valid_name(name):
            return False
        try:
            return (self.root / name).is_dir()
        except (OSError, ValueError):  # whatever the filesystem says, it is not a model
            return False

    def wait_loading(self, timeout: float | None = None, *, model: str | None = None) -> bool:
        """Wait until no load (of ``model``, or of any model) is in progress, or the
        repository closes; True if none is left."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                states = (self._models.values() if model is None else
                          [st for st in (self._models.get(model),) if st is not None])
                pending = [f for st in states for _, f in st.loading.values() if not f.done()]
            if not pending or self._closed:
                return not pending
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            wait_futures(pending, timeout=left)


def _valid_name(name: str) -> bool:
    """Could ``name`` be a model directory? (Anything else must not reach the filesystem: a
    name over 255 bytes made ``stat`` fail with ENAMETOOLONG, answered as INTERNAL.)"""
    return (bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and not name.startswith(".")
            and len(name.encode("utf-8", "surrogatepass")) <= _MAX_NAME_BYTES)
