"""The ``tablescore`` command line: one parser assembled from the packages' subcommands.

Each package contributes its own subcommands through an ``add_commands(subparsers)`` function
(``scorer.cli``: import, verify, info, score, serve; ``scorer.warmup``: warmup;
``exporters.cli``: export;
``conformance.cli``: conformance); none of them imports another's CLI module. A package that is
not installed (``exporters`` needs the training libraries) contributes nothing, and its
commands are absent instead of failing at start.

Exit codes (also in README's "Command line" section); every failure but an internal error
prints one line ``tablescore: <message>`` on stderr, no traceback:

====  =====================================================================================
code  meaning
====  =====================================================================================
0     success
1     a check failed: verification rows or conformance do not reproduce the original model
2     bad usage or input: an option value, a data file (missing, empty, not UTF-8, a column
      the model needs or ``--keep`` names), an export the estimator or its inputs do not
      allow
3     a model file is corrupt or incompatible: a bundle (manifest, tables, schema version),
      a PMML document, a pickle (truncated, needs a library that is not installed)
4     an output cannot be written: disk full, no permission, a directory in the way
5     a server (``--endpoint``), registry (``--store``) or feature store cannot be reached,
      or does not know the model, version or alias asked for (UNAVAILABLE, NOT_FOUND, ...)
70    internal error (a bug: the traceback is printed; please report it)
130   interrupted (SIGINT); the temporary output, if any, is removed
143   terminated (SIGTERM); the temporary output, if any, is removed (``serve`` drains
      and exits 0 instead)
====  =====================================================================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import traceback
from types import FrameType

from scorer import __version__
from scorer.errors import (
    BundleError,
    ExportError,
    InputError,
    ModelNotFoundError,
    NotReadyError,
    ResourceLimitError,
    TablescoreError,
    UnavailableError,
    VerificationError,
)
from scorer.files import ModelFileError, OutputError

#: modules contributing subcommands, in help order
CONTRIBUTORS = ("exporters.cli", "scorer.cli", "scorer.warmup", "scorer.registry.cli",
                "scorer.features.cli", "scorer.experiments.cli", "scorer.monitoring.cli",
                "conformance.cli")

_OURS = frozenset({"scorer", "exporters", "conformance", "protos", "tablescore"})

#: exit status of each error class, first match wins (the table in the module docstring)
EXIT_CODES: list[tuple[type[BaseException], int]] = [
    (VerificationError, 1),
    (BundleError, 3),
    (ModelFileError, 3),
    (OutputError, 4),
    (ModelNotFoundError, 5),
    (NotReadyError, 5),
    (UnavailableError, 5),
    (ResourceLimitError, 5),
    (ExportError, 2),
    (InputError, 2),
    (TablescoreError, 2),
]
EXIT_INTERNAL = 70
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` / ``except BaseException``
    blocks (the temporary output of an atomic write) run as they do for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


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
    # (``serve`` installs its own handlers: a graceful drain); only the main thread may
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        return int(args.fn(args) or 0)
    except TablescoreError as exc:
        code = exit_code(exc)
        print(f"tablescore: {_one_line(exc)}", file=sys.stderr)
        return code
    except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        print(f"tablescore: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tablescore: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("tablescore: terminated", file=sys.stderr)
        return EXIT_SIGTERM
    except Exception:  # a bug: the one case that deserves a traceback
        traceback.print_exc()
        print("tablescore: internal error (the traceback above is a bug: please report it)",
              file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def exit_code(exc: TablescoreError) -> int:
    """The exit status of ``exc`` (:data:`EXIT_CODES`). A PMML document the reader refuses
    (``PMMLError``, a BundleFormatError) is a model file it cannot read: 3, like a bad
    bundle."""
    return next(c for cls, c in EXIT_CODES if isinstance(exc, cls))


def _one_line(exc: BaseException) -> str:
    """The error's message on one line (a multi-line message would look like a traceback)."""
    text = str(exc) or type(exc).__name__
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
