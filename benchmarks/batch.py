"""Batch scoring throughput (#25): ``tablescore score`` on Parquet in / out against pandas plus
the original model's ``predict_proba``, and ``scorer.spark.score_dataframe`` on Spark
``local[2]`` against a ``pandas_udf`` calling the original model, in the same run.

    python -m benchmarks.batch --rows 10000000 --spark-rows 1000000

Writes ``benchmarks/results/batch-<date>.json``. The model: scikit-learn's
HistGradientBoostingClassifier (100 iterations, 31 leaves) on 20 numeric features.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd  # (module level: pandas_udf resolves its type hints here)

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [f"f{j}" for j in range(20)]


def make_data(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` x 20 normal features and an id, written in 1M-row parts (row groups 100k)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    writer = None
    for i0 in range(0, rows, 1_000_000):
        m = min(1_000_000, rows - i0)
        cols = {"id": np.arange(i0, i0 + m, dtype=np.int64)}
        cols.update({f: rng.normal(size=m) for f in FEATURES})
        t = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, t.schema)
        writer.write_table(t, row_group_size=100_000)
    writer.close()


def train(tmp: Path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    import exporters

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(20_000, 20)), columns=FEATURES)
    y = (X["f0"] + X["f1"] * X["f2"] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(X, y)
    exporters.export(model, tmp / "bundle", sample=X.iloc[:500])
    return model


def bench_cli(tmp: Path, data: Path, rows: int) -> dict:
    out = tmp / "scored.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tablescore", "score", str(tmp / "bundle"),
                    "--data", str(data), "--out", str(out), "--keep", "id"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    out.unlink()
    return {"seconds": wall, "rows_per_s": rows / wall,
            "what": "whole command: process start, bundle load + verify, read, score, write"}


def bench_pandas(model, data: Path, tmp: Path, rows: int) -> dict:
    t0 = time.perf_counter()
    df = pd.read_parquet(data)
    proba = model.predict_proba(df[FEATURES])
    out = pd.DataFrame({"id": df["id"].to_numpy(),
                        **{f"probability({c})": proba[:, k]
                           for k, c in enumerate(model.classes_)}})
    out.to_parquet(tmp / "pandas.parquet", index=False)
    wall = time.perf_counter() - t0
    return {"seconds": wall, "rows_per_s": rows / wall,
            "what": "pd.read_parquet, predict_proba on the whole frame, to_parquet (in memory)"}


def bench_spark(model, tmp: Path, data: Path, rows: int) -> dict:
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf, struct

    from scorer.spark import score_dataframe

    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = str(ROOT)
    spark = (SparkSession.builder.master("local[2]").appName("tablescore-bench")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "2g")
             .getOrCreate())
    try:
        df = spark.read.parquet(str(data))
        bundle = tmp / "bundle"
        # warm: each worker loads the bundle and its kernels once (not timed)
        score_dataframe(df.limit(1000), bundle).write.format("noop").mode("overwrite").save()
        t0 = time.perf_counter()
        score_dataframe(df, bundle).write.format("noop").mode("overwrite").save()
        ours = time.perf_counter() - t0

        bc = spark.sparkContext.broadcast(model)

        @pandas_udf("double")
        def p1(X: pd.DataFrame) -> pd.Series:
            return pd.Series(bc.value.predict_proba(X[FEATURES])[:, 1])

        df.limit(1000).withColumn("p", p1(struct(*FEATURES))).write.format("noop") \
            .mode("overwrite").save()
        t0 = time.perf_counter()
        df.withColumn("p", p1(struct(*FEATURES))).write.format("noop").mode("overwrite").save()
        udf = time.perf_counter() - t0
    finally:
        spark.stop()
    return {"score_dataframe": {"seconds": ours, "rows_per_s": rows / ours},
            "pandas_udf_predict_proba": {"seconds": udf, "rows_per_s": rows / udf},
            "what": "local[2], read Parquet, score, write to Spark's noop sink; one warm-up "
                    "job of 1000 rows each first"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--spark-rows", type=int, default=1_000_000)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         f"batch-{date.today().isoformat()}.json"))
    args = ap.parse_args(argv)
    import sklearn

    result: dict = {"date": date.today().isoformat(), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "sklearn": sklearn.__version__},
        "model": "HistGradientBoostingClassifier(max_iter=100), 20 numeric features"}
    with tempfile.TemporaryDirectory(prefix="tablescore-bench-batch-") as d:
        tmp = Path(d)
        model = train(tmp)
        data = tmp / "data.parquet"
        make_data(data, args.rows)
        result["rows"] = args.rows
        result["tablescore_score"] = bench_cli(tmp, data, args.rows)
        result["pandas_predict_proba"] = bench_pandas(model, data, tmp, args.rows)
        if not args.no_spark:
            sdata = tmp / "spark.parquet"
            make_data(sdata, args.spark_rows, seed=2)
            result["spark_rows"] = args.spark_rows
            result["spark"] = bench_spark(model, tmp, sdata, args.spark_rows)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
