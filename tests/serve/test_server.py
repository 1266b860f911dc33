"""The listening socket: a free port on 0, and TCP_NODELAY on every connection (the taken port: tests/cli)."""

from __future__ import annotations

import asyncio
import socket

from samlora.serve.server import bind, url_of


def test_bound_socket_gets_nodelay_connections() -> None:
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY only on such sockets
        assert url_of(sock).startswith("http://127.0.0.1:") and sock.getsockname()[1] > 0

        async def accepted_nodelay() -> int:
            seen: list[int] = []

            def on_connect(reader, writer) -> None:
                seen.append(
                    writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                )
                writer.close()

            server = await asyncio.start_server(on_connect, sock=sock)
            _, writer = await asyncio.open_connection(*sock.getsockname())
            while not seen:
                await asyncio.sleep(0.01)
            writer.close()
            server.close()
            return seen[0]

        assert asyncio.run(asyncio.wait_for(accepted_nodelay(), 10)) != 0
    finally:
        sock.close()
