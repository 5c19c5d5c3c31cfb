"""The request pipeline: composition, stage order, absorbed failures, the model resolver."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import exporters
from scorer.errors import ModelNotFoundError, UnknownCategoryError
from scorer.pipeline import ModelResolver, Pipeline, Request, score_model
from tests.datasets import sklearn_dataset


@pytest.fixture(scope="module")
def model():
    X, y = sklearn_dataset("iris")
    est = LogisticRegression(max_iter=1000).fit(X, y)
    b = exporters.build_bundle(est, sample=X, name="iris")
    from scorer.model import Model

    return Model(b), X


class Log:
    """Stages that append what they saw to one shared list."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.store: dict[bytes, dict[str, np.ndarray]] = {}

    # features
    def fill(self, target, request: Request) -> Request:
        self.events.append("features")
        return Request(np.asarray(request.inputs, dtype=np.float64), request.rows,
                       request.outputs)

    # cache
    def get(self, target, request: Request):
        self.events.append("cache.get")
        return self.store.get(target.fingerprint.encode() + request.inputs.tobytes())

    def put(self, target, request: Request, arrays) -> None:
        self.events.append("cache.put")
        self.store[target.fingerprint.encode() + request.inputs.tobytes()] = arrays

    # record
    def record(self, target, request: Request, arrays) -> None:
        self.events.append(f"record:{request.rows}")


def test_unconfigured_stages_leave_the_score_stage_alone(model) -> None:
    m, X = model
    p = Pipeline(ModelResolver({"iris": m}))
    # nothing wraps the score stage: no per-request cost for stages that are not there
    assert p.infer is score_model
    assert p.stages == ["resolve", "score"]
    target, arrays = p("iris", X[:5])
    assert (target.name, target.version) == ("iris", m.version)
    np.testing.assert_array_equal(arrays["probability(0)"], m.predict_proba(X[:5])[:, 0])


def test_stages_run_in_order_and_a_cache_hit_skips_scoring(model) -> None:
    m, X = model
    log = Log()
    scored: list[int] = []

    def score(target, request):
        scored.append(request.rows)
        return score_model(target, request)

    p = Pipeline(ModelResolver({"iris": m}), score, features=log, cache=log, recorders=[log])
    assert p.stages == ["resolve", "features", "cache", "score", "record"]
    _, first = p("iris", X[:3])
    _, again = p("iris", X[:3])
    assert log.events == ["features", "cache.get", "cache.put", "record:3",
                          "features", "cache.get", "record:3"]
    assert scored == [3]  # the second request came from the cache
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])


class Broken:
    def get(self, target, request):
        raise ConnectionError("cache down")

    def put(self, target, request, arrays):
        raise ConnectionError("cache down")

    def record(self, target, request, arrays):
        raise RuntimeError("recorder bug")


def test_a_failing_cache_or_recorder_never_fails_the_request(model) -> None:
    m, X = model
    b = Broken()
    p = Pipeline(ModelResolver({"iris": m}), cache=b, recorders=[b])
    _, arrays = p("iris", X[:4])
    np.testing.assert_array_equal(arrays["label"], m.predict(X[:4]))
    # (a failed lookup is not followed by a store: a hung cache costs one timeout)
    assert p.errors.snapshot() == {("cache", "get"): 1, ("record", "Broken"): 1}

    class StoreFails(Broken):
        def get(self, target, request):
            return None  # a miss: then the store fails

    p = Pipeline(ModelResolver({"iris": m}), cache=StoreFails())
    _, arrays = p("iris", X[:4])
    np.testing.assert_array_equal(arrays["label"], m.predict(X[:4]))
    assert p.errors.snapshot() == {("cache", "put"): 1}


def test_a_failing_sole_recorder_never_fails_the_request(model) -> None:
    """Score and one recorder is composed as its own shortest closure: same guarantees."""
    m, X = model
    p = Pipeline(ModelResolver({"iris": m}), recorders=[Broken()])
    _, arrays = p("iris", X[:4])
    np.testing.assert_array_equal(arrays["label"], m.predict(X[:4]))
    p("iris", X[:1])
    assert p.errors.snapshot() == {("record", "Broken"): 2}


def test_a_stage_refusal_reaches_the_caller(model) -> None:
    m, X = model

    class Refuse:
        def fill(self, target, request):
            raise UnknownCategoryError("unknown entity 42")

    p = Pipeline(ModelResolver({"iris": m}), features=Refuse())
    with pytest.raises(UnknownCategoryError, match="entity 42"):
        p("iris", X[:1])


def test_one_row_as_a_1d_array_is_one_row(model) -> None:
    m, X = model
    seen = []

    class Rows:
        def record(self, target, request, arrays):
            seen.append(request.rows)

    _, arrays = Pipeline(ModelResolver({"iris": m}), recorders=[Rows()])("iris", X[0])
    assert seen == [1] and len(arrays["label"]) == 1


def test_model_resolver_names_what_is_missing(model) -> None:
    m, _ = model
    r = ModelResolver({"churn": m})
    assert r.resolve("churn").name == "churn"  # the served name, not the bundle's
    assert r.resolve("churn", m.version).model is m
    with pytest.raises(ModelNotFoundError, match="unknown model 'iris'"):
        r.resolve("iris")
    with pytest.raises(ModelNotFoundError, match="unknown version '99'"):
        r.resolve("churn", "99")
