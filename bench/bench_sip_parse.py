"""SIP messages per second through the sans-IO parser and serialiser, on one core.

Three typical messages (a SIPp-style INVITE with SDP, its 200 OK, a BYE): parse only, parse +
serialise, and parse + the typed reads a transaction layer does (top Via, CSeq, Call-ID, tags).

    python bench/bench_sip_parse.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time

from trio_voip.sip import parse_message

SDP = (
    b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
INVITE = (
    b"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>\r\n"
    b"Call-ID: 1-12345@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
    b"Contact: sip:sipp@127.0.0.1:5061\r\nMax-Forwards: 70\r\nSubject: Performance Test\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-0;received=127.0.0.1;rport=5061\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>;tag=abcdef\r\n"
    b"Call-ID: 1-12345@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
    b"Contact: <sip:uas@127.0.0.1:5060>\r\n"
    b"Content-Type: application/sdp\r\nContent-Length: " + str(len(SDP)).encode() + b"\r\n\r\n" + SDP
)
BYE = (
    b"BYE sip:uas@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-12345-1-5\r\n"
    b"From: sipp <sip:sipp@127.0.0.1:5061>;tag=12345SIPpTag001\r\n"
    b"To: service <sip:service@127.0.0.1:5060>;tag=abcdef\r\n"
    b"Call-ID: 1-12345@127.0.0.1\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def rate(fn, data: bytes, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            fn(data)
        n += 200
    return n / (time.perf_counter() - start)


def parse_only(data: bytes) -> None:
    parse_message(data)


def round_trip(data: bytes) -> None:
    bytes(parse_message(data))


def transaction_reads(data: bytes) -> None:
    m = parse_message(data)
    m.top_via.branch, m.cseq, m.call_id, m.from_.tag, m.to.tag  # noqa: B018


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    for name, data in (("INVITE+SDP", INVITE), ("200 OK+SDP", OK), ("BYE", BYE)):
        print(
            f"{name:11s} parse {rate(parse_only, data, args.seconds):9.0f}/s   "
            f"parse+serialise {rate(round_trip, data, args.seconds):9.0f}/s   "
            f"parse+typed reads {rate(transaction_reads, data, args.seconds):9.0f}/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
