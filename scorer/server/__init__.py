"""tablescore's scoring service: a model repository served over gRPC with the Open Inference
Protocol v2 (KServe) and Triton's repository / statistics / configuration extensions.

>>> from scorer.server import serve
>>> with serve("models", port=0) as server:    # doctest: +SKIP
...     print(server.port)

Command line: ``tablescore serve --repository DIR``. See docs/protocol.md and
docs/operations.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ServerConfig

if TYPE_CHECKING:
    from .app import ServerHandle

__all__ = ["ServerConfig", "ServerHandle", "serve", "start"]


def serve(repository: Any, **kwargs: Any) -> ServerHandle:
    """Serve a model repository from this process; see :func:`scorer.server.app.serve`."""
    from .app import serve as _serve

    return _serve(repository, **kwargs)


def start(config: ServerConfig, **kwargs: Any) -> ServerHandle:
    """Start a server from a :class:`ServerConfig`; see :func:`scorer.server.app.start`."""
    from .app import start as _start

    return _start(config, **kwargs)


def __getattr__(name: str) -> Any:
    if name == "ServerHandle":
        from .app import ServerHandle

        return ServerHandle
    raise AttributeError(name)
