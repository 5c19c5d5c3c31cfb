"""``tablescore serve`` / ``python -m scorer.server``: command-line options and entry point.

Kept free of gRPC imports at module level so that ``tablescore --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..errors import TablescoreError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``p``."""
    p.add_argument("--repository", type=Path, default=None,
                   help="model repository: DIR/<model>/<version>/ bundles (with --store: "
                        "where this replica keeps the registry's bundles; default a "
                        "temporary directory)")
    p.add_argument("--store", default=os.environ.get("TABLESCORE_STORE"),
                   help="serve what a model registry says (sqlite:///PATH or "
                        "postgresql://USER@HOST:PORT/DB; default $TABLESCORE_STORE)")
    p.add_argument("--replica-id", default=None,
                   help="how this replica reports to the registry (default host:pid)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 or [::] for all)")
    p.add_argument("--port", type=int, default=8001, help="gRPC port (0: a free one; "
                   "default 8001)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus /metrics over HTTP on this port (worker i: port+i)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the port through SO_REUSEPORT (default 1)")
    p.add_argument("--threads", type=int, default=0,
                   help="request threads per process (default: one per core)")
    p.add_argument("--load-waiters", type=int, default=2,
                   help="RepositoryModelLoad calls that may wait for loads at once; more get "
                        "UNAVAILABLE (retry). This many request threads are reserved for them "
                        "(default 2)")
    p.add_argument("--poll-interval", type=float, default=1.0,
                   help="seconds between repository scans (0: no watching; default 1)")
    p.add_argument("--max-rows", type=int, default=1_000_000,
                   help="rows per request (default 1000000)")
    p.add_argument("--max-message-mb", type=float, default=64.0,
                   help="largest request message in MiB (default 64)")
    p.add_argument("--grace", type=float, default=10.0,
                   help="seconds in-flight requests get on SIGTERM (default 10)")
    p.add_argument("--batch-delay-us", type=float, default=0.0,
                   help="adaptive batching: longest wait, in microseconds, for concurrent "
                        "requests to the same model to share one kernel call (default 0: off)")
    p.add_argument("--batch-max-rows", type=int, default=4096,
                   help="adaptive batching: rows per merged call (default 4096)")
    p.add_argument("--tls-cert", type=Path, default=None,
                   help="PEM certificate chain: serve over TLS only (with --tls-key)")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", type=Path, default=None,
                   help="PEM CA certificates: require client certificates they signed")
    p.add_argument("--auth-token-file", type=Path, default=None,
                   help="file holding a bearer token every RPC but the health checks must "
                        "send as 'authorization: Bearer <token>'")
    p.add_argument("--control-group", type=float, default=0.0, metavar="FRACTION",
                   help="share of units in the permanent control group: they get the arm "
                        "named control of every experiment, whatever experiments come and go")
    p.add_argument("--control-group-salt", default="tablescore-permanent-control-group",
                   help="the control group's salt (the same on every replica)")
    p.add_argument("--exposures", default=None, metavar="DIR|URL",
                   help="write an exposure log of experiment requests: Parquet files under "
                        "DIR, or the table tablescore_exposures of a PostgreSQL database "
                        "(postgresql://USER@HOST:PORT/DB; the registry's own is fine: give "
                        "the --store URL)")
    p.add_argument("--no-experiments", action="store_true",
                   help="do not route requests by the experiments in config.json")
    p.add_argument("--log-format", choices=["json", "text"], default="json",
                   help="json lines (default) or key=value lines")
    p.add_argument("--access-log", default="off", metavar="off|all|errors|sample:RATE",
                   help="one log line per request (event 'access': method, model, version "
                        "that answered, code, rows, latency_us, peer): all, errors (status "
                        "not OK) or sample:RATE (every error and a fraction RATE of the "
                        "rest); default off")
    p.add_argument("--features", default=os.environ.get("TABLESCORE_FEATURES"), metavar="URL",
                   help="feature store (redis://HOST:PORT/DB or sqlite:///PATH): a request "
                        "sending a bound model's entity id gets its inputs from it "
                        "(docs/features.md; default $TABLESCORE_FEATURES)")
    p.add_argument("--cache", default=None, metavar="SPEC",
                   help="output cache: local:MB (this process, LRU) or redis://HOST:PORT/DB")
    p.add_argument("--features-timeout", type=float, default=0.3, metavar="SECONDS",
                   help="longest wait for the feature store or a Redis cache (default 0.3)")
    p.add_argument("--drift-window", type=float, default=0.0, metavar="SECONDS",
                   help="drift monitoring: rows of each model version with a reference "
                        "profile are counted in windows of SECONDS (e.g. 300); PSI per "
                        "window on /metrics; with --store, windows also go to the "
                        "registry's database for one fleet figure (default 0: off; see "
                        "docs/monitoring.md for its cost)")
    p.add_argument("--drift-sample", type=float, default=1.0, metavar="RATE",
                   help="drift monitoring of requests of 256 rows or more: count every "
                        "round(1/RATE)-th row only (an estimate: cheaper for large "
                        "requests, noisier PSI; default 1: every row; docs/monitoring.md)")
    p.add_argument("--drift-thresholds", default="0.1,0.2", metavar="WARN,ALERT",
                   help="PSI levels whose crossing logs a 'drift' event (default 0.1,0.2)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the server described by parsed ``serve`` options until SIGTERM / SIGINT."""
    from .app import run
    from .config import ServerConfig
    from .logs import configure_logging

    level = logging.DEBUG if getattr(args, "verbose", False) else logging.INFO
    configure_logging(args.log_format, level)
    repository = args.repository
    if repository is None:
        if not args.store:
            raise ValueError("give --repository DIR (a model repository) or --store URL "
                             "(a model registry)")
        import tempfile

        repository = Path(tempfile.mkdtemp(prefix="tablescore-replica-"))
    config = ServerConfig(
        repository=repository, store=args.store or None, replica_id=args.replica_id,
        experiments=not args.no_experiments, control_group=args.control_group,
        control_group_salt=args.control_group_salt, exposures=args.exposures,
        host=args.host, port=args.port,
        metrics_port=args.metrics_port, threads=args.threads,
        poll_interval=args.poll_interval, load_waiters=args.load_waiters, max_rows=args.max_rows,
        max_message_bytes=int(args.max_message_mb * 1024 * 1024), grace=args.grace,
        batch_delay_us=args.batch_delay_us, batch_max_rows=args.batch_max_rows,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
        auth_token_file=args.auth_token_file, access_log=args.access_log,
        features=args.features or None, cache=args.cache,
        features_timeout=args.features_timeout,
        drift_window=args.drift_window, drift_thresholds=args.drift_thresholds,
        drift_sample=args.drift_sample)
    return run(config, workers=args.workers, log_format=args.log_format, log_level=level)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scorer.server",
                                description="Serve a model repository over gRPC "
                                            "(Open Inference Protocol v2).")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_from_args(args)
    except (FileNotFoundError, OSError, ValueError, TablescoreError) as exc:
        print(f"tablescore serve: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
