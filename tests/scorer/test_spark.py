"""scorer.spark.score_dataframe on Spark local[2]: equal to in-process scoring bit for bit,
the bundle loaded once per worker process; registry_bundle materializes a registry version."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import exporters
import scorer
from scorer.errors import InputError
from scorer.spark import bundle_bytes, registry_bundle

ROOT = Path(__file__).resolve().parents[2]
NUM = ["age", "income", "tenure"]


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64),
        "age": rng.integers(18, 90, n).astype(np.float64),
        "income": rng.lognormal(10, 1, n),
        "tenure": rng.normal(5, 2, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    df = frame(400)
    y = (df["age"] + np.log(df["income"]) * 3 > 70).astype(int)
    root = tmp_path_factory.mktemp("spark-bundles")
    num = make_pipeline(StandardScaler(), LogisticRegression()).fit(df[NUM], y)
    exporters.export(num, root / "num", sample=df[NUM])
    city = make_pipeline(ColumnTransformer([("n", StandardScaler(), NUM),
                                            ("c", OneHotEncoder(), ["city"])]),
                         LogisticRegression()).fit(df[[*NUM, "city"]], y)
    exporters.export(city, root / "city", sample=df[[*NUM, "city"]])
    return {"num": root / "num", "city": root / "city"}


@pytest.fixture(scope="module")
def spark():
    pytest.importorskip("pyspark", reason="pyspark is not installed (extra 'spark')")
    from pyspark.sql import SparkSession

    # the Python workers run this interpreter with this checkout importable
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    session = (SparkSession.builder.master("local[2]").appName("tablescore-test")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.ui.enabled", "false")
               .config("spark.driver.memory", "1g")
               .getOrCreate())
    yield session
    session.stop()


def assert_same(got: pd.DataFrame, want: dict[str, np.ndarray]) -> None:
    for name, w in want.items():
        g = got[name].to_numpy()
        if w.dtype.kind == "f":
            assert np.array_equal(g.astype(np.float64).view(np.int64), w.view(np.int64)), name
        else:
            assert (g == w).all(), name


@pytest.mark.parametrize(("which", "broadcast"), [("num", True), ("city", False)])
def test_local2_equals_in_process_scoring(spark, bundles, which, broadcast):
    from scorer.spark import score_dataframe

    pdf = frame(20_000, seed=1)
    df = spark.createDataFrame(pdf).repartition(4)
    scored = score_dataframe(df, bundles[which], broadcast=broadcast,
                             max_records_per_batch=3000)
    model = scorer.load(bundles[which])
    assert scored.columns == [*pdf.columns, *model.output_names]
    got = scored.toPandas().sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got[pdf.columns.tolist()], pdf, check_dtype=False)
    inputs = pdf[NUM].to_numpy() if which == "num" else pdf[[*NUM, "city"]]
    assert_same(got, model.score_arrays(inputs))


def test_each_worker_loads_the_bundle_once(spark, bundles):
    import pyarrow as pa

    from scorer.spark import score_dataframe

    df = spark.createDataFrame(frame(4000)).repartition(8)  # 8 tasks on 2 worker slots
    for _ in range(2):  # two jobs: the second reuses the workers (and their model)
        rows = score_dataframe(df, bundles["num"], max_records_per_batch=500).collect()
        assert len(rows) == 4000

    key = scorer.load(bundles["num"]).fingerprint

    def probe(batches):  # a job of the same kind (mapInArrow) on the same workers
        from scorer import spark as s

        for b in batches:
            yield pa.RecordBatch.from_pydict({"pid": [os.getpid()] * b.num_rows,
                                              "loads": [s.LOADS.get(key, 0)] * b.num_rows})

    seen = {r.pid: r.loads for r in df.mapInArrow(probe, "pid long, loads long").collect()}
    # (workers are reused across this module's tests: other bundles' loads are not counted)
    assert max(seen.values()) == 1, seen  # loaded by the workers, never twice in one


def test_a_missing_input_column_is_refused_on_the_driver(spark, bundles):
    from scorer.spark import score_dataframe

    df = spark.createDataFrame(frame(10).drop(columns="tenure"))
    with pytest.raises(InputError, match="lacks input field 'tenure'"):
        score_dataframe(df, bundles["num"])


def test_bundle_bytes_are_reproducible(bundles, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundles["num"], copy)
    os.utime(copy / "manifest.json", (0, 0))
    assert bundle_bytes(copy) == bundle_bytes(bundles["num"])


def test_registry_bundle_materializes_a_version(bundles, tmp_path):
    from scorer.registry import open_store

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    store = open_store(url)
    store.publish(bundles["num"], "churn")
    store.publish(bundles["city"], "churn")
    store.set_alias("churn", "prod", 1)
    store.close()
    fp = {k: scorer.load(v).fingerprint for k, v in bundles.items()}
    got = registry_bundle(url, "churn", "prod", tmp_path / "b")
    assert got.name == fp["num"] and scorer.load(got).fingerprint == fp["num"]
    assert registry_bundle(url, "churn", dest=tmp_path / "b").name == fp["city"]  # newest
    with pytest.raises(scorer.errors.ModelNotFoundError, match="no version or alias 'x'"):
        registry_bundle(url, "churn", "x", tmp_path / "b")
