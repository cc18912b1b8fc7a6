"""Parsing, serialising and typed access of SIP messages."""

from __future__ import annotations

import pytest

from trio_voip.errors import SipParseError
from trio_voip.sip import (
    CSeq,
    Headers,
    Request,
    Response,
    SipUri,
    make_response,
    parse_message,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774\r\n'
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parse_request_fields() -> None:
    req = parse_message(INVITE)
    assert isinstance(req, Request)
    assert req.method == "INVITE"
    assert req.uri == SipUri(user="bob", host="biloxi.example.com")
    assert req.top_via.transport == "UDP"
    assert req.top_via.host == "pc33.atlanta.example.com"
    assert req.top_via.branch == "z9hG4bK776asdhds"
    assert req.top_via.has_rport and req.top_via.rport is None
    assert req.cseq == CSeq(314159, "INVITE")
    assert req.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert req.from_.tag == "1928301774"
    assert req.from_.display_name == "Alice"
    assert req.to.tag is None
    assert req.to.display_name == "Bob"
    assert req.max_forwards == 70
    assert req.content_type == "application/sdp"
    assert req.body == b"v=0\n"


def test_roundtrip() -> None:
    req = parse_message(INVITE)
    again = parse_message(bytes(req))
    assert again == req


def test_make_response_copies_dialog_headers() -> None:
    req = parse_message(INVITE)
    resp = make_response(req, 180, to_tag="abc")
    assert isinstance(resp, Response)
    assert resp.reason == "Ringing"
    assert resp.to.tag == "abc"
    assert resp.vias == req.vias
    assert resp.cseq == req.cseq
    assert resp.from_ == req.from_
    assert parse_message(bytes(resp)) == resp


def test_headers_case_and_compact() -> None:
    h = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("VIA", "SIP/2.0/TCP b, SIP/2.0/TCP c")])
    assert h.get("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert h.get_all("via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/TCP b", "SIP/2.0/TCP c"]
    assert [n for n, _ in h] == ["Via", "Via"]


def test_bad_version_is_505() -> None:
    with pytest.raises(SipParseError) as e:
        parse_message(INVITE.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1))
    assert e.value.status == 505
