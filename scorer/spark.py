"""Scoring a Spark DataFrame with a bundle: ``score_dataframe(df, bundle)``.

The DataFrame's Arrow record batches go straight to the kernels through ``mapInArrow`` (no
pandas, no per-row Python): each batch is converted with :func:`scorer.batch.arrow_inputs`,
scored with :meth:`scorer.Model.score_arrays` and returned with the model's output columns
appended. The result equals in-process scoring bit for bit: the same conversion and the same
kernels, row by row.

The bundle reaches each executor once: its bytes are broadcast (``broadcast=True``, works on
any cluster) or, with ``broadcast=False``, the path is read where it lies (shared storage
every executor mounts). Each Python worker process loads it once and keeps it, keyed by
fingerprint (Spark reuses Python workers across tasks: ``spark.python.worker.reuse``, on by
default), and warms it there: every kernel a batch can take (one row, a batch, the parallel
and the chunked multi-threaded paths) is compiled, or loaded from Numba's on-disk cache, in
the worker's first task, so no later task compiles anything. ``cache_dir=`` sets the
workers' ``NUMBA_CACHE_DIR``: with a warm cache (an earlier worker on that machine, or
``tablescore warmup --cache-dir``) even the first task compiles nothing. See docs/batch.md.

pyspark is imported only inside these functions (extra ``spark``): the scorer installs and
imports without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, IntegrityError, TablescoreError

#: models loaded in this (executor) process, by fingerprint
_MODELS: dict[str, Any] = {}
#: times this process loaded each bundle, by fingerprint (a test checks: once per worker)
LOADS: dict[str, int] = {}
_LOCK = threading.Lock()
#: one entry per Numba compilation in this (executor) process since its first task (a
#: listener on Numba's "numba:compile" event, which a load from the on-disk cache never fires)
_COMPILED: list[int] = []
#: per task this process ran: the Numba compilations while it ran (a test checks: none after
#: a worker's first task, none at all with a warm cache)
TASK_COMPILES: list[int] = []
_COMPILED_LISTENING: list[bool] = []


def bundle_bytes(path: str | os.PathLike[str]) -> bytes:
    """A bundle directory (or PMML document) as one reproducible tar archive: sorted entries,
    no owners or times, so equal bundles give equal bytes."""
    p = Path(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        members = ([p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()))
        for f in members:
            data = f.read_bytes()
            info = tarfile.TarInfo(f.name if p.is_file() else f.relative_to(p).as_posix())
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _private_root() -> Path | None:
    """``$TMPDIR/tablescore-spark-<uid>``, created mode 0700; None when it is not a
    directory of this user's that no one else can write or read (``/tmp`` is shared: another
    user could have made it first, and put another bundle under a fingerprint's name)."""
    root = Path(tempfile.gettempdir()) / f"tablescore-spark-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    try:
        st = os.lstat(root)
    except OSError:
        return None
    import stat

    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return root


