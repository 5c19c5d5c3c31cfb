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
