"""A smoke run of the benchmark harness on a tiny configuration: every adapter runs (or is
recorded as skipped with a reason, e.g. ONNX Runtime when the bench extra is absent), the
results are JSON-serialisable, and tablescore's outputs equal the original model's."""

from __future__ import annotations

import json

from benchmarks.run import smoke


def test_smoke_run(tmp_path):
    results = smoke(families=("logreg", "forest"), out=tmp_path)
    json.dumps(results)
    assert list(tmp_path.glob("*.json")) and list(tmp_path.glob("*.md"))
    for fam in ("logreg", "forest"):
        engines = results["families"][fam]["engines"]
        assert engines["native"]["status"] == "ok"
        ours = engines["tablescore"]
        assert ours["status"] == "ok", ours.get("reason")
        assert ours["faithfulness"]["max_abs_diff"] <= 1e-12
        assert ours["faithfulness"]["label_mismatches"] == 0
        assert ours["latency"]["p50_us"] > 0
        onnx = engines["onnxruntime"]
        assert onnx["status"] in ("ok", "skipped") and (onnx["status"] == "ok"
                                                         or onnx["reason"])


def test_step_profile_lists_every_step(tmp_path):
    from benchmarks.steps import profile

    rows = profile("logreg", rows=300, repeats=1, workdir=tmp_path)
    names = [what for what, _ in rows]
    assert names[0].startswith("encode") and names[-1] == "whole call"
    assert any(n.startswith("step ") for n in names)
    assert all(ns > 0 for _, ns in rows)


def test_handler_profile_times_the_request_path(tmp_path):
    from benchmarks.handler import measure

    res = measure(["logreg"], calls=20, repeats=1, workdir=tmp_path, n_train=300)
    parts = res["logreg"]
    assert set(parts) == {"ModelInfer handler (bytes in, bytes out)", "score_arrays, one row",
                          "predict_proba, one row"}
    assert all(us > 0 for us in parts.values())
    # the handler does the scoring and more
    assert parts["ModelInfer handler (bytes in, bytes out)"] > parts["predict_proba, one row"]


def test_handler_profile_cold_evicts_the_caches(tmp_path):
    from benchmarks.handler import measure

    hot = measure(["logreg"], calls=50, repeats=1, workdir=tmp_path / "hot", n_train=300)
    cold = measure(["logreg"], calls=50, repeats=1, workdir=tmp_path / "cold", n_train=300,
                   cold=True)
    assert set(cold["logreg"]) == set(hot["logreg"])
    key = "ModelInfer handler (bytes in, bytes out)"
    # a call after the caches were evicted pays for its footprint: several times the hot cost
    assert cold["logreg"][key] > 2 * hot["logreg"][key]
