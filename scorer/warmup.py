"""``tablescore warmup``: compile the kernels of given models into Numba's on-disk cache.

Numba compiles each kernel for the argument types it is called with (a float32 tree ensemble
and a float64 one are two specialisations) and keeps the machine code in its cache directory
(``NUMBA_CACHE_DIR``; unset: ``__pycache__`` beside the installed sources, or a per-user
directory when those are read-only). A process that finds its kernels there starts in about
a second; one that does not compiles them (tens of seconds for a few tree ensembles). An image
build runs ``tablescore warmup --cache-dir DIR --repository MODELS`` and the container sets
``NUMBA_CACHE_DIR=DIR``: every start is then a warm one. See docs/operations.md, "Start-up".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

MANIFEST = "manifest.json"


def model_paths(repository: Path | None, paths: list[Path]) -> list[Path]:
    """What to warm: ``paths`` (bundle directories or PMML documents) and every version of
    every model of ``repository`` (``<repository>/<model>/<version>/`` holding a bundle or
    exactly one ``.pmml`` document), in that order."""
    out = list(paths)
    if repository is not None:
        if not repository.is_dir():
            raise FileNotFoundError(f"model repository '{repository}' is not a directory")
        for model in sorted(p for p in repository.iterdir() if p.is_dir()):
            for version in sorted(p for p in model.iterdir() if p.is_dir()):
                pmml = sorted(version.glob("*.pmml"))
                if (version / MANIFEST).is_file():
                    out.append(version)
                elif len(pmml) == 1:
                    out.append(pmml[0])
    return out


def cache_files(cache_dir: Path) -> int:
    """Numba cache files (index ``.nbi`` and code ``.nbc``) under ``cache_dir``."""
    return sum(1 for p in cache_dir.rglob("*") if p.suffix in (".nbi", ".nbc"))


def warm_all(paths: list[Path]) -> list[str]:
    """Load each model and compile every kernel specialisation a server uses for it: batch,
    one-row and parallel kernels (``COMPILE_MODE`` "eager": at load, in this thread) and the
    input copy of every dtype the gRPC codec passes on (the server's own warm-up); each tree
    ensemble's kernel both in the float64 variant verification runs and in its own dtypes;
    the bind-time tree relayout; every path of Arrow batches (``tablescore score``, Spark
    workers: :func:`scorer.batch.warm_arrow`); and the server's ModelInfer request scan
    (:mod:`scorer.server.wire`) and the features stage's reader of Redis answers
    (:mod:`scorer.features.resp`). A server compiles what is missing from the cache in the
    background once it is ready; after a warmup nothing is missing.

    Returns the models' names. Raises what :func:`scorer.load` raises for a bad model.
    """
    from . import ops
    from .batch import warm_arrow
    from .features import resp
    from .model import load
    from .server import wire
    from .server.repository import warm

    wire.warm()
    resp.warm()  # (the features stage's reader of Redis answers)
    ops.COMPILE_MODE = "eager"  # (compile here and now, nothing left for a background thread)
    names = []
    for path in paths:
        model = load(path, keep_tables=False)
        warm(model)
        warm_arrow(model)
        names.append(model.name)
    ops.wait_background()
    return names


def cmd_warmup(args: argparse.Namespace) -> int:
    if args.cache_dir is not None:
        cache_dir = args.cache_dir.resolve()
        if os.environ.get("NUMBA_CACHE_DIR") != str(cache_dir):
            # Numba fixes each kernel's cache directory when its module is imported, which
            # the command line has done already: run again with the variable set
            cache_dir.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
            argv = ["warmup", *map(str, args.models)]
            if args.repository is not None:
                argv += ["--repository", str(args.repository)]
            return subprocess.run([sys.executable, "-m", "tablescore", *argv], env=env,
                                  check=False).returncode
    paths = model_paths(args.repository, args.models)
    if not paths:
        print("tablescore: warmup: no models (give bundle paths, PMML documents or "
              "--repository DIR)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    names = warm_all(paths)
    where = os.environ.get("NUMBA_CACHE_DIR")
    cached = f"{where} ({cache_files(Path(where))} cache files)" if where else \
        "Numba's default cache directories (NUMBA_CACHE_DIR is not set)"
    print(f"warmed {len(names)} model{'s' if len(names) != 1 else ''} in "
          f"{time.perf_counter() - t0:.1f} s: {', '.join(names)}; kernels cached in {cached}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``warmup`` to the ``tablescore`` parser."""
    w = sub.add_parser("warmup", help="compile the kernels of models into Numba's cache (image "
                       "builds: every later start is a warm one); see docs/operations.md")
    w.add_argument("models", nargs="*", type=Path, default=[],
                   help="bundle directories or PMML documents")
    w.add_argument("--repository", type=Path, default=None,
                   help="every version of every model of this repository "
                        "(DIR/<model>/<version>/)")
    w.add_argument("--cache-dir", type=Path, default=None,
                   help="Numba cache directory to fill (sets NUMBA_CACHE_DIR for the command; "
                        "the server must run with the same NUMBA_CACHE_DIR)")
    w.set_defaults(fn=cmd_warmup)
