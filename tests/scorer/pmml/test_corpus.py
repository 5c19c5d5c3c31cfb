"""The external PMML corpus (../shared/data/pmml): our scores against the producers' own.

Every case is collected. A case that cannot pass yet is listed, with the reason, in
``conformance.pmml_known.XFAIL`` and marked ``xfail(strict=True)``: it fails the suite the day
it starts passing, so the list only shrinks. Each case scores its first ``MAX_ROWS`` input
rows (CI time budget) and compares every expected column under the case's own upstream
tolerance.

Summary per model family: ``python -m conformance.pmml_corpus``.
"""

from __future__ import annotations

import os

import pytest

from conformance.pmml_corpus import CORPUS, cases, run_case
from conformance.pmml_known import XFAIL

_CASES = cases()

if not _CASES:
    if os.environ.get("CI"):  # CI always has ../shared: a missing corpus must fail loudly
        raise RuntimeError(f"PMML corpus not found at {CORPUS}")
    pytestmark = pytest.mark.skip(reason=f"PMML corpus not found at {CORPUS}")


def _param(c):
    marks = []
    if c.id in XFAIL:
        marks.append(pytest.mark.xfail(reason=XFAIL[c.id], strict=True))
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in _CASES])
def test_case(case):
    rows, err = run_case(case)
    assert err is None, err
    assert rows > 0


def test_xfail_list_names_real_cases():
    ids = {c.id for c in _CASES}
    assert not set(XFAIL) - ids, sorted(set(XFAIL) - ids)


def _tree_cases(limit: int = 60):
    """Corpus cases whose forests compile to the fast ``tree_ensemble`` kernel."""
    from scorer.pmml import read_pmml

    out = []
    for c in _CASES:
        if c.id in XFAIL or "Tree" not in c.meta.get("model_element", "") + str(
                c.meta.get("nested_models")):
            continue
        try:
            ops = {s.op for s in read_pmml(c.dir / "model.pmml").steps}
        except Exception:
            continue
        if "tree_ensemble" in ops:
            out.append(pytest.param(c, id=c.id))
        if len(out) >= limit:
            break
    return out


@pytest.mark.parametrize("case", _tree_cases() if _CASES else [])
def test_fast_tree_path_agrees_with_predicate_tree(case, monkeypatch):
    """The ``tree_ensemble`` translation returns what the general predicate walk returns."""
    import numpy as np

    import scorer
    from conformance.pmml_corpus import inputs_for
    from scorer.pmml import trees

    fast = scorer.load(case.dir / "model.pmml", verify=False)
    X = inputs_for(fast, case)
    monkeypatch.setattr(trees, "FAST_PATH", False)
    slow = scorer.load(case.dir / "model.pmml", verify=False)
    assert "tree_ensemble" not in {s.op for s in slow.bundle.steps}
    a, b = fast.score_arrays(X), slow.score_arrays(X)
    for k in a:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-12, equal_nan=True,
                                       err_msg=k)
        else:
            assert list(a[k]) == list(b[k]), k
