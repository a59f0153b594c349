"""Hold the packets a chaos bed's links carry for a delay plus jitter (``tc netem`` in user space).

``tc netem`` delays packets in the kernel; a kernel built without ``sch_netem`` (as this
project's CI machine is) still has NFQUEUE. The bed sends each node's outgoing packets, as the
bridge forwards them, to queue ``1 + node`` (an iptables rule in the host namespace, where the
sending socket no longer owns them, so TCP's small-queue limit does not throttle a delayed
link); this process holds each packet and accepts it when its time comes. Packets keep their
order (like netem with a rate): one is released no earlier than the one queued before it, so a
release is one batch verdict for every packet up to the last one due.

It speaks the nfnetlink_queue protocol itself (``linux/netfilter/nfnetlink_queue.h``): metadata
only (no payload copied) and GSO packets whole (``NFQA_CFG_F_GSO``), so a bulk transfer is a few
thousand queued packets rather than one per 1,448-byte segment; TCP still sees MTU-sized
segments and its own congestion window.

The delays live in a JSON file, ``{"QUEUE": [delay_ms, jitter_ms], ...}``, reread when it
changes and copied to ``FILE.applied`` once in force. Run as
``python -m tests.chaos.delay --queues 4 --control FILE``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 2, 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 1 << 2
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NF_ACCEPT = 1
MAX_HELD = 100_000  # packets held per queue; the kernel drops beyond this
RECEIVE_BUFFER = 16 << 20
CONTROL_POLL_SECONDS = 0.2


def encode_attribute(kind: int, value: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = struct.pack("=HH", 4 + len(value), kind) + value
    return raw + bytes(-len(raw) % 4)


def encode_message(message: int, queue: int, attributes: bytes, sequence: int = 0) -> bytes:
    """One nfnetlink_queue message to the kernel."""
    kind = (NFNL_SUBSYS_QUEUE << 8) | message
    family_header = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue))
    body = family_header + attributes
    return struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST, sequence, 0) + body


def encode_bind(queue: int) -> bytes:
    """Bind ``queue``: metadata only, GSO packets whole, up to ``MAX_HELD`` held."""
    command = struct.pack("=BxH", NFQNL_CFG_CMD_BIND, socket.htons(socket.AF_INET))
    params = struct.pack(">IB", 0, NFQNL_COPY_META)
    attributes = (
        encode_attribute(NFQA_CFG_CMD, command)
        + encode_attribute(NFQA_CFG_PARAMS, params)
        + encode_attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", MAX_HELD))
        + encode_attribute(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_GSO))
        + encode_attribute(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_GSO))
    )
    return encode_message(NFQNL_MSG_CONFIG, queue, attributes)


def encode_accept_up_to(queue: int, packet_id: int) -> bytes:
    """Accept every packet of ``queue`` with an id up to ``packet_id``."""
    verdict = struct.pack(">II", NF_ACCEPT, packet_id)
    return encode_message(
        NFQNL_MSG_VERDICT_BATCH, queue, encode_attribute(NFQA_VERDICT_HDR, verdict)
    )


def decode_packets(data: bytes) -> tuple[list[tuple[int, int]], list[OSError]]:
    """(queue, packet id) of each queued packet in a buffer of netlink messages, and each error
    the kernel reports among them (a verdict for packets it no longer holds, say): the packets
    around an error still need their verdicts."""
    packets = []
    errors = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, offset + 16)
            if code != 0:
                errors.append(OSError(-code, os.strerror(-code)))
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            queue = socket.ntohs(struct.unpack_from("=H", data, offset + 18)[0])
            at = offset + 20
            while at + 4 <= offset + length:
                size, attribute = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attribute & 0x7FFF == NFQA_PACKET_HDR:
                    packets.append((queue, struct.unpack_from(">I", data, at + 4)[0]))
                at += (size + 3) & ~3
        offset += (length + 3) & ~3
    return packets, errors


class Delayer:
    """One queue's held packets (ids in arrival order, each with its release time)."""

    def __init__(self, seed: int) -> None:
        self.delay = 0.0
        self.jitter = 0.0
        self.random = random.Random(seed)
        self.held: collections.deque[tuple[float, int]] = collections.deque()
        self.last_release = 0.0

    def hold(self, packet_id: int, now: float) -> None:
        """Hold a packet until the delay (plus jitter, never before the one ahead) is over."""
        wait = self.delay + self.random.uniform(-self.jitter, self.jitter)
        release = max(now + max(0.0, wait), self.last_release)
        self.last_release = release
        self.held.append((release, packet_id))

    def take_due(self, now: float) -> int | None:
        """The id of the last packet due (all up to it are released), or None."""
        last = None
        while self.held and self.held[0][0] <= now:
            last = self.held.popleft()[1]
        return last

    @property
    def next_due(self) -> float | None:
        """When the next packet is due."""
        return self.held[0][0] if self.held else None


