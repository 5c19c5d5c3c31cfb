"""The main job of the quick start: train demo models, export them, load them with the
scorer, and print tablescore's predictions next to the original model's."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _datasets() -> dict[str, tuple[Any, Any]]:
    from sklearn import datasets

    out = {}
    for name in ("iris", "breast_cancer", "diabetes", "wine"):
        X, y = getattr(datasets, f"load_{name}")(return_X_y=True, as_frame=True)
        out[name] = (X, y)
    return out


def _audit() -> tuple[Any, Any] | None:
    """The Audit table from ../shared/data when present (string categories + missing)."""
    import pandas as pd

    path = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "datasets"
    if not (path / "AuditNA.csv").is_file():
        return None
    df = pd.read_csv(path / "AuditNA.csv", na_values=["N/A", "NA", ""], keep_default_na=False)
    df = df.drop(columns=["Deductions"])
    return df.drop(columns=["Adjusted"]), df["Adjusted"]


def demo_models() -> list[tuple[str, str, Callable[[], Any]]]:
    """(name, dataset, factory) for every demo model."""
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    models: list[tuple[str, str, Callable[[], Any]]] = [
        ("iris_logreg", "iris",
         lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ("cancer_forest", "breast_cancer",
         lambda: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=0)),
        ("diabetes_gbm", "diabetes",
         lambda: GradientBoostingRegressor(n_estimators=200, random_state=0)),
        ("wine_histgb", "wine",
         lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0)),
        ("audit_pipeline", "audit", lambda: make_pipeline(
            ColumnTransformer([
                ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")),
                 make_column_selector(dtype_include=object)),
                ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                 make_column_selector(dtype_include="number")),
            ]),
            LogisticRegression(max_iter=2000))),
    ]
    try:
        import xgboost

        models.append(("cancer_xgboost", "breast_cancer", lambda: xgboost.XGBClassifier(
            n_estimators=100, max_depth=4, random_state=0)))
    except ImportError:
        pass
    try:
        import lightgbm

        models.append(("diabetes_lightgbm", "diabetes", lambda: lightgbm.LGBMRegressor(
            n_estimators=100, num_leaves=15, random_state=0, verbose=-1)))
    except ImportError:
        pass
    return models


def main(*, out: str | Path = "demo-out") -> int:
    import exporters
    import scorer
    from scorer.errors import TablescoreError

    out = Path(out)
    data = _datasets()
    audit = _audit()
    if audit is not None:
        # make string columns plain object so the selector and the exporter see strings
        X, y = audit
        X = X.astype({c: object for c in X.columns if X[c].dtype.kind not in "fi"})
        data["audit"] = (X, y)
    rows = []
    failures = 0
    print(f"tablescore {scorer.__version__}: train -> export -> load -> score\n")
    for name, dataset, factory in demo_models():
        if dataset not in data:
            print(f"{name:18s} skipped: dataset {dataset} not found (../shared/data)")
            continue
        X, y = data[dataset]
        est = factory().fit(X, y)
        path = out / name
        shutil.rmtree(path, ignore_errors=True)
        try:
            exporters.export(est, path, sample=X, name=name)
        except TablescoreError as exc:
            print(f"{name:18s} export failed: {exc}")
            failures += 1
            continue
        t0 = time.perf_counter()
        model = scorer.load(path)
        load_ms = (time.perf_counter() - t0) * 1e3
        if hasattr(est, "predict_proba"):
            ours, theirs = model.predict_proba(X), est.predict_proba(X)
        else:
            ours, theirs = model.predict(X), est.predict(X)
        diff = float(np.max(np.abs(np.asarray(ours, dtype=np.float64) - theirs)))
        same_labels = bool(np.all(model.predict(X) == est.predict(X)))
        rows.append((name, len(X), model.bundle.steps, diff, same_labels, load_ms))
        first = np.atleast_2d(np.asarray(ours[:3]).T).T
        ref = np.atleast_2d(np.asarray(theirs[:3]).T).T
        print(f"{name}  ({dataset}, {len(X)} rows, steps: "
              f"{' -> '.join(s.op for s in model.bundle.steps)})")
        for i in range(min(3, len(X))):
            print(f"   row {i}: tablescore {np.array2string(first[i], precision=6)}"
                  f"   original {np.array2string(ref[i], precision=6)}")
        if diff > 1e-6 or not same_labels:
            failures += 1
    print()
    print(f"{'model':18s} {'rows':>6s} {'max |diff|':>12s} {'labels':>8s} {'load ms':>8s}")
    for name, n, _, diff, same, load_ms in rows:
        print(f"{name:18s} {n:6d} {diff:12.3g} {'equal' if same else 'DIFFER':>8s} "
              f"{load_ms:8.1f}")
    print(f"\nbundles written under {out}/")
    # the same bundles through the real gRPC server, scored from a tritonclient client
    from scorer.server.demo import serve_and_score

    failures += serve_and_score(out, [r[0] for r in rows])
    # the registry: publish once, a replica serves it, promote and roll back by alias
    if rows:
        first = rows[0][0]
        dataset, factory = next((d, f) for n, d, f in demo_models() if n == first)
        failures += registry_demo(out, first, data[dataset], factory)
        failures += experiment_demo(out, first, data[dataset])
    return 1 if failures else 0


def experiment_demo(out: Path, name: str, data: tuple[Any, Any]) -> int:
    """Features by entity id (an embedded SQLite feature store), an A/B experiment between
    the two versions of ``name`` with a permanent control group, the exposure log, and the
    experiment's report; return failures."""
    try:
        import tritonclient.grpc as tc
    except ImportError:
        return 0
    import json

    import pandas as pd

    from scorer.server import serve

    from .cli import main as cli

    X, y = data
    root = out / "experiment"
    shutil.rmtree(root, ignore_errors=True)
    repo = root / "repository"
    shutil.copytree(out / name, repo / name / "1")
    shutil.copytree(out / f"{name}_v2", repo / name / "2")
    (repo / name / "config.json").write_text(json.dumps({
        "version_policy": {"all": {}},
        "features": {"view": "customers"},
        "experiment": {"name": "demo-ab", "unit": "customer_id", "salt": "demo", "shadow": None,
                       "arms": [{"name": "control", "version": "1", "weight": 0.5},
                                {"name": "candidate", "version": "2", "weight": 0.5}]}}))
    # the features, keyed by customer id, in an embedded store (no server)
    table = X.copy()
    table.insert(0, "customer_id", np.arange(len(X)))
    table.to_parquet(root / "customers.parquet")
    store = f"sqlite:///{root / 'features.db'}"
    print(f"\nfeature store {store}: ", end="", flush=True)
    if cli(["features", "load", "--store", store, "--view", "customers", "--entity",
            "customer_id", "--data", str(root / "customers.parquet")]) != 0:
        return 1
    arms: dict[str, int] = {}
    outcomes = []
    with serve(repo, port=0, features=store, exposures=root / "exposures",
               control_group=0.1) as server:
        client = tc.InferenceServerClient(server.address)
        for cid in range(len(X)):
            ids = tc.InferInput("customer_id", [1], "INT64")
            ids.set_data_from_numpy(np.array([cid], dtype=np.int64))
            r = client.infer(name, [ids], parameters={"customer_id": cid})
            resp = r.get_response()
            arm = resp.parameters["arm"].string_param
            arms[arm] = arms.get(arm, 0) + 1
            label = r.as_numpy("label")[0]
            outcomes.append((str(cid), float(str(label) == str(y.iloc[cid]))))
            if cid == 0:
                print(f"customer 0 scored by id alone: arm {arm}, version "
                      f"{resp.model_version}, label {label}")
        client.close()
    print(f"{len(X)} customers by arm: {arms} (10% permanent control group)")
    pd.DataFrame(outcomes, columns=["unit", "correct"]).to_csv(root / "outcomes.csv",
                                                               index=False)
    code = cli(["experiment", "report", "demo-ab", "--exposures", str(root / "exposures"),
                "--outcomes", str(root / "outcomes.csv"), "--metric", "correct", "--json",
                str(root / "report.json"), "--out", str(root / "report.html")])
    # drift: the same customers with the first feature shifted by one standard deviation,
    # against the reference profile the bundle carries since export
    shifted = X.copy()
    shifted[X.columns[0]] = X[X.columns[0]] + X[X.columns[0]].std()
    shifted.to_parquet(root / "shifted.parquet")
    print(f"\ndrift of {name} on data with '{X.columns[0]}' shifted by one standard deviation:")
    drift = cli(["drift", str(repo / name / "1"), "--data", str(root / "shifted.parquet"),
                 "--json", str(root / "drift.json"), "--out", str(root / "drift.html")])
    if drift not in (0, 1):  # 1: drift past the alert threshold, as expected here
        code = drift
    return 0 if code == 0 else 1


