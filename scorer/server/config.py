"""Server settings shared by the Python API, the CLI and worker processes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_threads() -> int:
    """Scoring threads: one per core the process may run on.

    Kernels release the GIL, so requests score in parallel up to the core count; more threads
    only add contention.
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ServerConfig:
    """How one server process runs.

    Parameters
    ----------
    repository : Path
        Model repository root: ``<repository>/<model>/<version>/`` holds a bundle. With
        ``store``, the local directory the replica keeps the registry's bundles in.
    host : str
        Interface to listen on (``"0.0.0.0"`` / ``"[::]"`` for all).
    port : int
        gRPC port; 0 picks a free one (read it from ``ServerHandle.port``).
    metrics_port : int or None
        Port of the Prometheus ``/metrics`` HTTP endpoint; None: no endpoint, 0: a free one.
    metrics_host : str or None
        Interface of the metrics endpoint (default: ``host``).
    threads : int
        Request threads (gRPC's thread pool).
    poll_interval : float
        Seconds between two scans of the repository; 0 disables watching (the repository is
        then only re-read on RepositoryModelLoad).
    load_threads : int
        Background threads loading, verifying and warming new versions.
    load_waiters : int
        RepositoryModelLoad calls that may wait for their loads at once; more are answered
        UNAVAILABLE at once. The request thread pool holds ``threads + load_waiters`` threads,
        so loads, however slow, always leave ``threads`` threads to inference and health.
    max_rows : int
        Rows per ModelInfer request; more is refused with RESOURCE_EXHAUSTED.
    max_message_bytes : int
        Largest request message accepted; gRPC refuses more with RESOURCE_EXHAUSTED.
    grace : float
        Seconds in-flight requests get to finish on shutdown.
    reuse_port : bool
        Set SO_REUSEPORT so several processes share the port (``--workers``).
    batch_delay_us : float
        Adaptive batching: the longest a request waits for concurrent requests to the same
        model version to share its kernel call (see :mod:`scorer.server.batching`);
        0 (default) scores every request on its own.
    batch_max_rows : int
        Adaptive batching: rows per merged kernel call; a request this large is never delayed.
    tls_cert, tls_key : Path or None
        PEM certificate chain and private key: serve gRPC over TLS only (both or neither).
    tls_client_ca : Path or None
        PEM CA certificates: clients must present a certificate they signed (mutual TLS).
    auth_token_file : Path or None
        File holding a bearer token: every RPC but the health checks must send metadata
        ``authorization: Bearer <token>``, else UNAUTHENTICATED.
    store : str or None
        A model registry URL (``sqlite:///PATH``, ``postgresql://...``): serve what the
        registry says instead of what an operator puts in ``repository``.
    replica_id : str or None
        How this replica reports to the registry (default ``host:pid``).
    experiments : bool
        Route requests of models whose ``config.json`` declares an experiment
        (docs/experiments.md).
    control_group : float
        Share of units in the permanent control group (0: none).
    control_group_salt : str
        The control group's own salt: the same on every replica.
    exposures : Path, str or None
        The exposure log (docs/experiments.md): a directory (Parquet files) or a
        ``postgresql://...`` URL (the table ``tablescore_exposures``); None: no log.
    access_log : str
        One log record per request (``tablescore.access``): ``off`` (default), ``all``,
        ``errors`` (status other than OK) or ``sample:RATE`` (every error and a fraction RATE
        of the rest); see docs/operations.md, Logs.
    features : str or None
        A feature store URL (``redis://HOST:PORT/DB``, ``sqlite:///PATH``): requests that send
        a bound model's entity id are completed from it (docs/features.md).
    cache : str or None
        An output cache: ``local:MB`` (in this process) or ``redis://HOST:PORT/DB``.
    features_timeout : float
        Seconds a feature store or Redis cache may take to answer before the request gets
        UNAVAILABLE (store) or is scored anyway (cache).
    drift_window : float
        Drift monitoring (docs/monitoring.md): seconds per window of counted rows, per model
        version whose bundle has a reference profile; 0 (default) turns monitoring off (its
        cost, per single-row request and for large requests: docs/monitoring.md).
    drift_thresholds : str
        ``WARN,ALERT``: PSI levels whose crossing logs an event ``drift``.
    drift_sample : float
        ``--drift-sample``: in (0, 1]; below 1 only every ``round(1 / drift_sample)``-th row
        of a request of 256 rows or more is counted (docs/monitoring.md). Default 1.
    """

    repository: Path
    host: str = "127.0.0.1"
    port: int = 8001
    metrics_port: int | None = None
    metrics_host: str | None = None
    threads: int = 0
    poll_interval: float = 1.0
    load_threads: int = 2
    load_waiters: int = 2
    max_rows: int = 1_000_000
    max_message_bytes: int = 64 * 1024 * 1024
    grace: float = 10.0
    reuse_port: bool = False
    batch_delay_us: float = 0.0
    batch_max_rows: int = 4096
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_token_file: Path | None = None
    store: str | None = None
    replica_id: str | None = None
    experiments: bool = True
    control_group: float = 0.0
    control_group_salt: str = "tablescore-permanent-control-group"
    exposures: Path | str | None = None
    access_log: str = "off"
    features: str | None = None
    cache: str | None = None
    features_timeout: float = 0.3
    drift_window: float = 0.0
    drift_thresholds: str = "0.1,0.2"
    drift_sample: float = 1.0

    def __post_init__(self) -> None:
        from .logs import parse_access_mode

        self.repository = Path(self.repository)
        if not 0.0 <= self.control_group < 1.0:
            raise ValueError("--control-group must be a fraction in [0, 1)")
        if not 1024 <= self.max_message_bytes <= 2**31 - 1:  # (gRPC's limit is a C int)
            raise ValueError("--max-message-mb must be between 0.001 and 2047 "
                             f"(got {self.max_message_bytes / 2**20:g})")
        parse_access_mode(self.access_log)  # a bad value fails at start (ValueError)
        if self.exposures is not None:
            from ..experiments.exposures import SINKS, scheme_of

            scheme = scheme_of(self.exposures)
            if scheme and scheme not in SINKS:
                raise ValueError(f"--exposures: unknown scheme '{scheme}://': give a "
                                 "directory or postgresql://USER@HOST:PORT/DB")
            if not scheme:
                self.exposures = Path(self.exposures)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        if self.batch_delay_us < 0 or self.batch_max_rows <= 0:
            raise ValueError("batch_delay_us must be >= 0 and batch_max_rows positive")
        if self.threads <= 0:
            # batching merges only requests that are in the server at once: each waits in a
            # request thread, so allow many more threads than cores (they mostly wait)
            self.threads = default_threads() if not self.batching else max(
                64, default_threads())
        if self.max_rows <= 0:
            raise ValueError("max_rows must be positive")
        if self.load_threads <= 0:
            raise ValueError("load_threads must be positive")
        if self.load_waiters <= 0:
            raise ValueError("load_waiters must be positive")
        if not self.drift_window >= 0:
            raise ValueError("--drift-window must be >= 0 seconds (0: off)")
        if not 0 < self.drift_sample <= 1:
            raise ValueError("--drift-sample must be in (0, 1] (1: every row)")
        from ..monitoring.drift import Thresholds

        Thresholds.parse(self.drift_thresholds)  # a bad value fails at start (ValueError)

    @property
    def batching(self) -> bool:
        return self.batch_delay_us > 0
