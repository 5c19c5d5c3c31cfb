"""Family ``expression``: small arithmetic / logical programs over workspace columns.

Used by the PMML reader for DerivedFields (``Apply``, ``NormContinuous``, ``Discretize``,
``MapValues``...), regression tables, output transformations and segment combination, and by
the ``predicate_tree`` op for node predicates. One Numba interpreter runs every program, so
nothing is compiled per model.

Op ``expression`` version 1 (normative)
---------------------------------------
Values are float64. NaN means *missing* (and, for logical values, *unknown*); logical values
are 1.0 (true) and 0.0 (false); a number other than 0.0 counts as true.

tables
    ``program``: one row per instruction, executed in table order for every row of the
    workspace with an initially empty stack: int32 ``opcode``, int32 ``arg``, float64 ``value``.
    ``sets`` (optional): float64 ``value``; the members of the sets ``IN_SET`` tests.

Instructions (``a`` is the top of the stack, ``b`` the one below; "pop a, b, push f" means the
operands are replaced by the result). Inputs are the step's ``inputs``; outputs its
``outputs``.

=====  ==========  ================================================================
code   name        effect
=====  ==========  ================================================================
0      CONST       push ``value``
1      LOAD        push input ``arg``
2      LOADOUT     push output ``arg`` (written earlier in this program, same row)
3      STORE       pop into output ``arg``
4      DUP         push a copy of the top
5      POP         drop the top
10-16  ADD SUB MUL DIV POW MIN MAX: pop ``b`` (below), ``a`` (top); push ``b op a``;
                   NaN propagates (MIN / MAX too)
20-25  LT LE GT GE EQ NE: comparison ``b op a`` -> 1.0 / 0.0; NaN if either is NaN
30     AND         three-valued: 0 if either is false, else NaN if either is NaN, else 1
31     OR          three-valued: 1 if either is true, else NaN if either is NaN, else 0
32     XOR         NaN if either is NaN, else (b != 0) != (a != 0)
33     NOT         NaN stays NaN, else 1 - truth
34     SURROGATE   pop ``a``, ``b``: push ``b`` if ``b`` is not NaN, else ``a``
40     ISMISSING   1.0 if NaN else 0.0
41     ISNOTMISSING 1.0 if not NaN else 0.0
42     IF          pop ``else`` (top), ``then``, ``cond``; push NaN if cond is NaN, else
                   ``then`` if cond is true, else ``else``
50-64  unary: NEG ABS EXP LN LOG10 SQRT FLOOR CEIL ROUND (half away from zero... see below)
                   F32 (round to float32) EXPIT (1/(1+exp(-x))) PROBIT (standard normal cdf)
                   CLOGLOG (1-exp(-exp(x))) LOGLOG (exp(-exp(-x))) CAUCHIT (0.5+atan(x)/pi)
65     ROUND_HALF_UP  floor(x + 0.5) (Java's Math.round, PMML's ``round``)
68     PROBIT_INV  the standard normal quantile of ``x`` (PMML's ``stdNormalIDF``); NaN outside
                   [0, 1], -inf / +inf at 0 / 1
66     EXPM1       exp(x) - 1
67     LN1P        ln(1 + x)
70     IN_SET      pop ``x``: NaN if x is NaN, else 1.0 if ``x`` equals one of
                   ``sets.value[arg : arg + int(value)]``, else 0.0
71     THRESHOLD   pop ``t`` (top), ``x``: NaN if either is NaN, else 1.0 if x > t else 0.0
72     MISSING_IF  pop ``x``: NaN if ``x == value`` else ``x`` (invalid -> missing)
73     MEDIAN      pop ``arg`` values; push their median (the mean of the two middle values
                   for an even count); NaN if any is NaN
74     WMEDIAN     pop ``arg`` weights (top) and, below them, ``arg`` values; sort the
                   values, push the first whose cumulative weight is ``>= 0.5 * total``
                   (scikit-learn's weighted median); NaN if any value is NaN
75     REFUSE_IF   pop ``c``: if ``c`` is true (not NaN, not 0) the row cannot be scored:
                   the kernel stops and returns the row's index (an input error naming the
                   row and ``params.refuse_message``; PMML's ``returnInvalid``)
76     SKIP_UNLESS pop ``c``: unless ``c`` is true (not NaN, not 0), skip the next ``arg``
                   instructions (``arg >= 0``)
77     SKIP        skip the next ``arg`` instructions (``arg >= 0``)
=====  ==========  ================================================================

(``ROUND``, code 58, is round-half-to-even as IEEE ``rint``.) A program that leaves values on
the stack is valid; the stack depth never exceeds the number of instructions.

Skips only go forward, so every program ends. A valid program's skips land at most one past
its last instruction, every instruction is reachable, and the stack depth where paths meet
is the same on each of them (so the depth at every instruction is known before running).
The ``predicate_tree`` op's node programs may not skip.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import InputError
from ..ir import Step
from ..ops import BindContext, Bound, register_op
from ._common import f64, index_col, table

#: opcode name -> number (the table above)
OPCODES: dict[str, int] = {
    "CONST": 0, "LOAD": 1, "LOADOUT": 2, "STORE": 3, "DUP": 4, "POP": 5,
    "ADD": 10, "SUB": 11, "MUL": 12, "DIV": 13, "POW": 14, "MIN": 15, "MAX": 16,
    "LT": 20, "LE": 21, "GT": 22, "GE": 23, "EQ": 24, "NE": 25,
    "AND": 30, "OR": 31, "XOR": 32, "NOT": 33, "SURROGATE": 34,
    "ISMISSING": 40, "ISNOTMISSING": 41, "IF": 42,
    "NEG": 50, "ABS": 51, "EXP": 52, "LN": 53, "LOG10": 54, "SQRT": 55, "FLOOR": 56,
    "CEIL": 57, "ROUND": 58, "F32": 59, "EXPIT": 60, "PROBIT": 61, "CLOGLOG": 62,
    "LOGLOG": 63, "CAUCHIT": 64, "ROUND_HALF_UP": 65, "EXPM1": 66, "LN1P": 67,
    "PROBIT_INV": 68,
    "IN_SET": 70, "THRESHOLD": 71, "MISSING_IF": 72, "MEDIAN": 73, "WMEDIAN": 74,
    "REFUSE_IF": 75, "SKIP_UNLESS": 76, "SKIP": 77,
}
#: how many stack values each opcode pops, and pushes (checked at bind time)
_ARITY: dict[int, tuple[int, int]] = {
    0: (0, 1), 1: (0, 1), 2: (0, 1), 3: (1, 0), 4: (1, 2), 5: (1, 0),
    **{c: (2, 1) for c in (10, 11, 12, 13, 14, 15, 16, 20, 21, 22, 23, 24, 25, 30, 31, 32, 34,
                           71)},
    33: (1, 1), 40: (1, 1), 41: (1, 1), 42: (3, 1),
    **{c: (1, 1) for c in range(50, 69)}, 70: (1, 1), 72: (1, 1),
    73: (-1, 1), 74: (-2, 1),  # -k: pops k * arg values
    75: (1, 0), 76: (1, 0), 77: (0, 0),
}


@njit(cache=True, nogil=True, error_model="numpy")
def _f32(x):
    return float(np.float32(x))


@njit(cache=True, nogil=True, error_model="numpy")
def _unary(op, x):
    if op == 50:
        return -x
    if op == 51:
        return abs(x)
    if op == 52:
        return math.exp(x)
    if op == 53:
        return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
    if op == 54:
        return math.log10(x) if x > 0 else (-math.inf if x == 0 else math.nan)
    if op == 55:
        return math.sqrt(x) if x >= 0 else math.nan
    if op == 56:  # np.floor keeps floats (math.floor would overflow on inf)
        return np.floor(x)
    if op == 57:
        return np.ceil(x)
    if op == 58:
        return np.rint(x)
    if op == 59:
        return _f32(x)
    if op == 60:
        return 1.0 / (1.0 + math.exp(-x))
    if op == 61:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))
    if op == 62:
        return 1.0 - math.exp(-math.exp(x))
    if op == 63:
        return math.exp(-math.exp(-x))
    if op == 64:
        return 0.5 + math.atan(x) / math.pi
    if op == 65:
        return np.floor(x + 0.5)
    if op == 66:
        return math.expm1(x)
    if op == 67:
        return math.log1p(x) if x > -1.0 else (-math.inf if x == -1.0 else math.nan)
    if op == 68:
        return _probit_inv(x)
    return math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _probit_inv(p):
    """Standard normal quantile: a rational first guess (Abramowitz & Stegun 26.2.23, error
    < 4.5e-4) polished by Halley steps on the lower tail, where ``erfc`` keeps full relative
    precision (``1 - p`` is exact for ``p >= 0.5``)."""
    if math.isnan(p) or p < 0.0 or p > 1.0:
        return math.nan
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p == 0.5:
        return 0.0
    q = p if p < 0.5 else 1.0 - p  # solve Phi(x) = q with x <= 0
    t = math.sqrt(-2.0 * math.log(q))
    x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
          / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t))
    central = q > 0.25  # near the median, Phi(x) - q is computed as erf(x) - (q - 0.5)
    d = q - 0.5  # exact
    for _ in range(4):
        if central:
            e = 0.5 * math.erf(x / math.sqrt(2.0)) - d
        else:
            e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - q
        u = e * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
        x = x - u / (1.0 + x * u / 2.0)
    return x if p < 0.5 else -x


@njit(cache=True, nogil=True, error_model="numpy")
def _binary(op, b, a):
    if math.isnan(a) or math.isnan(b):
        if op == 30:  # AND: false wins over unknown
            if (not math.isnan(a) and a == 0.0) or (not math.isnan(b) and b == 0.0):
                return 0.0
            return math.nan
        if op == 31:  # OR: true wins over unknown
            if (not math.isnan(a) and a != 0.0) or (not math.isnan(b) and b != 0.0):
                return 1.0
            return math.nan
        if op == 34:
            return a if math.isnan(b) else b
        return math.nan
    if op == 10:
        return b + a
    if op == 11:
        return b - a
    if op == 12:
        return b * a
    if op == 13:
        return b / a
    if op == 14:
        return b ** a
    if op == 15:
        return a if a < b else b
    if op == 16:
        return a if a > b else b
    if op == 20:
        return 1.0 if b < a else 0.0
    if op == 21:
        return 1.0 if b <= a else 0.0
    if op == 22:
        return 1.0 if b > a else 0.0
    if op == 23:
        return 1.0 if b >= a else 0.0
    if op == 24:
        return 1.0 if b == a else 0.0
    if op == 25:
        return 1.0 if b != a else 0.0
    if op == 30:
        return 1.0 if (b != 0.0 and a != 0.0) else 0.0
    if op == 31:
        return 1.0 if (b != 0.0 or a != 0.0) else 0.0
    if op == 32:
        return 1.0 if ((b != 0.0) != (a != 0.0)) else 0.0
    if op == 34:
        return b
    if op == 71:
        return 1.0 if b > a else 0.0
    return math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _median(stack, v0, m, weighted):
    """(Weighted) median of ``stack[v0 : v0 + m]`` (weights follow); sorts in place."""
    for k in range(v0, v0 + m):
        if math.isnan(stack[k]):
            return math.nan
    # insertion sort of the values (and their weights): m is the number of segments
    for k in range(v0 + 1, v0 + m):
        x = stack[k]
        w = stack[k + m] if weighted else 0.0
        j = k - 1
        while j >= v0 and stack[j] > x:
            stack[j + 1] = stack[j]
            if weighted:
                stack[j + 1 + m] = stack[j + m]
            j -= 1
        stack[j + 1] = x
        if weighted:
            stack[j + 1 + m] = w
    if not weighted:
        h = m // 2
        if m % 2 == 1:
            return stack[v0 + h]
        return (stack[v0 + h - 1] + stack[v0 + h]) / 2.0
    total = 0.0
    for k in range(v0 + m, v0 + 2 * m):
        total += stack[k]
    acc = 0.0
    for k in range(m):
        acc += stack[v0 + m + k]
        if acc >= 0.5 * total:
            return stack[v0 + k]
    return stack[v0 + m - 1]


@njit(cache=True, nogil=True, error_model="numpy")
def run_program(ws, i, in_cols, out_cols, opcode, arg, value, sets, start, end, stack):
    """Run instructions ``start .. end`` for workspace row ``i``.

    Parameters
    ----------
    ws : float64 array of shape (n_rows, n_columns)
        The workspace; ``STORE`` writes into it.
    i : int
        The row.
    in_cols, out_cols : int64 arrays of shape (n_inputs,), (n_outputs,)
        Workspace columns of the step's inputs / outputs (``LOAD`` / ``LOADOUT``, ``STORE``).
    opcode, arg : int32 arrays of shape (n_instructions,)
    value : float64 array of shape (n_instructions,)
        The program (see the module docstring).
    sets : float64 array of shape (n_members,)
        Members of the sets ``IN_SET`` tests.
    start, end : int
        The instructions to run.
    stack : float64 array of shape (>= end - start + 1,)
        Scratch space; ``REFUSE_IF`` sets its last slot to 1.0 and returns at once.

    Returns
    -------
    float
        The value on top of the stack at the end (NaN if empty): a predicate's truth value.
    """
    sp = 0
    pc = start - 1
    while pc < end - 1:
        pc += 1
        op = opcode[pc]
        if op == 0:
            stack[sp] = value[pc]
            sp += 1
        elif op == 1:
            stack[sp] = ws[i, in_cols[arg[pc]]]
            sp += 1
        elif op == 2:
            stack[sp] = ws[i, out_cols[arg[pc]]]
            sp += 1
        elif op == 3:
            sp -= 1
            ws[i, out_cols[arg[pc]]] = stack[sp]
        elif op == 4:
            stack[sp] = stack[sp - 1]
            sp += 1
        elif op == 5:
            sp -= 1
        elif op == 33:
            x = stack[sp - 1]
            if not math.isnan(x):
                stack[sp - 1] = 0.0 if x != 0.0 else 1.0
        elif op == 40:
            stack[sp - 1] = 1.0 if math.isnan(stack[sp - 1]) else 0.0
        elif op == 41:
            stack[sp - 1] = 0.0 if math.isnan(stack[sp - 1]) else 1.0
        elif op == 42:
            e = stack[sp - 1]
            t = stack[sp - 2]
            c = stack[sp - 3]
            sp -= 2
            if math.isnan(c):
                stack[sp - 1] = math.nan
            else:
                stack[sp - 1] = t if c != 0.0 else e
        elif op >= 50 and op < 69:
            stack[sp - 1] = _unary(op, stack[sp - 1])
        elif op == 70:
            x = stack[sp - 1]
            if not math.isnan(x):
                hit = 0.0
                s0 = arg[pc]
                for m in range(s0, s0 + int(value[pc])):
                    if sets[m] == x:
                        hit = 1.0
                        break
                stack[sp - 1] = hit
        elif op == 72:
            if stack[sp - 1] == value[pc]:
                stack[sp - 1] = math.nan
        elif op == 75:
            sp -= 1
            c = stack[sp]
            if not math.isnan(c) and c != 0.0:
                stack[stack.shape[0] - 1] = 1.0  # the refusal flag: the last scratch slot
                return math.nan
        elif op == 73 or op == 74:
            m = arg[pc]
            wts = op == 74
            v0 = sp - (2 * m if wts else m)
            sp = v0 + 1
            stack[v0] = _median(stack, v0, m, wts)
        elif op == 76:
            sp -= 1
            c = stack[sp]
            if math.isnan(c) or c == 0.0:
                pc += arg[pc]
        elif op == 77:
            pc += arg[pc]
        else:
            a = stack[sp - 1]
            sp -= 1
            stack[sp - 1] = _binary(op, stack[sp - 1], a)
    return stack[sp - 1] if sp > 0 else math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def expression_kernel(ws, in_cols, out_cols, opcode, arg, value, sets):
    """Run the program on every row of ``ws`` (float64, shape (n_rows, n_columns)).

    Arguments as for :func:`run_program`. Returns -1, or the first row a ``REFUSE_IF``
    refused.
    """
    n_ins = opcode.shape[0]
    stack = np.empty(n_ins + 1, dtype=np.float64)
    for i in range(ws.shape[0]):
        stack[n_ins] = 0.0
        run_program(ws, i, in_cols, out_cols, opcode, arg, value, sets, 0, n_ins, stack)
        if stack[n_ins] != 0.0:
            return i
    return -1


_REF_UNARY = {
    50: np.negative, 51: np.abs, 52: np.exp, 53: np.log, 54: np.log10, 55: np.sqrt,
    56: np.floor, 57: np.ceil, 58: np.rint, 59: lambda x: np.float64(np.float32(x)),
    60: lambda x: 1.0 / (1.0 + np.exp(-x)),
    61: lambda x: 0.5 * math.erfc(-x / math.sqrt(2.0)),
    62: lambda x: 1.0 - np.exp(-np.exp(x)), 63: lambda x: np.exp(-np.exp(-x)),
    64: lambda x: 0.5 + np.arctan(x) / np.pi, 65: lambda x: np.floor(x + 0.5),
    66: np.expm1, 67: np.log1p, 68: lambda x: _probit_inv.py_func(float(x)),
}


def expression_reference(ws, in_cols, out_cols, opcode, arg, value, sets):
    """Plain-Python interpreter of the same programs (row by row; slow, for tests)."""
    for i in range(ws.shape[0]):
        st: list[float] = []
        pc = -1
        while pc < len(opcode) - 1:
            pc += 1
            op = int(opcode[pc])
            if op == 76:  # a skip moves pc on past the skipped instructions
                c = st.pop()
                if not (c == c and c != 0.0):
                    pc += int(arg[pc])
                continue
            if op == 77:
                pc += int(arg[pc])
                continue
            if op == 0:
                st.append(float(value[pc]))
            elif op == 1:
                st.append(float(ws[i, in_cols[arg[pc]]]))
            elif op == 2:
                st.append(float(ws[i, out_cols[arg[pc]]]))
            elif op == 3:
                ws[i, out_cols[arg[pc]]] = st.pop()
            elif op == 4:
                st.append(st[-1])
            elif op == 5:
                st.pop()
            elif op == 33:
                x = st[-1]
                st[-1] = x if x != x else float(x == 0.0)
            elif op == 40:
                st[-1] = float(st[-1] != st[-1])
            elif op == 41:
                st[-1] = float(st[-1] == st[-1])
            elif op == 42:
                e, t, c = st.pop(), st.pop(), st.pop()
                st.append(math.nan if c != c else (t if c != 0.0 else e))
            elif 50 <= op < 69:
                with np.errstate(all="ignore"):
                    st[-1] = float(_REF_UNARY[op](np.float64(st[-1])))
            elif op == 70:
                x = st[-1]
                if x == x:
                    s0 = int(arg[pc])
                    st[-1] = float(x in set(sets[s0:s0 + int(value[pc])].tolist()))
            elif op == 72:
                if st[-1] == value[pc]:
                    st[-1] = math.nan
            elif op == 75:
                c = st.pop()
                if c == c and c != 0.0:
                    return i
            elif op in (73, 74):
                m = int(arg[pc])
                if op == 73:
                    vals, wts = np.array(st[-m:]), None
                    del st[-m:]
                else:
                    vals, wts = np.array(st[-2 * m:-m]), np.array(st[-m:])
                    del st[-2 * m:]
                if np.isnan(vals).any():
                    st.append(math.nan)
                elif wts is None:
                    st.append(float(np.median(vals)))
                else:
                    order = np.argsort(vals, kind="stable")
                    cdf = np.cumsum(wts[order])
                    st.append(float(vals[order][int(np.argmax(cdf >= 0.5 * cdf[-1]))]))
            else:
                a = st.pop()
                with np.errstate(all="ignore"):  # IEEE results, as in the kernel
                    st[-1] = float(_binary.py_func(op, np.float64(st[-1]), np.float64(a)))
    return -1


def check_program(opcode: np.ndarray, arg: np.ndarray, value: np.ndarray, n_sets: int,
                  n_inputs: int, n_outputs: int, *, what: str, skips: bool = False) -> None:
    """Refuse unknown opcodes, out-of-range operands and stack underflow.

    ``skips``: whether ``SKIP_UNLESS`` / ``SKIP`` are allowed (programs run as a whole; not
    ``predicate_tree``'s node programs, which run piecewise). Their targets must lie within
    the program, every instruction must be reachable, and the stack depth must agree where
    paths meet, so that the depth at each instruction is the one computed here."""
    depth = 0
    reachable = True
    landing: dict[int, int] = {}  # skip target -> stack depth there
    n = len(opcode)
    for pc, op in enumerate(opcode.tolist()):
        if op not in _ARITY:
            raise ValueError(f"{what}: instruction {pc}: opcode {op} unknown")
        a = int(arg[pc])
        if pc in landing:
            if reachable and landing[pc] != depth:
                raise ValueError(f"{what}: instruction {pc}: stack depths differ where paths "
                                 "meet")
            depth, reachable = landing[pc], True
        if not reachable:
            raise ValueError(f"{what}: instruction {pc}: unreachable")
        if op in (76, 77):
            if not skips:
                raise ValueError(f"{what}: instruction {pc}: skips are not allowed here")
            if not 0 <= a <= n - pc - 1:
                raise ValueError(f"{what}: instruction {pc}: skip out of range")
            if op == 76:
                if depth < 1:
                    raise ValueError(f"{what}: instruction {pc}: stack underflow")
                depth -= 1
            target = pc + 1 + a
            if landing.setdefault(target, depth) != depth:
                raise ValueError(f"{what}: instruction {pc}: stack depths differ where paths "
                                 "meet")
            reachable = op == 76 or a == 0
            continue
        if op == 1 and not 0 <= a < n_inputs:
            raise ValueError(f"{what}: instruction {pc}: input {a} out of range")
        if op in (2, 3) and not 0 <= a < n_outputs:
            raise ValueError(f"{what}: instruction {pc}: output {a} out of range")
        # (float compare: int() of an infinite or NaN count would raise, not refuse)
        if op == 70 and not (0 <= a and value[pc] >= 0 and a + float(value[pc]) <= n_sets):
            raise ValueError(f"{what}: instruction {pc}: set out of range")
        pops, pushes = _ARITY[op]
        if pops < 0:  # variadic: -k pops k * arg values
            if a < 1:
                raise ValueError(f"{what}: instruction {pc}: needs at least one operand")
            pops = -pops * a
        if depth < pops:
            raise ValueError(f"{what}: instruction {pc}: stack underflow")
        depth += pushes - pops


def program_arrays(t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(opcode, arg, value)`` of a ``program`` table; opcode and arg are refused when they
    do not fit int32 (checked before the cast, which would wrap them)."""
    return (index_col(t["opcode"], "program.opcode"), index_col(t["arg"], "program.arg"),
            f64(t["value"]))


@register_op("expression", family="expression")
def bind_expression(step: Step, ctx: BindContext) -> Bound:
    opcode, arg, value = program_arrays(table(step, "program"))
    sets = f64(step.tables.get("sets", {"value": np.zeros(0)})["value"])
    check_program(opcode, arg, value, len(sets), len(step.inputs), len(step.outputs),
                  what=f"expression step '{step.name}'", skips=True)
    args = (ctx.cols(step.inputs, step=step), ctx.cols(step.outputs, step=step), opcode, arg,
            value, sets)
    message = str(step.params.get("refuse_message", "a value is invalid for this model"))

    def error(_ws: np.ndarray, row: int) -> Exception:
        return InputError(f"row {row}: {message}")

    return Bound(expression_kernel, expression_reference, args, error=error)