def registry_demo(out: Path, name: str, data: tuple[Any, Any],
                  factory: Callable[[], Any]) -> int:
    """Publish ``out/<name>`` to an embedded (SQLite) registry, serve it from a replica,
    publish a retrained version and roll back by moving an alias; return failures."""
    try:
        import tritonclient.grpc as tc
    except ImportError:
        return 0
    import exporters
    from scorer.registry import open_store
    from scorer.server import serve

    reg = out / "registry"
    shutil.rmtree(reg, ignore_errors=True)
    url = f"sqlite:///{reg / 'registry.db'}"
    store = open_store(url)
    v1 = store.publish(out / name, name, alias="production")
    print(f"\nregistry {url}: published {name} as version {v1}, alias production -> {v1}")
    X, y = data
    failures = 0
    with serve(reg / "replica", port=0, store=url) as server:
        client = tc.InferenceServerClient(server.address)

        def answered(version: str = "") -> str:
            inp = _first_row(tc, X)
            return client.infer(name, inp, model_version=version).get_response().model_version

        print(f"replica on {server.address} serves version {answered()} "
              f"(production -> {answered('production')})")
        # a retrained model (on 80% of the rows): a new fingerprint, so a new version
        retrained = factory().fit(X.iloc[: int(len(X) * 0.8)], y.iloc[: int(len(y) * 0.8)])
        exporters.export(retrained, out / f"{name}_v2", sample=X, name=name, overwrite=True)
        t0 = time.perf_counter()
        v2 = store.publish(out / f"{name}_v2", name)
        store.set_alias(name, "production", v2)
        while answered("production") != str(v2) and time.perf_counter() - t0 < 30:
            time.sleep(0.01)
        ms = (time.perf_counter() - t0) * 1e3
        ok = answered("production") == str(v2)
        failures += 0 if ok else 1
        print(f"published version {v2} and promoted it: the replica answered with it after "
              f"{ms:.0f} ms")
        store.set_alias(name, "production", v1)
        t0 = time.perf_counter()
        while answered("production") != str(v1) and time.perf_counter() - t0 < 30:
            time.sleep(0.01)
        ok = answered("production") == str(v1)
        failures += 0 if ok else 1
        print(f"rolled back: production -> {answered('production')} "
              f"({(time.perf_counter() - t0) * 1e3:.0f} ms); default (newest) still "
              f"{answered()}")
        client.close()
    store.close()
    print(f"(tablescore registry list --store {url})")
    return failures


def _first_row(tc: Any, X: Any) -> list[Any]:
    """The first row of an all-numeric frame as one FP64 tensor."""
    arr = np.ascontiguousarray(X.iloc[:1].to_numpy(dtype=np.float64))
    inp = tc.InferInput("input", list(arr.shape), "FP64")
    inp.set_data_from_numpy(arr)
    return [inp]
