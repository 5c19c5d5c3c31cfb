"""GeneralRegressionModel -> one ``expression`` step.

Supported forms (those R, KNIME, statsmodels and sklearn2pmml emit): ``modelType`` in
``regression``, ``generalLinear``, ``generalizedLinear`` and ``multinomialLogistic``.

Each parameter ``p`` has a value ``x_p`` per row: the product, over its PPMatrix cells, of
``x ** value`` for a covariate and ``(x == value)`` for a factor (1 for a parameter without
cells, e.g. the intercept). The linear predictor of target category ``c`` is
``eta_c = offset + sum_p beta[c, p] * x_p`` (ParamMatrix), mapped by the inverse link
(generalizedLinear), or by a softmax against the reference category's ``eta = 0``
(multinomialLogistic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .expressions import resolve
from .fields import Scope, attr_number, constant_for, fail, same_class
from .program import Program
from .safexml import Element

if TYPE_CHECKING:
    from .reader import Reader, Result

#: inverse link -> expression opcode
_LINKS = {"logit": "EXPIT", "probit": "PROBIT", "cloglog": "CLOGLOG", "loglog": "LOGLOG",
          "cauchit": "CAUCHIT", "log": "EXP"}


def general_regression(rd: Reader, el: Element, scope: Scope, res: Result) -> None:
    mtype = el.get("modelType")
    if mtype not in ("regression", "generalLinear", "generalizedLinear", "multinomialLogistic"):
        raise fail(el, f"modelType='{mtype}' not supported")
    for attr in ("offsetVariable", "trialsVariable", "trialsValue"):
        if el.get(attr) is not None:
            raise fail(el, f"{attr} not supported")
    offset = attr_number(el, "offsetValue", "0")
    factors = {p.get("name") for p in _list(el, "FactorList")}
    covariates = {p.get("name") for p in _list(el, "CovariateList")}
    params = [p.get("name") for p in _list(el, "ParameterList")]
    cells: dict[str, list[Element]] = {p: [] for p in params}
    ppm = el.find("PPMatrix")
    for c in ppm.findall("PPCell") if ppm is not None else []:
        if c.get("targetCategory") is not None:
            raise fail(c, "PPCell targetCategory not supported")
        cells.setdefault(c.get("parameterName"), []).append(c)
    betas: dict[str | None, dict[str, float]] = {}
    pm = el.find("ParamMatrix")
    if pm is None:
        raise fail(el, "has no ParamMatrix")
    for c in pm.findall("PCell"):
        betas.setdefault(c.get("targetCategory"), {})[c.get("parameterName")] = \
            attr_number(c, "beta", required=True)

    def eta(prog: Program, beta: dict[str, float]) -> None:
        prog.const(offset)
        for p, b in beta.items():
            prog.const(b)
            for c in cells.get(p, []):
                name = c.get("predictorName")
                col = resolve(rd, name, scope, c)
                prog.load(col.column)
                if name in factors:
                    prog.const(constant_for(col.dtype, col, c.get("value", ""), c))
                    prog.emit("EQ")
                elif name in covariates:
                    e = attr_number(c, "value", "1")
                    if e != 1.0:
                        prog.const(e)
                        prog.emit("POW")
                else:
                    raise fail(c, f"'{name}' is neither a factor nor a covariate")
                prog.emit("MUL")
            prog.emit("ADD")

    prog = Program(rd.budget)
    if res.function == "regression":
        if len(betas) != 1:
            raise fail(pm, "a regression model has one set of coefficients")
        eta(prog, next(iter(betas.values())))
        _inverse_link(el, prog, mtype)
        prog.emit("STORE", 0)
        res.value = rd.program_step("glm", prog, 1)[0]
        return
    classes = res.classes
    k = len(classes)
    # outputs: probabilities 0..k-1 (class order), label k, scratch k+1
    known = [c for c in betas if c is not None]
    if mtype == "multinomialLogistic":
        for j, c in enumerate(classes):
            hit = [t for t in known if same_class(t, c)]
            if hit:
                eta(prog, betas[hit[0]])
                prog.emit("EXP")
            else:  # the reference category: eta = 0
                prog.const(1.0)
            prog.emit("STORE", j)
        for j in range(k):
            prog.emit("LOADOUT", j)
            if j:
                prog.emit("ADD")
        prog.emit("STORE", k + 1)
        for j in range(k):
            prog.emit("LOADOUT", j)
            prog.emit("LOADOUT", k + 1)
            prog.emit("DIV")
            prog.emit("STORE", j)
    elif mtype == "generalizedLinear" and k == 2 and len(known) == 1:
        first = next(j for j, c in enumerate(classes) if same_class(known[0], c))
        eta(prog, betas[known[0]])
        _inverse_link(el, prog, mtype)
        prog.emit("STORE", first)
        prog.const(1.0)
        prog.emit("LOADOUT", first)
        prog.emit("SUB")
        prog.emit("STORE", 1 - first)
    else:
        raise fail(el, f"classification with modelType='{mtype}' and {k} classes")
    from .reader import emit_argmax

    emit_argmax(prog, list(range(k)), k, k + 1)
    outs = rd.program_step("glm", prog, k + 2)
    res.probs = outs[:k]
    res.label = outs[k]


def _list(el: Element, tag: str) -> list[Element]:
    e = el.find(tag)
    return [c for c in e.children if c.tag in ("Parameter", "Predictor")] if e else []


def _inverse_link(el: Element, prog: Program, mtype: str) -> None:
    if mtype != "generalizedLinear":
        return
    link = el.get("linkFunction", "identity")
    if link == "identity":
        return
    if link == "power":
        a = attr_number(el, "linkParameter", "1")
        if a == 0.0:
            prog.emit("EXP")
        elif a != 1.0:
            prog.const(1.0 / a)
            prog.emit("POW")
        return
    op = _LINKS.get(link)
    if op is None:
        raise fail(el, f"linkFunction='{link}' not supported")
    prog.emit(op)
