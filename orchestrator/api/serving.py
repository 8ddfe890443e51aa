"""Running the ASGI app under uvicorn on a listening socket we bind ourselves.

`uvicorn --workers N` binds with `socket.socket(family)`, whose protocol number is 0, and
asyncio sets TCP_NODELAY on accepted connections only when the listener says IPPROTO_TCP.
Without it every keep-alive request after the first waits for the client's delayed ACK
(~40 ms on Linux; Kludex/uvicorn#3149): a client sending events one at a time over one
connection gets about 22 a second. A listener created with IPPROTO_TCP, shared by every
worker process, avoids it.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess


def tcp_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        sys.exit(f"cannot listen on {host}:{port}: {error}")
    listener.set_inheritable(True)  # the worker processes accept on it too
    return listener


def run_uvicorn(config: uvicorn.Config) -> None:
    """`config.workers` processes (uvicorn's supervisor restarts any that die), or this one."""
    listener = tcp_listener(config.host, config.port)
    host = f"[{config.host}]" if ":" in config.host else config.host
    logging.getLogger("uvicorn.error").info(
        "listening on http://%s:%d (Press CTRL+C to quit)", host, listener.getsockname()[1]
    )
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=[listener]).run()
        else:
            uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
