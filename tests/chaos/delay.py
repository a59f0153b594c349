"""Hold the packets a chaos bed's links carry for a delay plus jitter (``tc netem`` in user space).

``tc netem`` delays packets in the kernel; a kernel built without ``sch_netem`` (as this
project's CI machine is) still has NFQUEUE. The bed sends each node's outgoing packets, as the
bridge forwards them, to queue ``1 + node`` (an iptables rule in the host namespace, where the
sending socket no longer owns them, so TCP's small-queue limit does not throttle a delayed
link); this process holds each packet and accepts it when its time comes. Packets keep their
order (like netem with a rate): one is released no earlier than the one queued before it.

The delays live in a JSON file, ``{"QUEUE": [delay_ms, jitter_ms], ...}``, reread when it
changes. Run as ``python -m tests.chaos.delay --queues 4 --control FILE``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any

from netfilterqueue import COPY_META, NetfilterQueue

MAX_HELD = 100_000  # packets held per queue; more are passed at once rather than pile up
CONTROL_POLL_SECONDS = 0.2


class Delayer:
    """One queue's held packets, each with its release time."""

    def __init__(self, seed: int) -> None:
        self.delay = 0.0
        self.jitter = 0.0
        self.random = random.Random(seed)
        self.held: list[tuple[float, int, Any]] = []
        self.sequence = 0
        self.last_release = 0.0

    def hold(self, packet: Any) -> None:
        """Queue ``packet`` for release after the delay."""
        if len(self.held) >= MAX_HELD or self.delay <= 0:
            packet.accept()
            return
        wait = self.delay + self.random.uniform(-self.jitter, self.jitter)
        release = max(time.monotonic() + max(0.0, wait), self.last_release)
        self.last_release = release
        self.sequence += 1
        heapq.heappush(self.held, (release, self.sequence, packet))

    def release_due(self, now: float) -> float | None:
        """Accept every packet whose time has come; when the next is due, or None."""
        while self.held and self.held[0][0] <= now:
            heapq.heappop(self.held)[2].accept()
        return self.held[0][0] if self.held else None


def read_control(path: Path) -> dict[int, tuple[float, float]]:
    """Each queue's (delay, jitter) in seconds."""
    try:
        raw = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return {int(q): (float(d) / 1000, float(j) / 1000) for q, (d, j) in raw.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", type=int, required=True, help="queues 1..N")
    parser.add_argument("--control", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    delayers: dict[int, Delayer] = {}
    queues: dict[int, tuple[NetfilterQueue, Delayer]] = {}
    for number in range(1, args.queues + 1):
        delayer = delayers[number] = Delayer(args.seed + number)
        queue = NetfilterQueue()
        queue.bind(number, delayer.hold, max_len=MAX_HELD, mode=COPY_META)  # no payload copies
        queues[queue.get_fd()] = (queue, delayer)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    control_mtime = -1.0
    next_poll = 0.0
    print("delaying", flush=True)
    try:
        while True:
            now = time.monotonic()
            if now >= next_poll:
                next_poll = now + CONTROL_POLL_SECONDS
                mtime = os.stat(args.control).st_mtime if args.control.exists() else 0.0
                if mtime != control_mtime:
                    control_mtime = mtime
                    settings = read_control(args.control)
                    for number, delayer in delayers.items():
                        delayer.delay, delayer.jitter = settings.get(number, (0.0, 0.0))
            due = [d.release_due(now) for d in delayers.values()]
            wake = min([t for t in due if t is not None] + [next_poll])
            readable, _, _ = select.select(list(queues), [], [], max(0.0, wake - time.monotonic()))
            for fd in readable:
                queues[fd][0].run(block=False)
    finally:
        for queue, _ in queues.values():
            queue.unbind()


if __name__ == "__main__":
    main()
