"""Compiling common PMML shapes to the fast ops instead of the ``expression`` interpreter.

Everything here keeps the float64 operations of the expression it replaces, in the same order,
so a document scores the same (bit for bit) either way:

- a compiled expression program that is ``x`` followed by constant ``- + / *`` operations fitting
  ``((x - sub) / div) * mul + add`` becomes an ``affine`` step (sklearn2pmml's StandardScaler,
  MinMaxScaler, Targets rescaling ...), and consecutive independent ``affine`` steps merge
  into one;
- a ``float`` input field's rounding to float32 is dropped when only ``tree_ensemble`` steps
  comparing in float32 read it (the kernel rounds the value to float32 itself).
"""

from __future__ import annotations

import math

import numpy as np

from ..build.graph import Graph
from ..kernels.expression import OPCODES
from .program import Program

#: compile to the fast ops (False: the ``expression`` / general forms everywhere; the tests use
#: it to check that both agree bit for bit)
ENABLED = True

_LOAD, _CONST, _STORE = OPCODES["LOAD"], OPCODES["CONST"], OPCODES["STORE"]
_ADD, _SUB, _MUL, _DIV = OPCODES["ADD"], OPCODES["SUB"], OPCODES["MUL"], OPCODES["DIV"]
_F32 = OPCODES["F32"]


def affine_terms(prog: Program) -> tuple[float, float, float, float] | None:
    """``(sub, div, mul, add)`` when ``prog`` computes ``((x - sub) / div) * mul + add`` of its
    single input with the same float64 operations (unused terms leave ``x`` bit-identical:
    ``x - 0.0``, ``x / 1.0``, ``x * 1.0``, ``x + -0.0``); else None."""
    if not ENABLED:
        return None
    op, arg, value = prog.opcode, prog.arg, prog.value
    if len(prog.inputs) != 1 or prog.sets or len(op) < 2 or op[-1] != _STORE or arg[-1] != 0:
        return None
    body = list(zip(op[:-1], value[:-1], strict=True))
    lead = None
    if len(body) >= 3 and body[0][0] == _CONST and body[-1][0] == _ADD:
        # c + f(x) (NormContinuous: n0 + ...): the same sum as f(x) + c
        lead, body = body[0][1], body[1:-1]
    if not body or body[0][0] != _LOAD or (len(body) - 1) % 2:
        return None
    ops: list[tuple[int, float]] = []
    for i in range(1, len(body), 2):
        if body[i][0] != _CONST:
            return None
        c, o = body[i][1], body[i + 1][0]
        # x * 1, x / 1, x - 0, x + -0 are x exactly (NaN, infinities and signed zeros too)
        if not ((o in (_MUL, _DIV) and c == 1.0) or (o == _SUB and c == 0.0
                                                      and math.copysign(1.0, c) > 0)
                or (o == _ADD and c == 0.0 and math.copysign(1.0, c) < 0)):
            ops.append((o, c))
    if lead is not None:
        ops.append((_ADD, lead))
    terms = [0.0, 1.0, 1.0, -0.0]
    slot = 0  # next free slot: 0 sub, 1 div, 2 mul, 3 add
    for o, c in ops:
        if o == _SUB or o == _ADD:  # x + c == x - (-c) exactly
            if slot == 0:
                terms[0], slot = (c if o == _SUB else -c), 1
            elif slot <= 3:
                terms[3], slot = (-c if o == _SUB else c), 4
            else:
                return None
        elif o == _DIV and slot <= 1:
            terms[1], slot = c, 2
        elif o == _MUL and slot <= 2:
            terms[2], slot = c, 3
        else:
            return None
    if any(math.isnan(t) for t in terms):
        return None
    return terms[0], terms[1], terms[2], terms[3]


def add_affine(g: Graph, name: str, column: str, terms, out: list[str]) -> None:
    sub, div, mul, add = terms
    g.add_step("affine", name=name, inputs=[column], outputs=out, family="preprocessing",
               params={"clip": False}, elementwise=True, tables={"columns": {
                   "sub": np.array([sub]), "div": np.array([div]),
                   "mul": np.array([mul]), "add": np.array([add])}})


def fuse(g: Graph) -> None:
    """Merge runs of consecutive independent ``affine`` steps; drop float32 input casts that
    only float32-comparing ``tree_ensemble`` steps read."""
    if not ENABLED:
        return
    _drop_f32_casts(g)
    steps, out = g.steps, []
    i = 0
    while i < len(steps):
        st = steps[i]
        if st.op != "affine" or st.params.get("clip"):
            out.append(st)
            i += 1
            continue
        run, made = [st], set(st.outputs)
        j = i + 1
        while j < len(steps) and steps[j].op == "affine" and not steps[j].params.get("clip") \
                and not made.intersection(steps[j].inputs):
            run.append(steps[j])
            made.update(steps[j].outputs)
            j += 1
        if len(run) > 1:
            cols = {k: np.concatenate([np.asarray(s.tables["columns"][k], dtype=np.float64)
                                       for s in run]) for k in ("sub", "div", "mul", "add")}
            st.inputs = [c for s in run for c in s.inputs]
            st.outputs = [c for s in run for c in s.outputs]
            st.tables = {"columns": cols}
        out.append(st)
        i = j
    g.steps = out


def _drop_f32_casts(g: Graph) -> None:
    readers: dict[str, list] = {}
    for st in g.steps:
        for c in st.inputs:
            readers.setdefault(c, []).append(st)
    outputs = {c for o in g.outputs for c in ([o.column] if o.column else []) + (o.columns or [])}
    keep = []
    for st in g.steps:
        if st.op == "expression" and len(st.inputs) == 1 and len(st.outputs) == 1 \
                and st.outputs[0] not in outputs and set(st.tables) == {"program"}:
            p = st.tables["program"]
            ops = list(np.asarray(p["opcode"]))
            rs = readers.get(st.outputs[0], [])
            if ops == [_LOAD, _F32, _STORE] and int(p["arg"][2]) == 0 and rs and all(
                    r.op == "tree_ensemble" and r.params.get("compare_dtype") == "float32"
                    for r in rs):
                for r in rs:
                    r.inputs = [st.inputs[0] if c == st.outputs[0] else c for c in r.inputs]
                continue
        keep.append(st)
    g.steps = keep
