"""The op registry: op name -> how to bind a :class:`~scorer.ir.Step` to a kernel.

Each model family lives in one module of ``scorer.kernels`` and registers its ops with
:func:`register_op`. Binding happens once per model load: tables are turned into the arrays
the kernel takes, column names into workspace indices. Kernels are generic over those arrays,
so they are compiled once per process, never per model.

Kernel calling convention (Numba and NumPy reference alike)::

    status = kernel(ws, *args)   # ws: float64[n_rows, n_columns], C order

The kernel writes its output columns of ``ws`` in place and returns -1, or the index of the
first row it could not score (e.g. an unknown category under ``handle_unknown='error'``);
:attr:`Bound.error` turns that row into an exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BundleFormatError, IncompatibleBundleError
from .ir import Step

log = logging.getLogger("tablescore.scorer")


@dataclass
class BindContext:
    """What a binder may know about the workspace while binding one step."""

    #: workspace column name -> index
    index: dict[str, int]
    #: workspace column name -> vocabulary, for columns holding string category codes
    vocab: dict[str, list[str]] = field(default_factory=dict)

    def cols(self, names: list[str], *, step: Step) -> np.ndarray:
        try:
            return np.array([self.index[n] for n in names], dtype=np.int64)
        except KeyError as exc:
            raise BundleFormatError(
                f"step '{step.name}' reads column {exc.args[0]!r}, which no earlier step or "
                "input field provides"
            ) from None


@dataclass
class Bound:
    """A step bound to its kernel, ready to run on a workspace."""

    kernel: Callable[..., int]
    reference: Callable[..., int]
    args: tuple[Any, ...]
    #: optional parallel kernel, used for at least ``parallel_min_rows`` rows
    parallel: Callable[..., int] | None = None
    parallel_min_rows: int = 1 << 30
    #: optional kernel for a one-row workspace, ``single(ws, *single_args)``, with the same
    #: results as ``kernel`` (e.g. fewer arguments, or a loop only one row can take)
    single: Callable[..., int] | None = None
    single_args: tuple[Any, ...] = ()
    #: a link step: ``single_args`` are :func:`scorer.kernels.linear.link_row_kernel`'s
    #: (its arguments packed in one array), so the step before it can apply it
    link: bool = False
    #: optional one-row kernel that runs ``single`` and then a following link step in one
    #: call: ``single_then_link(ws, *single_args, *link_step.single_args)``
    single_then_link: Callable[..., int] | None = None
    #: row index -> exception, for a non-negative kernel status
    error: Callable[[np.ndarray, int], Exception] | None = None
    #: output column -> vocabulary, for steps that output category codes
    out_vocab: dict[str, list[str]] = field(default_factory=dict)
    #: step name, for error messages
    name: str = ""
    #: optional arguments of ``kernel`` (and ``parallel``) in the step's own dtypes, with
    #: the same results as ``args``: ``args`` are then a variant that many models share
    #: (e.g. float64 for a float32 tree ensemble), which verification compiles at load,
    #: and these are faster; the model switches to them once they are compiled
    #: (:func:`compile_later`), and the parallel kernel only ever takes these
    specialised: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.parallel is None:
            self.parallel_min_rows = 1 << 62


Binder = Callable[[Step, BindContext], Bound]


@dataclass(frozen=True)
class OpSpec:
    name: str
    versions: frozenset[int]
    bind: Binder
    family: str


_OPS: dict[str, OpSpec] = {}


def register_op(name: str, *, versions: tuple[int, ...] = (1,), family: str) -> Callable[
        [Binder], Binder]:
    """Class/function decorator registering ``bind`` for op ``name``."""

    def deco(bind: Binder) -> Binder:
        if name in _OPS:
            raise RuntimeError(f"op '{name}' registered twice")
        _OPS[name] = OpSpec(name=name, versions=frozenset(versions), bind=_refusing(bind),
                            family=family)
        return bind

    return deco


def _refusing(bind: Binder) -> Binder:
    """``bind``, with arithmetic errors on table values raised as ValueError.

    The loader turns a binder's KeyError / ValueError / IndexError / TypeError into a
    :class:`BundleFormatError`; ``int(float("inf"))`` in a binder raises OverflowError,
    which would escape as an internal error instead of a refusal of the bundle.
    """

    def checked(step: Step, ctx: BindContext) -> Bound:
        try:
            return bind(step, ctx)
        except ArithmeticError as exc:
            raise ValueError(f"{step.op} step '{step.name}': {exc}") from exc

    return checked


def _ensure_loaded() -> None:
    # Importing the kernel package registers every family.
    from . import kernels  # noqa: F401


def get_op(name: str, version: int) -> OpSpec:
    """Return the spec for ``name`` at ``version`` or raise :class:`IncompatibleBundleError`."""
    _ensure_loaded()
    spec = _OPS.get(name)
    if spec is None:
        raise IncompatibleBundleError(
            f"op '{name}' unknown to this scorer (known ops: {', '.join(sorted(_OPS))})"
        )
    if version not in spec.versions:
        known = ", ".join(str(v) for v in sorted(spec.versions))
        raise IncompatibleBundleError(
            f"op '{name}' version {version} unknown (this scorer reads version {known})"
        )
    return spec


def known_ops() -> dict[str, OpSpec]:
    _ensure_loaded()
    return dict(_OPS)


def entry_point(kernel: Callable[..., int], args: tuple[Any, ...]) -> Callable[..., int] | None:
    """The compiled entry point of the Numba dispatcher ``kernel`` for exactly the types of
    ``args``, or None (not a dispatcher, or not compiled for them yet).

    Calling it skips the dispatcher's type resolution of every argument (about 45 ns each:
    a fifth of a small kernel's single-row cost). Only for arguments whose types never
    change: the caller must pass values of the same types, array layouts included.
    """
    try:
        import numba

        sig = tuple(numba.typeof(a) for a in args)
        cres = kernel.overloads.get(sig)  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return None
    return None if cres is None else cres.entry_point


# --- compilation -----------------------------------------------------------------------------
# Numba compiles a kernel for each tuple of argument types on its first call (about a second
# for a small kernel, 2-5 s for a tree ensemble's on this 2-core machine). A model's load
# compiles what verification needs (its batch kernels); the faster paths that give the same
# results (one-row kernels, parallel kernels) are compiled on a background thread once the
# foreground has stopped compiling, and used from then on; until then the batch kernels
# serve those requests. A kernel already in Numba's on-disk cache (NUMBA_CACHE_DIR, filled by
# ``tablescore warmup`` or an earlier start) is loaded at once instead.

#: "background" (default) or "eager": compile the faster paths where they are first needed,
#: in the caller's thread (the behaviour before #18; ``tablescore warmup`` uses it)
COMPILE_MODE = os.environ.get("TABLESCORE_COMPILE", "background")
#: seconds without a model load or a foreground compile before the background thread starts
#: a compile: a background compile holds Numba's compiler lock for seconds, and would delay
#: the compiles of the models still loading (a server's readiness)
_QUIET_S = 1.0


def signature(args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """Numba types of ``args`` (a kernel's specialisation key), or None if one has none."""
    try:
        import numba

        return tuple(numba.typeof(a) for a in args)
    except (TypeError, ValueError):
        return None


def compiled(kernel: Callable[..., int], args: tuple[Any, ...]) -> bool:
    """Whether calling ``kernel(*args)`` compiles nothing: it is not a Numba dispatcher, or
    it has a specialisation for these argument types (compiled, or loaded from the on-disk
    cache by :func:`load_cached`)."""
    overloads = getattr(kernel, "overloads", None)
    if overloads is None:
        return True
    sig = signature(args)
    return sig is not None and sig in overloads


def load_cached(kernel: Callable[..., int], args: tuple[Any, ...]) -> bool:
    """Load ``kernel``'s specialisation for ``args`` from Numba's on-disk cache without
    compiling; True if it is there now (or was already loaded).

    What ``Dispatcher.compile`` does before compiling, without the compile: Numba has no
    public "load only" call. Any change of those internals makes this return False, and the
    kernel is then compiled as usual.
    """
    if compiled(kernel, args):
        return True
    sig = signature(args)
    try:
        from numba.core.compiler_lock import global_compiler_lock

        with global_compiler_lock:
            if sig in kernel.overloads:  # type: ignore[attr-defined]
                return True
            cres = kernel._cache.load_overload(sig, kernel.targetctx)  # type: ignore[attr-defined]
            if cres is None:
                return False
            kernel._cache_hits[sig] += 1  # type: ignore[attr-defined]
            if not cres.objectmode:
                kernel.targetctx.insert_user_function(  # type: ignore[attr-defined]
                    cres.entry_point, cres.fndesc, [cres.library])
            kernel.add_overload(cres)  # type: ignore[attr-defined]
            return True
    except Exception:  # (internals changed: compile as usual)
        return False


def compile_now(kernel: Callable[..., int], args: tuple[Any, ...]) -> None:
    """Compile (or load from the cache) ``kernel``'s specialisation for ``args``."""
    sig = signature(args)
    if sig is not None and hasattr(kernel, "compile"):
        kernel.compile(sig)  # type: ignore[attr-defined]


def compile_later(kernel: Callable[..., int], args: tuple[Any, ...],
                  then: Callable[[], None], *, first: bool = False) -> None:
    """Make ``kernel``'s specialisation for ``args`` available, then call ``then``.

    At once when it is compiled or in the on-disk cache, or under ``COMPILE_MODE`` "eager";
    otherwise on the background compile thread, after those queued before it (``first``:
    before them). ``then`` is not called if the compile fails (the caller keeps using its
    fallback)."""
    if COMPILE_MODE == "eager" or load_cached(kernel, args):
        compile_now(kernel, args)
        then()
        return
    _BACKGROUND.submit(kernel, args, then, first=first)


@contextlib.contextmanager
def foreground() -> Iterator[None]:
    """Hold background compiles back while the block runs (a model's load) and for
    :data:`_QUIET_S` after it."""
    _BACKGROUND.busy(+1)
    try:
        yield
    finally:
        _BACKGROUND.busy(-1)


def wait_background(timeout: float | None = None) -> bool:
    """Wait until the background compile thread has nothing left to do; True if so."""
    return _BACKGROUND.wait(timeout)


class _Background:
    """One daemon thread compiling queued specialisations, each once, lowest priority: it
    waits for :data:`_QUIET_S` without a compile in any other thread before each one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[tuple[Any, tuple[Any, ...], tuple[Any, ...]]] = []
        self._waiting: dict[tuple[int, tuple[Any, ...]], list[Callable[[], None]]] = {}
        self._busy = False
        self._thread: threading.Thread | None = None
        self._last_foreground = time.monotonic()
        self._loads = 0  # foreground blocks running (model loads)
        self._listening = False

    def busy(self, delta: int) -> None:
        with self._cond:
            self._loads += delta
            self._last_foreground = time.monotonic()

    def submit(self, kernel: Any, args: tuple[Any, ...], then: Callable[[], None], *,
               first: bool = False) -> None:
        sig = signature(args)
        if sig is None:
            return
        key = (id(kernel), sig)
        with self._cond:
            self._listen()
            if key in self._waiting:
                self._waiting[key].append(then)
                return
            self._waiting[key] = [then]
            self._queue.insert(0 if first else len(self._queue), (kernel, args, key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="tablescore-compile")
                self._thread.start()
            self._cond.notify_all()

    def _listen(self) -> None:
        """Note the time of every compile event of another thread (Numba's event API)."""
        if self._listening:
            return
        from numba.core import event

        background = self

        class Listener(event.Listener):
            def on_start(self, ev: Any) -> None:
                if threading.current_thread() is not background._thread:
                    background._last_foreground = time.monotonic()

            def on_end(self, ev: Any) -> None:
                self.on_start(ev)

        event.register("numba:compile", Listener())
        self._listening = True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait()
                self._busy = True
            while self._loads or (left := self._last_foreground + _QUIET_S
                                  - time.monotonic()) > 0:
                time.sleep(_QUIET_S / 4 if self._loads else left)
            with self._cond:
                kernel, args, key = self._queue.pop(0)
            try:
                compile_now(kernel, args)
            except Exception:  # (the callers keep their fallback kernels)
                log.warning("background compile of %s failed", getattr(kernel, "__name__",
                                                                         kernel), exc_info=True)
                with self._cond:
                    self._waiting.pop(key, None)
                continue
            with self._cond:
                callbacks = self._waiting.pop(key, [])
            for then in callbacks:
                then()

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)


_BACKGROUND = _Background()
