"""Session events: what the coordinator reports about calls, as frozen values.

They are published on the coordinator's :class:`~trio_voip.events.EventBus` (and each call's
own bus); a subscriber that falls behind loses events rather than stalling calls.
"""

from __future__ import annotations

import attrs

from trio_voip.errors import TrioVoipError
from trio_voip.session.state import CallState, EndReason

__all__ = [
    "CallStateChanged",
    "CallEnded",
    "DtmfReceived",
    "DTMF_METHODS",
    "TransferProgress",
    "RegistrationChanged",
    "SessionEvent",
]


@attrs.frozen
class CallStateChanged:
    """Call ``session_id`` moved from ``old`` to ``new``; ``reason`` says why, in words."""

    session_id: str
    old: CallState
    new: CallState
    reason: str = ""


@attrs.frozen
class CallEnded:
    """Call ``session_id`` is over (state TERMINATED); ``duration`` counts from ACTIVE, 0 if
    it never got there."""

    session_id: str
    reason: EndReason
    duration: float = 0.0


def _dtmf_digit(_inst: object, _attr: object, value: str) -> None:
    if len(value) != 1 or value.upper() not in "0123456789*#ABCD":
        raise TrioVoipError(f"not a DTMF digit: {value!r}")


#: How a DTMF digit travelled: SIP INFO, or RFC 4733 telephone-events in the RTP stream.
DTMF_METHODS = ("info", "rfc4733")


def _dtmf_method(_inst: object, _attr: object, value: str) -> None:
    if value not in DTMF_METHODS:
        raise TrioVoipError(f"DTMF method {value!r} is not one of {DTMF_METHODS}")


@attrs.frozen
class DtmfReceived:
    """The peer sent a DTMF digit; ``duration`` in ms. ``method`` says how: ``"info"`` (SIP
    INFO, application/dtmf-relay) or ``"rfc4733"`` (telephone-event RTP packets)."""

    session_id: str
    digit: str = attrs.field(validator=_dtmf_digit)
    duration: int = 160
    method: str = attrs.field(default="info", validator=_dtmf_method)


@attrs.frozen
class TransferProgress:
    """Progress of a transfer (RFC 3515): ``status`` is the SIP status the NOTIFY's sipfrag
    reported (100, 180, 200, 486, ...); ``final`` is True once it is 200 or above."""

    session_id: str
    status: int
    reason: str = ""

    @property
    def final(self) -> bool:
        return self.status >= 200


@attrs.frozen
class RegistrationChanged:
    """The registrar's bindings of ``aor`` (canonical, e.g. ``sip:1001@example.com``)
    changed: a REGISTER was accepted, a binding expired, or they were dropped
    (:meth:`~trio_voip.session.SessionCoordinator.drop_registrations`); ``contacts`` live ones
    are left. Published on the coordinator's session events only (no call has it)."""

    aor: str
    contacts: int


SessionEvent = (
    CallStateChanged | CallEnded | DtmfReceived | TransferProgress | RegistrationChanged
)