def compute_applied_path(control: Path) -> Path:
    """Where the delayer copies the settings it has taken up (so that the bed can wait)."""
    return control.with_name(control.name + ".applied")


def write_control(path: Path, settings: str) -> None:
    """Replace the control file in one step, so that the delayer never reads half of it."""
    part = path.with_name(path.name + ".part")
    part.write_text(settings)
    os.replace(part, path)


def parse_control(text: str) -> dict[int, tuple[float, float]]:
    """Each queue's (delay, jitter) in seconds; ValueError when ``text`` is not settings."""
    raw = json.loads(text or "{}")
    return {int(q): (float(d) / 1000, float(j) / 1000) for q, (d, j) in raw.items()}


class ControlFile:
    """The delays the bed asks for, noticed by content: two writes within one tick of the file
    system's clock leave the same modification time, so a change of content is the change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.taken = ""

    def poll(self) -> dict[int, tuple[float, float]] | None:
        """New settings, or None when unchanged or not yet whole (``confirm`` tells the bed once
        they are in force)."""
        try:
            text = self.path.read_text()
            settings = parse_control(text)
        except (OSError, ValueError):
            return None
        if text == self.taken:
            return None
        self.taken = text
        return settings

    def confirm(self) -> None:
        """Tell the bed the settings last returned are in force."""
        write_control(compute_applied_path(self.path), self.taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", type=int, required=True, help="queues 1..N")
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER)  # SO_RCVBUFFORCE (root)
    sock.bind((0, 0))
    delayers = {number: Delayer(args.seed + number) for number in range(1, args.queues + 1)}
    for number in delayers:
        sock.send(encode_bind(number))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    control = ControlFile(args.control)
    next_poll = 0.0
    print("delaying", flush=True)
    while True:
        now = time.monotonic()
        if now >= next_poll:
            next_poll = now + CONTROL_POLL_SECONDS
            settings = control.poll()
            if settings is not None:
                for number, delayer in delayers.items():
                    delayer.delay, delayer.jitter = settings.get(number, (0.0, 0.0))
                control.confirm()
        for number, delayer in delayers.items():
            last = delayer.take_due(now)
            if last is not None:
                send_verdict(sock, encode_accept_up_to(number, last))
        wake = min([d.next_due for d in delayers.values() if d.next_due] + [next_poll])
        readable, _, _ = select.select([sock], [], [], max(0.0, wake - time.monotonic()))
        if readable:
            receive(sock, delayers)


def send_verdict(sock: socket.socket, verdict: bytes) -> None:
    """Send a verdict; a refusal is logged, not fatal (a delayer that stops holds every
    delayed link's packets for good)."""
    try:
        sock.send(verdict)
    except OSError as error:
        print(f"delay: a verdict was refused: {error}", file=sys.stderr, flush=True)


def receive(sock: socket.socket, delayers: dict[int, Delayer]) -> None:
    """Take every queued packet the kernel has sent so far."""
    while True:
        try:
            data = sock.recv(RECEIVE_BUFFER, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError as error:  # ENOBUFS: packets the kernel could not queue were dropped
            print(f"delay: {error}", file=sys.stderr, flush=True)
            return
        arrived = time.monotonic()
        packets, errors = decode_packets(data)
        for refusal in errors:
            print(f"delay: the kernel answered {refusal}", file=sys.stderr, flush=True)
        for queue, packet_id in packets:
            delayer = delayers.get(queue)
            if delayer is None:
                continue
            if delayer.delay <= 0:
                send_verdict(sock, encode_accept_up_to(queue, packet_id))
            else:
                delayer.hold(packet_id, arrived)


if __name__ == "__main__":
    main()
