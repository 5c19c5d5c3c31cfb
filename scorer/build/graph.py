"""The builder every importer uses to emit bundle steps.

A :class:`Graph` tracks the workspace columns created so far, which input fields can carry a
missing or infinite value into each column (so the input schema can refuse what the original
model would refuse), and the vocabulary of string category-code columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ExportError
from ..ir import Bundle, Field, Output, Step, Table


class Graph:
    """Accumulates fields, steps and outputs for one model.

    Parameters
    ----------
    fields : list of Field
        Input schema, in order. String fields start with an empty vocabulary; encoders add the
        categories they know with :meth:`add_categories`.
    """

    def __init__(self, fields: list[Field]) -> None:
        self.fields = {f.name: f for f in fields}
        self.order = [f.name for f in fields]
        self.steps: list[Step] = []
        self.outputs: list[Output] = []
        self.families: set[str] = set()
        self.task = "transform"
        self._used: set[str] = set(self.order)
        self._step_names: set[str] = set()
        # name -> next suffix to try for it (see new_columns)
        self._next_col: dict[str, int] = {}
        self._next_step: dict[str, int] = {}
        # column -> input fields whose NaN / inf may reach it
        self.nan_src: dict[str, frozenset[str]] = {n: frozenset([n]) for n in self.order}
        self.inf_src: dict[str, frozenset[str]] = {
            f.name: frozenset([f.name]) if f.type in ("double", "integer") else frozenset()
            for f in fields}
        # column -> string fields whose *unseen* categories become NaN in it (e.g. an
        # OrdinalEncoder with unknown_value=NaN): a consumer refusing NaN refuses those too
        self.unknown_src: dict[str, frozenset[str]] = {}
        # column -> string field whose category codes it holds
        self.code_origin: dict[str, str] = {
            f.name: f.name for f in fields if f.type == "string"}
        for f in fields:
            if f.type == "string" and f.categories is None:
                f.categories = []

    # --- names --------------------------------------------------------------------------------
    def new_columns(self, base: str, n: int | None = None, *,
                    names: Iterable[str] | None = None) -> list[str]:
        """Fresh, unique workspace column names: ``base.0 ..`` or ``base.<name>``.

        A name already taken gets the first free suffix ``~2``, ``~3``, ...; the next suffix
        to try is remembered per name, so that the thousandth ``seg.value`` costs one probe,
        not a thousand (a PMML MiningModel of n segments took O(n^2) probes).
        """
        raw = [f"{base}.{s}" for s in names] if names is not None else [
            f"{base}.{i}" for i in range(n or 0)]
        return [_fresh(r, self._used, self._next_col, "~") for r in raw]

    def step_name(self, base: str) -> str:
        """A step name not used yet: ``base``, else ``base2``, ``base3``, ... (first free)."""
        return _fresh(base, self._step_names, self._next_step, "")

    # --- steps --------------------------------------------------------------------------------
    def add_step(self, op: str, *, name: str, inputs: list[str], outputs: list[str],
                 family: str, params: dict[str, Any] | None = None,
                 tables: dict[str, Table] | None = None, version: int = 1,
                 elementwise: bool = False, nan_out: str = "propagate") -> Step:
        """Append a step.

        Parameters
        ----------
        elementwise : bool
            Output ``j`` depends only on input ``j`` (so NaN provenance stays per column).
        nan_out : {"propagate", "none"}
            ``"none"`` when the op never outputs NaN (imputers, encoders).
        """
        for c in inputs:
            if c not in self.nan_src:
                raise ExportError(f"internal: step '{name}' reads undefined column '{c}'")
        step = Step(op=op, op_version=version, name=self.step_name(name), inputs=list(inputs),
                    outputs=list(outputs), params=params or {}, tables=tables or {})
        self.steps.append(step)
        self.families.add(family)
        all_nan = frozenset().union(*(self.nan_src[c] for c in inputs)) if inputs else frozenset()
        all_inf = frozenset().union(*(self.inf_src[c] for c in inputs)) if inputs else frozenset()
        all_unk = frozenset().union(*(self.unknown_src.get(c, frozenset()) for c in inputs))
        for j, out in enumerate(outputs):
            if elementwise:
                keep = nan_out == "propagate"
                self.nan_src[out] = self.nan_src[inputs[j]] if keep else frozenset()
                self.inf_src[out] = self.inf_src[inputs[j]]
                if keep and inputs[j] in self.unknown_src:
                    self.unknown_src[out] = self.unknown_src[inputs[j]]
            else:
                self.nan_src[out] = all_nan if nan_out == "propagate" else frozenset()
                self.inf_src[out] = all_inf
                if nan_out == "propagate" and all_unk:
                    self.unknown_src[out] = all_unk
        return step

    def require(self, columns: Iterable[str], *, nan: bool, inf: bool) -> None:
        """Declare that a consumer refuses NaN (``nan=False``) and/or inf (``inf=False``) in
        ``columns``: every input field that could carry one there is marked as refusing it."""
        for c in columns:
            if not nan:
                for f in self.nan_src[c]:
                    self.fields[f].missing = "error"
                for f in self.unknown_src.get(c, ()):
                    self.fields[f].unknown = "error"
            if not inf:
                for f in self.inf_src[c]:
                    self.fields[f].infinite = "error"

    # --- string categories --------------------------------------------------------------------
    def is_codes(self, column: str) -> bool:
        return column in self.code_origin

    def add_categories(self, column: str, categories: Iterable[Any]) -> None:
        """Make sure the string field behind ``column`` knows ``categories`` (in order)."""
        f = self.fields[self.code_origin[column]]
        known = set(f.categories)
        for c in categories:
            if c is None or (isinstance(c, float) and c != c):
                continue
            s = str(c)
            if s not in known:
                f.categories.append(s)
                known.add(s)

    def refuse_unknown(self, column: str) -> None:
        self.fields[self.code_origin[column]].unknown = "error"

    def propagate_codes(self, src: str, dst: str) -> None:
        if src in self.code_origin:
            self.code_origin[dst] = self.code_origin[src]

    # --- result -------------------------------------------------------------------------------
    def build(self, *, name: str, version: str, producer: dict[str, Any]) -> Bundle:
        if not self.outputs:
            raise ExportError("internal: the model defines no outputs")
        return Bundle(name=name, version=str(version), task=self.task,
                      inputs=[self.fields[n] for n in self.order], steps=self.steps,
                      outputs=self.outputs, producer=producer)


def _fresh(name: str, used: set[str], next_suffix: dict[str, int], sep: str) -> str:
    """``name`` if free, else ``name + sep + k`` for the first free ``k >= 2``; marks it
    used. ``next_suffix[name]`` remembers where the search for ``name`` stops, so the
    suffixes of one name are probed once each over all calls (amortised O(1) per name)."""
    c = name
    if c in used:
        k = next_suffix.get(name, 2)
        c = f"{name}{sep}{k}"
        while c in used:  # taken by a name that came from elsewhere (rare)
            k += 1
            c = f"{name}{sep}{k}"
        next_suffix[name] = k + 1
    used.add(c)
    return c
