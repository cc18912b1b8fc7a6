"""RFC 3261 8.2 request inspection, including the RFC 4475 application-layer verdicts."""

from pathlib import Path

import pytest

from trio_voip.sip import parse_message
from trio_voip.sip.uas import UasPolicy, inspect_request

TORTURE = Path(__file__).parent / "data" / "torture"


def inspect(name: str):
    return inspect_request(parse_message((TORTURE / f"{name}.dat").read_bytes()))


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("insuf", 400),  # 3.3.1 no Call-ID, From, To
        ("unkscm", 416),  # 3.3.2 unknown Request-URI scheme
        ("novelsc", 416),  # 3.3.3 soap.beep: not served by this UAS
        ("bext01", 420),  # 3.3.5 Require of unknown extensions
        ("invut", 415),  # 3.3.6 unknown Content-Type
        ("sdp01", 406),  # 3.3.15 Accept excludes SDP
    ],
)
def test_application_layer_refusals(name, status):
    response = inspect(name)
    assert response is not None and response.status == status


def test_420_lists_only_the_require_tags_not_proxy_require():
    response = inspect("bext01")
    assert response.headers.get_all("Unsupported") == ["nothingSupportsThis", "nothingSupportsThisEither"]


def test_415_says_what_is_accepted():
    assert inspect("invut").headers.get("Accept") == "application/sdp"


def test_zero_max_forwards_options_is_answered_by_the_ua():
    # 3.3.11: only proxies answer 483; a UAS processes the request normally.
    assert inspect("zeromf") is None


def test_unknown_schemes_in_header_fields_are_fine():
    assert inspect_request(parse_message((TORTURE / "unksm2.dat").read_bytes()),
                           UasPolicy(allowed_methods=frozenset({"REGISTER"}))) is None


def test_unknown_method_gets_405_with_allow():
    request = parse_message(
        b"FOO sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
        b"From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: x\r\n"
        b"CSeq: 1 FOO\r\nContent-Length: 0\r\n\r\n"
    )
    response = inspect_request(request)
    assert response.status == 405
    assert "INVITE" in response.headers.get("Allow")


def test_ack_is_never_answered():
    request = parse_message(
        b"ACK sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\n"
        b"From: <sip:b@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: x\r\n"
        b"CSeq: 1 ACK\r\nRequire: weird\r\nContent-Length: 0\r\n\r\n"
    )
    assert inspect_request(request) is None
