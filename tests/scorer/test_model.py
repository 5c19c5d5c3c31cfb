"""``scorer.Model``'s one-row path (a (1, n_inputs) numeric array): the same answers and the
same errors as the general path, for every input form that may take it; and how a large
batch's chunks are shared between threads."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import exporters
import scorer
from scorer.errors import MissingValueError, ShapeError, TablescoreError
from scorer.ops import wait_background


def _fit(kind: str):
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    X[:, 0] = rng.integers(0, 4, size=400)  # ties with thresholds
    if kind == "histgb":
        X[rng.random(X.shape) < 0.1] = np.nan  # rows that take the NaN walk
    y = (np.nan_to_num(X[:, 1]) + np.nan_to_num(X[:, 4]) > 0).astype(int)
    est = {
        "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
        "gbm": lambda: GradientBoostingClassifier(n_estimators=19, random_state=0),
        "forest": lambda: RandomForestClassifier(n_estimators=9, max_depth=6, random_state=0),
        "histgb": lambda: HistGradientBoostingRegressor(max_iter=17, random_state=0),
    }[kind]()
    return est.fit(X, y), X


@pytest.fixture(scope="module", params=["logreg", "gbm", "forest", "histgb"])
def fitted(request, tmp_path_factory):
    est, X = _fit(request.param)
    path = tmp_path_factory.mktemp(request.param) / "bundle"
    exporters.export(est, path, sample=X[:50])
    return est, scorer.load(path), X


def _method(model):
    return model.predict_proba if hasattr(model, "predict_proba") else model.predict


def test_one_row_equals_the_batch_row(fitted):
    est, model, X = fitted
    batch = _method(model)(X)
    original = _method(est)
    for i in range(0, len(X), 7):
        row = X[i : i + 1]
        got = _method(model)(row)
        np.testing.assert_array_equal(got, batch[i : i + 1])
        np.testing.assert_allclose(got, original(row), rtol=0, atol=1e-12)
        # and what predict returns through the same path
        np.testing.assert_array_equal(model.predict(row), model.predict(X)[i : i + 1])
    assert model._single_plan is not None  # the one-row path was taken


@pytest.mark.parametrize("form", ["float32", "int64", "fortran", "strided", "readonly"])
def test_one_row_input_forms(fitted, form):
    """Rows the entry points were not resolved for go through the dispatchers, same result."""
    _, model, X = fitted
    base = np.nan_to_num(X[5:6])
    row = {
        "float32": lambda: base.astype(np.float32),
        "int64": lambda: np.round(base).astype(np.int64),
        "fortran": lambda: np.asfortranarray(base),
        "strided": lambda: np.repeat(base, 2, axis=1)[:, ::2],
        "readonly": lambda: _readonly(base),
    }[form]()
    want = _method(model)(np.ascontiguousarray(row, dtype=np.float64).repeat(3, axis=0))[:1]
    np.testing.assert_array_equal(_method(model)(row), want)


def test_one_row_of_an_unpickled_array_takes_the_entry_point(fitted):
    """An unpickled float64 array carries a dtype object equal to, but not the same as,
    numpy's own: it still gets the resolved input copy, not the dispatcher's."""
    import pickle

    _, model, X = fitted
    row = pickle.loads(pickle.dumps(np.nan_to_num(X[7:8])))
    assert row.dtype == np.float64 and row.dtype is not np.dtype(np.float64)
    want = _method(model)(np.nan_to_num(X[7:8]).repeat(3, axis=0))[:1]
    model._single_copy.clear()
    np.testing.assert_array_equal(_method(model)(row), want)
    assert True in model._single_copy  # the writeable C-order float64 copy was resolved


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def test_one_row_errors_are_the_general_paths():
    est, X = _fit("logreg")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        exporters.export(est, f"{tmp}/b", sample=X[:50])
        model = scorer.load(f"{tmp}/b")
    model.predict_proba(X[:1])  # resolve the one-row path first
    bad = X[:1].copy()
    bad[0, 2] = np.nan
    with pytest.raises(MissingValueError, match=r"field 'x2' has missing values \(row 0\)"):
        model.predict_proba(bad)
    with pytest.raises(ShapeError, match="expected 6 features, got 5"):
        model.predict_proba(X[:1, :5])
    # the model still answers after the refusals
    np.testing.assert_array_equal(model.predict_proba(X[:1]), model.predict_proba(X[:2])[:1])


@pytest.fixture(scope="module", params=["logreg", "gbm", "forest"])
def classifier(request, tmp_path_factory):
    est, X = _fit(request.param)
    path = tmp_path_factory.mktemp(f"{request.param}-labels") / "bundle"
    exporters.export(est, path, sample=X[:50])
    return scorer.load(path)


@pytest.mark.parametrize("rule", ["argmax", "threshold"])
def test_one_row_labels_follow_the_batch_rules(classifier, rule):
    """A one-row result takes scalar label rules: the same class as the batch rule for each
    row, ties and missing predictions (NaN: no class, None) included."""
    model = classifier
    o = model._label
    saved = model._label_rules[o.name]
    rule0, sel, _, classes = saved
    before = classes.copy()
    rng = np.random.default_rng(0)
    res = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0, np.nan], size=(200, len(model._keep)))
    if rule != rule0:  # the same columns, read under the other rule
        col = int(np.atleast_1d(sel)[0])
        model._label_rules[o.name] = (
            ("threshold", col, 0.5, classes) if rule == "threshold"
            else ("argmax", np.array([col, col + 1]) % len(model._keep), 0.0, classes))
    try:
        batch = model._labels(res, o)
        for i in range(len(res)):
            one = model._labels(res[i : i + 1], o)
            assert one.shape == (1,)
            assert one[0] == batch[i] or (one[0] is None and batch[i] is None), i
        assert any(v is None for v in batch)  # the missing case was exercised
        one = model._labels(res[2:3], o)
        if one[0] is not None:
            one[0] = classes[0] if one[0] != classes[0] else classes[-1]
        np.testing.assert_array_equal(classes, before)  # a result never aliases classes
    finally:
        model._label_rules[o.name] = saved


def test_one_row_plan_folds_the_link_into_the_tree_step(tmp_path):
    """A boosted binary classifier (margin, then sigmoid) takes one call per row: the link
    runs inside the tree step's one-row kernel, with the batch path's results bit for bit."""
    est, X = _fit("gbm")
    exporters.export(est, tmp_path / "b", sample=X[:50])
    model = scorer.load(tmp_path / "b")
    assert [b.link for b in model._plan] == [False, True]
    batch = model.predict_proba(X)
    model.predict_proba(X[:1])
    # the folded one-row kernel compiles in the background (at once from a warm cache)
    assert wait_background(120)
    for i in range(0, len(X), 5):
        np.testing.assert_array_equal(model.predict_proba(X[i : i + 1]), batch[i : i + 1])
    assert model._single_plan is not None and len(model._single_plan) == 1


def test_scalar_argmax_is_numpys():
    """The one-row label rule's argmax: NumPy's answer (first NaN, else first maximum; -1 when
    every value is NaN) on short rows with ties, infinities and NaN."""
    from scorer.model import _argmax

    rng = np.random.default_rng(1)
    for _ in range(5000):
        v = rng.choice([0.0, 0.25, 0.5, -1.0, np.inf, -np.inf, np.nan], size=rng.integers(1, 6))
        want = -1 if np.isnan(v).all() else int(np.argmax(v))
        assert _argmax(v.tolist()) == want, v


# --- chunks shared between threads (scorer.model._share) --------------------------------------
def test_share_runs_every_chunk_once_on_several_threads():
    from scorer.model import _share

    seen: list[tuple[int, str]] = []
    lock = threading.Lock()
    # the first two chunks wait for each other: they can only finish on two threads at once
    meet = threading.Barrier(2, timeout=10)

    def work(i0: int) -> None:
        if i0 < 20:
            meet.wait()
        with lock:
            seen.append((i0, threading.current_thread().name))

    _share(work, range(0, 1000, 10), 3)
    assert sorted(i for i, _ in seen) == list(range(0, 1000, 10))
    assert len({name for _, name in seen}) >= 2


@pytest.mark.parametrize("bad", [0, 10, 490])
def test_share_reraises_a_chunks_error_after_every_thread_is_done(bad):
    from scorer.model import _share

    running = 0
    lock = threading.Lock()

    def work(i0: int) -> None:
        nonlocal running
        with lock:
            running += 1
        try:
            if i0 == bad:
                raise MissingValueError(f"chunk {i0}")
            time.sleep(0.002)
        finally:
            with lock:
                running -= 1

    with pytest.raises(MissingValueError, match=f"chunk {bad}$"):
        _share(work, range(0, 500, 10), 2)
    assert running == 0  # no helper still writes after the caller has its error


def test_large_batch_from_several_callers_at_once(tmp_path):
    """Several threads scoring large batches at once share the helper pool: every caller
    gets its own rows' answers."""
    import numba

    est, X = _fit("logreg")
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    rng = np.random.default_rng(5)
    batches = [rng.normal(size=(5 * model._chunk_rows + 7, X.shape[1])) for _ in range(4)]
    want = [model.predict_proba(b) for b in batches]
    before = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        got: list = [None] * len(batches)

        def call(k: int) -> None:
            for _ in range(3):
                got[k] = model.predict_proba(batches[k])

        threads = [threading.Thread(target=call, args=(k,)) for k in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        numba.set_num_threads(before)
    for g, w, b in zip(got, want, batches, strict=True):
        np.testing.assert_array_equal(g, w)
        np.testing.assert_allclose(w, est.predict_proba(b), rtol=1e-12, atol=1e-12)


def test_serial_scoring_equals_the_default(fitted):
    _, model, X = fitted
    # past the parallel kernels' threshold, and three chunks and a part (serial: the chunks
    # one after the other in this thread)
    big = np.repeat(X, 3 * model._chunk_rows // len(X) + 2, axis=0)
    assert big.shape[0] > 3 * model._chunk_rows
    serial, default = model.score_arrays(big, serial=True), model.score_arrays(big)
    assert serial.keys() == default.keys()
    for name in default:
        np.testing.assert_array_equal(serial[name], default[name])
    small = X[:37]  # and below the chunk size (the whole batch at once)
    serial, default = model.score_arrays(small, serial=True), model.score_arrays(small)
    for name in default:
        np.testing.assert_array_equal(serial[name], default[name])


def test_serial_scoring_refuses_a_row_as_the_default_does(tmp_path):
    """A refused row in a later chunk: the same error, naming the same row, either way."""
    est, X = _fit("logreg")
    exporters.export(est, tmp_path / "m", sample=X)
    model = scorer.load(tmp_path / "m")
    big = np.repeat(X, 2 * model._chunk_rows // len(X) + 2, axis=0)
    big[model._chunk_rows + 3, 2] = np.inf
    errors = []
    for serial in (True, False):
        with pytest.raises(TablescoreError) as exc:
            model.score_arrays(big, serial=serial)
        errors.append(str(exc.value))
    assert errors[0] == errors[1]
    assert str(model._chunk_rows + 3) in errors[0]


def test_predict_of_several_targets_returns_them_all(tmp_path):
    from sklearn.linear_model import LinearRegression

    X = np.random.default_rng(0).normal(size=(60, 3))
    est = LinearRegression().fit(X, np.c_[X[:, 0], 10 + X[:, 1]])
    exporters.export(est, tmp_path / "m", sample=X)
    got = scorer.load(tmp_path / "m").predict(X)
    assert got.shape == (60, 2)  # the second target was dropped silently
    np.testing.assert_allclose(got, est.predict(X), rtol=1e-12, atol=1e-12)
