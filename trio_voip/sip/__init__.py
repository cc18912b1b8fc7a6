"""The sans-IO SIP layer: messages, headers, URIs (and, from other modules, the rest)."""

from trio_voip.errors import SipParseError
from trio_voip.sip.headers import (
    AuthValue,
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_auth,
    parse_name_addr,
    parse_via,
)
from trio_voip.sip.message import (
    MAX_HEADER_LINES,
    MAX_MESSAGE_SIZE,
    REASON_PHRASES,
    Message,
    Request,
    Response,
    make_response,
    parse_message,
)
from trio_voip.sip.uri import AbsoluteUri, SipUri, TelUri, Uri, parse_uri

__all__ = [
    "SipParseError",
    "AuthValue",
    "Contact",
    "CSeq",
    "Headers",
    "NameAddr",
    "Via",
    "canonical_name",
    "parse_auth",
    "parse_name_addr",
    "parse_via",
    "MAX_HEADER_LINES",
    "MAX_MESSAGE_SIZE",
    "REASON_PHRASES",
    "Message",
    "Request",
    "Response",
    "make_response",
    "parse_message",
    "AbsoluteUri",
    "SipUri",
    "TelUri",
    "Uri",
    "parse_uri",
]
