"""The registry's state store: bundles by fingerprint, model versions, aliases, an append-only
event log and the replicas' heartbeats, in SQL.

One class holds the logic (:class:`SQLStore`); a backend supplies the connection, its SQL
dialect (placeholders, column types) and how a replica waits for the next event (PostgreSQL
``LISTEN``, SQLite polling). See docs/operations.md ("Model registry") for the tables.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BundleError, BundleFormatError, InputError, ModelNotFoundError, TablescoreError

#: NOTIFY channel replicas LISTEN on; the payload is the event id, never the bundle
CHANNEL = "tablescore_registry"
_VERSION_RE = re.compile(r"[0-9]{1,9}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
#: alias names must not look like versions (a request's model_version is either)
_ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,63}")


class RegistryError(TablescoreError):
    """A registry operation was refused (unknown model or version, alias in use, ...)."""


@dataclass
class Event:
    """One row of the event log."""

    id: int
    kind: str
    model: str
    version: int | None
    alias: str | None
    at: float


@dataclass
class ModelState:
    """A model as the registry holds it."""

    name: str
    #: version number -> bundle fingerprint
    versions: dict[int, str] = field(default_factory=dict)
    #: alias -> version number
    aliases: dict[str, int] = field(default_factory=dict)
    #: versions served besides the aliased ones: the newest ``latest`` of them
    latest: int = 1
    #: the model's experiment (docs/experiments.md), as its config.json holds it
    experiment: dict[str, Any] | None = None

    def served(self) -> list[int]:
        """Versions a replica serves: the newest ``latest`` and every aliased one."""
        newest = sorted(self.versions)[-self.latest:] if self.versions else []
        return sorted(set(newest) | {v for v in self.aliases.values() if v in self.versions})


@dataclass
class Snapshot:
    """The whole registry at one event id."""

    last_event: int
    models: dict[str, ModelState]


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InputError(f"model name {name[:80]!r} is not valid: letters, digits, '_', '.', '-' "
                         "(at most 128, starting with a letter or digit)")
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS_RE.fullmatch(alias):
        raise InputError(f"alias {alias[:80]!r} is not valid: a letter, then letters, digits, "
                         "'_', '.', '-' (at most 64; a number would read as a version)")
    return alias


def parse_version(text: str | int) -> int:
    s = str(text)
    if not _VERSION_RE.fullmatch(s):
        raise InputError(f"version {s[:40]!r} is not a version number")
    return int(s)


# --- reading a bundle to publish ---------------------------------------------------------------
def bundle_files(path: str | os.PathLike[str], *, sample: Any = None,
                 drift_bins: int = 10) -> tuple[str, dict[str, bytes]]:
    """Read, verify and return ``(fingerprint, {relative path: bytes})`` of what to publish.

    ``path`` is a bundle directory or a PMML document (read natively into a bundle). The bytes
    are read once and verified as they will be stored (hashes, schema version, verification
    rows) from a private copy, so a file changed after the check can never be published.

    ``sample`` (a DataFrame of inputs, columns named like the fields), when given, becomes the
    bundle's drift reference profile with ``drift_bins`` quantile bins
    (:func:`scorer.monitoring.profile.sample_profile`), replacing one the bundle had: the
    bundle is rewritten, so its fingerprint is a new one.

    Raises
    ------
    BundleError
        The bundle does not load or its verification rows do not reproduce.
    """
    from ..bundle import MANIFEST, read_manifest, write_bundle
    from ..model import Model, load

    src = Path(path)
    with tempfile.TemporaryDirectory(prefix="tablescore-publish-") as tmp:
        copy = Path(tmp) / "bundle"
        if src.is_file() and src.suffix.lower() in (".pmml", ".xml"):
            from ..pmml import read_pmml

            b = read_pmml(src)
            Model(b, verify=True)
            if sample is not None:
                _add_profile(b, sample, drift_bins)
            write_bundle(b, copy)
            files = _read_tree(copy)
        elif (src / MANIFEST).is_file() and sample is not None:
            from ..bundle import read_bundle

            b = read_bundle(src)
            Model(b, verify=True)
            _add_profile(b, sample, drift_bins)
            write_bundle(b, copy)
            files = _read_tree(copy)
        elif (src / MANIFEST).is_file():
            manifest = read_manifest(src)
            names = [MANIFEST, *sorted(manifest.get("tables") or {})]
            files = {rel: _bundle_file(src, rel) for rel in names}
            _write_tree(copy, files)
        else:
            raise InputError(f"'{src}' is neither a bundle directory (no manifest.json) nor a "
                             ".pmml document")
        try:
            model = load(copy, verify=True)
        except TablescoreError as exc:
            # (checked in the private copy: its messages name the user's bundle)
            text = str(exc).replace(str(copy), str(src))
            raise type(exc)(text) if type(exc).__init__ is Exception.__init__ else exc \
                from None
        if not model.fingerprint:
            raise BundleError(f"'{src}' has no fingerprint")
        return model.fingerprint, files


def _add_profile(bundle: Any, sample: Any, bins: int) -> None:
    from ..monitoring.profile import sample_profile

    bundle.drift_reference = sample_profile(bundle, sample, bins=bins).to_json()


def _bundle_file(src: Path, rel: str) -> bytes:
    """The bytes of file ``rel`` of the bundle directory ``src``: a plain relative path,
    through no symlink (a bundle from elsewhere must not make the publisher read, or later
    write, outside the bundle)."""
    from ..bundle import check_table_path

    check_table_path(rel)
    p = src
    for part in rel.split("/"):
        p = p / part
        if p.is_symlink():
            raise BundleError(f"bundle file '{rel}' goes through a symbolic link ({p}): "
                              "publish a bundle of plain files")
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise BundleFormatError(f"bundle '{src}': table '{rel}' is missing from the "
                                "bundle") from None


def _read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    from ..bundle import check_table_path

    for rel, data in files.items():
        check_table_path(rel)  # (paths read back from a registry too: never outside root)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def write_bundle_files(target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` as the bundle directory ``target``, atomically (aside, then rename)."""
    from ..fsutil import apply_umask

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_tree(tmp, files)
        apply_umask(tmp, directory=True)
        os.rename(tmp, target)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the store ----------------------------------------------------------------------------------
