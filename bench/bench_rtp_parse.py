"""Packets per second for RTP parsing: the relay's fast header path against the full parse.

The fast path reads a reused receive buffer (as ``sock.recv_into`` fills it) and builds no
objects; the full parse returns a frozen ``RtpPacket``. Also timed: payload bounds, G.711 decode
and encode of one 20 ms frame, and an RTCP compound (SR + SDES) parse.

    python bench/bench_rtp_parse.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from trio_voip.rtp.g711 import ulaw_decode, ulaw_encode
from trio_voip.rtp.packet import (
    ReportBlock,
    RtpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    SDES_CNAME,
    parse_rtcp_compound,
    parse_rtp,
    rtp_header_fields,
    rtp_payload_bounds,
    serialize_rtcp_compound,
)
from trio_voip.rtp.stats import ReceiverStats


def rate(label: str, step: Callable[[int], object], seconds: float) -> None:
    """Run ``step(i)`` in batches until ``seconds`` pass; print calls per second."""
    batch = 1000
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(done, done + batch):
            step(i)
        done += batch
        now = time.perf_counter()
        if now >= deadline:
            break
    per_second = done / (now - start)
    print(f"{label:<40} {per_second:>14,.0f} /s  {1e6 / per_second:8.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    wire = RtpPacket(0, 1234, 160_000, 0xDEADBEEF, b"\xff" * 160).to_bytes()
    buf = bytearray(2048)
    buf[: len(wire)] = wire
    view = memoryview(buf)
    nbytes = len(wire)
    stats = ReceiverStats(ssrc=0xDEADBEEF)

    rate("rtp_header_fields (reused buffer)", lambda i: rtp_header_fields(view, nbytes), seconds)
    rate("rtp_payload_bounds (reused buffer)", lambda i: rtp_payload_bounds(view, nbytes), seconds)
    rate("parse_rtp (bytes)", lambda i: parse_rtp(wire), seconds)
    rate("parse_rtp (memoryview, zero-copy)", lambda i: parse_rtp(view[:nbytes]), seconds)
    rate(
        "ReceiverStats.update",
        lambda i: stats.update(i & 0xFFFF, (i * 160) & 0xFFFFFFFF, i * 0.02, 160),
        seconds,
    )
    frame = b"\x55" * 160
    samples = ulaw_decode(frame)
    rate("ulaw_decode (20 ms frame)", lambda i: ulaw_decode(frame), seconds)
    rate("ulaw_encode (20 ms frame)", lambda i: ulaw_encode(samples), seconds)
    rtcp = serialize_rtcp_compound(
        [
            SenderReport(1, 0xE1234567_89ABCDEF, 160, 10, 1600, (ReportBlock(2, 0, 0, 99, 3),)),
            SourceDescription((SdesChunk(1, (SdesItem(SDES_CNAME, b"relay@example.net"),)),)),
        ]
    )
    rate("parse_rtcp_compound (SR+SDES)", lambda i: parse_rtcp_compound(rtcp), seconds)


if __name__ == "__main__":
    main()
