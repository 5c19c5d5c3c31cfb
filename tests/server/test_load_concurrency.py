"""RepositoryModelLoad of a slow model never starves inference and health checks (#19)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tc
from tritonclient.utils import InferenceServerException

from scorer.server import repository, serve
from tests.server.conftest import infer_matrix, publish

LOAD_S = 2.0


def test_concurrent_slow_loads_leave_threads_for_inference(tmp_path: Path, bundles,
                                                           monkeypatch) -> None:
    publish(bundles["iris"].path, tmp_path, "iris", 1)
    # two request threads, as on a 2-core machine; nobody watches: loads come by request only
    with serve(tmp_path, port=0, poll_interval=0, threads=2, ready_timeout=60) as handle:
        monkeypatch.setattr(repository, "_DEBUG_LOAD_DELAY_S", LOAD_S, raising=False)
        publish(bundles["iris_v2"].path, tmp_path, "iris", 2)
        results: list[object] = []
        lock = threading.Lock()

        def load() -> None:
            c = tc.InferenceServerClient(handle.address)
            t0 = time.monotonic()
            try:
                c.load_model("iris", client_timeout=3 * LOAD_S)
                out: object = "ok"
            except InferenceServerException as exc:
                out = exc
            with lock:
                results.append((out, time.monotonic() - t0))
            c.close()

        loaders = [threading.Thread(target=load) for _ in range(4)]
        for t in loaders:
            t.start()
        time.sleep(0.3)  # the loads are in the server, waiting on the slow load
        client = tc.InferenceServerClient(handle.address)
        t0 = time.monotonic()
        assert client.is_server_live(client_timeout=1.0)
        r = infer_matrix(client, "iris", np.zeros((1, 4)))
        took = time.monotonic() - t0
        assert r.get_response().model_version == "1"  # version 2 is still loading
        assert took < 0.5, f"inference and health waited {took:.2f} s behind loads"
        for t in loaders:
            t.join(4 * LOAD_S)
        client.close()
        # two waited for the one load (joined it), two were turned away at once
        ok = [d for out, d in results if out == "ok"]
        refused = [(out, d) for out, d in results if out != "ok"]
        assert len(ok) == 2 and all(d >= LOAD_S - 0.5 for d in ok), results
        assert len(refused) == 2, results
        for exc, d in refused:
            assert isinstance(exc, InferenceServerException)
            assert exc.status() == "StatusCode.UNAVAILABLE" and "retry" in exc.message()
            assert d < 1.0
        assert handle.repository.is_ready("iris", "2")


def test_load_waiters_must_be_positive(tmp_path: Path) -> None:
    from scorer.server.config import ServerConfig

    with pytest.raises(ValueError, match="load_waiters"):
        ServerConfig(repository=tmp_path, load_waiters=0)


def test_a_load_superseded_while_waited_for_is_waited_for_again(tmp_path: Path, bundles,
                                                                monkeypatch) -> None:
    """RepositoryModelLoad while the version's files change: the watcher starts a new load
    (the first ends early); the caller waits for the new one and gets the model, not
    FAILED_PRECONDITION 'failed to load: version 1: loading'."""
    import os

    publish(bundles["iris"].path, tmp_path, "iris", 1)
    with serve(tmp_path, port=0, poll_interval=0.1, threads=2, ready_timeout=60) as handle:
        client = tc.InferenceServerClient(handle.address)
        client.unload_model("iris")
        monkeypatch.setattr(repository, "_DEBUG_LOAD_DELAY_S", 1.0, raising=False)
        manifest = tmp_path / "iris" / "1" / "manifest.json"

        def touch() -> None:
            time.sleep(0.4)
            st = manifest.stat()
            os.utime(manifest, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

        t = threading.Thread(target=touch)
        t.start()
        client.load_model("iris", client_timeout=30)  # no exception: it waited for the reload
        t.join()
        assert client.is_model_ready("iris", "1")
        client.close()
