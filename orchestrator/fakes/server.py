"""Serve the fakes: on a real loopback port in a background thread, or as a process of their own.

Tests and benchmarks use this to put the fake providers (and our own API) behind real HTTP,
so the real `twilio` SDK and `httpx` clients talk over sockets exactly as in production.
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app, port: int | None = None, host: str = "127.0.0.1", **uvicorn_options) -> Iterator[str]:
    """Serve `app` until the block exits; yields its base URL (no trailing slash)."""
    port = port or free_port()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", **uvicorn_options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_standalone(app, host: str, port: int, **uvicorn_options) -> None:
    """Serve a fake as the only thing in its process (`python -m orchestrator.fakes.…`).

    A fake keeps every message it accepted (for GET and the witness log), and each full
    pass of the cyclic garbage collector walks all of them: with the default thresholds the
    fake Twilio's CPU per message grew by half over 90,000 messages, which made it the
    bottleneck of long benchmark runs (bench/results/HISTORY.md, end to end). What exists once the app
    is built (modules, the app) is never garbage, so it is left out of every pass, and full
    passes run a tenth as often. Only for a process of its own: the fakes mounted inside
    the service leave its collector alone."""
    gc.freeze()
    gc.set_threshold(700, 10, 100)
    uvicorn.run(app, host=host, port=port, **uvicorn_options)
