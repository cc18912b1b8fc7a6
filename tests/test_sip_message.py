"""Parsing, serialising and typed access of SIP messages."""

from __future__ import annotations

import pytest

from trio_voip.errors import SipParseError
from trio_voip.sip import (
    AuthValue,
    CSeq,
    Headers,
    Request,
    Response,
    SipUri,
    make_response,
    parse_auth,
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


def test_folding_compact_forms_and_lists() -> None:
    data = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,\r\n"
        b"\t SIP/2.0/TCP b.example.com:5070 ;branch=z9hG4bK2\r\n"
        b"f: <sip:alice@example.com>;tag=x\r\n"
        b"t: sip:bob@example.com\r\n"
        b"i: abc\r\n"
        b"CSeq: 1 OPTIONS\r\n"
        b"k: 100rel,\r\n timer\r\n"
        b'm: "a,b" <sip:x@h>, <sip:y@h>;q=0.5\r\n'
        b"l: 0\r\n"
        b"\r\n"
    )
    m = parse_message(data)
    assert [v.host for v in m.vias] == ["a.example.com", "b.example.com"]
    assert m.vias[1].port == 5070
    assert m.headers.get_all("Supported") == ["100rel", "timer"]
    assert m.headers.get_all("Contact") == ['"a,b" <sip:x@h>', "<sip:y@h>;q=0.5"]
    assert [c.display_name for c in m.contacts] == ["a,b", None]
    assert m.contacts[1].q == 0.5
    names = [n for n, _ in m.headers]
    assert names[:5] == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert b"\r\nCall-ID: abc\r\n" in bytes(m)


def test_headers_api() -> None:
    h = Headers()
    h.add("Route", "<sip:a>")
    h.add("X-Foo", "1")
    h.add("route", "<sip:b>")
    h.prepend("Route", "<sip:z>")
    assert h.get_all("Route") == ["<sip:z>", "<sip:a>", "<sip:b>"]
    assert list(h)[0] == ("Route", "<sip:z>")
    h.prepend("Record-Route", "<sip:rr>")
    assert list(h)[0] == ("Record-Route", "<sip:rr>")
    h.set("route", "<sip:only>")
    assert list(h) == [("Record-Route", "<sip:rr>"), ("Route", "<sip:only>"), ("X-Foo", "1")]
    copy = h.copy()
    h.remove("ROUTE")
    assert "Route" not in h and "route" in copy and "x-foo" in h
    assert len(h) == 2 and len(copy) == 3
    assert h != copy
    assert Headers([("x-foo", "1")]) == Headers([("X-FOO", "1")])
    assert h.get("Missing") is None
    with pytest.raises(SipParseError):
        h.add("Bad Name", "x")
    with pytest.raises(SipParseError):
        h.add("X-Foo", "a\r\nVia: injected")


def test_typed_cache_follows_changes() -> None:
    req = parse_message(INVITE)
    assert req.max_forwards == 70
    req.headers.set("Max-Forwards", "69")
    assert req.max_forwards == 69
    via = req.top_via.with_param("received", "192.0.2.9").with_param("rport", "5062")
    req.headers.remove("Via")
    req.headers.add("Via", str(via))
    assert req.top_via.received == "192.0.2.9"
    assert req.top_via.rport == 5062
    assert str(req.top_via) == (
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport=5062;"
        "received=192.0.2.9"
    )


def test_via_params() -> None:
    data = INVITE.replace(
        b"branch=z9hG4bK776asdhds;rport",
        b"branch=z9hG4bK1;maddr=224.0.0.1;ttl=16;received=[2001:db8::9];rport=5060",
    )
    via = parse_message(data).top_via
    assert (via.maddr, via.ttl, via.received, via.rport) == ("224.0.0.1", 16, "[2001:db8::9]", 5060)
    for bad in (b"ttl=256", b"rport=x", b"maddr", b"branch", b"received=no way"):
        with pytest.raises(SipParseError):
            parse_message(data.replace(b"ttl=16", bad))


def test_contact_star_and_expires() -> None:
    data = INVITE.replace(b"Contact: <sip:alice@pc33.atlanta.example.com>", b"Contact: *")
    [star] = parse_message(data).contacts
    assert star.star and str(star) == "*"
    data = INVITE.replace(b"pc33.atlanta.example.com>", b"pc33.atlanta.example.com>;expires=60")
    assert parse_message(data).contacts[0].expires == 60
    for bad in (b">;expires=4294967296", b">;q=1.5", b">;expires"):
        with pytest.raises(SipParseError):
            parse_message(INVITE.replace(b"pc33.atlanta.example.com>", b"x.example.com" + bad))