def _extract(data: bytes, into: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")


def _unpack(key: str, data: bytes, pmml_name: str | None, *, shared: bool = True) -> Path:
    """Extract the archive once per machine (``$TMPDIR/tablescore-spark-<uid>/<key>``,
    written aside and renamed, so concurrent workers never see half a bundle); into a
    private directory of this process's own when that shared one is not safe to use (see
    :func:`_private_root`) or ``shared`` is False. The caller checks the fingerprint of what
    it loads from there."""
    root = _private_root() if shared else None
    if root is None:
        target = Path(tempfile.mkdtemp(prefix="tablescore-spark-"))
        _extract(data, target)
        return target / pmml_name if pmml_name else target
    target = root / key
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=root))
        _extract(data, tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another worker renamed its copy first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return target / pmml_name if pmml_name else target


def executor_model(key: str, source: Any, pmml_name: str | None = None) -> Any:
    """The model ``key`` (a fingerprint) in this process, loaded and warmed on first use: from
    a broadcast variable of :func:`bundle_bytes` or from a path. Once per process."""
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            from . import ops
            from .batch import warm_arrow
            from .model import load

            local = isinstance(source, str | os.PathLike)
            path = Path(source) if local else _unpack(key, source.value, pmml_name)
            # the one-row and parallel kernels compiled (or loaded from the cache) in this
            # thread, at load: the default, a background thread, could compile them during a
            # later task (a worker process runs nothing but tasks)
            ops.COMPILE_MODE = "eager"
            # verified on the driver already; a worker keeps only what the kernels need. Its
            # hashes and fingerprint are checked by load: the fingerprint must be the one the
            # driver verified (a file changed since, or another bundle left in the shared
            # extraction directory under this fingerprint's name, is not that bundle)
            model = load(path, verify=False, keep_tables=False)
            if key != "unfingerprinted" and model.fingerprint != key:
                if local:
                    raise IntegrityError(
                        f"bundle '{path}' changed after the driver verified it (fingerprint "
                        f"{(model.fingerprint or '')[:12]}, expected {key[:12]})")
                path = _unpack(key, source.value, pmml_name, shared=False)
                model = load(path, verify=False, keep_tables=False)
                if model.fingerprint != key:
                    raise IntegrityError(f"the broadcast bundle does not have the driver's "
                                         f"fingerprint {key[:12]}")
            warm_arrow(model)
            _MODELS[key] = model
            LOADS[key] = LOADS.get(key, 0) + 1
    return model


def _shown_row(batch: Any, i: int, limit: int = 300) -> str:
    """Row ``i`` of an Arrow batch as ``{column: value, ...}`` (at most ``limit``
    characters): a worker cannot tell a row's place in the DataFrame, only what it holds."""
    text = repr(batch.slice(i, 1).to_pylist()[0])
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _count_compiles() -> None:
    """Count this process's Numba compilations in :data:`_COMPILED` (from the first call)."""
    if _COMPILED_LISTENING:
        return
    from numba.core import event

    class Counter(event.Listener):
        def on_start(self, ev: Any) -> None:
            _COMPILED.append(1)  # (list.append: atomic, compiles may run on other threads)

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", Counter())
    _COMPILED_LISTENING.append(True)


@contextlib.contextmanager
def worker_env(spark_context: Any, cache_dir: str | os.PathLike[str] | None) -> Iterator[None]:
    """Python functions created inside this block run in workers whose ``NUMBA_CACHE_DIR``
    is ``cache_dir`` (None: the executors' own setting).

    Spark starts a worker process with the environment of the function it runs
    (``SparkContext.environment``, taken when the function is created) and keeps one pool of
    workers per environment: these workers have the variable from their start, before Numba
    is imported, and are never those of another cache directory.
    """
    if cache_dir is None:
        yield
        return
    env = spark_context.environment
    had = env.get("NUMBA_CACHE_DIR")
    env["NUMBA_CACHE_DIR"] = os.fspath(cache_dir)
    try:
        yield
    finally:
        if had is None:
            env.pop("NUMBA_CACHE_DIR", None)
        else:
            env["NUMBA_CACHE_DIR"] = had


def _output_types(model: Any) -> list[tuple[str, Any]]:
    """(name, Arrow type) of each output: what scoring zero rows returns."""
    import pyarrow as pa

    fields = model.bundle.inputs
    if all(f.type in ("double", "integer", "boolean") for f in fields):
        empty: Any = np.empty((0, len(fields)))
    else:
        empty = {f.name: np.empty(0, dtype=object if f.type == "string" else np.float64)
                 for f in fields}
    arrays = model.score_arrays(empty)
    out = []
    for name in model.output_names:
        t = pa.array(arrays[name]).type
        out.append((name, pa.string() if pa.types.is_null(t) else t))
    return out


def score_dataframe(df: Any, bundle: str | os.PathLike[str], *, broadcast: bool = True,
                    max_records_per_batch: int | None = None,
                    cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """``df`` with the model's output columns appended, scored on the executors.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        Holds a column per input field of the model (more are carried through).
    bundle : path
        A bundle directory or PMML document, readable by the driver.
    broadcast : bool
        Ship the bundle's bytes to the executors (default); False: every executor reads
        ``bundle`` itself (a path on shared storage, same path everywhere).
    max_records_per_batch : int, optional
        Rows per Arrow batch handed to the model (Spark's
        ``spark.sql.execution.arrow.maxRecordsPerBatch``, 10000 by default, otherwise).
    cache_dir : path, optional
        ``NUMBA_CACHE_DIR`` of the Python workers that run the tasks (a path on the
        executors): a local directory (the first worker on each machine compiles the kernels
        into it, every later worker, job and application loads them) or a shared one
        warmed by ``tablescore warmup --cache-dir`` (same tablescore install path and CPU).
        These workers are processes of their own (:func:`worker_env`). Default: the
        executors' setting (``spark.executorEnv.NUMBA_CACHE_DIR``, else Numba's default
        directory beside the installed sources).

    Returns
    -------
    pyspark.sql.DataFrame
        ``df``'s columns, then one column per output (``probability(<class>)``...,
        ``label`` / ``value``), rows in ``df``'s order within each partition.

    Raises
    ------
    InputError
        ``df`` lacks an input field, or an output name is already one of its columns.
        A row the model refuses fails the Spark task with the model's message.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_type

    from .model import load

    model = load(bundle)  # verified here, once
    names = list(df.columns)
    missing = [f.name for f in model.bundle.inputs if f.name not in names]
    if missing:
        raise InputError(f"DataFrame lacks input field{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(repr, missing))} of model '{model.name}'")
    clash = [n for n in model.output_names if n in names]
    if clash:
        raise InputError(f"DataFrame already has output column{'s' if len(clash) > 1 else ''} "
                         f"{', '.join(map(repr, clash))}")
    outputs = _output_types(model)
    from pyspark.sql.types import StructField, StructType

    schema = StructType([*df.schema.fields, *(StructField(n, from_arrow_type(t), True)
                                              for n, t in outputs)])
    key = model.fingerprint or "unfingerprinted"
    p = Path(bundle)
    pmml_name = p.name if p.is_file() else None
    if broadcast:
        source: Any = df.sparkSession.sparkContext.broadcast(bundle_bytes(p))
    else:
        source = str(p.resolve())
    out_types = [t for _, t in outputs]
    out_names = [n for n, _ in outputs]

    def score_batches(batches: Iterator[Any]) -> Iterator[Any]:
        from scorer import spark as here
        from scorer.batch import arrow_inputs

        here._count_compiles()
        before = len(here._COMPILED)
        try:
            m = here.executor_model(key, source, pmml_name)
            fields = m.bundle.inputs
            for b in batches:
                inputs, bad = arrow_inputs(b, fields)
                if bad:
                    i = min(bad)
                    raise InputError(f"{bad[i]}, in the row {_shown_row(b, i)}")
                arrays = m.score_arrays(inputs)
                cols = [*b.columns, *(pa.array(arrays[n]).cast(t) for n, t in
                                      zip(out_names, out_types, strict=True))]
                yield pa.RecordBatch.from_arrays(cols, names=[*b.schema.names, *out_names])
        finally:
            here.TASK_COMPILES.append(len(here._COMPILED) - before)

    if max_records_per_batch is not None:
        df.sparkSession.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch",
                                 str(int(max_records_per_batch)))
    with worker_env(df.sparkSession.sparkContext, cache_dir):  # (the function is made here)
        return df.mapInArrow(score_batches, schema)


def registry_bundle(store_url: str, model: str, version: str | int = "",
                    dest: str | os.PathLike[str] = ".") -> Path:
    """Materialize a registry version as a bundle directory ``dest/<fingerprint>`` (for
    Spark: on the driver, then :func:`score_dataframe` broadcasts it; or on shared storage).

    Parameters
    ----------
    store_url : str
        ``sqlite:///PATH`` or ``postgresql://...``, as ``tablescore registry`` takes.
    model : str
        The model's name.
    version : str or int
        A version number or an alias; default the newest version.
    dest : path
        Where to write; an existing ``dest/<fingerprint>`` is reused (same bytes).

    Returns
    -------
    Path
        The bundle directory.
    """
    from .errors import ModelNotFoundError
    from .registry import open_store
    from .registry.store import write_bundle_files

    store = open_store(store_url)
    try:
        state = store.snapshot().models.get(model)
        if state is None:
            raise ModelNotFoundError(f"unknown model '{model}' in the registry")
        text = str(version)
        if text == "":
            number = max(state.versions)
        elif text.isdigit():
            number = int(text)
        elif text in state.aliases:
            number = state.aliases[text]
        else:
            raise ModelNotFoundError(f"model '{model}' has no version or alias '{text}'")
        fingerprint = state.versions.get(number)
        if fingerprint is None:
            raise ModelNotFoundError(f"model '{model}' has no version {number}")
        target = Path(dest) / fingerprint
        if not target.exists():
            write_bundle_files(target, store.fetch(fingerprint))
        else:  # reused only when it is that bundle (hashes and fingerprint checked)
            from .bundle import read_bundle

            try:
                found = read_bundle(target).fingerprint
            except TablescoreError as exc:
                found = f"unreadable: {exc}"
            if found != fingerprint:
                raise IntegrityError(
                    f"'{target}' is not version {number} of model '{model}' (fingerprint "
                    f"{fingerprint[:12]}; found {found[:80]}): remove it or choose another "
                    "dest")
        return target
    finally:
        store.close()
