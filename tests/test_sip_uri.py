"""SIP/SIPS/tel URIs: parsing, escaping, serialising and RFC 3261 19.1.4 comparison."""

from __future__ import annotations

import pytest

from trio_voip.errors import SipParseError
from trio_voip.sip import AbsoluteUri, SipUri, TelUri, parse_uri


def test_full_sip_uri() -> None:
    uri = parse_uri(
        "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=project%20x&priority=urgent"
    )
    assert uri == SipUri(
        scheme="sips",
        user="alice",
        password="secret",
        host="2001:db8::1",
        port=5061,
        params=(("transport", "tcp"), ("lr", None), ("maddr", "239.255.255.1")),
        headers=(("subject", "project x"), ("priority", "urgent")),
    )
    assert uri.transport == "TCP" and uri.lr and uri.maddr == "239.255.255.1" and uri.secure
    assert str(uri) == (
        "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr;maddr=239.255.255.1"
        "?subject=project%20x&priority=urgent"
    )


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("sip:example.com", "example.com", None),
        ("sip:192.0.2.1:5060", "192.0.2.1", 5060),
        ("sip:[::1]", "::1", None),
        ("SIP:Host.Example.COM.", "Host.Example.COM.", None),
    ],
)
def test_hosts(text: str, host: str, port: int | None) -> None:
    uri = parse_uri(text)
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.host, uri.port, uri.user) == ("sip", host, port, None)


def test_escapes_are_decoded_and_reencoded() -> None:
    uri = parse_uri("sip:%61lice%20smith@example.com;n%61me=v%25")
    assert isinstance(uri, SipUri)
    assert uri.user == "alice smith"
    assert uri.params == (("name", "v%"),)
    assert str(uri) == "sip:alice%20smith@example.com;name=v%25"
    # an escaped octet that is not UTF-8 survives the round trip
    odd = parse_uri("sip:%FF@example.com")
    assert str(odd) == "sip:%FF@example.com"


def test_user_part_may_hold_reserved_characters() -> None:
    uri = parse_uri("sip:+1-212-555-1212;phone-context=x?y@gw.example.com;user=phone")
    assert isinstance(uri, SipUri)
    assert uri.user == "+1-212-555-1212;phone-context=x?y"
    assert uri.param("user") == "phone"


def test_tel_and_absolute() -> None:
    tel = parse_uri("tel:+1-201-555-0123;ext=1234")
    assert tel == TelUri(number="+1-201-555-0123", params=(("ext", "1234"),))
    assert str(tel) == "tel:+1-201-555-0123;ext=1234"
    assert tel.equivalent(parse_uri("tel:+1.201.555.0123;EXT=1234"))
    assert not tel.equivalent(parse_uri("tel:+1-201-555-0124;ext=1234"))
    assert parse_uri("mailto:bob@example.com") == AbsoluteUri("mailto", "bob@example.com")
    assert parse_uri("HTTP://www.example.com/x") == AbsoluteUri("http", "//www.example.com/x")
    assert parse_uri("im:fred@example.com").scheme == "im"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sip:",
        "example.com",
        "<sip:a@example.com>",
        "sip:a b@example.com",
        "sip:a@exa mple.com",
        "sip:a@example.com:65536",
        "sip:a@example.com:5x",
        "sip:a@256.1.1.1",
        "sip:a@[::1",
        "sip:a@[zz::1]",
        "sip:a@-bad.example.com",
        "sip:a@example..com",
        "sip:@example.com",
        "sip:a%zz@example.com",
        "sip:a@example.com;",
        "sip:a@example.com;p=",
        "sip:a@example.com?h",
        "sip:a@b@example.com",
        "1sip:foo",
        "http:has space",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


# RFC 3261 19.1.4: pairs that are equivalent ...
EQUIVALENT = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
]  # fmt: skip
# ... and pairs that are not.
NOT_EQUIVALENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=a.example.com", "sip:alice@atlanta.com;maddr=b.example.com"),
    ("sip:alice@atlanta.com;lr", "sip:alice@atlanta.com;lr=on"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_equivalent(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert ua.equivalent(ub) and ub.equivalent(ua)


@pytest.mark.parametrize(("a", "b"), NOT_EQUIVALENT)
def test_not_equivalent(a: str, b: str) -> None:
    ua, ub = parse_uri(a), parse_uri(b)
    assert not ua.equivalent(ub) and not ub.equivalent(ua)


def test_with_param() -> None:
    uri = SipUri(user="bob", host="example.com")
    assert str(uri.with_param("transport", "tcp").with_param("lr")) == (
        "sip:bob@example.com;transport=tcp;lr"
    )
    assert uri.with_param("lr").without_param("LR") == uri
