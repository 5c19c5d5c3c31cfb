"""Errors and logs name a model by the name it is served under, not the bundle's internal
name; a PMML version reports a fingerprint and a creation time (#18)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc

from scorer.server import serve
from tests.server.conftest import Exported, publish

PMML = """<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header/>
  <DataDictionary numberOfFields="2">
    <DataField name="x" optype="continuous" dataType="double"/>
    <DataField name="y" optype="continuous" dataType="double"/>
  </DataDictionary>
  <RegressionModel functionName="regression">
    <MiningSchema><MiningField name="x"/><MiningField name="y" usageType="target"/></MiningSchema>
    <RegressionTable intercept="1.0"><NumericPredictor name="x" coefficient="2.0"/>
    </RegressionTable>
  </RegressionModel>
</PMML>
"""


def test_errors_and_logs_use_the_served_name(bundles: dict[str, Exported], tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    publish(bundles["iris"].path, tmp_path, "churn", 1)  # the bundle calls itself 'iris'
    with caplog.at_level(logging.INFO, logger="tablescore.scorer"), \
            serve(tmp_path, port=0, poll_interval=0, threads=2, ready_timeout=60) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            inputs = []
            for name in ("x0", "x1", "x2"):  # x3 missing
                inp = tc.InferInput(name, [2], "FP64")
                inp.set_data_from_numpy(np.ones(2))
                inputs.append(inp)
            with pytest.raises(tc.InferenceServerException) as ex:
                client.infer("churn", inputs)
            assert "'x3' (model 'churn' expects 4" in ex.value.message()
            x3 = tc.InferInput("x3", [2], "FP64")
            x3.set_data_from_numpy(np.ones(2))
            with pytest.raises(tc.InferenceServerException) as ex:
                client.infer("churn", [*inputs, x3], outputs=[tc.InferRequestedOutput("nope")])
            assert "unknown output 'nope' (model 'churn' outputs" in ex.value.message()
            assert "iris" not in ex.value.message()
        finally:
            client.close()
    verified = [r.getMessage() for r in caplog.records if "verified" in r.getMessage()]
    assert verified and verified[0].startswith("model churn version 1 verified")


def test_pmml_version_reports_fingerprint_and_created(tmp_path: Path) -> None:
    pytest.importorskip("scorer.pmml")
    doc = tmp_path / "scores" / "3" / "model.pmml"
    doc.parent.mkdir(parents=True)
    doc.write_text(PMML)
    with serve(tmp_path, port=0, poll_interval=0, threads=2, ready_timeout=60) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            params = client.get_model_config("scores", "3").config.parameters
            inp = tc.InferInput("y", [1], "FP64")  # not an input of this model
            inp.set_data_from_numpy(np.ones(1))
            with pytest.raises(tc.InferenceServerException) as ex:
                client.infer("scores", [inp])
        finally:
            client.close()
    assert params["fingerprint"].string_value == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert params["created"].string_value.startswith("20")
    assert params["bundle_model_name"].string_value == "model"  # the document's own name
    assert "model 'scores'" in ex.value.message()
