"""The node's gRPC server: Peer and Query, the standard health and reflection services."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from learnchain.node.p2p.peers import MAX_MESSAGE_BYTES
from learnchain.node.rpc.services import PeerService, QueryService, Refusals, add_services
from learnchain.proto import learnchain_pb2 as pb


class BindError(OSError):
    """The listen address cannot be bound."""


@dataclass(frozen=True)
class RunningServer:
    """A started server and the health status it reports."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer

    async def set_not_serving(self) -> None:
        """Tell health checks (docker's, grpc-health-probe's) that this node is failing."""
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    async def stop(self, grace: float) -> None:
        """Stop serving, letting calls in flight finish within ``grace`` seconds."""
        await self.server.stop(grace=grace)


async def start_server(
    listen: str,
    peer: PeerService,
    query: QueryService,
    refusals: Refusals,
    credentials: grpc.ServerCredentials | None = None,
) -> RunningServer:
    """Serve on ``listen`` (with mutual TLS when ``credentials`` are given); health says
    SERVING once the server has started."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # gRPC sets SO_REUSEPORT by default: a second node on the same port would bind and
            # silently share its traffic.
            ("grpc.so_reuseport", 0),
        ]
    )
    add_services(server, refusals, peer, query)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [
        pb.DESCRIPTOR.services_by_name["Peer"].full_name,
        pb.DESCRIPTOR.services_by_name["Query"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
    try:
        bound = (
            server.add_insecure_port(listen)
            if credentials is None
            else server.add_secure_port(listen, credentials)
        )
    except RuntimeError as error:
        raise BindError(f"cannot bind {listen} ({error})") from None
    if bound == 0:
        raise BindError(f"cannot bind {listen} (in use?)")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, health_servicer)
