"""Batch scoring throughput (#25): ``tablescore score`` on Parquet in / out against pandas plus
the original model's ``predict_proba`` (each a process of its own: rows/s and peak RSS), the
must-hold "peak RSS scoring 2M rows < 1.5x peak RSS scoring 200k rows", and
``scorer.spark.score_dataframe`` on Spark ``local[2]`` against a ``pandas_udf`` calling the
original model and ``mlflow.pyfunc.spark_udf`` (where MLflow imports), in the same run.

    python -m benchmarks.batch --rows 10000000 --spark-rows 200000

MLflow is not a dependency: install it in a venv of its own that sees this one's packages
(the same pyspark, scikit-learn, pyarrow), and the Spark part runs under it::

    python -m venv benchmarks/.venvs/mlflow
    echo "$(python -c 'import site; print(site.getsitepackages()[0])')" \
        > benchmarks/.venvs/mlflow/lib/python3.11/site-packages/main-venv.pth
    benchmarks/.venvs/mlflow/bin/pip install mlflow-skinny

Writes ``benchmarks/results/batch-<date>.json``. The model: scikit-learn's
HistGradientBoostingClassifier (100 iterations, 31 leaves) on 20 numeric features.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
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
MLFLOW_PYTHON = ROOT / "benchmarks" / ".venvs" / "mlflow" / "bin" / "python"


# Forks and execs the command, then writes its exit code and peak RSS. A child's peak RSS
# starts at its parent's RSS at the fork (Linux carries the high-water mark across fork and
# exec): measured from this process (hundreds of MiB: the data, the model), every child would
# read at least that much. This launcher holds about 10 MiB.
_LAUNCHER = ("import json, os, sys\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    os.execv(sys.argv[2], sys.argv[2:])\n"
             "_, status, usage = os.wait4(pid, 0)\n"
             "with open(sys.argv[1], 'w') as f:\n"
             "    json.dump([os.waitstatus_to_exitcode(status), usage.ru_maxrss], f)\n")


def run_child(argv: list[str]) -> dict:
    """Run ``argv`` (a Python command line) as a child process: wall seconds and the child's
    peak RSS (``wait4``'s ``ru_maxrss``, through :data:`_LAUNCHER`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.NamedTemporaryFile(suffix=".json") as res:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", _LAUNCHER, res.name,
                        sys.executable, *argv], env=env, stdout=subprocess.DEVNULL, check=True)
        wall = time.perf_counter() - t0
        code, maxrss_kib = json.loads(Path(res.name).read_text())
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {code}")
    return {"seconds": wall, "peak_rss_mib": maxrss_kib / 1024}


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
    r = run_child(["-m", "tablescore", "score", str(tmp / "bundle"), "--data", str(data),
                   "--out", str(out), "--keep", "id"])
    out.unlink()
    return {**r, "rows_per_s": rows / r["seconds"],
            "what": "whole command: process start, bundle load + verify, read, score, write"}


def pandas_child(model_pkl: str, data: str, out: str) -> None:
    """The pandas baseline, in a process of its own (its peak RSS)."""
    with open(model_pkl, "rb") as f:
        model = pickle.load(f)
    df = pd.read_parquet(data)
    proba = model.predict_proba(df[FEATURES])
    pd.DataFrame({"id": df["id"].to_numpy(),
                  **{f"probability({c})": proba[:, k] for k, c in enumerate(model.classes_)}}
                 ).to_parquet(out, index=False)


def bench_pandas(tmp: Path, data: Path, rows: int) -> dict:
    out = tmp / "pandas.parquet"
    r = run_child(["-m", "benchmarks.batch", "--pandas-child", str(tmp / "model.pkl"),
                   str(data), str(out)])
    out.unlink()
    return {**r, "rows_per_s": rows / r["seconds"],
            "what": "whole process: start, unpickle, pd.read_parquet, predict_proba on the "
                    "whole frame, to_parquet (in memory)"}


def bench_rss(tmp: Path) -> dict:
    """The must-hold: peak RSS of ``tablescore score`` on 2M rows < 1.5x on 200k rows."""
    res = {}
    for rows in (200_000, 2_000_000):
        data = tmp / f"rss-{rows}.parquet"
        make_data(data, rows, seed=3)
        res[str(rows)] = bench_cli(tmp, data, rows)
        data.unlink()
    ratio = res["2000000"]["peak_rss_mib"] / res["200000"]["peak_rss_mib"]
    return {"tablescore_score": res, "ratio_2m_over_200k": ratio, "holds": ratio < 1.5}


