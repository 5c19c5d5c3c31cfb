"""Adaptive batching: the Batcher on its own (merging, bounds, error isolation) and through a
server with ``batch_delay_us`` set (concurrent tritonclient requests, results per request)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as tc

from scorer.errors import InputError
from scorer.server import serve
from scorer.server.batching import Batcher
from tests.server.conftest import infer_matrix


class Recorder:
    """A score function that records every call and refuses rows holding a negative value."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, X):
        rows = X.shape[0] if isinstance(X, np.ndarray) else len(X["a"])
        with self.lock:
            self.calls.append(rows)
        time.sleep(self.delay)
        M = X if isinstance(X, np.ndarray) else np.column_stack([X["a"], X["b"]])
        bad = np.flatnonzero((M < 0).any(axis=1))
        if len(bad):
            raise InputError(f"row {bad[0]}: negative value")
        return {"sum": M.sum(axis=1), "first": M[:, 0].copy()}


def _concurrent(batcher: Batcher, inputs: list, rows: list[int]):
    """Every request arrives (is announced) first, then all submit at once."""
    barrier = threading.Barrier(len(inputs), timeout=60)
    for _ in inputs:
        batcher.announce()

    def go(k):
        barrier.wait()
        try:
            return batcher.submit(inputs[k], rows[k], announced=True)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(inputs)) as pool:
        return list(pool.map(go, range(len(inputs))))


def test_concurrent_requests_share_one_call_and_get_their_own_rows():
    rec = Recorder()
    b = Batcher(rec, max_rows=1000, max_delay_s=0.2)
    inputs = [np.full((k + 1, 3), float(k)) for k in range(8)]
    results = _concurrent(b, inputs, [len(x) for x in inputs])
    for k, r in enumerate(results):
        np.testing.assert_array_equal(r.arrays["sum"], np.full(k + 1, 3.0 * k))
        np.testing.assert_array_equal(r.arrays["first"], np.full(k + 1, float(k)))
    assert sum(rec.calls) == sum(len(x) for x in inputs)
    assert len(rec.calls) < len(inputs)  # merged: fewer kernel calls than requests
    # every call is counted once for the statistics
    assert sum(r.executed for r in results) == len(rec.calls)
    assert max(r.batch_requests for r in results) > 1


def test_a_full_batch_does_not_wait_for_the_delay():
    rec = Recorder()
    b = Batcher(rec, max_rows=4, max_delay_s=30.0)
    t0 = time.monotonic()
    results = _concurrent(b, [np.ones((1, 2))] * 4, [1] * 4)
    assert time.monotonic() - t0 < 10.0  # closed by size, long before the 30 s delay
    assert all(r.arrays["sum"].tolist() == [2.0] for r in results)
    assert max(rec.calls) <= 4


def test_large_requests_skip_batching_and_a_lone_request_does_not_wait():
    rec = Recorder()
    b = Batcher(rec, max_rows=10, max_delay_s=30.0)
    b.announce()
    r = b.submit(np.ones((10, 2)), 10, announced=True)  # max_rows or more: scored at once
    assert r.batch_requests == 1 and r.executed and rec.calls == [10]
    t0 = time.monotonic()
    r = b.submit(np.ones((1, 2)), 1)  # nobody else in flight: no reason to wait
    assert time.monotonic() - t0 < 5.0 and r.arrays["sum"].tolist() == [2.0]


def test_the_leader_waits_for_announced_requests_only_until_the_delay():
    rec = Recorder()
    b = Batcher(rec, max_rows=100, max_delay_s=0.2)
    b.announce()  # a request that never comes (its decoding hangs): bounded by the delay
    t0 = time.monotonic()
    r = b.submit(np.ones((1, 2)), 1)
    waited = time.monotonic() - t0
    assert 0.15 <= waited < 5.0 and r.arrays["sum"].tolist() == [2.0]
    b.withdraw()
    # a withdrawn request (refused while decoding) releases a waiting leader at once
    b2 = Batcher(Recorder(), max_rows=100, max_delay_s=30.0)
    b2.announce()
    b2.announce()
    threading.Timer(0.1, b2.withdraw).start()
    t0 = time.monotonic()
    b2.submit(np.ones((1, 2)), 1, announced=True)
    assert time.monotonic() - t0 < 5.0