class SQLStore:
    """The registry over a SQL database; subclasses connect and name their dialect.

    Parameters
    ----------
    url : str
        The store's URL (``sqlite:///path``, ``postgresql://user@host:port/db``).
    """

    #: the placeholder of a query parameter
    param = "?"
    #: column types: auto-increment id, binary data
    id_type = "INTEGER PRIMARY KEY AUTOINCREMENT"
    blob_type = "BLOB"

    def __init__(self, url: str) -> None:
        self.url = url

    # -- backend hooks --------------------------------------------------------------------------
    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Any]:  # pragma: no cover
        """A cursor inside one transaction (``write``: serialised with other writers)."""
        raise NotImplementedError
        yield

    def _notify(self, cur: Any, event_id: int) -> None:
        """Tell listening replicas that ``event_id`` was committed (no-op where they poll)."""

    def wait(self, timeout: float) -> None:
        """Return when a new event may have been committed, or after ``timeout`` seconds."""
        time.sleep(timeout)

    def close(self) -> None:
        """Release connections."""

    # -- schema ---------------------------------------------------------------------------------
    def _schema(self) -> list[str]:
        blob, ident = self.blob_type, self.id_type
        return [
            f"CREATE TABLE IF NOT EXISTS ts_blobs (fingerprint TEXT NOT NULL, path TEXT NOT NULL,"
            f" data {blob} NOT NULL, PRIMARY KEY (fingerprint, path))",
            "CREATE TABLE IF NOT EXISTS ts_bundles (fingerprint TEXT PRIMARY KEY, "
            "bytes BIGINT NOT NULL, created_at DOUBLE PRECISION NOT NULL)",
            "CREATE TABLE IF NOT EXISTS ts_models (name TEXT PRIMARY KEY, "
            "next_version INTEGER NOT NULL, latest INTEGER NOT NULL DEFAULT 1, "
            "experiment TEXT)",
            "CREATE TABLE IF NOT EXISTS ts_versions (model TEXT NOT NULL, version INTEGER NOT "
            "NULL, fingerprint TEXT NOT NULL REFERENCES ts_bundles (fingerprint), "
            "published_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (model, version), "
            "UNIQUE (model, fingerprint))",
            "CREATE TABLE IF NOT EXISTS ts_aliases (model TEXT NOT NULL, alias TEXT NOT NULL, "
            "version INTEGER NOT NULL, PRIMARY KEY (model, alias))",
            f"CREATE TABLE IF NOT EXISTS ts_events (id {ident}, at DOUBLE PRECISION NOT NULL, "
            "kind TEXT NOT NULL, model TEXT NOT NULL, version INTEGER, alias TEXT)",
            "CREATE TABLE IF NOT EXISTS ts_replicas (replica TEXT PRIMARY KEY, host TEXT, "
            "pid INTEGER, started_at DOUBLE PRECISION, seen_at DOUBLE PRECISION, "
            "last_event BIGINT, serving TEXT)",
        ]

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.param) if self.param != "?" else sql

    def _serialize_events(self, cur: Any) -> None:
        """Make events commit in the order of their ids (a backend whose writers can commit
        out of order takes a lock here, held to the commit): replicas take the highest id
        as "everything up to here is applied". SQLite's writers are serialized already."""

    def _event(self, cur: Any, kind: str, model: str, version: int | None = None,
               alias: str | None = None) -> int:
        self._serialize_events(cur)
        cur.execute(self._q("INSERT INTO ts_events (at, kind, model, version, alias) "
                            "VALUES (?, ?, ?, ?, ?) RETURNING id"),
                    (time.time(), kind, model, version, alias))
        event_id = int(cur.fetchone()[0])
        self._notify(cur, event_id)
        return event_id

    # -- writing --------------------------------------------------------------------------------
    def publish(self, path: str | os.PathLike[str], model: str, *,
                alias: str | None = None) -> int:
        """Verify the bundle (or PMML document) at ``path`` and publish it as the next version
        of ``model``; return the version number.

        Idempotent: a fingerprint already published for ``model`` returns its version (and
        only moves ``alias``, when given). The bundle, the version, the alias and their events
        are committed in one transaction; replicas are told the event id.
        """
        check_model_name(model)
        if alias is not None:
            check_alias(alias)
        fingerprint, files = bundle_files(path)
        return self.publish_files(fingerprint, files, model, alias=alias)

    def publish_files(self, fingerprint: str, files: dict[str, bytes], model: str, *,
                      alias: str | None = None) -> int:
        """:meth:`publish` of bytes already verified by :func:`bundle_files`."""
        q = self._q
        with self.transaction(write=True) as cur:
            # the model row is the per-model lock, taken first: concurrent publishers of the
            # model queue on it, and each then sees what the one before committed (the same
            # bundle twice: one version; others: the next numbers, none lost, none reused)
            cur.execute(q("INSERT INTO ts_models (name, next_version) VALUES (?, 1) "
                          "ON CONFLICT (name) DO NOTHING"), (model,))
            self._lock_model(cur, model)
            cur.execute(q("SELECT version FROM ts_versions WHERE model = ? AND fingerprint = ?"),
                        (model, fingerprint))
            row = cur.fetchone()
            if row is not None:
                version = int(row[0])
            else:
                # (content-addressed: another model's publisher may store the same bundle
                # at the same moment; the bytes are the same.) The bundle's row first, then
                # held (the UPDATE locks it) until this commits: a delete of the last version
                # using this bundle, elsewhere, waits for it, then sees this version and
                # keeps the files; one that committed first is waited for by the INSERT
                cur.execute(q("INSERT INTO ts_bundles (fingerprint, bytes, created_at) "
                              "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                            (fingerprint, sum(len(d) for d in files.values()), time.time()))
                self._lock_bundle(cur, fingerprint)
                for rel, data in files.items():
                    cur.execute(q("INSERT INTO ts_blobs (fingerprint, path, data) "
                                  "VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                                (fingerprint, rel, data))
                cur.execute(q("UPDATE ts_models SET next_version = next_version + 1 "
                              "WHERE name = ? RETURNING next_version - 1"), (model,))
                version = int(cur.fetchone()[0])
                cur.execute(q("INSERT INTO ts_versions (model, version, fingerprint, "
                              "published_at) VALUES (?, ?, ?, ?)"),
                            (model, version, fingerprint, time.time()))
                self._event(cur, "publish", model, version)
            if alias is not None:
                self._set_alias(cur, model, alias, version)
        return version

    def set_alias(self, model: str, alias: str, version: int | str) -> int:
        """Point ``alias`` of ``model`` at ``version`` (a rollback is this); return the
        previous version it named (0 if none)."""
        check_alias(alias)
        v = parse_version(version)
        with self.transaction(write=True) as cur:
            return self._set_alias(cur, model, alias, v)

    def _set_alias(self, cur: Any, model: str, alias: str, version: int) -> int:
        q = self._q
        self._lock_model(cur, model)
        cur.execute(q("SELECT 1 FROM ts_versions WHERE model = ? AND version = ?"),
                    (model, version))
        if cur.fetchone() is None:
            raise ModelNotFoundError(f"model '{model}' has no version {version}")
        cur.execute(q("SELECT version FROM ts_aliases WHERE model = ? AND alias = ?"),
                    (model, alias))
        row = cur.fetchone()
        previous = int(row[0]) if row else 0
        if previous == version:
            return previous
        cur.execute(q("INSERT INTO ts_aliases (model, alias, version) VALUES (?, ?, ?) "
                      "ON CONFLICT (model, alias) DO UPDATE SET version = excluded.version"),
                    (model, alias, version))
        self._event(cur, "alias", model, version, alias)
        return previous

    def remove_alias(self, model: str, alias: str) -> None:
        with self.transaction(write=True) as cur:
            self._lock_model(cur, model)
            used = self._experiment_uses(cur, model, alias)
            if used is not None:
                raise RegistryError(f"alias '{alias}' of model '{model}' is the experiment's "
                                    f"{used}: change or end the experiment first")
            cur.execute(self._q("DELETE FROM ts_aliases WHERE model = ? AND alias = ? "
                                "RETURNING version"), (model, alias))
            if cur.fetchone() is None:
                raise ModelNotFoundError(f"model '{model}' has no alias '{alias}'")
            self._event(cur, "unalias", model, None, alias)

    def set_latest(self, model: str, latest: int) -> None:
        """Serve the newest ``latest`` versions of ``model`` (besides the aliased ones)."""
        if not isinstance(latest, int) or not 1 <= latest <= 1_000_000:
            raise InputError(f"latest must be an integer from 1 to 1000000, not {latest}")
        with self.transaction(write=True) as cur:
            cur.execute(self._q("UPDATE ts_models SET latest = ? WHERE name = ? RETURNING name"),
                        (latest, model))
            if cur.fetchone() is None:
                raise ModelNotFoundError(f"unknown model '{model}'")
            self._event(cur, "policy", model)

    def set_experiment(self, model: str, experiment: dict[str, Any] | None) -> None:
        """Start, change (``experiment``) or end (None) the model's experiment; replicas write
        it into the model's config.json. Checked as the server checks it, and every arm's
        version or alias must exist."""
        from ..experiments.config import parse_experiment

        exp = None
        if experiment is not None:
            try:
                exp = parse_experiment(experiment)
            except ValueError as exc:
                raise InputError(f"experiment: {exc}") from None
        q = self._q
        with self.transaction(write=True) as cur:
            self._lock_model(cur, model)
            cur.execute(q("SELECT 1 FROM ts_models WHERE name = ?"), (model,))
            if cur.fetchone() is None:
                raise ModelNotFoundError(f"unknown model '{model}'")
            named = [(f"experiment arm '{arm.name}'", arm.version)
                     for arm in (exp.arms if exp is not None else ())]
            if exp is not None and exp.shadow is not None:
                named.append(("experiment shadow", exp.shadow))
            for what, ref in named:
                if ref.isdigit():
                    cur.execute(q("SELECT 1 FROM ts_versions WHERE model = ? AND version = ?"),
                                (model, int(ref)))
                else:
                    cur.execute(q("SELECT 1 FROM ts_aliases WHERE model = ? AND alias = ?"),
                                (model, ref))
                if cur.fetchone() is None:
                    raise ModelNotFoundError(f"{what}: model '{model}' has no version or "
                                             f"alias '{ref}'")
            cur.execute(q("UPDATE ts_models SET experiment = ? WHERE name = ?"),
                        (None if experiment is None else json.dumps(experiment, sort_keys=True),
                         model))
            self._event(cur, "experiment", model)

    def _lock_model(self, cur: Any, model: str) -> None:
        """Hold the model's row until the transaction ends: the writers of one model's
        versions, aliases and experiment take their turns, each seeing what the one before
        committed (publishers take it too)."""
        cur.execute(self._q("UPDATE ts_models SET next_version = next_version WHERE name = ?"),
                    (model,))

    def _lock_bundle(self, cur: Any, fingerprint: str) -> None:
        """Hold the bundle's row until the transaction ends (publishers and deleters of one
        bundle take their turns)."""
        cur.execute(self._q("UPDATE ts_bundles SET bytes = bytes WHERE fingerprint = ?"),
                    (fingerprint,))

    def _experiment_uses(self, cur: Any, model: str, what: str) -> str | None:
        """The arm (or ``shadow``) of ``model``'s experiment that names version or alias
        ``what``, or None."""
        cur.execute(self._q("SELECT experiment FROM ts_models WHERE name = ?"), (model,))
        row = cur.fetchone()
        if row is None or not row[0]:
            return None
        exp = json.loads(row[0])
        for arm in exp.get("arms") or ():
            if str(arm.get("version")) == what:
                return f"arm '{arm.get('name')}'"
        return "shadow" if str(exp.get("shadow")) == what else None

    def delete(self, model: str, version: int | str) -> None:
        """Delete one version; refused while an alias or the model's experiment names it.
        Its bundle goes when no version of any model uses it."""
        v = parse_version(version)
        q = self._q
        with self.transaction(write=True) as cur:
            self._lock_model(cur, model)
            cur.execute(q("SELECT alias FROM ts_aliases WHERE model = ? AND version = ?"),
                        (model, v))
            aliases = sorted(r[0] for r in cur.fetchall())
            if aliases:
                raise RegistryError(f"model '{model}' version {v} is named by alias "
                                    f"{', '.join(aliases)}: move the alias first")
            used = self._experiment_uses(cur, model, str(v))
            if used is not None:
                raise RegistryError(f"model '{model}' version {v} is the experiment's {used}: "
                                    "change or end the experiment first")
            cur.execute(q("DELETE FROM ts_versions WHERE model = ? AND version = ? "
                          "RETURNING fingerprint"), (model, v))
            row = cur.fetchone()
            if row is None:
                raise ModelNotFoundError(f"model '{model}' has no version {v}")
            fp = row[0]
            # (after a publisher of this bundle that holds it commits: its version counts)
            self._lock_bundle(cur, fp)
            cur.execute(q("SELECT 1 FROM ts_versions WHERE fingerprint = ?"), (fp,))
            if cur.fetchone() is None:
                cur.execute(q("DELETE FROM ts_blobs WHERE fingerprint = ?"), (fp,))
                cur.execute(q("DELETE FROM ts_bundles WHERE fingerprint = ?"), (fp,))
            self._event(cur, "delete", model, v)

    def heartbeat(self, replica: str, serving: dict[str, Any], last_event: int, *,
                  started_at: float) -> None:
        """Record what ``replica`` serves now (``serving``: model -> versions and reasons)."""
        with self.transaction() as cur:
            cur.execute(self._q(
                "INSERT INTO ts_replicas (replica, host, pid, started_at, seen_at, last_event, "
                "serving) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (replica) DO UPDATE SET "
                "seen_at = excluded.seen_at, last_event = excluded.last_event, "
                "serving = excluded.serving"),
                (replica, socket.gethostname(), os.getpid(), started_at, time.time(),
                 last_event, json.dumps(serving, sort_keys=True)))

    # -- reading --------------------------------------------------------------------------------
    def last_event(self) -> int:
        with self.transaction() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM ts_events")
            return int(cur.fetchone()[0])

    def events(self, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events with ``id > after``, oldest first."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT id, kind, model, version, alias, at FROM ts_events "
                                "WHERE id > ? ORDER BY id LIMIT ?"), (after, limit))
            return [Event(int(i), k, m, v, a, float(t)) for i, k, m, v, a, t in cur.fetchall()]

    def snapshot(self) -> Snapshot:
        """Every model's versions, aliases and policy, and the last event id they reflect
        (read in one transaction, so the two agree)."""
        with self.transaction() as cur:
            cur.execute("SELECT COALESCE(MAX(id), 0) FROM ts_events")
            last = int(cur.fetchone()[0])
            models: dict[str, ModelState] = {}
            cur.execute("SELECT name, latest, experiment FROM ts_models")
            for name, latest, exp in cur.fetchall():
                models[name] = ModelState(name, latest=int(latest),
                                          experiment=json.loads(exp) if exp else None)
            cur.execute("SELECT model, version, fingerprint FROM ts_versions")
            for m, v, fp in cur.fetchall():
                models.setdefault(m, ModelState(m)).versions[int(v)] = fp
            cur.execute("SELECT model, alias, version FROM ts_aliases")
            for m, a, v in cur.fetchall():
                models.setdefault(m, ModelState(m)).aliases[a] = int(v)
        return Snapshot(last, {k: v for k, v in models.items() if v.versions})

    def fetch(self, fingerprint: str) -> dict[str, bytes]:
        """The files of the bundle ``fingerprint``."""
        with self.transaction() as cur:
            cur.execute(self._q("SELECT path, data FROM ts_blobs WHERE fingerprint = ?"),
                        (fingerprint,))
            files = {p: bytes(d) for p, d in cur.fetchall()}
        if not files:
            raise ModelNotFoundError(f"no bundle with fingerprint {fingerprint[:16]} in the "
                                     "registry")
        return files

    def versions(self, model: str) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute(self._q("SELECT v.version, v.fingerprint, v.published_at, b.bytes "
                                "FROM ts_versions v JOIN ts_bundles b USING (fingerprint) "
                                "WHERE v.model = ? ORDER BY v.version"), (model,))
            rows = cur.fetchall()
            cur.execute(self._q("SELECT alias, version FROM ts_aliases WHERE model = ?"),
                        (model,))
            aliases: dict[int, list[str]] = {}
            for a, v in cur.fetchall():
                aliases.setdefault(int(v), []).append(a)
        if not rows:
            raise ModelNotFoundError(f"unknown model '{model}'")
        return [{"version": int(v), "fingerprint": fp, "published_at": float(t),
                 "bytes": int(n), "aliases": sorted(aliases.get(int(v), []))}
                for v, fp, t, n in rows]

    def replicas(self) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT replica, host, pid, started_at, seen_at, last_event, serving "
                        "FROM ts_replicas ORDER BY replica")
            rows = cur.fetchall()
        now = time.time()
        return [{"replica": r, "host": h, "pid": p, "started_at": s, "seen_at": t,
                 "seen_seconds_ago": round(now - t, 3), "last_event": e,
                 "serving": json.loads(sv or "{}")} for r, h, p, s, t, e, sv in rows]
