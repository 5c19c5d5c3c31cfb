"""Fixtures for the server tests: small exported models, repositories, running servers.

Every server listens on 127.0.0.1 with an ephemeral port and is driven by ``tritonclient.grpc``,
the stock client, so wire compatibility is what these tests check.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("tritonclient.grpc")

import tritonclient.grpc as tc
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import exporters
from scorer.bundle import write_bundle
from scorer.server import serve
from scorer.server.app import ServerHandle
from tests.datasets import sklearn_dataset


@dataclass
class Exported:
    """A bundle on disk with the estimator it came from and sample inputs."""

    path: Path
    est: object
    X: object


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    """Source bundles (copied into repositories by the tests).

    - ``iris``, ``iris_v2``: 4 numeric inputs x0..x3, integer labels; v2 differs (C=0.05).
    - ``ridge``: diabetes Ridge regression (``value``).
    - ``mixed``: string ``color`` (unknown categories refused), double ``size``, integer
      ``count``; string labels ``no`` / ``yes``.
    - ``bad_verify``: iris whose recorded verification outputs are wrong (fails to load).
    - ``corrupt``: iris with a damaged parameter table (sha256 mismatch, fails to load).
    """
    root = tmp_path_factory.mktemp("bundles")
    out: dict[str, Exported] = {}
    X, y = sklearn_dataset("iris")
    for name, c in (("iris", 1.0), ("iris_v2", 0.05)):
        est = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(X, y)
        exporters.export(est, root / name, sample=X, name="iris")
        out[name] = Exported(root / name, est, X)
    Xd, yd = sklearn_dataset("diabetes")
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(Xd, yd)
    exporters.export(ridge, root / "ridge", sample=Xd, name="ridge")
    out["ridge"] = Exported(root / "ridge", ridge, Xd)

    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], n).astype(object),
                       "size": rng.normal(size=n), "count": rng.integers(0, 10, n)})
    yy = np.where((df["color"] == "red") ^ (df["size"] > 0), "yes", "no")
    mixed = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(handle_unknown="error"), ["color"]),
                           ("n", StandardScaler(), ["size", "count"])]),
        LogisticRegression()).fit(df, yy)
    exporters.export(mixed, root / "mixed", sample=df, name="mixed")
    out["mixed"] = Exported(root / "mixed", mixed, df)

    est = out["iris"].est
    b = exporters.build_bundle(est, sample=X, name="iris")
    b.verification.expected["probability(0)"] = b.verification.expected["probability(0)"] + 0.5
    write_bundle(b, root / "bad_verify")
    out["bad_verify"] = Exported(root / "bad_verify", est, X)

    shutil.copytree(root / "iris", root / "corrupt")
    table = sorted((root / "corrupt" / "tables").glob("0*.parquet"))[0]
    data = bytearray(table.read_bytes())
    data[len(data) // 2] ^= 0xFF
    table.write_bytes(bytes(data))
    out["corrupt"] = Exported(root / "corrupt", est, X)
    return out


def publish(src: Path, repo: Path, model: str, version: int | str) -> Path:
    """Copy bundle ``src`` to ``repo/model/version`` atomically (copy aside, then rename)."""
    target = repo / model / str(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{version}.tmp-{uuid.uuid4().hex[:8]}"
    shutil.copytree(src, tmp)
    os.rename(tmp, target)
    return target


@pytest.fixture(scope="module")
def main_repo(bundles: dict[str, Exported], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iris (1), ridge (1), mixed (1), broken (1: fails verification)."""
    repo = tmp_path_factory.mktemp("repo")
    publish(bundles["iris"].path, repo, "iris", 1)
    publish(bundles["ridge"].path, repo, "ridge", 1)
    publish(bundles["mixed"].path, repo, "mixed", 1)
    publish(bundles["bad_verify"].path, repo, "broken", 1)
    return repo


@pytest.fixture(scope="module")
def server(main_repo: Path) -> Iterator[ServerHandle]:
    """A server on ``main_repo`` with small limits (5000 rows, 1 MiB messages) and metrics."""
    handle = serve(main_repo, port=0, metrics_port=0, poll_interval=0.2, max_rows=5000,
                   max_message_bytes=1 << 20, threads=4, ready_timeout=60)
    assert handle.ready
    yield handle
    handle.stop(0)


@pytest.fixture()
def client(server: ServerHandle) -> Iterator[tc.InferenceServerClient]:
    c = tc.InferenceServerClient(server.address)
    yield c
    c.close()


def infer_matrix(client: tc.InferenceServerClient, model: str, X: np.ndarray,
                 datatype: str = "FP64", version: str = "", name: str = "input",
                 outputs: list[str] | None = None) -> tc.InferResult:
    """Score ``X`` as one 2-D tensor (raw_input_contents, as tritonclient sends)."""
    dtype = {"FP64": np.float64, "FP32": np.float32, "INT64": np.int64,
             "INT32": np.int32}[datatype]
    arr = np.ascontiguousarray(X, dtype=dtype)
    inp = tc.InferInput(name, list(arr.shape), datatype)
    inp.set_data_from_numpy(arr)
    req_out = [tc.InferRequestedOutput(o) for o in outputs] if outputs else None
    return client.infer(model, [inp], model_version=version, outputs=req_out)
