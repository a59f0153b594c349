"""The packet delayer's control file and its reading of the kernel's messages: what a one-hour
soak (seed 4) hit, when the delayer stopped taking up new delays after 18 minutes."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from tests.chaos.delay import (
    NFQA_PACKET_HDR,
    NFQNL_MSG_PACKET,
    NLMSG_ERROR,
    ControlFile,
    compute_applied_path,
    decode_packets,
    encode_attribute,
    encode_message,
    write_control,
)


def test_a_second_write_within_one_tick_of_the_file_clock_is_taken_up(tmp_path: Path) -> None:
    path = tmp_path / "delays.json"
    control = ControlFile(path)
    write_control(path, '{"1": [0, 0]}')
    stamp = os.stat(path).st_mtime_ns
    assert control.poll() == {1: (0.0, 0.0)}
    write_control(path, '{"1": [100, 25]}')
    os.utime(path, ns=(stamp, stamp))  # the same modification time as the first write
    assert control.poll() == {1: (0.1, 0.025)}
    assert control.poll() is None


def test_half_written_settings_are_not_taken_and_the_whole_ones_are(tmp_path: Path) -> None:
    path = tmp_path / "delays.json"
    control = ControlFile(path)
    path.write_text('{"1": [100')
    assert control.poll() is None
    path.write_text('{"1": [100, 0]}')
    assert control.poll() == {1: (0.1, 0.0)}


def test_the_bed_learns_settings_are_in_force_only_once_taken(tmp_path: Path) -> None:
    path = tmp_path / "delays.json"
    control = ControlFile(path)
    write_control(path, '{"2": [25, 5]}')
    assert not compute_applied_path(path).exists()
    assert control.poll() is not None
    control.confirm()
    assert compute_applied_path(path).read_text() == '{"2": [25, 5]}'


def packet_message(queue: int, packet_id: int) -> bytes:
    header = struct.pack(">IHB", packet_id, 0x0800, 0)
    return encode_message(NFQNL_MSG_PACKET, queue, encode_attribute(NFQA_PACKET_HDR, header))


def error_message(code: int) -> bytes:
    body = struct.pack("=i", -code) + bytes(16)
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, 0, 0, 0) + body


def test_a_kernel_error_among_queued_packets_is_reported_and_the_packets_kept() -> None:
    data = packet_message(1, 7) + error_message(2) + packet_message(3, 9)
    packets, errors = decode_packets(data)
    assert packets == [(1, 7), (3, 9)]
    assert [error.errno for error in errors] == [2]


def test_an_acknowledgement_is_not_an_error() -> None:
    packets, errors = decode_packets(error_message(0) + packet_message(2, 4))
    assert packets == [(2, 4)] and errors == []