def test_a_bad_request_fails_alone_with_its_own_row_numbers():
    rec = Recorder()
    b = Batcher(rec, max_rows=1000, max_delay_s=0.2)
    inputs = [np.ones((3, 2)) for _ in range(6)]
    inputs[4] = np.array([[1.0, 1.0], [-1.0, 2.0], [1.0, 1.0]])
    results = _concurrent(b, inputs, [3] * 6)
    assert isinstance(results[4], InputError)
    assert "row 1" in str(results[4])  # row 1 of that request, not of the merged batch
    for k, r in enumerate(results):
        if k != 4:
            np.testing.assert_array_equal(r.arrays["sum"], [2.0, 2.0, 2.0])


def test_only_inputs_of_the_same_form_are_merged():
    rec = Recorder()
    b = Batcher(rec, max_rows=1000, max_delay_s=0.2)
    inputs = [np.ones((2, 2)), np.ones((2, 2), dtype=np.float32),
              {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])}, np.ones((2, 2))]
    results = _concurrent(b, inputs, [2] * 4)
    assert results[2].arrays["sum"].tolist() == [4.0, 6.0]
    assert results[1].arrays["sum"].tolist() == [2.0, 2.0]
    assert results[0].arrays["sum"].tolist() == [2.0, 2.0]
    assert sum(rec.calls) == 8


def test_rounds_follow_each_other_under_sustained_load():
    rec = Recorder(delay=0.01)  # scoring takes time: requests pile up for the next round
    b = Batcher(rec, max_rows=16, max_delay_s=0.005)
    inputs = [np.full((1, 2), float(k)) for k in range(64)]
    results = _concurrent(b, inputs, [1] * 64)
    assert [r.arrays["first"][0] for r in results] == [float(k) for k in range(64)]
    assert max(rec.calls) <= 16 and sum(rec.calls) == 64
    assert len(rec.calls) < 64


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_rows=0, max_delay_s=0.1)
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_rows=10, max_delay_s=0.0)


def test_server_batches_concurrent_clients(main_repo, bundles, monkeypatch):
    import scorer.server.servicer as servicer

    # each request lingers 50 ms after decoding (announced, not yet submitted), so that
    # concurrent requests are in the server together, as under load
    monkeypatch.setattr(servicer, "_DEBUG_DELAY_S", 0.05)
    b = bundles["iris"]
    with serve(main_repo, port=0, poll_interval=0, batch_delay_us=20_000,
               batch_max_rows=256, ready_timeout=60) as server:
        clients = [tc.InferenceServerClient(server.address) for _ in range(12)]
        barrier = threading.Barrier(len(clients), timeout=60)

        def go(k):
            X = b.X[k * 5: k * 5 + 2 + k % 3].copy()
            if k == 7:  # the model refuses missing values: this request alone must fail
                X[1, 2] = np.nan
            barrier.wait()
            try:
                return X, infer_matrix(clients[k], "iris", X)
            except tc.InferenceServerException as exc:
                return X, exc

        with ThreadPoolExecutor(len(clients)) as pool:
            out = list(pool.map(go, range(len(clients))))
        bad = out.pop(7)[1]
        assert isinstance(bad, tc.InferenceServerException)
        assert "INVALID_ARGUMENT" in str(bad.status()) and "row 1" in bad.message()
        for X, res in out:
            proba = np.column_stack([res.as_numpy(f"probability({c})") for c in range(3)])
            np.testing.assert_allclose(proba, b.est.predict_proba(X), rtol=1e-12, atol=1e-14)
            assert (res.as_numpy("label") == b.est.predict(X)).all()
        stats = clients[0].get_inference_statistics("iris", as_json=True)
        s = stats["model_stats"][0]
        assert int(s["inference_count"]) == sum(len(X) for X, _ in out)
        # merged calls: fewer executions than successful requests
        assert int(s["execution_count"]) < int(s["inference_stats"]["success"]["count"])
        for c in clients:
            c.close()
