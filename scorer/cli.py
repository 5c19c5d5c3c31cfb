"""The ``tablescore`` command line.

Exit codes: 0 success, 1 a check failed (verification, conformance), 2 bad usage or input,
3 an incompatible or corrupt bundle.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import __version__
from .errors import (
    BundleError,
    ExportError,
    InputError,
    TablescoreError,
    VerificationError,
)

EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (VerificationError, 1),
    (BundleError, 3),
    (ExportError, 2),
    (InputError, 2),
    (TablescoreError, 2),
]


def read_table(path: str | os.PathLike[str]):
    """CSV (``N/A``, ``NA`` and empty cells are missing) or Parquet, as a DataFrame."""
    import pandas as pd

    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    with open(p, encoding="utf-8") as fh:
        header = fh.readline()
    sep = "\t" if header.count("\t") > header.count(",") else ","
    return pd.read_csv(p, sep=sep, na_values=["N/A", "NA", ""], keep_default_na=False)


def write_table_atomic(df, path: str | os.PathLike[str]) -> None:
    """Write a DataFrame as CSV or Parquet via a temporary file and an atomic rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    os.close(fd)
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_pickle(path: str) -> Any:
    # Unpickling runs code from the file: only for models the user trained themselves.
    with open(path, "rb") as fh:
        return pickle.load(fh)


