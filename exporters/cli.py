"""The exporters' subcommand of ``tablescore``: ``export`` (a pickled fitted model -> a bundle
or a PMML document). The command itself is assembled in :mod:`tablescore.cli`."""

from __future__ import annotations

import argparse

from scorer.errors import ExportError, UnsupportedEstimatorError
from scorer.files import load_pickle, read_table, writing

#: added to an export error when no --sample was given: without one every input field is
#: typed numeric, and a string column then fails wherever its strings meet a numeric step
NO_SAMPLE_HINT = ("; without --sample every input field is typed numeric: if the model takes "
                  "string columns, pass --sample FILE (CSV/Parquet rows of the training data) "
                  "so that they are typed as strings")


def cmd_export(args: argparse.Namespace) -> int:
    est = load_pickle(args.model)
    sample = read_table(args.sample) if args.sample else None
    if sample is not None and getattr(est, "feature_names_in_", None) is None:
        sample = sample.to_numpy()
    try:
        return _export(args, est, sample)
    except ExportError as exc:
        if sample is not None or isinstance(exc, UnsupportedEstimatorError):
            raise
        raise ExportError(f"{exc}{NO_SAMPLE_HINT}") from exc


def _export(args: argparse.Namespace, est: object, sample: object) -> int:
    if args.format == "pmml":
        from . import to_pmml

        with writing(args.out):
            to_pmml(est, args.out, sample=sample)
    else:
        from . import export

        with writing(args.out):
            b = export(est, args.out, sample=sample, name=args.name, version=args.version,
                       overwrite=args.overwrite)
        print(f"wrote bundle {args.out} (model {b.name} version {b.version}, "
              f"{len(b.steps)} steps, fingerprint {b.fingerprint[:16]})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``export`` to the ``tablescore`` parser."""
    e = sub.add_parser("export", help="export a pickled fitted model")
    e.add_argument("model", help="pickle of a fitted estimator / pipeline")
    e.add_argument("--format", choices=["bundle", "pmml"], default="bundle")
    e.add_argument("--out", required=True)
    e.add_argument("--sample", help="CSV/Parquet of representative inputs (verification rows)")
    e.add_argument("--name")
    e.add_argument("--version", help="model version (default: the version directory's name "
                   "in a repository's MODEL/N, else 1)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(fn=cmd_export)
