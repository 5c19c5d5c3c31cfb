"""Experiments over gRPC: a unit's arm picks the version, the answer names arm and version,
the permanent control group, requests without a unit, pinned versions, hot edits, and the
exposure log written and flushed on shutdown."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import tritonclient.grpc as tc

from scorer.experiments.assign import arm_index, bounds, bucket, in_control_group
from scorer.server import serve

from .conftest import Exported, publish

SALT, CG_SALT, CG = "churn-test", "tablescore-permanent-control-group", 0.2


def _config(control: float) -> str:
    return json.dumps({"version_policy": {"all": {}}, "experiment": {
        "name": "churn-test", "unit": "customer_id", "salt": SALT, "shadow": None, "arms": [
            {"name": "control", "version": "1", "weight": control},
            {"name": "candidate", "version": "2", "weight": round(1 - control, 6)}]}})


def _expected(unit: int, control: float) -> tuple[str, str, bool]:
    if in_control_group(CG_SALT, unit, CG):
        return "control", "1", True
    arm = arm_index(bucket(SALT, unit), bounds([control, 1 - control]))
    return ("control", "1", False) if arm == 0 else ("candidate", "2", False)


def _infer(client, X, *, unit=None, as_tensor=False, version=""):
    inp = tc.InferInput("input", list(X.shape), "FP64")
    inp.set_data_from_numpy(np.ascontiguousarray(X, dtype=np.float64))
    inputs, params = [inp], {}
    if unit is not None and as_tensor:
        u = tc.InferInput("customer_id", [X.shape[0]], "INT64")
        u.set_data_from_numpy(np.full(X.shape[0], unit, dtype=np.int64))
        inputs.append(u)
    elif unit is not None:
        params = {"customer_id": unit}
    r = client.infer("iris", inputs, model_version=version, parameters=params or None)
    resp = r.get_response()
    p = {k: v.string_param for k, v in resp.parameters.items()}
    return resp.model_version, p, r


def test_experiment_routing_and_exposures(bundles: dict[str, Exported], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    (repo / "iris" / "config.json").write_text(_config(0.5))
    X = bundles["iris"].X[:1]
    exposures = tmp_path / "exposures"
    sent: list[tuple[int, str, bool]] = []
    with serve(repo, port=0, ready_timeout=60, poll_interval=0.2, control_group=CG,
               exposures=exposures) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            for unit in range(120):
                version, params, r = _infer(client, X, unit=unit, as_tensor=unit % 3 == 0)
                arm, want_version, holdout = _expected(unit, 0.5)
                assert (version, params["arm"], params["experiment"]) == (
                    want_version, arm, "churn-test")
                assert (params.get("holdout") == "true") == holdout
                est = bundles["iris" if version == "1" else "iris_v2"].est
                np.testing.assert_allclose(r.as_numpy("probability(0)"),
                                           est.predict_proba(X)[:, 0], rtol=0, atol=1e-12)
                sent.append((unit, arm, holdout))
            assert any(h for _, _, h in sent) and {a for _, a, _ in sent} == {"control",
                                                                              "candidate"}
            # no unit: the default (newest) version, no arm
            version, params, _ = _infer(client, X)
            assert version == "2" and "arm" not in params
            # a pinned version is answered by that version, not routed
            unit = next(u for u, a, _ in sent if a == "candidate")
            version, params, _ = _infer(client, X, unit=unit, version="1")
            assert version == "1" and "arm" not in params

            # re-weighted while serving: everyone outside the group moves to control
            (repo / "iris" / "config.json").write_text(_config(1.0))
            deadline = time.monotonic() + 10
            while _infer(client, X, unit=unit)[1]["arm"] != "control":
                assert time.monotonic() < deadline, "the new weights were not picked up"
                time.sleep(0.1)
        finally:
            client.close()
    # the exposure log was flushed on shutdown
    table = ds.dataset(exposures / "churn-test", format="parquet").to_table().to_pandas()
    first = table.iloc[: len(sent)]
    assert first["unit"].tolist() == [str(u) for u, _, _ in sent]
    assert first["arm"].tolist() == [a for _, a, _ in sent]
    assert first["holdout"].tolist() == [h for _, _, h in sent]
    assert set(first["version"]) == {"1", "2"} and (first["rows"] == 1).all()
    assert "out.probability(0)" in table.columns


def test_exposures_in_postgres_while_the_database_comes_and_goes(
        bundles: dict[str, Exported], tmp_path: Path) -> None:
    """--exposures postgresql://...: requests are answered while the database is away, the
    sink reports down and recovers, the batch in hand is written once it is back, and a
    shutdown with the database away is bounded, its unwritten records counted as dropped."""
    import urllib.request

    import psycopg

    from tests.services import PG_HOST, TcpProxy, fresh_database

    repo = tmp_path / "repo"
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["iris_v2"].path, repo, "iris", 2)
    (repo / "iris" / "config.json").write_text(_config(0.5))
    X = bundles["iris"].X[:1]
    host, port = PG_HOST.rsplit("@", 1)[1].split(":")
    with fresh_database() as url:
        proxy = TcpProxy(host, int(port)).start()
        via = f"postgresql://postgres@127.0.0.1:{proxy.port}/{url.rsplit('/', 1)[1]}"
        server = serve(repo, port=0, metrics_port=0, ready_timeout=60, exposures=via,
                       control_group=CG)
        client = tc.InferenceServerClient(server.address)

        def metric(name: str) -> float:
            text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics",
                                          timeout=5).read().decode()
            return float(next(x for x in text.splitlines()
                              if x.startswith(name + " ")).split()[-1])

        def until(cond, what: str) -> None:
            deadline = time.monotonic() + 30
            while not cond():
                assert time.monotonic() < deadline, what
                time.sleep(0.1)

        try:
            for unit in range(20):
                assert _infer(client, X, unit=unit)[1]["experiment"] == "churn-test"
            until(lambda: metric("tablescore_exposures_written_total") == 20, "not written")
            for arm in ("control", "candidate"):  # the route stage's counter, per arm
                labels = f'arm="{arm}",experiment="churn-test",model="iris"'
                assert metric(f"tablescore_experiment_requests_total{{{labels}}}") == sum(
                    _expected(u, 0.5)[0] == arm for u in range(20))
            proxy.cut()
            for unit in range(20, 40):  # answered as ever while the database is away
                version, params, _ = _infer(client, X, unit=unit)
                assert (params["arm"], version) == _expected(unit, 0.5)[:2]
            until(lambda: metric("tablescore_exposures_sink_up") == 0, "not noticed")
            proxy.start()
            until(lambda: metric("tablescore_exposures_written_total") == 40, "no recovery")
            assert metric("tablescore_exposures_sink_up") == 1
            assert metric("tablescore_exposures_dropped_total") == 0
            proxy.cut()
            for unit in range(40, 50):
                _infer(client, X, unit=unit)
        finally:
            client.close()
            t0 = time.monotonic()
            server.stop(grace=1)
            stop_s = time.monotonic() - t0
            proxy.cut()
        exposures = next(c for c in server.closers if hasattr(c, "sink"))
        assert stop_s < 15 and (exposures.written, exposures.dropped) == (40, 10)
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT unit, arm, version FROM tablescore_exposures "
                                "ORDER BY unit::int").fetchall()
    assert rows == [(str(u), *_expected(u, 0.5)[:2]) for u in range(40)]


def test_a_unit_that_is_also_a_model_input(tmp_path: Path) -> None:
    """An experiment's unit (store_id) that the model reads as a feature too: the column
    goes to the router and to the model, and each arm scores it."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    import exporters
    import scorer

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"store_id": rng.integers(0, 100, 300).astype(np.int64),
                       "x": rng.normal(size=300)})
    y = (df["x"] + df["store_id"] / 50 > 1).astype(int)
    repo = tmp_path / "repo"
    for v, c in ((1, 1.0), (2, 0.01)):
        exporters.export(LogisticRegression(C=c).fit(df, y), repo / "m" / str(v), name="m")
    (repo / "m" / "config.json").write_text(json.dumps({
        "version_policy": {"all": {}}, "experiment": {
            "name": "e1", "unit": "store_id", "salt": "s", "shadow": None,
            "arms": [{"name": "control", "version": "1", "weight": 0.5},
                     {"name": "candidate", "version": "2", "weight": 0.5}]}}))
    models = {v: scorer.load(repo / "m" / v) for v in ("1", "2")}
    with serve(repo, port=0, ready_timeout=120) as server:
        client = tc.InferenceServerClient(server.address)
        seen = set()
        for unit in range(20):
            a = tc.InferInput("store_id", [1], "INT64")
            a.set_data_from_numpy(np.array([unit], np.int64))
            b = tc.InferInput("x", [1], "FP64")
            b.set_data_from_numpy(np.array([0.3]))
            r = client.infer("m", [a, b])
            version = r.get_response().model_version
            seen.add(version)
            want = models[version].score_arrays(
                {"store_id": np.array([unit]), "x": np.array([0.3])})["probability(1)"]
            assert r.as_numpy("probability(1)").tolist() == want.tolist()
        client.close()
    assert seen == {"1", "2"}  # both arms answered