def test_limits() -> None:
    with pytest.raises(SipParseError) as e:
        parse_message(INVITE, max_size=len(INVITE) - 1)
    assert e.value.status == 413
    assert parse_message(INVITE, max_size=len(INVITE)).body == b"v=0\n"
    lines = INVITE.count(b"\r\n") - 2
    parse_message(INVITE, max_header_lines=lines)
    with pytest.raises(SipParseError, match="header lines") as e:
        parse_message(INVITE, max_header_lines=lines - 1)
    assert e.value.status == 400


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Max-Forwards: 70", b"Max-Forwards: 256"),
        (b"Max-Forwards: 70", b"Max-Forwards: \xd9\xa3"),  # Arabic-Indic digit
        (b"CSeq: 314159 INVITE", b"CSeq: 314159"),
        (b"CSeq: 314159 INVITE", b"CSeq: 2147483648 INVITE"),
        (b"Call-ID: a84b", b"Call-ID: a84b c"),
        (b"Content-Length: 4", b"Content-Length: 5"),
        (b"Content-Length: 4", b"Content-Length: 4x"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\nX: y\r\n"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 7\x010\r\n"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nBad Name: x\r\n"),
        (b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nNoColon\r\n"),
        (b"INVITE sip:bob", b" INVITE sip:bob"),
        (b"To: Bob <sip:bob@biloxi.example.com>", b"To: Bob <sip:bob@biloxi.example.com"),
        (b"To: Bob <sip:bob@biloxi.example.com>", b"To: <sip:bob@biloxi.example.com> junk"),
        (b"To: Bob", b"To: Bob\xff"),
        (b"\r\n\r\n", b"\r\n"),
    ],
)
def test_defects_rejected(old: bytes, new: bytes) -> None:
    data = INVITE.replace(old, new, 1)
    assert data != INVITE
    with pytest.raises(SipParseError) as e:
        parse_message(data)
    assert e.value.status == 400


def test_leading_crlf_and_missing_content_length() -> None:
    data = b"\r\n\r\n" + INVITE.replace(b"Content-Length: 4\r\n", b"") + b"more"
    req = parse_message(data)
    assert req.body == b"v=0\nmore"
    assert b"Content-Length: 8\r\n" in bytes(req)


def test_response_status_line() -> None:
    resp = parse_message(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n")
    assert isinstance(resp, Response)
    assert (resp.status, resp.reason, resp.top_via.host) == (486, "Busy Here", "h")
    for bad in (b"SIP/2.0 4860 x", b"SIP/2.0 099 x", b"SIP/2.0 700 x", b"SIP/2.0 abc x"):
        with pytest.raises(SipParseError):
            parse_message(bad + b"\r\n\r\n")
    with pytest.raises(SipParseError) as e:
        parse_message(b"SIP/3.0 200 OK\r\n\r\n")
    assert e.value.status == 505


def test_make_response_details() -> None:
    req = parse_message(
        INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\nTimestamp: 54\r\n"
                       b"Via: SIP/2.0/TCP second.example.com;branch=z9hG4bK2\r\n")
    )
    trying = make_response(req, 100)
    assert trying.reason == "Trying"
    assert trying.headers.get("Timestamp") == "54"
    assert [v.host for v in trying.vias] == ["pc33.atlanta.example.com", "second.example.com"]
    assert trying.to.tag is None
    ok = make_response(req, 200, "Fine", to_tag="t1", body=b"v=0\r\n",
                       content_type="application/sdp")  # fmt: skip
    assert (ok.reason, ok.to.tag, ok.content_type, ok.body) == (
        "Fine", "t1", "application/sdp", b"v=0\r\n"
    )
    assert "Timestamp" not in ok.headers and "Contact" not in ok.headers
    # a To that already has a tag keeps it
    in_dialog = parse_message(
        INVITE.replace(b"<sip:bob@biloxi.example.com>", b"<sip:bob@biloxi.example.com>;tag=t1")
    )
    assert make_response(in_dialog, 487, to_tag="other").to.tag == "t1"
    assert make_response(req, 299).reason == "Unknown"


def test_auth_values() -> None:
    challenge = (
        'Digest realm="atlanta.example.com", qop="auth,auth-int", '
        'nonce="ea9c8e88df84f1cec4341ae6cbe5a359", opaque="", stale=FALSE, algorithm=MD5'
    )
    auth = parse_auth(challenge)
    assert auth.scheme == "Digest"
    assert auth.params == (
        ("realm", "atlanta.example.com"),
        ("qop", "auth,auth-int"),
        ("nonce", "ea9c8e88df84f1cec4341ae6cbe5a359"),
        ("opaque", ""),
        ("stale", "FALSE"),
        ("algorithm", "MD5"),
    )
    assert str(auth) == challenge
    assert parse_auth(str(auth)) == auth
    creds = AuthValue(
        "Digest",
        (("username", 'bo"b'), ("realm", "r"), ("nonce", "n"), ("uri", "sip:bob@b"),
         ("response", "abc"), ("qop", "auth"), ("nc", "00000001"), ("cnonce", "c")),
    )  # fmt: skip
    assert str(creds) == (
        'Digest username="bo\\"b", realm="r", nonce="n", uri="sip:bob@b", response="abc", '
        'qop=auth, nc=00000001, cnonce="c"'
    )
    assert parse_auth(str(creds)) == creds
    assert creds.param("USERNAME") == 'bo"b'
    for bad in ("", "Digest realm", 'Digest realm="x', "Digest realm=a b", "Di gest"):
        with pytest.raises(SipParseError):
            parse_auth(bad)


def test_typed_lists_and_auth_accessors() -> None:
    req = parse_message(
        INVITE.replace(
            b"Max-Forwards: 70\r\n",
            b"Max-Forwards: 70\r\nAllow: INVITE, ACK,BYE\r\nSupported: timer\r\n"
            b"Require: 100rel\r\nProxy-Require: foo\r\n"
            b'Proxy-Authorization: Digest username="a", realm="b"\r\n'
            b'Proxy-Authorization: Digest username="c", realm="d"\r\n',
        )
    )
    assert req.allow == ["INVITE", "ACK", "BYE"]
    assert (req.supported, req.require, req.proxy_require) == (["timer"], ["100rel"], ["foo"])
    assert [a.param("realm") for a in req.proxy_authorization] == ["b", "d"]
    assert req.authorization == [] and req.www_authenticate == []
    assert req.content_length == 4
