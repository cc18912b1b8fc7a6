"""The one exception hierarchy of trio-voip: everything we raise derives from TrioVoipError."""

from __future__ import annotations

__all__ = [
    "TrioVoipError",
    "SipParseError",
    "TransactionError",
    "TransactionTimeout",
    "TransportError",
    "SipFramingError",
    "RtpError",
    "RtpParseError",
    "PortsExhausted",
    "MediaFormatError",
    "AuthenticationError",
    "SdpError",
    "OfferAnswerError",
    "DialogError",
    "RegistrarError",
    "CallStateError",
    "CallError",
    "BridgeError",
    "UnknownBridge",
    "UnknownSession",
    "SessionAlreadyBridged",
    "SessionNotActive",
    "StoreError",
    "RecordNotFound",
    "DuplicateRecord",
    "CallCenterError",
    "RecordingError",
]


class TrioVoipError(Exception):
    """Base class of every exception trio-voip raises on purpose."""


class SipParseError(TrioVoipError):
    """Bytes that are not a valid SIP message (or part of one).

    ``status`` and ``reason`` are what a server should answer a request with (400 unless a more
    specific code applies, e.g. 413 for an oversized message, 505 for an unknown SIP version),
    in the manner of h11's ``error_status_hint``.
    """

    def __init__(self, message: str, *, status: int = 400, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


class TransactionError(TrioVoipError):
    """A transaction state machine was asked to do something its state does not allow."""


class TransportError(TrioVoipError):
    """A message could not be sent (no route, connection refused, socket closed)."""


class RtpError(TrioVoipError):
    """A media-layer (RTP/RTCP, codec, port pool) operation failed or was misused."""


class RtpParseError(RtpError):
    """Bytes that are not a valid RTP/RTCP packet (or payload); the relay counts and drops these."""


class PortsExhausted(RtpError):
    """The RTP port range has no free port (pair) left."""


class MediaFormatError(RtpError):
    """Audio in a shape we cannot use (WAV not 8 kHz mono 16-bit, samples outside int16, ...)."""


class SipFramingError(SipParseError):
    """A byte stream broke SIP framing (RFC 3261 18.3): no Content-Length, or a size limit.

    The stream cannot be read past this point, so the connection must be closed. ``head`` is the
    offending message's header section when it was complete, so a server can still answer the
    request (400, 413) before closing.
    """

    def __init__(
        self, message: str, *, status: int = 400, reason: str | None = None, head: bytes | None = None
    ) -> None:
        super().__init__(message, status=status, reason=reason)
        self.head = head


class AuthenticationError(TrioVoipError):
    """A Digest challenge or credentials value we cannot parse, build or answer."""


class SdpError(TrioVoipError):
    """Text that is not a valid session description (RFC 8866), or an SDP value we cannot build.

    ``line`` is the 1-based line number of the offending line when parsing. ``status`` is what a
    SIP server should answer an offer it cannot parse with.
    """

    def __init__(self, message: str, *, line: int | None = None, status: int = 400) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line
        self.status = status


class OfferAnswerError(SdpError):
    """An offer we cannot answer (no acceptable stream) or an answer that does not fit its offer.

    ``status`` is 488 (Not Acceptable Here), the answer RFC 3261 gives for an unacceptable offer.
    """

    def __init__(self, message: str, *, status: int = 488) -> None:
        super().__init__(message, status=status)


class DialogError(TrioVoipError):
    """A dialog (RFC 3261 12-15) was asked to do something its state does not allow, or a
    message cannot create or belong to one (no tags, no Contact in a dialog-creating 2xx)."""


class TransactionTimeout(TransactionError):
    """A transaction ended without its answer: Timer B, C, F (no final response) or H (no ACK)."""


class RegistrarError(TrioVoipError):
    """A registration could not be stored (a location-service limit) or a registrar or
    registration client was misused. ``status`` is what a registrar should answer with."""

    def __init__(self, message: str, *, status: int = 500, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class CallStateError(TrioVoipError):
    """A call was asked for something its state does not allow (answer an active call,
    hold a ringing one), or a state change the call state table forbids."""


class CallError(TrioVoipError):
    """A call operation failed at the peer: the re-INVITE, INFO or REFER got a failure
    response (``status``) or no answer at all (``status`` None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BridgeError(TrioVoipError):
    """A bridge operation its state does not allow (bridging a session with itself, removing a
    participant for a reason only the bridge itself may give). ``bridge_id`` and ``session_id``
    name what was involved, when known, so an API can answer with the right error."""

    def __init__(
        self, message: str, *, bridge_id: str | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.bridge_id = bridge_id
        self.session_id = session_id


class UnknownBridge(BridgeError):
    """No live bridge has this id (never created, or already destroyed)."""


class UnknownSession(BridgeError):
    """The session is not a participant of the bridge it was named with."""


class SessionAlreadyBridged(BridgeError):
    """The session already takes part in a bridge (``bridge_id``); a session is in at most one."""


class SessionNotActive(BridgeError):
    """Only an active (answered, not ended) session can join a bridge."""


class StoreError(TrioVoipError):
    """The call engine's store failed: a database error, a database written by a newer
    trio-voip, a value that cannot be stored, an event its call's state does not allow, or a
    store used after it was closed."""


class RecordNotFound(StoreError):
    """No agent, queue or call has this id."""


class DuplicateRecord(StoreError):
    """An id (or an agent's SIP user) is already taken."""


class CallCenterError(TrioVoipError):
    """The call engine was asked for something its state does not allow (log in an agent twice,
    answer an offer that is no longer open, an agent state change the state table forbids), or
    was given an agent or queue definition that cannot work."""


class RecordingError(TrioVoipError):
    """A call or bridge recording could not be written: its file could not be created, or a
    write failed (disk full, ...). The recording stops; what was written stays readable."""


class ConfigError(TrioVoipError):
    """A softswitch configuration that cannot work: a TOML syntax error, an unknown key, a
    value of the wrong type or out of range. ``key`` is the dotted key (``sip.port``,
    ``users[2].password``) and ``line`` its 1-based line in the file, when known."""

    def __init__(
        self, message: str, *, key: str | None = None, line: int | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.key = key
        self.line = line
        self.source = source
        where = source or "config"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class SoftswitchError(TrioVoipError):
    """A softswitch admin operation named a call or user that does not exist, or one the
    softswitch cannot carry out (``status`` is the HTTP-like status to report: 404, 409)."""

    def __init__(self, message: str, *, status: int = 404) -> None:
        super().__init__(message)
        self.status = status
