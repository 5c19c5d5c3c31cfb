"""A version directory may hold a PMML file instead of a bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc

import scorer
from scorer.server import serve
from tests.datasets import shared_data


def test_serves_a_pmml_version(tmp_path: Path) -> None:
    pytest.importorskip("scorer.pmml")
    try:
        src = shared_data() / "pmml" / "cases" / "jpmml-sklearn" / "sklearn" / \
            "LogisticRegressionIris" / "model.pmml"
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    if not src.is_file():
        pytest.skip(f"{src} not found")
    (tmp_path / "iris_pmml" / "2").mkdir(parents=True)
    shutil.copy(src, tmp_path / "iris_pmml" / "2" / "model.pmml")
    model = scorer.load(src)
    X = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    with serve(tmp_path, port=0, poll_interval=0) as server:
        client = tc.InferenceServerClient(server.address)
        assert client.is_model_ready("iris_pmml", "2")
        inputs = []
        for j, name in enumerate(model.input_names):
            inp = tc.InferInput(name, [2], "FP64")
            inp.set_data_from_numpy(np.ascontiguousarray(X[:, j]))
            inputs.append(inp)
        result = client.infer("iris_pmml", inputs)
        want = model.score_arrays({n: X[:, j] for j, n in enumerate(model.input_names)})
        for o in model.bundle.outputs:
            got = result.as_numpy(o.name)
            if o.kind == "label":
                assert [g.decode() for g in got] == [str(w) for w in want[o.name]]
            else:
                np.testing.assert_allclose(got, want[o.name], rtol=1e-12)
        client.close()
