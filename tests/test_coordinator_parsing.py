"""The coordinator's small body parsers never fail on hostile input."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_voip.session.coordinator import _parse_dtmf, _sipfrag_status
from trio_voip.sip.headers import Headers
from trio_voip.sip.message import Request
from trio_voip.sip.uri import parse_uri


def info(body: bytes, content_type: str = "application/dtmf-relay") -> Request:
    h = Headers()
    h.add("Content-Type", content_type)
    return Request("INFO", parse_uri("sip:a@h"), h, body)


def test_dtmf_relay() -> None:
    assert _parse_dtmf(info(b"Signal=5\r\nDuration=160\r\n")) == ("5", 160)
    assert _parse_dtmf(info(b"signal = #\nduration= 250")) == ("#", 250)
    assert _parse_dtmf(info(b"Signal=a\r\n")) == ("A", 160)
    assert _parse_dtmf(info(b"Signal=55\r\n")) is None
    assert _parse_dtmf(info(b"Duration=\xc2\xb2\r\nSignal=1")) == ("1", 160)
    assert _parse_dtmf(info(b"7", "application/dtmf")) == ("7", 160)
    assert _parse_dtmf(info(b"Signal=5", "text/plain")) is None


def test_sipfrag() -> None:
    assert _sipfrag_status(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert _sipfrag_status(b"SIP/2.0 180 Ringing") == (180, "Ringing")
    assert _sipfrag_status(b"SIP/2.0 \xc2\xb2 x") is None
    assert _sipfrag_status(b"SIP/2.0 999 x") is None
    assert _sipfrag_status(b"") is None


@given(st.binary(max_size=200), st.sampled_from(["application/dtmf-relay", "application/dtmf"]))
def test_dtmf_never_raises(body: bytes, content_type: str) -> None:
    result = _parse_dtmf(info(body, content_type))
    assert result is None or (result[0] in "0123456789*#ABCD" and result[1] >= 0)


@given(st.binary(max_size=200))
def test_sipfrag_never_raises(body: bytes) -> None:
    result = _sipfrag_status(body)
    assert result is None or 100 <= result[0] <= 699
