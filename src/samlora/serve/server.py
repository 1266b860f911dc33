"""Running the app on uvicorn: a socket bound first (so ``--port 0`` works), clean stop on signals.

uvicorn stops gracefully on SIGINT and SIGTERM (open requests finish, then the process exits);
it then re-raises the signal it caught, which :func:`run` answers by returning normally, so
``samlora serve`` exits with status 0 after a requested stop.
"""

from __future__ import annotations

import logging
import signal
import socket

import uvicorn

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free port).

    Made with ``IPPROTO_TCP`` named, so that asyncio sets ``TCP_NODELAY`` on every accepted
    connection (it skips sockets whose protocol is 0, as ``socket.create_server`` makes them):
    without it, a response written in two parts waits for the client's delayed ACK, about 40 ms
    per request on a kept-alive connection.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        from samlora.errors import SamloraError

        raise SamloraError(
            f"cannot listen on {host}:{port}: {err.strerror}; pick another --port or --host"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``app`` that logs through samlora's logging (one line per request, ours)."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, log_level=log_level, timeout_graceful_shutdown=10
    )
    return uvicorn.Server(config)


def run(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM, then return."""
    stopped: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, frame: stopped.append(number)) for sig in STOP_SIGNALS}
    try:
        make_server(app).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    if stopped:
        log.info("stopped on %s", signal.Signals(stopped[0]).name)
