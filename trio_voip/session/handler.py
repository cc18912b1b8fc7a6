"""What the application decides about calls: :class:`CallHandler` and :class:`CallDecision`.

Subclass :class:`CallHandler` and override what you need; the defaults accept every call and
ignore the notifications. ``on_incoming_call`` runs in a task of its own per call, so it may
take its time (look something up, call the other leg of a B2BUA); a CANCEL from the caller
cancels it.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from trio_voip.errors import TrioVoipError
from trio_voip.sdp import SessionDescription, parse_sdp
from trio_voip.sip.uri import Uri, parse_uri

if TYPE_CHECKING:
    from trio_voip.session.call import CallSession
    from trio_voip.session.state import EndReason

__all__ = ["DecisionKind", "CallDecision", "CallHandler"]


class DecisionKind(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    DEFER = "defer"
    FORWARD = "forward"


def _sdp(value: SessionDescription | bytes | str | None) -> SessionDescription | None:
    if value is None or isinstance(value, SessionDescription):
        return value
    return parse_sdp(value)


def _uri(value: Uri | str | None) -> Uri | None:
    return parse_uri(value) if isinstance(value, str) else value


@attrs.frozen
class CallDecision:
    """The handler's answer to an incoming call. Build one with the class methods:

    * ``CallDecision.accept(sdp=None)``: 200 OK; ``sdp`` is the answer to send (a B2BUA
      passes the other leg's SDP through), by default our own answer to the offer;
    * ``CallDecision.reject(status=486, reason=None)``: a final failure response;
    * ``CallDecision.defer()``: 180 Ringing; the application calls ``call.answer()`` or
      ``call.reject()`` later (or the ring timeout answers 480);
    * ``CallDecision.forward(target)``: 302 Moved Temporarily with ``Contact: <target>``.
    """

    kind: DecisionKind
    sdp: SessionDescription | None = attrs.field(default=None, converter=_sdp)
    status: int | None = None
    reason: str | None = None
    target: Uri | None = attrs.field(default=None, converter=_uri)

    def __attrs_post_init__(self) -> None:
        status = self.status
        if self.kind is DecisionKind.REJECT and (status is None or not 300 <= status <= 699):
            raise TrioVoipError(f"a rejection needs a 3xx-6xx status, not {self.status}")
        if self.kind is DecisionKind.FORWARD and self.target is None:
            raise TrioVoipError("forwarding needs a target URI")

    @classmethod
    def accept(cls, sdp: SessionDescription | bytes | str | None = None) -> CallDecision:
        return cls(DecisionKind.ACCEPT, sdp=sdp)

    @classmethod
    def reject(cls, status: int = 486, reason: str | None = None) -> CallDecision:
        return cls(DecisionKind.REJECT, status=status, reason=reason)

    @classmethod
    def defer(cls) -> CallDecision:
        return cls(DecisionKind.DEFER)

    @classmethod
    def forward(cls, target: Uri | str) -> CallDecision:
        return cls(DecisionKind.FORWARD, target=target)


class CallHandler:
    """Application callbacks; override any of them (see the module docstring)."""

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        """Decide about a new incoming call (state INITIATING). Default: accept."""
        return CallDecision.accept()

    async def on_call_established(self, call: CallSession) -> None:
        """The call is ACTIVE (answered and acknowledged), either direction."""

    async def on_call_ended(self, call: CallSession, reason: EndReason) -> None:
        """The call is TERMINATED, for ``reason``."""
