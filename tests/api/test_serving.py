"""The listening socket `orchestrator api` and `serve` share between uvicorn processes."""

from __future__ import annotations

import asyncio
import socket

import pytest

from orchestrator.api.serving import tcp_listener


async def nodelay_of_accepted_connection(listener: socket.socket) -> int:
    """Serve on `listener` as uvicorn does (asyncio.start_server with sock=) and read
    TCP_NODELAY off the connection asyncio accepted."""
    accepted: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_connection(reader, writer):
        accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connection, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()


async def test_connections_accepted_on_our_listener_send_without_nagle_delay():
    assert await nodelay_of_accepted_connection(tcp_listener("127.0.0.1", 0)) != 0


async def test_a_listener_bound_like_uvicorn_workers_does_gets_no_nodelay():
    """Why `tcp_listener` exists (Kludex/uvicorn#3149): uvicorn's supervisor binds
    `socket.socket(family)`, protocol 0, and asyncio then leaves Nagle on."""
    listener = socket.socket(socket.AF_INET)
    listener.bind(("127.0.0.1", 0))
    assert await nodelay_of_accepted_connection(listener) == 0


def test_a_taken_port_is_a_clear_exit():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SystemExit, match="cannot listen on 127.0.0.1"):
            tcp_listener("127.0.0.1", taken.getsockname()[1])
