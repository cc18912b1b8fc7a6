"""The states of a call, their legal changes, and why a call ends.

    INITIATING --> RINGING --> ACTIVE <--> ON_HOLD
        |             |          |            |
        +-------------+----------+------------+--> TERMINATING --> TERMINATED
        (and straight to TERMINATED from any live state: the peer ended it)

INITIATING: an incoming INVITE waits for the handler, or our INVITE has no 18x yet.
RINGING: 180/183 sent or received (early dialog). ACTIVE: answered and acknowledged (the ACK
arrived, or we sent it). ON_HOLD: either side put the media on hold (sendonly/inactive).
TERMINATING: we sent BYE or CANCEL and wait for its answer. TERMINATED: over.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "CallState",
    "TRANSITIONS",
    "CallDirection",
    "EndKind",
    "EndReason",
]


class CallState(enum.Enum):
    INITIATING = "initiating"
    RINGING = "ringing"
    ACTIVE = "active"
    ON_HOLD = "on-hold"
    TERMINATING = "terminating"
    TERMINATED = "terminated"

    @property
    def live(self) -> bool:
        return self is not CallState.TERMINATED

    @property
    def established(self) -> bool:
        return self in (CallState.ACTIVE, CallState.ON_HOLD)


_S = CallState
TRANSITIONS: frozenset[tuple[CallState, CallState]] = frozenset(
    {
        (_S.INITIATING, _S.RINGING),
        (_S.INITIATING, _S.ACTIVE),
        (_S.INITIATING, _S.TERMINATING),
        (_S.INITIATING, _S.TERMINATED),
        (_S.RINGING, _S.ACTIVE),
        (_S.RINGING, _S.TERMINATING),
        (_S.RINGING, _S.TERMINATED),
        (_S.ACTIVE, _S.ON_HOLD),
        (_S.ACTIVE, _S.TERMINATING),
        (_S.ACTIVE, _S.TERMINATED),
        (_S.ON_HOLD, _S.ACTIVE),
        (_S.ON_HOLD, _S.TERMINATING),
        (_S.ON_HOLD, _S.TERMINATED),
        (_S.TERMINATING, _S.TERMINATED),
    }
)
"""Every legal (old, new) state pair; anything else raises CallStateError."""


class CallDirection(enum.Enum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class EndKind(enum.Enum):
    LOCAL_HANGUP = "local hangup"
    REMOTE_HANGUP = "remote hangup"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    REDIRECTED = "redirected"
    NO_ANSWER = "no answer"
    NO_ACK = "no ACK"
    FAILED = "failed"
    SESSION_EXPIRED = "session expired"
    TRANSFERRED = "transferred"


@attrs.frozen
class EndReason:
    """Why a call ended: ``kind``, the SIP ``status`` involved if any (486 for a busy
    rejection, 302 for a redirect, 408 for a timeout), and free-text ``detail``."""

    kind: EndKind
    status: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        text = self.kind.value
        if self.status is not None:
            text += f" ({self.status})"
        return f"{text}: {self.detail}" if self.detail else text
