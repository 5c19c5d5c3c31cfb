"""Fixture bundles + golden vectors for the Node scorer's tests (node/test/*.test.mjs).

Usage: python node/test/make_fixtures.py OUT_DIR [--quick]

Exports, with the current exporters, every model of the families the Node scorer implements
(linear, tree_ensemble, xgboost, lightgbm, with the preprocessing / encoding steps the
conformance matrix wraps them in) on the conformance matrix's CI datasets, plus encoder,
scaler, imputer and native-categorical-split models; writes each bundle's golden vectors
(conformance.vectors.write_vectors) and OUT_DIR/index.json. Also writes bundles the Node
scorer must refuse (refuse/) and canonical-JSON probes (canonical.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

FAMILIES = ("linear", "tree_ensemble", "xgboost", "lightgbm")


def _matrix_cells(quick: bool) -> list[tuple[str, str, Any, Any, Any, str]]:
    """(name, family, fitted estimator, sample X, scored X, dataset) from the matrix's CI
    subset: its model specs (at most 10 trees) and datasets."""
    from conformance import matrix

    out = []
    specs = [s for s in matrix.model_specs("ci") if s.family in FAMILIES]
    for spec in specs:
        for ds in matrix.datasets("ci"):
            if ds.task not in spec.tasks:
                continue
            if quick and ds.name not in ("breast_cancer", "iris", "diabetes", "AuditNA"):
                continue
            est = spec.factory(ds.task)
            for key in ("n_estimators", "max_iter"):  # small models: fast fixtures
                if key in est.get_params() and spec.family != "linear":
                    est.set_params(**{key: 10})
            est = matrix._wrap(spec, ds, est)
            est.fit(ds.X, ds.y)
            out.append((f"{spec.name}-{ds.name}", spec.family, est, ds.X, ds.X_score,
                        ds.name))
    return out


def _extra_cells() -> list[tuple[str, str, Any, Any, Any, str]]:
    """Encoders, scalers, imputers and native categorical splits on the Audit data."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    from conformance import matrix

    out = []
    if matrix._shared_dir() is None:
        return out
    df = matrix._read_shared("AuditNA.csv").drop(columns=["Deductions"])
    X, y = df.drop(columns=["Adjusted"]), df["Adjusted"]
    Xs = matrix._with_unseen(X)
    cat = make_column_selector(dtype_include=object)
    num = make_column_selector(dtype_exclude=object)

    def ct(c: Any, n: Any) -> Any:
        return ColumnTransformer([("cat", c, cat), ("num", n, num)])

    models = {
        "onehot-drop-infrequent": make_pipeline(ct(
            make_pipeline(SimpleImputer(strategy="constant", fill_value="none"),
                          OneHotEncoder(drop="first", handle_unknown="infrequent_if_exist",
                                        min_frequency=20, sparse_output=False)),
            make_pipeline(SimpleImputer(strategy="mean", add_indicator=True),
                          MinMaxScaler(clip=True))), LogisticRegression(max_iter=3000)),
        "ordinal-robust": make_pipeline(ct(
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                           encoded_missing_value=-2),
            make_pipeline(SimpleImputer(strategy="median"), RobustScaler())),
            MaxAbsScaler(), LogisticRegression(max_iter=3000)),
        "onehot-standard-ridge": make_pipeline(ct(
            make_pipeline(SimpleImputer(strategy="most_frequent"),
                          OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            make_pipeline(SimpleImputer(strategy="constant", fill_value=0.0),
                          StandardScaler())), Ridge()),
    }
    for name, est in models.items():
        est.fit(X, y.astype(float) if name.endswith("ridge") else y)
        out.append((f"{name}-AuditNA", "encoding", est, X, Xs, "AuditNA"))
    # native categorical splits: pandas category columns
    Xc = X.astype({c: "category" for c in X.columns if X[c].dtype == object})
    Xcs = Xc.copy()
    for c in Xcs.columns:
        if str(Xcs[c].dtype) == "category":
            Xcs[c] = pd.Categorical(Xcs[c].astype(object).where(Xcs[c].notna(), None),
                                    categories=Xc[c].cat.categories)
    cat_models: list[tuple[str, str, Any]] = [
        ("HGB-categorical", "tree_ensemble", HistGradientBoostingClassifier(
            max_iter=10, categorical_features="from_dtype", random_state=0)),
        ("HGBR-categorical", "tree_ensemble", HistGradientBoostingRegressor(
            max_iter=10, categorical_features="from_dtype", random_state=0)),
    ]
    try:
        import lightgbm

        cat_models.append(("LightGBM-categorical", "lightgbm", lightgbm.LGBMClassifier(
            n_estimators=10, num_leaves=15, random_state=0, verbose=-1, min_data_per_group=5,
            cat_smooth=1)))
    except ImportError:
        pass
    try:
        import xgboost

        cat_models.append(("XGBoost-categorical", "xgboost", xgboost.XGBClassifier(
            n_estimators=10, max_depth=4, random_state=0, enable_categorical=True,
            tree_method="hist")))
    except ImportError:
        pass
    for name, family, est in cat_models:
        est.fit(Xc, y.astype(float) if name.startswith("HGBR") else y)
        out.append((f"{name}-AuditNA", family, est, Xc, Xcs, "AuditNA"))
    return out


