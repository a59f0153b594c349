"""A node cannot share its port with another process: the second bind fails with a clear error
instead of splitting the traffic (gRPC's default SO_REUSEPORT is off)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import pytest

from learnchain.node.rpc.chain_reader import ChainReader, WeightsReader
from learnchain.node.rpc.grpc_server import BindError, start_server
from learnchain.node.rpc.services import PeerService, QueryService
from learnchain.proto import learnchain_pb2 as pb


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_services() -> tuple[PeerService, QueryService]:
    unused: Any = object()  # nothing is called: the test only binds
    chain, weights = cast(ChainReader, unused), cast(WeightsReader, unused)
    peer = PeerService(unused, unused, unused, unused, chain, weights, lambda _: None)
    return peer, QueryService(chain, weights, pb.StatusResponse, lambda _: None)


def test_a_second_server_on_the_same_port_is_refused() -> None:
    async def scenario() -> None:
        listen = f"127.0.0.1:{free_port()}"
        first = await start_server(listen, *make_services(), lambda _: None)
        try:
            with pytest.raises(BindError, match=f"cannot bind {listen}"):
                await start_server(listen, *make_services(), lambda _: None)
        finally:
            await first.stop(0)

    asyncio.run(scenario())
