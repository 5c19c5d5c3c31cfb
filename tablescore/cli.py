"""The ``tablescore`` command line: one parser assembled from the packages' subcommands.

Each package contributes its own subcommands through an ``add_commands(subparsers)`` function
(``scorer.cli``: import, verify, info, score, serve; ``exporters.cli``: export;
``conformance.cli``: conformance); none of them imports another's CLI module. A package that is
not installed (``exporters`` needs the training libraries) contributes nothing, and its
commands are absent instead of failing at start.

Exit codes: 0 success, 1 a check failed (verification, conformance), 2 bad usage or input,
3 an incompatible or corrupt bundle.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from scorer import __version__
from scorer.errors import (
    BundleError,
    ExportError,
    InputError,
    TablescoreError,
    VerificationError,
)

#: modules contributing subcommands, in help order
CONTRIBUTORS = ("exporters.cli", "scorer.cli", "scorer.registry.cli", "conformance.cli")

_OURS = frozenset({"scorer", "exporters", "conformance", "protos", "tablescore"})

EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (VerificationError, 1),
    (BundleError, 3),
    (ExportError, 2),
    (InputError, 2),
    (TablescoreError, 2),
]


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(out=args.out)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``tablescore`` parser."""
    p = argparse.ArgumentParser(
        prog="tablescore", description="Score trained tabular models: export, verify, serve, "
        "check conformance.")
    p.add_argument("--version", action="version", version=f"tablescore {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True)
    for name in CONTRIBUTORS:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional package whose dependencies are missing
            if (exc.name or "").split(".")[0] in _OURS:
                raise  # one of ours is broken: not an absent extra
            continue
        module.add_commands(sub)
    d = sub.add_parser("demo", help="train, export, load and score the demo models")
    d.add_argument("--out", default="demo-out")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``tablescore`` with ``argv`` (default: the process's); return the exit code."""
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
