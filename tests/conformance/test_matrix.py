"""The CI subset of the conformance matrix: every family on both export paths (bundle and
sklearn2pmml -> native PMML reader) and both transports (in process and gRPC) must pass."""

from __future__ import annotations

import pytest

from conformance.matrix import run_matrix, summary


@pytest.fixture(scope="module")
def cells():
    return run_matrix(subset="ci")


def test_every_cell_passes(cells):
    bad = [c for c in cells if c.status != "pass"]
    assert not bad, summary(cells)


def test_every_family_on_every_path_and_transport(cells):
    covered = {(c.family, c.path, c.transport) for c in cells if c.status == "pass"}
    for family in ("linear", "tree_ensemble", "xgboost", "lightgbm"):
        for combo in (("bundle", "in-process"), ("bundle", "grpc"), ("pmml", "in-process")):
            assert (family, *combo) in covered, (family, combo)
    datasets = {c.dataset for c in cells}
    assert {"synthetic_binary", "synthetic_regression", "AuditNA", "iris"} <= datasets


def test_a_converter_refusal_is_unsupported_not_an_error():
    from conformance.matrix import _converter_refusal
    from scorer.errors import ExportError

    log = ("sklearn2pmml could not convert Pipeline: The SkLearn2PMML application has failed.\n"
           "SEVERE: Failed to convert PKL to PMML\n"
           "org.jpmml.python.InvalidAttributeException: Attribute 'extrapolation' has an "
           "unsupported value 'linear'\n\tat sklearn.Step.getOption(Step.java:1)\n")
    assert _converter_refusal(ExportError(log)) == (
        "org.jpmml.python.InvalidAttributeException: Attribute 'extrapolation' has an "
        "unsupported value 'linear'")
    assert _converter_refusal(ExportError("PMML export needs Java (JRE 11 or newer)")) is None
    assert _converter_refusal(ValueError("sklearn2pmml could not convert X")) is None


def test_document_refusals_are_the_rows_refused_with_an_input_error():
    import numpy as np
    import pandas as pd

    from conformance.matrix import _document_refusals
    from scorer.errors import InputError

    def score(A):  # a document declaring values above 5 invalid
        a = np.asarray(A, dtype=float)
        if (a > 5).any():
            raise InputError("row 0: the value of 'x0' is outside its declared values")
        if (a < -5).any():  # not a refusal of rows: left for the cell to report
            raise RuntimeError("broken")
        return {"y": a.sum(axis=1)}

    X = np.array([[1.0], [7.0], [2.0], [9.0], [-8.0]])
    kept, refused = _document_refusals(X, score)
    assert refused == [1, 3]
    np.testing.assert_array_equal(kept, [[1.0], [2.0], [-8.0]])
    kept, refused = _document_refusals(pd.DataFrame(X, columns=["x0"]), score)
    assert refused == [1, 3] and kept["x0"].tolist() == [1.0, 2.0, -8.0]
    # a batch the document accepts, or one failing for another reason, is left whole
    assert _document_refusals(X[[0, 2]], score)[1] == []
    assert _document_refusals(X[[0, 4]], score)[1] == []


def test_known_pmml_lists_name_their_cells_only():
    import numpy as np

    from conformance.matrix import Dataset, known_pmml_issue, known_pmml_refusal

    def ds(name: str) -> Dataset:
        return Dataset(name, "binary", np.zeros((1, 1)), np.zeros(1))

    assert "returnInvalid" in known_pmml_refusal("TargetEncoder", ds("synthetic_binary"))
    assert known_pmml_refusal("TargetEncoder", ds("breast_cancer")) is None
    assert known_pmml_refusal("QuantileTransformer", ds("synthetic_binary")) is None
    assert "tied quantiles" in known_pmml_issue("QuantileTransformer", ds("iris"))
    assert known_pmml_issue("TargetEncoder", ds("synthetic_binary")) is None
