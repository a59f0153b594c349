"""Nodes started by a harness (``LocalCluster``: the demo, tests, benches) end with it.

A harness that is killed (a test's timeout, ``kill -9``) cannot stop its nodes, and nodes in
sessions of their own outlive it and hold the CPU. A node started with ``HARNESS_ENV`` set asks
Linux to send it SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and stops at once if its
parent died before it asked.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

HARNESS_ENV = "LEARNCHAIN_HARNESS_PID"  # the pid of the process that started the node
PR_SET_PDEATHSIG = 1


def end_with_harness() -> None:
    """Linux: SIGTERM this process when the harness named in ``HARNESS_ENV`` dies."""
    harness = os.environ.get(HARNESS_ENV, "")
    if not harness.isdigit() or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(harness):  # it died before the request: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)
