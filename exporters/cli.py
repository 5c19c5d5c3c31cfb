"""The exporters' subcommand of ``tablescore``: ``export`` (a pickled fitted model -> a bundle
or a PMML document). The command itself is assembled in :mod:`tablescore.cli`."""

from __future__ import annotations

import argparse

from scorer.files import load_pickle, read_table


def cmd_export(args: argparse.Namespace) -> int:
    est = load_pickle(args.model)
    sample = read_table(args.sample) if args.sample else None
    if sample is not None and getattr(est, "feature_names_in_", None) is None:
        sample = sample.to_numpy()
    if args.format == "pmml":
        from . import to_pmml

        to_pmml(est, args.out, sample=sample)
    else:
        from . import export

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
    e.add_argument("--version", default="1")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(fn=cmd_export)