def _refit_fingerprint(bundle: Path) -> None:
    from scorer.bundle import fingerprint_of

    m = json.loads((bundle / "manifest.json").read_text())
    m["fingerprint"] = fingerprint_of(m)
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2, ensure_ascii=False))


def _python_reads(d: Path) -> str:
    """"" when the Python scorer loads bundle ``d``, else its error as text."""
    import scorer

    try:
        scorer.load(d)
        return ""
    except Exception as exc:  # the text is recorded, not handled
        return f"{type(exc).__name__}: {exc}"


def _refusals(src: Path, out: Path) -> dict[str, str]:
    """Bundles a scorer must refuse, each with the Python reader's error text."""
    cases: dict[str, str] = {}

    def case(name: str, edit: Any) -> None:
        d = out / name
        shutil.copytree(src, d)
        edit(d)
        cases[name] = _python_reads(d)

    def tamper(d: Path) -> None:  # one byte of a table's footer-free data changed
        t = sorted((d / "tables").glob("0*.parquet"))[0]
        b = bytearray(t.read_bytes())
        b[len(b) // 2] ^= 0x01
        t.write_bytes(bytes(b))

    def edit_manifest(fn: Any, refit: bool = True) -> Any:
        def go(d: Path) -> None:
            m = json.loads((d / "manifest.json").read_text())
            fn(m)
            (d / "manifest.json").write_text(json.dumps(m, indent=2, ensure_ascii=False))
            if refit:
                _refit_fingerprint(d)
        return go

    case("tampered_table", tamper)
    case("unknown_op", edit_manifest(lambda m: m["steps"][0].update(op="frobnicate")))
    case("unknown_op_version",
         edit_manifest(lambda m: m["steps"][-1].update(op_version=99)))
    case("newer_major", edit_manifest(lambda m: m.update(schema_version="2.0")))
    case("edited_manifest",
         edit_manifest(lambda m: m["model"].update(name="renamed"), refit=False))
    case("newer_minor", edit_manifest(lambda m: m.update(schema_version="1.7",
                                                         future_key={"x": [1.5, "NaN"]})))
    # a "__proto__" key is a key like any other (Python ignores an unknown one): it must not
    # become the prototype that the step's missing keys are read from
    case("proto_key", edit_manifest(lambda m: m["steps"][0]["params"].update(
        {"__proto__": {"clip": True, "clip_min": -5.0, "clip_max": 5.0}})))
    return cases


def _tree_refusals(src: Path, out: Path) -> dict[str, str]:
    """Crafted trees (tables re-hashed, fingerprint refitted), with Python's error text."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    cases: dict[str, str] = {}

    def case(name: str, edit: Any) -> None:
        d = out / name
        shutil.copytree(src, d)
        m = json.loads((d / "manifest.json").read_text())
        step = next(s for s in m["steps"] if s["op"] == "tree_ensemble")
        rel = step["tables"]["nodes"]
        t = pq.read_table(d / rel)
        t = edit(t, pa)
        pq.write_table(t, d / rel)
        m["tables"][rel]["sha256"] = hashlib.sha256((d / rel).read_bytes()).hexdigest()
        (d / "manifest.json").write_text(json.dumps(m, indent=2, ensure_ascii=False))
        _refit_fingerprint(d)
        cases[name] = _python_reads(d)

    def first_inner(t: Any) -> int:
        return next(i for i, f in enumerate(t.column("feature").to_pylist()) if i and f >= 0)

    def set_left(value: Any, wide: bool = False) -> Any:
        def go(t: Any, pa: Any) -> Any:
            left = t.column("left").to_pylist()
            i = first_inner(t)
            left[i] = value(left[i])
            j = t.schema.get_field_index("left")
            return t.set_column(j, "left", pa.array(
                left, pa.int64() if wide else t.schema.field(j).type))
        return go

    case("tree_cycle", set_left(lambda child: 0))  # back to the root: a cycle
    # 2**32 + child: a reader that wraps to 32 bits would follow the child
    case("tree_wide_child", set_left(lambda child: 2**32 + child, wide=True))
    return cases


def _canonical_probes() -> list[dict[str, Any]]:
    """Manifest-like documents with awkward numbers / strings and their fingerprints."""
    from scorer.bundle import canonical_json, fingerprint_of

    docs = [
        {"a": 1, "b": 1.0, "c": -0.0, "d": 1e-05, "e": 0.0001, "f": 1e16, "g": 1.5e16,
         "h": 123456789012345.6, "i": 5e-324, "j": 1.7976931348623157e308, "k": 0.1,
         "l": 2**63 + 1, "m": -(2**70), "n": 1e22, "o": 1e21, "p": 1e-7, "q": 100.0,
         "r": 9999999999999998.0, "s": 0.30000000000000004},
        {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"),
         "arr": [float("nan"), 1.25, "NaN"], "nested": {"z": [], "y": {}, "x": None}},
        {"text": "é ü \u2028 \u0000 \u001f \u007f \" \\ / \t\n\r\b\f 日本 \U0001f600",
         "\U0001f600": 1, "\uffff": 2, "é": 3, "Z": 4, "a": 5, "": 6,
         "bool": [True, False]},
    ]
    out = []
    for d in docs:
        text = json.dumps(json.loads(canonical_json(d)), indent=1, ensure_ascii=False)
        # what a manifest file holds after a write (floats as written), re-read by Python
        reread = json.loads(text)
        out.append({"text": text, "canonical": canonical_json(reread).decode("utf-8"),
                    "fingerprint": fingerprint_of(reread),
                    "sha256": hashlib.sha256(canonical_json(reread)).hexdigest()})
    # a manifest written with non-JSON-literal-free text: floats with exponents as typed
    raw = '{"a": 1E5, "b": 1e400, "c": -1e-400, "d": 10, "e": 1.50, "f": -0, "g": 0.0}'
    d = json.loads(raw)
    out.append({"text": raw, "canonical": canonical_json(d).decode("utf-8"),
                "fingerprint": fingerprint_of(d),
                "sha256": hashlib.sha256(canonical_json(d)).hexdigest()})
    return out


def _exact_labels(out: Path) -> dict[str, str]:
    """A classifier whose integer classes a double cannot hold apart (2**53, 2**53 + 1):
    its bundle, inputs and `tablescore score`'s CSV of them."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import exporters
    from tablescore.cli import main as cli_main

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    labels = np.array([2**53, 2**53 + 1], dtype=np.int64)[y.to_numpy()]
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, labels)
    d = out / "exact"
    exporters.export(est, d / "bigint-classes", sample=X)
    rows = pd.concat([X[labels == c].head(20) for c in np.unique(labels)])
    rows.to_csv(d / "inputs.csv", index=False)
    if cli_main(["score", str(d / "bigint-classes"), "--data", str(d / "inputs.csv"),
                 "--out", str(d / "python_score.csv")]) != 0:
        raise RuntimeError("tablescore score failed on the exact-labels bundle")
    return {"bundle": "exact/bigint-classes", "inputs": "exact/inputs.csv",
            "python_score": "exact/python_score.csv"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true", help="fewer datasets")
    args = ap.parse_args()
    import exporters
    import scorer
    from conformance.vectors import write_vectors

    t0 = time.perf_counter()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "bundles").mkdir(parents=True)
    index = []
    for name, family, est, X, _, dataset in _matrix_cells(args.quick) + _extra_cells():
        path = out / "bundles" / name
        exporters.export(est, path, sample=X)
        vec = write_vectors(path, out / "vectors" / name)
        model = scorer.load(path)
        ops = sorted({f"{s.op}@{s.op_version}" for s in model.bundle.steps})
        # `tablescore score` on the vectors' inputs: the Node CLI must write the same file
        from tablescore.cli import main as cli_main

        if cli_main(["score", str(path), "--data", str(vec / "inputs.csv"), "--out",
                     str(vec / "python_score.csv")]) != 0:
            raise RuntimeError(f"tablescore score failed on {name}")
        index.append({"name": name, "family": family, "dataset": dataset, "ops": ops,
                      "bundle": f"bundles/{name}", "vectors": str(vec.relative_to(out))})
        print(f"{name}: {', '.join(ops)}", flush=True)
    src = out / "bundles" / "LogisticRegression-breast_cancer"
    refusals = _refusals(src, out / "refuse")
    tree = out / "bundles" / "DecisionTree-iris"
    if tree.exists():
        refusals.update(_tree_refusals(tree, out / "refuse"))
    (out / "index.json").write_text(json.dumps(
        {"bundles": index, "refusals": refusals, "canonical": _canonical_probes(),
         "exact_labels": _exact_labels(out)}, indent=1))
    print(f"{len(index)} bundles in {time.perf_counter() - t0:.1f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
