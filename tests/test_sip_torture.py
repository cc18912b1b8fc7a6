"""RFC 4475 torture messages against the parser (tests/data/torture, verified by SHA256SUMS).

valid (3.1.1): each parses and the fields its section discusses read back right.
invalid (3.1.2): each is rejected with SipParseError (rejecting all 19 is allowed).
transaction/application (3.2, 3.3): syntactically valid, so they parse; the UAS decides -- except
3.3.8/3.3.9 (several values in single-value headers), which the RFC says to reject with 400.
compat (3.4): the RFC 2543 style INVITE parses.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from trio_voip.errors import SipParseError
from trio_voip.sip import AbsoluteUri, CSeq, Request, Response, SipUri, parse_message

DATA = Path(__file__).parent / "data" / "torture"
INDEX = list(csv.DictReader((DATA / "INDEX.tsv").open(encoding="utf-8"), delimiter="\t"))


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def by_layer(*layers: str) -> list[str]:
    return [row["file"] for row in INDEX if row["layer"] in layers]


def parse(name: str) -> Request | Response:
    return parse_message(load(name))


def test_data_is_unchanged() -> None:
    sums = {}
    for line in (DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert len(sums) == 49 == len(INDEX)
    for name, digest in sums.items():
        assert hashlib.sha256(load(name)).hexdigest() == digest, name


REJECTED_APPLICATION = ("multi01.dat", "mcl01.dat")


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in by_layer("valid", "transaction", "application", "compat")
        if n not in REJECTED_APPLICATION
    ],
)
def test_parseable_messages_roundtrip(name: str) -> None:
    first = parse(name)
    again = parse_message(bytes(first))
    # Content-Length is always written, so compare after one normalising pass.
    assert parse_message(bytes(again)) == again
    assert again.body == first.body
    assert again.vias == first.vias
    assert again.cseq == first.cseq
    assert again.headers.get_all("Contact") == first.headers.get_all("Contact")


@pytest.mark.parametrize("name", by_layer("invalid"))
def test_invalid_rejected(name: str) -> None:
    with pytest.raises(SipParseError) as e:
        parse(name)
    assert e.value.status == (505 if name == "badvers.dat" else 400)
    assert str(e.value)


@pytest.mark.parametrize("name", REJECTED_APPLICATION)
def test_single_value_headers_rejected(name: str) -> None:
    # RFC 4475 3.3.8 and 3.3.9: the element must answer 400.
    with pytest.raises(SipParseError, match="more than one") as e:
        parse(name)
    assert e.value.status == 400


def test_wsinv() -> None:
    m = parse("wsinv.dat")
    assert isinstance(m, Request)
    assert m.method == "INVITE"
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "vivekg" and m.uri.host == "chair-dnrc.example.com"
    assert m.uri.has_param("unknownparam") and m.uri.param("unknownparam") is None
    assert m.to.uri == SipUri(user="vivekg", host="chair-dnrc.example.com")
    assert m.to.tag == "1918181833n"
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.uri == SipUri(user="jdrosen", host="example.com")
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.cseq == CSeq(9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in m.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("Subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.content_type == "application/sdp"
    assert m.routes[0].uri.host == "services.example.com"
    assert m.routes[0].uri.lr
    [contact] = m.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.uri == SipUri(user="jdrosen", host="example.com")
    assert contact.param("newparam") == "newvalue"
    assert contact.has_param("secondparam")
    assert contact.q == 0.33
    assert len(m.body) == 150 and m.body.startswith(b"v=0\r\n")


def test_intmeth() -> None:
    m = parse("intmeth.dat")
    assert isinstance(m, Request)
    method = "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.method == method
    assert m.cseq == CSeq(139122385, method)
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.max_forwards == 255
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"


def test_esc01() -> None:
    m = parse("esc01.dat")
    assert m.uri == SipUri(user="sips:user@example.com", host="example.net")
    assert m.to.uri.user == "user"
    assert m.from_.uri.user == "I have spaces"
    [contact] = m.contacts
    assert contact.uri.user == "caller"
    assert contact.uri.params == (("lr", None), ("name", "value%41"))
    assert m.content_type == "application/sdp"
    # escaped and unescaped spellings are the same URI
    assert m.to.uri.equivalent(SipUri(user="user", host="example.com"))


def test_escnull() -> None:
    m = parse("escnull.dat")
    assert m.to.uri.user == "null-\x00-null"
    assert m.from_.uri.user == "null-\x00-null"
    assert [c.uri.user for c in m.contacts] == ["\x00", "\x00\x00"]


def test_esc02() -> None:
    m = parse("esc02.dat")
    assert isinstance(m, Request)
    # %47 in a method is not an escape: this is not REGISTER
    assert m.method == "RE%47IST%45R"
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45"
    assert m.from_.display_name == "%Z%45"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    # C%6Fntact is an unknown header, not a Contact
    assert [c.uri.user for c in m.contacts] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp() -> None:
    assert parse("lwsdisp.dat").from_.display_name == "caller"


def test_longreq() -> None:
    m = parse("longreq.dat")
    assert m.to.display_name is not None and "extremeextreme" in m.to.display_name
    assert m.to.uri.port == 6000
    assert m.to.uri.has_param(
        "verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglong"
        "longlonglonglonglongParameterNameWithNoValue"
    )
    tag = m.from_.tag
    assert tag is not None and len(tag) == 155
    assert tag.startswith("1298298") and tag.endswith("982424")
    assert len(m.vias) == 34
    assert m.vias[0].host == "sip33.example.com"
    assert m.vias[-1].received == "192.0.2.5"
    assert m.vias[-1].branch is not None and m.vias[-1].branch.endswith("branchvalue")
    assert len(m.body) == 150


def test_dblreq_ignores_trailing_octets() -> None:
    m = parse("dblreq.dat")
    assert isinstance(m, Request)
    assert m.method == "REGISTER"
    assert m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri() -> None:
    m = parse("semiuri.dat")
    assert isinstance(m.uri, SipUri)
    assert m.uri.user == "user;par=u@example.net"
    assert m.uri.host == "example.com"
    assert m.uri.params == ()
    assert m.headers.get_all("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed",
        "multipart/signed", "message/sip", "message/sipfrag",
    ]  # fmt: skip


def test_transports() -> None:
    m = parse("transports.dat")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01() -> None:
    m = parse("mpart01.dat")
    assert m.content_type == "multipart/mixed"
    assert m.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(m.body) == 553
    assert m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert m.top_via.has_rport and m.top_via.port == 5070


def test_unreason() -> None:
    m = parse("unreason.dat")
    assert isinstance(m, Response)
    assert m.status == 200
    assert m.reason.startswith("= 2**3 * 5**2 ")
    assert "простое" in m.reason


def test_noreason() -> None:
    m = parse("noreason.dat")
    assert isinstance(m, Response)
    assert (m.status, m.reason) == (100, "")


def test_badbranch_parses() -> None:
    assert parse("badbranch.dat").top_via.branch == "z9hG4bK"


def test_insuf_parses_but_required_headers_missing() -> None:
    m = parse("insuf.dat")
    for name in ("from_", "to", "call_id"):
        with pytest.raises(SipParseError, match="missing"):
            getattr(m, name)
    assert m.max_forwards is None


def test_unknown_schemes() -> None:
    assert parse("unkscm.dat").uri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    assert parse("novelsc.dat").uri == AbsoluteUri("soap.beep", "//192.0.2.103:3002")
    m = parse("unksm2.dat")
    assert m.to.uri == AbsoluteUri("isbn", "2983792873")
    assert m.from_.uri == AbsoluteUri("http", "//www.example.com")
    assert m.contacts[0].uri == AbsoluteUri("name", "John_Smith")


def test_application_layer_fields() -> None:
    assert parse("bext01.dat").headers.get_all("Require") == [
        "nothingSupportsThis",
        "nothingSupportsThisEither",
    ]
    assert parse("invut.dat").content_type == "application/unknownformat"
    assert parse("bcast.dat").vias[1].host == "255.255.255.255"
    assert parse("zeromf.dat").max_forwards == 0
    c1 = parse("cparam01.dat").contacts[0]
    assert c1.has_param("unknownparam") and not c1.uri.has_param("unknownparam")
    c2 = parse("cparam02.dat").contacts[0]
    assert c2.uri.has_param("unknownparam") and not c2.has_param("unknownparam")
    assert parse("regescrt.dat").contacts[0].uri.headers == (("Route", "<sip:sip.example.com>"),)
    assert parse("sdp01.dat").headers.get("Accept") == "text/nobodyKnowsThis"


def test_regaut01_unknown_auth_scheme() -> None:
    from trio_voip.sip import parse_auth

    value = parse("regaut01.dat").headers.get("Authorization")
    assert value is not None
    auth = parse_auth(value)
    assert auth.scheme == "NoOneKnowsThisScheme"
    assert auth.params == (("opaque-data", "here"),)


def test_inv2543() -> None:
    m = parse("inv2543.dat")
    assert m.top_via.branch is None
    assert m.max_forwards is None
    assert "Content-Length" not in m.headers
    assert m.body.startswith(b"v=0") and m.body.endswith(b"RTP/AVP 0\r\n")
    assert m.from_.tag is None
    assert m.to.param("user") == "phone"
    assert m.record_routes[0].uri.maddr == "ss1.example.com"
