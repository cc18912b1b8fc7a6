"""Property and robustness tests of the SIP parser.

Generated messages round-trip exactly; random and mutated bytes only ever raise SipParseError.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_voip.errors import SipParseError
from trio_voip.sip import Request, Response, parse_message, parse_uri
from trio_voip.sip.headers import parse_contact, parse_name_addr, parse_via
from trio_voip.testing import contacts, messages, name_addrs, uris, vias

from test_sip_message import INVITE

TORTURE = sorted((Path(__file__).parent / "data" / "torture").glob("*.dat"))
SEEDS = [INVITE] + [p.read_bytes() for p in TORTURE]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_generated_messages_roundtrip(message: Request | Response) -> None:
    assert parse_message(bytes(message)) == message


@settings(max_examples=300)
@given(uris())
def test_uri_roundtrip(uri: object) -> None:
    assert parse_uri(str(uri)) == uri


@settings(max_examples=200)
@given(name_addrs())
def test_name_addr_roundtrip(addr: object) -> None:
    assert parse_name_addr(str(addr)) == addr


@settings(max_examples=200)
@given(contacts())
def test_contact_roundtrip(contact: object) -> None:
    assert parse_contact(str(contact)) == contact


@settings(max_examples=200)
@given(vias())
def test_via_roundtrip(via: object) -> None:
    assert parse_via(str(via)) == via


def exercise(data: bytes) -> None:
    """Parse; if that works, every accessor either works or raises SipParseError."""
    try:
        m = parse_message(data)
    except SipParseError:
        return
    for name in ("vias", "call_id", "cseq", "from_", "to", "contacts", "max_forwards",
                 "routes", "record_routes", "content_type", "expires"):  # fmt: skip
        try:
            getattr(m, name)
        except SipParseError:
            pass
    again = parse_message(bytes(m))
    assert parse_message(bytes(again)) == again


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    exercise(data)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_after_start_line(data: bytes) -> None:
    exercise(b"INVITE sip:a@b SIP/2.0\r\n" + data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from([b" ", b"\t", b"\r\n", b"\r\n ", b";", b",",
                                                  b'"', b"<", b">", b":", b"%", b"\\", b"\x00",
                                                  b"@", b"=", b"\xff"]))  # fmt: skip
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "dup" and data:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 40))]
    return bytes(data)


@settings(max_examples=1000)
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    exercise(data)