def cmd_export(args: argparse.Namespace) -> int:
    est = load_pickle(args.model)
    sample = read_table(args.sample) if args.sample else None
    if sample is not None and getattr(est, "feature_names_in_", None) is None:
        sample = sample.to_numpy()
    if args.format == "pmml":
        try:
            from exporters import to_pmml  # type: ignore[attr-defined]
        except ImportError:
            print("tablescore: PMML export is not available in this version", file=sys.stderr)
            return 2
        to_pmml(est, args.out, sample=sample)
    else:
        from exporters import export

        b = export(est, args.out, sample=sample, name=args.name, version=args.version,
                   overwrite=args.overwrite)
        print(f"wrote bundle {args.out} (model {b.name} version {b.version}, "
              f"{len(b.steps)} steps, fingerprint {b.fingerprint[:16]})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .bundle import read_bundle
    from .model import Model

    pmml = Path(args.path).suffix.lower() in (".pmml", ".xml")
    if pmml:
        from exporters.pmml import read_pmml

        b = read_pmml(args.path)
        print(f"document    {args.path} (PMML, read natively into bundle IR "
              f"{b.schema_version})")
    else:
        b = read_bundle(args.path)
        print(f"bundle      {args.path}")
        print(f"schema      {b.schema_version} (this scorer reads 1.x)")
    print(f"model       {b.name} version {b.version} ({b.task})")
    if not pmml:
        print(f"fingerprint {b.fingerprint}  [matches manifest]")
        print(f"tables      {sum(len(s.tables) for s in b.steps)} step tables, sha256 verified")
    print(f"steps       {' -> '.join(f'{s.op}@{s.op_version}' for s in b.steps)}")
    for line in _version_drift(b.producer.get("libraries") or {}):
        print(line)
    m = Model(b, verify=False)
    n = m.verify()
    v = b.verification
    if v is None:
        where = "ModelVerification" if pmml else "export with sample="
        print(f"verification: none recorded ({where} to record some)")
    else:
        print(f"verification {n} rows reproduce the original model "
              f"(abs {v.abs_tol:g}, rel {v.rel_tol:g})")
    return 0


def _version_drift(libraries: dict[str, str]) -> list[str]:
    """Warnings for libraries the bundle was exported with at another version than installed:
    a semantics change between versions (a default, a dtype, a tie rule) is how parameters
    drift from the model the library would now predict."""
    import importlib.metadata as md

    lines = []
    for lib, exported in sorted(libraries.items()):
        try:
            here = md.version(lib)
        except md.PackageNotFoundError:
            continue
        if here != exported:
            lines.append(f"warning     exported with {lib} {exported}; this environment has "
                         f"{here}: re-run conformance (tablescore conformance check) against "
                         "the model as this version predicts it")
    return lines


def cmd_import(args: argparse.Namespace) -> int:
    from exporters.pmml import read_pmml

    from .bundle import write_bundle
    from .model import Model

    b = read_pmml(args.pmml)
    if args.name:
        b.name = args.name
    b.version = args.version
    Model(b, verify=True)  # never write a bundle that does not reproduce its own checks
    write_bundle(b, args.out, overwrite=args.overwrite)
    print(f"wrote bundle {args.out} from {args.pmml} ({len(b.steps)} steps, fingerprint "
          f"{b.fingerprint[:16]})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .bundle import read_manifest

    m = read_manifest(args.path)
    summary = {k: m[k] for k in ("schema_version", "model", "created", "producer", "fingerprint")}
    summary["inputs"] = [f"{f['name']}:{f['type']}" for f in m["inputs"]]
    summary["outputs"] = [o["name"] for o in m["outputs"]]
    summary["steps"] = [f"{s['name']} ({s['op']} v{s['op_version']})" for s in m["steps"]]
    print(json.dumps(summary, indent=2))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import pandas as pd

    from .model import load

    model = load(args.model)
    df = read_table(args.data)
    parts = []
    for start in range(0, len(df), args.chunk_rows):
        parts.append(model.score(df.iloc[start : start + args.chunk_rows]))
    out = pd.concat(parts, ignore_index=True) if parts else model.score(df.iloc[:0])
    if args.keep:
        out = pd.concat([df[args.keep].reset_index(drop=True), out], axis=1)
    write_table_atomic(out, args.out)
    print(f"scored {len(out)} rows with {model.name} v{model.version} -> {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporters.demo import main as demo_main

    return demo_main(out=args.out)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.main import run_from_args

    try:
        return run_from_args(args)
    except (OSError, ValueError) as exc:  # repository missing, port taken, bad option
        print(f"tablescore: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tablescore", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"tablescore {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("export", help="export a pickled fitted model")
    e.add_argument("model", help="pickle of a fitted estimator / pipeline")
    e.add_argument("--format", choices=["bundle", "pmml"], default="bundle")
    e.add_argument("--out", required=True)
    e.add_argument("--sample", help="CSV/Parquet of representative inputs (verification rows)")
    e.add_argument("--name")
    e.add_argument("--version", default="1")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(fn=cmd_export)

    im = sub.add_parser("import", help="read a PMML document into a bundle (no JVM)")
    im.add_argument("pmml")
    im.add_argument("--out", required=True)
    im.add_argument("--name")
    im.add_argument("--version", default="1")
    im.add_argument("--overwrite", action="store_true")
    im.set_defaults(fn=cmd_import)

    v = sub.add_parser("verify", help="re-check a bundle or PMML document: hashes, schema, "
                       "verification rows")
    v.add_argument("path")
    v.set_defaults(fn=cmd_verify)

    i = sub.add_parser("info", help="print a bundle's manifest summary")
    i.add_argument("path")
    i.set_defaults(fn=cmd_info)

    s = sub.add_parser("score", help="batch-score a CSV/Parquet file")
    s.add_argument("model", help="bundle directory")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True, help=".csv or .parquet (written atomically)")
    s.add_argument("--keep", nargs="*", default=[], help="input columns to copy to the output")
    s.add_argument("--chunk-rows", type=int, default=100_000)
    s.set_defaults(fn=cmd_score)

    from conformance.cli import add_commands as add_conformance

    add_conformance(sub)

    from .server.main import add_arguments as add_serve_arguments

    sv = sub.add_parser("serve", help="serve a model repository over gRPC (Open Inference "
                        "Protocol v2); see docs/operations.md")
    add_serve_arguments(sv)
    sv.set_defaults(fn=cmd_serve)

    d = sub.add_parser("demo", help="train, export, load and score the demo models")
    d.add_argument("--out", default="demo-out")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        return int(args.fn(args) or 0)
    except TablescoreError as exc:
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        print(f"tablescore: {exc}", file=sys.stderr)
        return code
    except (FileNotFoundError, FileExistsError) as exc:
        print(f"tablescore: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
