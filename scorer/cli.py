"""The scorer's subcommands of ``tablescore``: ``import``, ``verify``, ``info``, ``score``,
``package``, ``serve``. The command itself is assembled in :mod:`tablescore.cli` (exit codes
there)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .argtypes import positive_int
from .errors import BundleFormatError, TablescoreError


@contextmanager
def pmml_errors(path: str | Path) -> Iterator[None]:
    """A PMML document the reader trips over (a ValueError on an attribute it did not check,
    ...) as a one-line BundleFormatError naming the document, not an internal error: the
    command line reports it like any other bad model file (exit 3). Bundles are left alone:
    their reader checks everything it reads, so anything else there is a bug."""
    try:
        yield
    except TablescoreError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError,
            ArithmeticError) as exc:
        if Path(path).suffix.lower() not in (".pmml", ".xml"):
            raise
        raise BundleFormatError(f"PMML document '{path}' cannot be read: "
                                f"{type(exc).__name__}: {exc}") from exc


def load_model(path: str | Path):
    """:func:`scorer.load` for the command line (see :func:`pmml_errors`)."""
    from .model import load

    with pmml_errors(path):
        return load(path)


def cmd_verify(args: argparse.Namespace) -> int:
    from .bundle import read_bundle
    from .model import Model

    pmml = Path(args.path).suffix.lower() in (".pmml", ".xml")
    if pmml:
        from scorer.pmml import read_pmml

        with pmml_errors(args.path):
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
    from scorer.pmml import read_pmml

    from .bundle import default_identity, write_bundle
    from .files import writing
    from .model import Model

    sample = None
    if args.sample:
        from .files import read_table

        sample = read_table(args.sample)  # a bad sample fails before the document is read
    with pmml_errors(args.pmml):
        b = read_pmml(args.pmml)
    if args.name:
        b.name = args.name
    b.version = default_identity(args.out, b.name, args.version)[1]
    Model(b, verify=True)  # never write a bundle that does not reproduce its own checks
    profile = ""
    if sample is not None:
        from .monitoring.profile import sample_profile

        # the drift reference (docs/monitoring.md), as exporters.export(..., sample=) stores
        p = sample_profile(b, sample, bins=args.drift_bins)
        b.drift_reference = p.to_json()
        profile = f", drift reference of {p.rows} sample rows"
    with writing(args.out):
        write_bundle(b, args.out, overwrite=args.overwrite)
    print(f"wrote bundle {args.out} from {args.pmml} ({len(b.steps)} steps{profile}, "
          f"fingerprint {b.fingerprint[:16]})")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .bundle import read_manifest

    m = read_manifest(args.path)
    # the manifest schema makes created / producer / fingerprint / an input's type optional:
    # a summary shows what is there (null where absent) instead of failing on a KeyError
    summary = {k: m.get(k) for k in ("schema_version", "model", "created", "producer",
                                     "fingerprint")}
    summary["inputs"] = [f"{f['name']}:{f.get('type', '?')}" for f in m["inputs"]]
    summary["outputs"] = [o["name"] for o in m["outputs"]]
    summary["steps"] = [f"{s['name']} ({s['op']} v{s['op_version']})" for s in m["steps"]]
    v = m.get("verification") or None
    if v is not None:
        # what the verification rows exercise (bundle-format §5): for trees the share of
        # leaves they reach, which says how much of the model a load actually checks
        cov = v.get("coverage") or {}
        summary["verification"] = {"rows": v.get("rows"), **{
            k: cov[k] for k in ("method", "leaves_covered", "leaves_total", "share")
            if k in cov}}
    else:
        summary["verification"] = None
    print(json.dumps(summary, indent=2))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from .batch import rejected_path, score_files
    from .errors import InputError
    from .files import check_output, output_format
    from .pipeline import ModelResolver, Pipeline, Request

    keep = [c for group in args.keep for c in group]
    if args.model is None:
        # `score --keep id BUNDLE ...`: --keep takes a list, so argparse gave it the bundle too
        if not keep:
            raise InputError("score: name the bundle to score with (tablescore score BUNDLE "
                             "--data IN --out OUT)")
        args.model = keep.pop()
    check_output(args.out)  # an unwritable output fails now, not after scoring
    output_format(args.out)  # so does an unknown extension (out.json)
    model = load_model(args.model)
    # the same request pipeline the server runs (resolve -> ... -> score), one batch a request
    pipeline = Pipeline(ModelResolver({model.name: model}))
    target = pipeline.resolve(model.name)
    outputs = list(model.output_names)

    def score(inputs, rows: int):
        return pipeline.infer(target, Request(inputs, rows, outputs))

    na_values = [v for text in args.na_values for v in text.split(",")]
    result = score_files(model, args.data, args.out, keep=keep, on_error=args.on_error,
                         na_values=na_values, batch_rows=args.chunk_rows, score=score)
    print(f"scored {result.rows} rows with {model.name} v{model.version} -> {args.out}")
    if args.on_error == "skip":
        print(f"refused {result.rejected} row{'s' if result.rejected != 1 else ''} "
              f"-> {rejected_path(args.out)}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    from .package import build_wheel

    wheel = build_wheel(args.model, args.name, args.out, version=args.version)
    print(f"wrote {wheel} (install: pip install --no-index --find-links {args.out} "
          f"{args.name}, with tablescore's wheel there too)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.main import run_from_args

    try:
        return run_from_args(args)
    except (OSError, ValueError) as exc:  # repository missing, port taken, bad option
        print(f"tablescore: {exc}", file=sys.stderr)
        return 2


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the scorer's subcommands to the ``tablescore`` parser."""
    im = sub.add_parser("import", help="read a PMML document into a bundle (no JVM)")
    im.add_argument("pmml")
    im.add_argument("--out", required=True)
    im.add_argument("--name")
    im.add_argument("--version", help="model version (default: the version directory's name "
                    "in a repository's MODEL/N, else 1)")
    im.add_argument("--overwrite", action="store_true")
    from .monitoring.options import add_sample_arguments

    add_sample_arguments(im)
    im.set_defaults(fn=cmd_import)

    v = sub.add_parser("verify", help="re-check a bundle or PMML document: hashes, schema, "
                       "verification rows")
    v.add_argument("path")
    v.set_defaults(fn=cmd_verify)

    i = sub.add_parser("info", help="print a bundle's manifest summary")
    i.add_argument("path")
    i.set_defaults(fn=cmd_info)

    s = sub.add_parser("score", help="batch-score CSV / Parquet files (streamed, any size)",
                       description="Score CSV / Parquet files in record batches (memory "
                       "independent of the file size) into one output written atomically; "
                       "see docs/batch.md.")
    s.add_argument("model", nargs="?", help="bundle directory or PMML document")
    s.add_argument("--data", required=True,
                   help="a .csv / .parquet file, a directory of them, or a glob")
    s.add_argument("--out", required=True,
                   help=".csv, .parquet or .pq (written atomically; the format from the "
                   "extension)")
    # one value per --keep (repeat the flag); `--keep a b` still works, and a bundle after
    # the values (`--keep id BUNDLE`) is taken back as the bundle (cmd_score)
    s.add_argument("--keep", action="append", nargs="+", default=[], metavar="COLUMN",
                   help="input column to copy to the output, e.g. an id (repeatable)")
    s.add_argument("--on-error", choices=("fail", "skip"), default="fail",
                   help="a row the model refuses stops the run (fail, default: the message "
                   "names the row) or goes to OUT.rejected.csv with its reason (skip)")
    s.add_argument("--na-values", action="append", default=[], metavar="MARKER[,MARKER]",
                   help="CSV cells read as missing besides empty, NA and N/A (repeatable, "
                   "e.g. --na-values NULL --na-values '?')")
    s.add_argument("--chunk-rows", type=positive_int, default=100_000,
                   help="rows read, scored and written per batch (default 100000): bounds "
                   "memory")
    s.set_defaults(fn=cmd_score)

    pk = sub.add_parser("package", help="package a bundle as an installable wheel "
                        "(import NAME; NAME.load())")
    pk.add_argument("model", help="bundle directory or PMML document")
    pk.add_argument("--name", required=True, help="distribution name; the module is NAME "
                    "with dashes as underscores")
    pk.add_argument("--out", required=True, help="directory for the wheel")
    pk.add_argument("--version", help="wheel version (default: the bundle's, as PEP 440)")
    pk.set_defaults(fn=cmd_package)

    from .server.main import add_arguments as add_serve_arguments

    sv = sub.add_parser("serve", help="serve a model repository over gRPC (Open Inference "
                        "Protocol v2); see docs/operations.md")
    add_serve_arguments(sv)
    sv.set_defaults(fn=cmd_serve)