def bench_spark(tmp: Path, data: Path, rows: int, rounds: int) -> dict:
    """Spark ``local[2]``: ``score_dataframe`` vs a ``pandas_udf`` calling the original model
    vs ``mlflow.pyfunc.spark_udf`` (where MLflow imports), interleaved ``rounds`` times."""
    from pyspark.sql import SparkSession
    from pyspark.sql.functions import pandas_udf, struct
    from pyspark.sql.types import ArrayType, DoubleType

    from scorer.spark import score_dataframe

    with open(tmp / "model.pkl", "rb") as f:
        model = pickle.load(f)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = str(ROOT)
    spark = (SparkSession.builder.master("local[2]").appName("tablescore-bench")
             .config("spark.ui.enabled", "false").config("spark.driver.memory", "2g")
             .getOrCreate())
    engines: dict = {}
    try:
        df = spark.read.parquet(str(data))
        bundle = tmp / "bundle"
        engines["score_dataframe"] = lambda d: score_dataframe(d, bundle)
        bc = spark.sparkContext.broadcast(model)

        @pandas_udf("double")
        def p1(X: pd.DataFrame) -> pd.Series:
            return pd.Series(bc.value.predict_proba(X[FEATURES])[:, 1])

        engines["pandas_udf_predict_proba"] = lambda d: d.withColumn("p", p1(struct(*FEATURES)))
        mlflow_note = None
        try:
            import mlflow.pyfunc
            import mlflow.sklearn

            # (MLflow 3 saves with skops, which refuses to load a tree predictor unless told
            # to trust it: this model is our own)
            mlflow.sklearn.save_model(
                model, str(tmp / "mlflow-model"), pyfunc_predict_fn="predict_proba",
                skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor."
                                     "TreePredictor"])
            mudf = mlflow.pyfunc.spark_udf(spark, str(tmp / "mlflow-model"),
                                           result_type=ArrayType(DoubleType()),
                                           env_manager="local")
            engines["mlflow_spark_udf_predict_proba"] = \
                lambda d: d.withColumn("p", mudf(struct(*FEATURES)))
        except ImportError as exc:
            mlflow_note = f"not run: MLflow does not import here ({exc})"

        def job(name: str, d) -> None:
            engines[name](d).write.format("noop").mode("overwrite").save()

        for name in engines:  # warm: each worker loads the model (and its kernels) once
            job(name, df.limit(1000))
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(rounds):
            for name in engines:
                t0 = time.perf_counter()
                job(name, df)
                times[name].append(time.perf_counter() - t0)
    finally:
        spark.stop()
    out: dict = {name: {"seconds": ts, "rows_per_s": rows / min(ts),
                        "vs_score_dataframe": min(ts) / min(times["score_dataframe"])}
                 for name, ts in times.items()}
    if mlflow_note:
        out["mlflow_spark_udf_predict_proba"] = mlflow_note
    else:
        import mlflow

        out["mlflow_version"] = mlflow.__version__
    out["what"] = (f"local[2], read Parquet, score, write to Spark's noop sink; one warm-up "
                   f"job of 1000 rows per engine, then {rounds} rounds interleaved; rows_per_s "
                   f"from the fastest round; vs_score_dataframe: seconds over "
                   f"score_dataframe's (fastest rounds)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--spark-rows", type=int, default=200_000)
    ap.add_argument("--spark-rounds", type=int, default=2)
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--no-rss", action="store_true",
                    help="skip the 200k vs 2M rows peak RSS check")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         f"batch-{date.today().isoformat()}.json"))
    ap.add_argument("--pandas-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--spark-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pandas_child:
        pandas_child(*args.pandas_child)
        return 0
    if args.spark_child:
        tmp, data, out = map(Path, args.spark_child)
        res = bench_spark(tmp, data, args.spark_rows, args.spark_rounds)
        out.write_text(json.dumps(res))
        return 0
    import sklearn

    result: dict = {"date": date.today().isoformat(), "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "sklearn": sklearn.__version__, "loadavg_start": os.getloadavg()},
        "command": "python -m benchmarks.batch " + " ".join(argv or sys.argv[1:]),
        "model": "HistGradientBoostingClassifier(max_iter=100), 20 numeric features"}
    with tempfile.TemporaryDirectory(prefix="tablescore-bench-batch-") as d:
        tmp = Path(d)
        model = train(tmp)
        (tmp / "model.pkl").write_bytes(pickle.dumps(model))
        data = tmp / "data.parquet"
        make_data(data, args.rows)
        result["rows"] = args.rows
        result["tablescore_score"] = bench_cli(tmp, data, args.rows)
        result["pandas_predict_proba"] = bench_pandas(tmp, data, args.rows)
        result["tablescore_score_vs_pandas"] = (result["tablescore_score"]["rows_per_s"]
                                                / result["pandas_predict_proba"]["rows_per_s"])
        data.unlink()
        if not args.no_rss:
            result["peak_rss_2m_vs_200k"] = bench_rss(tmp)
        if not args.no_spark:
            sdata = tmp / "spark.parquet"
            make_data(sdata, args.spark_rows, seed=2)
            result["spark_rows"] = args.spark_rows
            # under MLflow's venv where there is one (it sees this venv's packages): the
            # three engines in one Spark session
            python = MLFLOW_PYTHON if MLFLOW_PYTHON.exists() else Path(sys.executable)
            res = tmp / "spark.json"
            subprocess.run([str(python), "-m", "benchmarks.batch", "--spark-rows",
                            str(args.spark_rows), "--spark-rounds", str(args.spark_rounds),
                            "--spark-child", str(tmp), str(sdata), str(res)],
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
            result["spark"] = {"python": str(python), **json.loads(res.read_text())}
    result["machine"]["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
