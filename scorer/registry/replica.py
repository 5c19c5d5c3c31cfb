"""A server replica that serves what the registry says.

The replica keeps a local directory repository (``<root>/<model>/<version>/`` bundles and a
``config.json`` version policy per model) in step with the registry, and the server's
:class:`~scorer.server.repository.Repository` does what it does for any directory: load,
verify, warm, swap atomically, keep serving the old version while the new one loads or if it
fails. So the registry adds no second loading path; it only decides what is on disk.

On every new event (a PostgreSQL notification, or a changed event-log head where the store is
polled) the replica reads the registry's whole state in one transaction and makes the
directory match it: fetching bundles it has not got (content-addressed by fingerprint),
writing each version directory aside and renaming it into place, rewriting the version policy
(the newest ``latest`` versions plus every aliased one), and removing what is no longer
served. It never relies on having seen every notification: after a lost connection it
reconnects with backoff and compares the event-log head with the last event it applied.

The directory is the replica's own: it marks it (:data:`MARKER`) on first use, refuses a
non-empty directory without the mark (an operator's model repository or notes given by
mistake), and only ever removes bundle directories and version policies it writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from ..bundle import MANIFEST
from ..errors import ModelNotFoundError, NotReadyError
from ..urls import redact
from .store import RegistryError, Snapshot, SQLStore, write_bundle_files

log = logging.getLogger("tablescore.registry")

#: the file that marks a directory as a replica's: only such a directory is ever cleaned up
MARKER = ".tablescore-replica"


class RegistryReplica:
    """Serves a registry through a directory repository.

    Parameters
    ----------
    store : SQLStore
        The registry (see :func:`scorer.registry.open_store`).
    repository : Repository
        The server's repository over the local directory this replica writes (its own
        watcher should be off: the replica polls it after every change).
    replica_id : str, optional
        How this replica reports in (default ``host:pid``).
    heartbeat_s : float
        Seconds between heartbeats (what it serves, in the registry's ``ts_replicas``).
    max_backoff_s : float
        Longest wait between reconnection attempts.

    Raises
    ------
    RegistryError
        The repository directory is not empty and carries no :data:`MARKER` (it is not a
        replica's: the replica would delete what is there), or it cannot be used.
    """

    def __init__(self, store: SQLStore, repository: Any, *, replica_id: str | None = None,
                 heartbeat_s: float = 2.0, max_backoff_s: float = 5.0) -> None:
        self.store = store
        self.repository = repository
        self.root = Path(repository.root)
        try:
            _claim(self.root)
        except BaseException:
            store.close()  # the caller gets no replica to close
            raise
        self.replica_id = replica_id or f"{socket.gethostname()}:{os.getpid()}"
        self.heartbeat_s = heartbeat_s
        self.max_backoff_s = max_backoff_s
        #: model -> alias -> version, as of the last applied event
        self.aliases: dict[str, dict[str, str]] = {}
        #: model -> alias -> the version that answered for it when it last moved: it answers
        #: until the new target is ready here (an alias move never fails a request)
        self.previous: dict[str, dict[str, str]] = {}
        self.last_event = 0
        self.connected = False
        self.sync_failures = 0
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # sync() and the follower thread both apply: one at a time, or two writers race to
        # rename the same version directory into place
        self._apply_lock = threading.Lock()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> list[Future[None]]:
        """Apply the registry's state once (raises ``UnavailableError`` when the store cannot
        be reached: a replica that starts without it would serve nothing), start the
        repository and the follower thread; return the initial loads."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._apply(self.store.snapshot(), poll=False)  # the repository's start scans
        self.connected = True
        futures = self.repository.start()
        self._thread = threading.Thread(target=self._follow, name="tablescore-registry",
                                        daemon=True)
        self._thread.start()
        return futures

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()
        self.repository.close()

    # --- request path -------------------------------------------------------------------------
    def resolve(self, name: str, version: str = "") -> Any:
        """The loaded version for ``name`` / ``version``, where ``version`` may also be an
        alias (the answer names the version number)."""
        if version and not version.isdigit():
            v = self.aliases.get(name, {}).get(version)
            if v is None:
                self.repository.view(name)  # unknown model: its own NOT_FOUND
                raise ModelNotFoundError(f"model '{name}' has no version or alias "
                                         f"'{version[:200]}'")
            try:
                return self.repository.resolve(name, v)
            except (NotReadyError, ModelNotFoundError):  # not loaded, or not yet scanned
                before = self.previous.get(name, {}).get(version)
                if before is None:
                    raise
                return self.repository.resolve(name, before)
        return self.repository.resolve(name, version)

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.resolve(name, version)
        except (ModelNotFoundError, NotReadyError):
            return False
        return True

    def _answering(self, name: str, alias: str) -> str | None:
        """The version that answers a request for ``alias`` of ``name`` now, if any."""
        try:
            return str(self.resolve(name, alias).version)
        except (ModelNotFoundError, NotReadyError):
            return None

    def __getattr__(self, name: str) -> Any:
        # views(), view(), load_model(), ...: the repository's own
        return getattr(self.repository, name)

    # --- following the registry ---------------------------------------------------------------
    def _follow(self) -> None:
        backoff = 0.1
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_beat:
                    self._heartbeat()
                    next_beat = time.monotonic() + self.heartbeat_s
                if self.store.last_event() != self.last_event:
                    self._apply(self.store.snapshot())
                if not self.connected:
                    log.info("registry reachable again", extra={
                        "event": "registry_connected", "store": redact(self.store.url),
                        "last_event": self.last_event})
                self.connected = True
                backoff = 0.1
                self.store.wait(max(0.0, min(1.0, next_beat - time.monotonic())))
            except Exception as exc:
                self.sync_failures += 1
                if self.connected:
                    log.warning("registry unreachable; serving what is loaded and retrying",
                                extra={"event": "registry_disconnected",
                                       "store": redact(self.store.url), "error": str(exc)})
                self.connected = False
                self._stop.wait(backoff)
                backoff = min(self.max_backoff_s, backoff * 2)

    def sync(self) -> list[Future[None]]:
        """Apply the registry's current state now (also what the follower thread does)."""
        return self._apply(self.store.snapshot())

    def _apply(self, snap: Snapshot, *, poll: bool = True) -> list[Future[None]]:
        with self._apply_lock:
            return self._apply_locked(snap, poll=poll)

    def _apply_locked(self, snap: Snapshot, *, poll: bool) -> list[Future[None]]:
        wanted = {name: m for name, m in snap.models.items() if _safe_dir(name)}
        for name, m in wanted.items():
            model_dir = self.root / name
            serve = m.served()
            for v in serve:
                target = model_dir / str(v)
                have = _fingerprint(target)
                if have != m.versions[v]:
                    # missing, or another bundle under the same number (a registry recreated
                    # or restored numbers versions anew): the registry's content wins
                    _replace_bundle(target, self.store.fetch(m.versions[v]))
            config: dict[str, Any] = {"version_policy": {"specific": {"versions": serve}}}
            if m.experiment is not None:
                config["experiment"] = m.experiment
            _write_if_changed(model_dir / "config.json", config)
            for entry in _entries(model_dir):
                if entry.name.isdigit() and int(entry.name) not in serve:
                    # the repository keeps a loaded version in memory until its successor
                    # is ready: removing the directory never interrupts requests
                    _remove_bundle(entry)
        for entry in _entries(self.root):
            if not entry.name.startswith(".") and entry.name not in wanted:
                _remove_model(entry)
        aliases = {name: {a: str(v) for a, v in m.aliases.items()}
                   for name, m in wanted.items()}
        previous = {name: dict(p) for name, p in self.previous.items() if name in aliases}
        for name, now in aliases.items():
            for a, v in now.items():
                old = self.aliases.get(name, {}).get(a)
                if old is None or old == v:
                    continue
                # the version answering for the alias now (the old target, or while that is
                # still loading the fallback before it): the repository keeps it loaded until
                # every version it should serve is ready, so it answers meanwhile. Nothing
                # answers: the existing fallback (if any) stays
                answering = self._answering(name, a)
                if answering is not None:
                    previous.setdefault(name, {})[a] = answering
        # scan first: an alias never names a version the repository has not seen
        futures = self.repository.poll() if poll else []
        self.aliases, self.previous = aliases, previous
        before, self.last_event = self.last_event, snap.last_event
        if before != snap.last_event:
            log.info("registry state applied", extra={
                "event": "registry_applied", "last_event": snap.last_event,
                "models": {n: m.served() for n, m in wanted.items()}})
        return futures

    def _heartbeat(self) -> None:
        serving: dict[str, Any] = {}
        for name, view in self.repository.views().items():
            serving[name] = {
                "ready": view.ready_versions(),
                "states": {s.version: s.state for s in view.statuses},
                "reasons": {s.version: s.reason for s in view.statuses
                            if s.reason and s.state != "READY"},
            }
        self.store.heartbeat(self.replica_id, serving, self.last_event,
                             started_at=self.started_at)

    def collector(self) -> Any:
        """A Prometheus collector of this replica's registry series."""
        return _RegistrySeries(self)


def _entries(path: Path) -> Iterator[Path]:
    try:
        yield from path.iterdir()
    except OSError:
        return


def _claim(root: Path) -> None:
    """Make ``root`` this replica's directory: create and mark it when new or empty, accept
    it when marked; refuse anything else (RegistryError naming the directory)."""
    marker = root / MARKER
    try:
        root.mkdir(parents=True, exist_ok=True)
        if marker.is_file():
            return
        if not root.is_dir():
            raise RegistryError(f"replica repository '{root}' is not a directory")
        if any(root.iterdir()):
            raise RegistryError(
                f"replica repository '{root}' is not empty and is not a replica's (no "
                f"{MARKER} file): the replica would delete what is there; give an empty or "
                f"new directory for --repository")
        marker.write_text("tablescore registry replica: this directory's content is "
                          "managed by the replica and removed when the registry drops it\n")
    except OSError as exc:
        raise RegistryError(f"replica repository '{root}' cannot be used: {exc}") from exc


def _fingerprint(bundle: Path) -> str | None:
    """The fingerprint in the manifest of the bundle directory ``bundle`` (None: no readable
    manifest)."""
    try:
        fp = json.loads((bundle / MANIFEST).read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return fp if isinstance(fp, str) else None


def _replace_bundle(target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` as the bundle directory ``target``, replacing what is there."""
    if not os.path.lexists(target):
        write_bundle_files(target, files)
        return
    # the new bundle complete beside the old one first, then two renames: the directory is
    # missing for an instant only, and the repository keeps the loaded version meanwhile
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    new = target.with_name(f".{target.name}.new-{tag}")
    old = target.with_name(f".{target.name}.old-{tag}")
    write_bundle_files(new, files)
    try:
        os.rename(target, old)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(new, ignore_errors=True)
        raise
    os.rename(new, target)
    if old.is_symlink() or not old.is_dir():
        old.unlink(missing_ok=True)
    else:
        shutil.rmtree(old, ignore_errors=True)


def _remove_bundle(path: Path) -> None:
    """Remove a version directory the replica wrote (a bundle: it holds a manifest); anything
    else under that name is left alone."""
    if path.is_dir() and not path.is_symlink() and (path / MANIFEST).is_file():
        shutil.rmtree(path, ignore_errors=True)


def _remove_model(model_dir: Path) -> None:
    """Remove what the replica wrote for a model it no longer serves (its bundles and version
    policy), then the directory if that left it empty."""
    if not model_dir.is_dir() or model_dir.is_symlink():
        return
    for entry in _entries(model_dir):
        if entry.name.isdigit():
            _remove_bundle(entry)
    (model_dir / "config.json").unlink(missing_ok=True)
    try:
        model_dir.rmdir()
    except OSError:  # something the replica did not write is there: it stays
        pass


def _safe_dir(name: str) -> bool:
    # model names were checked at publish; a name that cannot be a directory is skipped
    return bool(name) and not name.startswith(".") and "/" not in name and len(name) < 200


def _write_if_changed(path: Path, obj: Any) -> None:
    data = json.dumps(obj, sort_keys=True)
    try:
        if path.read_text() == data:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(data)
    os.replace(tmp, path)


class _RegistrySeries:
    """``tablescore_registry_connected``, ``tablescore_registry_last_event_id`` and
    ``tablescore_registry_sync_failures_total``, read at scrape time."""

    def __init__(self, replica: RegistryReplica) -> None:
        self.replica = replica

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        r = self.replica
        yield GaugeMetricFamily("tablescore_registry_connected",
                                "1 while the registry store answers, 0 while the replica "
                                "retries (it keeps serving what is loaded)",
                                value=1.0 if r.connected else 0.0)
        yield GaugeMetricFamily("tablescore_registry_last_event_id",
                                "The last registry event this replica applied",
                                value=float(r.last_event))
        yield CounterMetricFamily("tablescore_registry_sync_failures",
                                  "Failed attempts to read or apply the registry",
                                  value=float(r.sync_failures))