def test_arms_with_other_outputs(bundles: dict[str, Exported], tmp_path: Path) -> None:
    """An arm whose version has other outputs (a tree: no decision columns) answers with its
    own outputs; a request naming one it lacks is FAILED_PRECONDITION, never INTERNAL."""
    import grpc
    import pytest
    from sklearn.tree import DecisionTreeClassifier

    import exporters

    iris = bundles["iris"]
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(iris.X, iris.est.predict(
        iris.X))
    exporters.export(tree, tmp_path / "tree", sample=iris.X, name="iris")
    repo = tmp_path / "repo"
    publish(tmp_path / "tree", repo, "iris", 1)
    publish(iris.path, repo, "iris", 2)  # the default version: with decision columns
    (repo / "iris" / "config.json").write_text(_config(1.0))  # every unit: the tree
    X = iris.X[:1]
    with serve(repo, port=0, ready_timeout=60, poll_interval=0.2, control_group=0.0) as server:
        client = tc.InferenceServerClient(server.address)
        try:
            version, params, r = _infer(client, X, unit=7)
            assert version == "1" and params["arm"] == "control"
            names = [o.name for o in r.get_response().outputs]
            assert not any(n.startswith("decision") for n in names) and "label" in names
            inp = tc.InferInput("input", [1, X.shape[1]], "FP64")
            inp.set_data_from_numpy(np.ascontiguousarray(X, dtype=np.float64))
            with pytest.raises(tc.InferenceServerException) as err:
                client.infer("iris", [inp], parameters={"customer_id": 7},
                             outputs=[tc.InferRequestedOutput("decision(0)")])
            assert err.value.status() == str(grpc.StatusCode.FAILED_PRECONDITION)
            assert "arms must share the outputs" in err.value.message()
        finally:
            client.close()
