"""Assembling and running the server: gRPC with the inference, health and reflection services,
the repository watcher, the metrics endpoint, graceful shutdown, worker processes."""

from __future__ import annotations

import hmac
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import replace
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from protos import POOL

from .. import __version__
from ..pipeline import Cache, Features, Pipeline, Recorder, Router
from . import wire
from .config import ServerConfig
from .logs import configure_logging
from .metrics import Metrics
from .repository import Repository
from .servicer import SERVICE, InferenceServicer, ServerState

log = logging.getLogger("tablescore.server")


#: RPCs answered without a token: health probes (a Kubernetes gRPC probe cannot send
#: metadata) that say only live / ready
AUTH_EXEMPT = frozenset({
    f"/{SERVICE}/ServerLive", f"/{SERVICE}/ServerReady",
    "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
})


def read_token(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path`` (surrounding whitespace removed); ValueError if empty."""
    with open(path, encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        raise ValueError(f"auth token file '{path}' is empty")
    return token


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses RPCs without metadata ``authorization: Bearer <token>`` (UNAUTHENTICATED).

    Parameters
    ----------
    token : str
        The token clients must send.
    exempt : frozenset of str
        Full method names (``/package.Service/Method``) answered without a token.
    """

    def __init__(self, token: str, exempt: frozenset[str] = AUTH_EXEMPT) -> None:
        self._expected = f"Bearer {token}".encode()
        self._exempt = exempt

    def intercept_service(self, continuation: Any, details: Any) -> Any:
        if details.method in self._exempt:
            return continuation(details)
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else value
                # constant time: the comparison must not tell how much of a guess was right
                if hmac.compare_digest(got, self._expected):
                    return continuation(details)
                break
        handler = continuation(details)
        return None if handler is None else _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s kind that ends the call with UNAUTHENTICATED."""
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED,
                      "missing or wrong bearer token (send metadata "
                      "'authorization: Bearer <token>')")

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)


def _server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials as configured; None for plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    with open(config.tls_key, "rb") as f:
        key = f.read()
    with open(config.tls_cert, "rb") as f:
        cert = f.read()
    ca = None
    if config.tls_client_ca is not None:
        with open(config.tls_client_ca, "rb") as f:
            ca = f.read()
    _check_tls(config)
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=ca is not None)


def _check_tls(config: ServerConfig) -> None:
    """ValueError naming the file when the certificate and key do not load or do not match,
    or the client CA file holds no certificate (gRPC said only that it could not bind the
    port, or started and refused every client)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(config.tls_cert, config.tls_key)
    except ssl.SSLError as exc:
        raise ValueError(f"--tls-cert {config.tls_cert} / --tls-key {config.tls_key}: not a "
                         f"certificate and its private key ({exc.reason or exc})") from None
    if config.tls_client_ca is not None:
        try:  # (an empty file too: NO_CERTIFICATE_OR_CRL_FOUND; every client refused)
            ctx.load_verify_locations(cafile=config.tls_client_ca)
        except ssl.SSLError as exc:
            raise ValueError(f"--tls-client-ca {config.tls_client_ca}: no PEM certificate "
                             f"({exc.reason or exc})") from None


def _reflection_pool() -> Any:
    """:data:`protos.POOL` plus the health and reflection protos, so that reflection can
    describe every service the server offers from one pool."""
    for fd in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        try:
            POOL.FindFileByName(fd.name)
        except KeyError:
            POOL.AddSerializedFile(fd.serialized_pb)
    return POOL


class ServerHandle:
    """A running server. Use :func:`serve` (or :func:`start`) to get one.

    Attributes
    ----------
    port : int
        The gRPC port it listens on.
    metrics_port : int or None
        The port of ``/metrics``, if enabled.
    repository : Repository
        The model repository it serves.
    metrics : Metrics
        Its Prometheus metrics.
    drift : DriftRecorder or None
        Its drift monitoring recorder (None when ``drift_window`` is 0).
    """

    drift: Any = None

    def __init__(self, config: ServerConfig, server: grpc.Server, port: int,
                 repository: Repository, metrics: Metrics, state: ServerState,
                 health_servicer: health.HealthServicer, executor: ThreadPoolExecutor,
                 metrics_httpd: Any = None) -> None:
        self.config = config
        self.port = port
        self.repository = repository
        self.metrics = metrics
        self.metrics_port: int | None = (metrics_httpd.server_port if metrics_httpd is not None
                                         else None)
        self._server = server
        self._state = state
        self._health = health_servicer
        self._executor = executor
        self._httpd = metrics_httpd
        #: stages to close after the last request (they flush: the exposure log)
        self.closers: list[Any] = []
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    @property
    def address(self) -> str:
        """``host:port`` for clients on this machine."""
        host = self.config.host
        if host in ("0.0.0.0", "", "[::]", "::"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._state.shutting_down

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the initial repository scan is loaded (ready or failed)."""
        return self._ready.wait(timeout)

    def _mark_ready(self) -> None:
        if self._state.shutting_down:
            return
        self._state.ready = True
        self._ready.set()
        self.metrics.ready.set(1)
        self._health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        views = self.repository.views()
        log.info("server ready", extra={
            "event": "ready", "port": self.port,
            "models": {n: v.ready_versions() for n, v in sorted(views.items())}})

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting requests, let in-flight ones finish for up to ``grace`` seconds
        (default: the configured grace), then release everything. Idempotent."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.config.grace if grace is None else grace
            t0 = time.monotonic()
            self._state.shutting_down = True
            self.metrics.ready.set(0)
            self._health.enter_graceful_shutdown()
            log.info("shutting down", extra={"event": "shutdown", "grace_s": grace})
            # new RPCs are refused (UNAVAILABLE) from here; running ones get `grace` seconds
            self._server.stop(grace).wait()
            for stage in self.closers:
                try:
                    stage.close()
                except Exception:
                    log.exception("closing a pipeline stage failed")
            self.repository.close()
            if self._httpd is not None:
                self._httpd.shutdown()
                self._httpd.server_close()
            self._executor.shutdown(wait=False)
            self._stopped.set()
            log.info("stopped", extra={"event": "stopped",
                                       "drain_s": round(time.monotonic() - t0, 3)})

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` has completed; True if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(config: ServerConfig, *, wait_ready: bool = True,
          ready_timeout: float | None = None, router: Router | None = None,
          features: Features | None = None, cache: Cache | None = None,
          recorders: Sequence[Recorder] = ()) -> ServerHandle:
    """Start a server as configured and return its handle.

    ``router``, ``features``, ``cache`` and ``recorders`` are the optional stages of the
    request pipeline (:mod:`scorer.pipeline`); left out, they cost nothing per request.

    The port is bound and the health RPCs answer at once; models load in the background and
    the server reports ready (ServerReady, health SERVING) once the initial scan is loaded.
    With ``wait_ready`` this call returns only then.

    Raises
    ------
    FileNotFoundError
        The repository directory does not exist.
    OSError
        The port cannot be bound.
    """
    # credentials first: a missing file fails before anything starts
    credentials = _server_credentials(config)
    interceptors = ([TokenInterceptor(read_token(config.auth_token_file))]
                    if config.auth_token_file is not None else [])
    metrics = Metrics()
    state = ServerState()
    if config.store:
        repo: Any = _registry_replica(config, metrics)
    else:
        repo = Repository(config.repository, poll_interval=config.poll_interval,
                          load_threads=config.load_threads, metrics=metrics,
                          load_waiters=config.load_waiters)
        if not repo.root.is_dir():
            raise FileNotFoundError(f"model repository '{repo.root}' is not a directory")
    closers: list[Any] = []
    if router is None and config.experiments:
        from ..experiments.router import ExperimentRouter

        router = ExperimentRouter(repo, control_fraction=config.control_group,
                                  control_salt=config.control_group_salt)
        metrics.registry.register(router.collector())
        closers.append(router)
        if config.exposures is not None:
            from ..experiments.exposures import ExposureLog

            exposures = ExposureLog(config.exposures, router)
            metrics.registry.register(exposures.collector())
            recorders = [*recorders, exposures]
            closers.append(exposures)
    if features is None and config.features:
        features = _feature_stage(config, repo)
    if cache is None and config.cache:
        cache = _output_cache(config)
    _register_stage_metrics(metrics, features, cache)
    drift = _drift_recorder(config, metrics, repo)
    if drift is not None:
        recorders = (*recorders, drift)
        closers.append(drift)  # counts what is queued; the fleet table gets the last window
    pipeline = Pipeline(repo, router=router, features=features, cache=cache,
                        recorders=recorders)
    servicer = InferenceServicer(repo, config, metrics, state, pipeline=pipeline)
    # RepositoryModelLoad waits for its load in a request thread, and at most load_waiters do
    # (the repository refuses more): reserving that many threads keeps `threads` of them for
    # inference and health checks whatever loads are in progress
    executor = ThreadPoolExecutor(config.threads + config.load_waiters,
                                  thread_name_prefix="tablescore-rpc")
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", -1),
        # gRPC sets SO_REUSEPORT by default on Linux; only worker processes should share a port
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
    ]
    server = grpc.server(executor, handlers=[servicer.generic_handler()], options=options,
                         interceptors=interceptors)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server,
        pool=_reflection_pool())
    address = f"{config.host}:{config.port}"
    try:
        port = (server.add_secure_port(address, credentials) if credentials is not None
                else server.add_insecure_port(address))
    except RuntimeError as exc:
        executor.shutdown(wait=False)
        raise OSError(f"cannot listen on {address}: {exc}") from exc
    if not port:
        executor.shutdown(wait=False)
        raise OSError(f"cannot listen on {address}")
    server.start()
    httpd = None
    try:
        if config.metrics_port is not None:
            from prometheus_client import start_http_server

            httpd, _ = start_http_server(config.metrics_port,
                                         addr=config.metrics_host or config.host,
                                         registry=metrics.registry)
        handle = ServerHandle(config, server, port, repo, metrics, state, health_servicer,
                              executor, httpd)
        handle.closers = closers
        handle.drift = drift
        log.info("serving", extra={
            "event": "serving", "host": config.host, "port": port,
            "metrics_port": handle.metrics_port, "repository": str(repo.root),
            "threads": config.threads, "pid": os.getpid(), "version": __version__,
            "tls": credentials is not None, "client_certificates": config.tls_client_ca
            is not None, "auth_token": bool(interceptors)})
        futures = repo.start()
    except BaseException:
        server.stop(0)
        executor.shutdown(wait=False)
        if httpd is not None:
            httpd.shutdown()
        raise

    def initial_load() -> None:
        wait_futures(futures)
        refresh = getattr(router, "refresh", None)
        if refresh is not None:
            # the experiments of what is now on disk (a registry replica wrote the models'
            # config.json as it started): ready means routed from the first request
            try:
                refresh()
            except Exception:
                log.warning("reading the experiments failed; the router's thread retries",
                            exc_info=True)
        handle._mark_ready()
        wire.warm_later()  # (the scan of plain ModelInfer requests, if not from the cache)

    threading.Thread(target=initial_load, name="tablescore-initial-load", daemon=True).start()
    if wait_ready:
        handle.wait_ready(ready_timeout)
    return handle


def _drift_recorder(config: ServerConfig, metrics: Metrics, repo: Any) -> Any:
    """The drift monitoring recorder (None with ``drift_window`` 0), exported on /metrics.
    Serving a registry (``--store``), finished windows also go to the registry's database
    and the fleet's merged windows are exported as ``tablescore_fleet_*``."""
    if not config.drift_window:
        return None
    from ..monitoring import DriftRecorder, Thresholds

    sink = None
    store = getattr(repo, "store", None)
    if config.store and store is not None:
        from ..monitoring.fleet import FleetWindows

        sink = FleetWindows(store, replica_id=getattr(repo, "replica_id", None))
    drift = DriftRecorder(config.drift_window, Thresholds.parse(config.drift_thresholds),
                          sink=sink, sample=config.drift_sample)
    metrics.watch_drift(drift)
    if sink is not None:
        metrics.registry.register(sink.collector(drift, settle_s=min(10.0,
                                                                     config.drift_window)))
    return drift


def _registry_replica(config: ServerConfig, metrics: Metrics) -> Any:
    """A repository over ``config.repository`` kept in step with the registry at
    ``config.store``; UnavailableError (naming the URL, not its password) if unreachable."""
    from ..registry import open_store
    from ..registry.replica import RegistryReplica

    config.repository.mkdir(parents=True, exist_ok=True)
    # no watcher: the replica scans the directory itself right after changing it
    repo = Repository(config.repository, poll_interval=0, load_threads=config.load_threads,
                      metrics=metrics, load_waiters=config.load_waiters)
    replica = RegistryReplica(open_store(config.store), repo, replica_id=config.replica_id)
    metrics.registry.register(replica.collector())
    return replica


def _feature_stage(config: ServerConfig, repo: Any) -> Features:
    """The features stage over ``config.features``, bound by each model's config.json."""
    from ..features import FeatureStage, open_store

    def binding(name: str) -> Any:
        view = repo.views().get(name)
        return None if view is None else view.config.get("features")

    return FeatureStage(open_store(config.features, timeout=config.features_timeout), binding)


def _register_stage_metrics(metrics: Metrics, *stages: Any) -> None:
    """Put the series of stages that keep their own (``stage.metrics``: a collector, or an
    object with ``collectors()``) on /metrics."""
    for stage in stages:
        m = getattr(stage, "metrics", None)
        if m is None:
            continue
        for c in m.collectors() if callable(getattr(m, "collectors", None)) else [m]:
            try:
                metrics.registry.register(c)
            except ValueError:  # already there (a stage shared by two servers in a process)
                pass


def _output_cache(config: ServerConfig) -> Cache:
    """The output cache ``config.cache`` describes."""
    from ..cache import open_cache

    # (a redis:// cache URL's own ?timeout= wins over --features-timeout)
    own = "timeout=" in config.cache.partition("?")[2]
    return open_cache(config.cache, timeout=None if own else config.features_timeout)


def serve(repository: str | os.PathLike[str], *, port: int = 0, host: str = "127.0.0.1",
          metrics_port: int | None = None, wait_ready: bool = True,
          ready_timeout: float | None = None, **options: Any) -> ServerHandle:
    """Serve a model repository from this process (the embedding API).

    Parameters
    ----------
    repository : path-like
        ``<repository>/<model>/<version>/`` bundles (see docs/operations.md).
    port : int
        gRPC port; 0 (default) picks a free one: read ``handle.port``.
    host : str
        Interface to listen on; loopback by default.
    metrics_port : int, optional
        Serve Prometheus ``/metrics`` on this port (0: a free one, ``handle.metrics_port``).
    wait_ready : bool
        Return once the models present at start are loaded (or failed).
    ready_timeout : float, optional
        Longest wait for that.
    **options
        Any other :class:`ServerConfig` field (``threads``, ``poll_interval``, ``max_rows``,
        ``max_message_bytes``, ``grace``, ``load_threads``, ``load_waiters``), or a
        pipeline stage (``router``, ``features``, ``cache``, ``recorders``: see
        :func:`start`).

    Returns
    -------
    ServerHandle
        ``.port``, ``.stop(grace)``; also a context manager that stops on exit.

    Examples
    --------
    >>> with serve("models", port=0) as server:          # doctest: +SKIP
    ...     client = tritonclient.grpc.InferenceServerClient(server.address)
    """
    # (a string "features" / "cache" is the config's URL or spec, an object the stage itself)
    stages = {k: options.pop(k) for k in ("router", "features", "cache", "recorders")
              if k in options and not isinstance(options[k], str)}
    config = ServerConfig(repository=repository, port=port, host=host,
                          metrics_port=metrics_port, **options)
    return start(config, wait_ready=wait_ready, ready_timeout=ready_timeout, **stages)


# --- running as a program --------------------------------------------------------------------
class _Stop:
    """What a stop signal sets, polled by the main thread.

    The handler only assigns an attribute: a ``threading.Event``'s ``set()`` takes the lock
    that the interrupted main thread may be holding inside that Event's ``wait()`` (a
    deadlock: the server then never stopped), and logging takes locks the interrupted thread
    may hold too; the main thread logs the signal once it has seen it.
    """

    __slots__ = ("signum",)

    def __init__(self) -> None:
        self.signum: int | None = None

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, until a signal came; True if one did."""
        end = time.monotonic() + timeout
        while self.signum is None:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True

    def log(self) -> None:
        if self.signum is not None:
            log.info("signal received", extra={"event": "signal",
                                               "signal": signal.Signals(self.signum).name})


def _install_stop_signals(stop: _Stop) -> None:
    def on_signal(signum: int, frame: Any) -> None:
        if stop.signum is None:
            stop.signum = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_single(config: ServerConfig) -> int:
    """Serve until SIGTERM / SIGINT, then drain for ``config.grace`` seconds. Main thread only."""
    stop = _Stop()
    _install_stop_signals(stop)
    handle = start(config, wait_ready=False)
    while not stop.wait(0.5):
        pass
    stop.log()
    handle.stop()
    return 0


def _worker_main(config: ServerConfig, index: int, log_format: str, log_level: int) -> None:
    configure_logging(log_format, log_level)
    logging.getLogger("tablescore").handlers[0].addFilter(_WorkerFilter(index))
    raise SystemExit(run_single(config))


class _WorkerFilter(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def run(config: ServerConfig, *, workers: int = 1, log_format: str = "json",
        log_level: int = logging.INFO) -> int:
    """Run the server as a program: one process, or ``workers`` processes sharing the port
    through SO_REUSEPORT (the kernel spreads connections over them).

    Worker ``i`` serves metrics on ``metrics_port + i``. SIGTERM / SIGINT to this process stops
    every worker gracefully. Returns the exit status.
    """
    if workers <= 1:
        return run_single(config)
    if config.port == 0:
        raise ValueError("--workers above 1 needs a fixed --port (the workers share it)")
    stop = _Stop()
    _install_stop_signals(stop)  # before the workers exist: an early SIGTERM still reaches them
    ctx = multiprocessing.get_context("spawn")  # never fork a process that may hold gRPC state
    procs = []
    for i in range(workers):
        metrics_port = config.metrics_port
        if metrics_port:
            metrics_port += i
        cfg = replace(config, reuse_port=True, metrics_port=metrics_port)
        p = ctx.Process(target=_worker_main, args=(cfg, i, log_format, log_level),
                        name=f"tablescore-worker-{i}")
        p.start()
        procs.append(p)
    log.info("workers started", extra={"event": "workers", "port": config.port,
                                       "pids": [p.pid for p in procs]})
    status = 0
    while stop.signum is None:
        dead = [p for p in procs if not p.is_alive()]
        if dead:
            status = dead[0].exitcode or 1
            log.error("a worker exited; stopping the others", extra={
                "event": "worker_exited", "pid": dead[0].pid, "exitcode": dead[0].exitcode})
            break
        stop.wait(0.5)
    stop.log()
    for p in procs:
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join(config.grace + 10)
        if p.is_alive():
            p.kill()
            p.join()
            status = status or 1
        elif p.exitcode:
            status = status or p.exitcode
    return status
