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

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import BundleFormatError, IncompatibleBundleError
from .ir import Step


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
