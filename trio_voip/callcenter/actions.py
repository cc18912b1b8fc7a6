"""What the call engine asks its driver to do, and what it reports: :data:`Action`.

Every engine input returns a list of these, in the order they happened. The driver performs
the commands (:class:`OfferCall`, :class:`CancelOffer`, :class:`BridgeCallerToAgent`,
:class:`Overflow`, :class:`Reject`, :class:`PlayAnnouncement`) and publishes the reports
(:class:`AgentStateChanged`, :class:`AgentPauseChanged`, :class:`WrapUpEnded`,
:class:`CallerStateChanged`, :class:`QueueMetricsChanged`);
the reports, kept in order, are enough to rebuild every metric (:mod:`.metrics`).
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from .model import AgentId, AgentState, CallerId, CallerState, OverflowTarget, QueueId

__all__ = [
    "CancelReason",
    "OfferFailure",
    "LeaveReason",
    "OfferCall",
    "CancelOffer",
    "BridgeCallerToAgent",
    "Overflow",
    "Reject",
    "PlayAnnouncement",
    "AgentStateChanged",
    "AgentPauseChanged",
    "CallerStateChanged",
    "WrapUpEnded",
    "QueueStats",
    "QueueMetricsChanged",
    "Action",
]


class OfferFailure(enum.Enum):
    """Why an agent's phone did not take an offer (reported by the driver)."""

    NO_ANSWER = "no-answer"
    BUSY = "busy"
    REJECTED = "rejected"


class CancelReason(enum.Enum):
    """Why the engine withdraws an offer that is still ringing."""

    RING_TIMEOUT = "ring-timeout"  # counts as a miss for the agent
    ANSWERED_ELSEWHERE = "answered-elsewhere"  # ring-all / progressive: another agent won
    CALLER_GONE = "caller-gone"  # the caller hung up, overflowed or left by key
    AGENT_PAUSED = "agent-paused"
    AGENT_LOGGED_OUT = "agent-logged-out"


class LeaveReason(enum.Enum):
    """Why a caller left a queue other than by being answered or hanging up."""

    MAX_WAIT = "max-wait"
    EMPTY = "empty"  # leave_empty: no agents any more
    KEY = "key"  # pressed an exit key
    FULL = "full"  # refused at the door: max_length
    JOIN_EMPTY = "join-empty"  # refused at the door: join_empty
    UNKNOWN_QUEUE = "unknown-queue"  # overflow into a queue the engine does not have


@attrs.frozen
class OfferCall:
    """Ring agent ``agent_id`` (phone ``sip_user``) for caller ``caller_id`` (session
    ``session_id``). The engine cancels it itself after ``ring_timeout`` (a
    :class:`CancelOffer` with ``RING_TIMEOUT``); the driver reports the answer with
    ``offer_answered`` or a failure with ``offer_failed``. A ring-all queue emits one per agent."""

    offer_id: str
    caller_id: CallerId
    session_id: str
    queue_id: QueueId
    agent_id: AgentId
    sip_user: str
    ring_timeout: float
    at: float


@attrs.frozen
class CancelOffer:
    """Stop ringing ``agent_id`` for ``offer_id``; the engine has already forgotten the offer."""

    offer_id: str
    caller_id: CallerId
    agent_id: AgentId
    reason: CancelReason


@attrs.frozen
class BridgeCallerToAgent:
    """Offer ``offer_id`` was answered: bridge the caller's session to the agent's call leg."""

    offer_id: str
    caller_id: CallerId
    session_id: str
    queue_id: QueueId
    agent_id: AgentId


@attrs.frozen
class Overflow:
    """Caller ``caller_id`` left ``queue_id`` for ``target``. A :class:`~.model.ToQueue`
    target is already handled (the caller is waiting in that queue, or was rejected there);
    the driver performs the others (record a message, announce and hang up, busy)."""

    caller_id: CallerId
    session_id: str
    queue_id: QueueId
    target: OverflowTarget
    reason: LeaveReason


@attrs.frozen
class Reject:
    """Refuse the caller with SIP ``status`` (486 queue full, 480 no agents, 503 no queue)."""

    caller_id: CallerId
    session_id: str
    queue_id: QueueId
    status: int
    reason: LeaveReason


@attrs.frozen
class PlayAnnouncement:
    """Tell the caller its ``position`` (1 = next) and ``estimated_wait`` in seconds (None
    until the queue has answered a call to learn from)."""

    caller_id: CallerId
    session_id: str
    queue_id: QueueId
    position: int
    estimated_wait: float | None


@attrs.frozen
class AgentStateChanged:
    """Agent ``agent_id`` went from ``old`` to ``new`` at ``at``; ``reason`` is the pause
    reason code for a change to PAUSED (while paused, also on a later change to ON_CALL ->
    PAUSED), else None."""

    agent_id: AgentId
    old: AgentState
    new: AgentState
    at: float
    reason: str | None = None


@attrs.frozen
class AgentPauseChanged:
    """Agent ``agent_id`` was paused (``paused``, with the reason code ``reason``: by request
    or :data:`~.model.AUTO_PAUSE_NO_ANSWER`) or resumed (by request, or by logging out) at
    ``at``. Its state may not change (a pause waits for the calls in progress), so this is
    reported on its own."""

    agent_id: AgentId
    paused: bool
    reason: str | None
    at: float


@attrs.frozen
class WrapUpEnded:
    """Agent ``agent_id`` finished the after-call work of caller ``caller_id``'s call from
    ``queue_id`` at ``at``: its wrap-up time ran out, or (``cut_short``) it logged out."""

    agent_id: AgentId
    caller_id: CallerId
    queue_id: QueueId
    at: float
    cut_short: bool = False


@attrs.frozen
class CallerStateChanged:
    """Caller ``caller_id`` went from ``old`` (None: joining) to ``new`` in ``queue_id`` at
    ``at``. ``joined_at`` is when it joined this queue. A BRIDGED or COMPLETED change names
    its ``agent_id`` and ``answered_at``; a COMPLETED one also carries the ``wrap_up`` time
    its agent then spends, so handle times need no other event."""

    caller_id: CallerId
    queue_id: QueueId
    old: CallerState | None
    new: CallerState
    at: float
    joined_at: float
    agent_id: AgentId | None = None
    answered_at: float | None = None
    wrap_up: float = 0.0


@attrs.frozen
class QueueStats:
    """A queue's numbers, live (since the engine started) or over an interval.

    ``offered`` counts callers that joined (refused ones are ``rejected``, not offered); for
    the live numbers ``offered == answered + abandoned + overflowed + waiting`` (an interval
    also counts callers that joined before it and left inside it). ``service_level`` is
    answered within the threshold over answered + abandoned + overflowed (None before any
    caller left); times are seconds, None when nothing was measured."""

    queue_id: QueueId
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    rejected: int
    waiting: int
    answered_within_threshold: int
    service_level: float | None
    average_speed_of_answer: float | None
    average_handle_time: float | None
    longest_current_wait: float


@attrs.frozen
class QueueMetricsChanged:
    """The live numbers of ``stats.queue_id`` changed (sent once per engine input)."""

    stats: QueueStats
    at: float


Action: TypeAlias = (
    OfferCall
    | CancelOffer
    | BridgeCallerToAgent
    | Overflow
    | Reject
    | PlayAnnouncement
    | AgentStateChanged
    | AgentPauseChanged
    | WrapUpEnded
    | CallerStateChanged
    | QueueMetricsChanged
)
