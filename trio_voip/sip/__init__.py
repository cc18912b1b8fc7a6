"""The SIP stack: messages, headers and URIs, stream framing, transports (Trio), the
transaction layer (sans-IO) and its Trio driver, dialogs, the registrar and digest auth."""

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

from trio_voip.sip.dialog import Dialog, DialogId, DialogLayer, DialogState  # noqa: E402
from trio_voip.sip.digest import DigestAuthenticator, DigestClient  # noqa: E402
from trio_voip.sip.framing import StreamFramer  # noqa: E402
from trio_voip.sip.registrar import LocationService, RegistrationClient, Registrar  # noqa: E402
from trio_voip.sip.stack import (  # noqa: E402
    ClientTransactionHandle,
    ServerTransactionHandle,
    SipEndpoint,
)
from trio_voip.sip.transaction import TimerConfig, TransactionLayer, TransactionState  # noqa: E402
from trio_voip.sip.transport import Inbound, Source, TransportLayer  # noqa: E402
from trio_voip.sip.uas import UasPolicy, inspect_request  # noqa: E402

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
    "Dialog",
    "DialogId",
    "DialogLayer",
    "DialogState",
    "DigestAuthenticator",
    "DigestClient",
    "StreamFramer",
    "LocationService",
    "RegistrationClient",
    "Registrar",
    "ClientTransactionHandle",
    "ServerTransactionHandle",
    "SipEndpoint",
    "TimerConfig",
    "TransactionLayer",
    "TransactionState",
    "Inbound",
    "Source",
    "TransportLayer",
    "UasPolicy",
    "inspect_request",
]
