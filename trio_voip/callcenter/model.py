"""What a call center is made of: agents, queues, callers, and the states they go through.

Everything here is a frozen value or an enum; the engine (:mod:`.engine`) owns the mutable state.

**Agent states.** An agent's state is one of :class:`AgentState`; :data:`AGENT_TRANSITIONS` is
the whole table of legal changes, read top to bottom::

    OFFLINE   -> AVAILABLE                               (log in)
    AVAILABLE -> RINGING | PAUSED | OFFLINE              (offer, pause, log out)
    RINGING   -> ON_CALL | AVAILABLE | PAUSED | WRAP_UP | OFFLINE
    ON_CALL   -> WRAP_UP | AVAILABLE | PAUSED | RINGING | OFFLINE
    WRAP_UP   -> AVAILABLE | PAUSED | RINGING | OFFLINE
    PAUSED    -> AVAILABLE | OFFLINE                     (resume, log out)

An agent with ``max_concurrent > 1`` has several slots, each ringing, on a call or wrapping up;
its state is the busiest slot (ON_CALL, then RINGING, then WRAP_UP), else PAUSED or AVAILABLE.
That is why e.g. ON_CALL -> RINGING is legal (a call ended while another offer rings), and
ON_CALL -> AVAILABLE (a queue without wrap-up time). A pause or log-out never cuts a call: it
cancels ringing offers at once and takes effect on the calls when they end (ON_CALL -> PAUSED,
ON_CALL -> OFFLINE); a log-out also drops wrap-up.

**Caller states** (:data:`CALLER_TRANSITIONS`, ``None`` is "not in this queue yet")::

    None     -> WAITING | REJECTED                      (joined, or refused at the door)
    WAITING  -> RINGING | ABANDONED | OVERFLOWED        (offered, hung up, left)
    RINGING  -> WAITING | BRIDGED | ABANDONED | OVERFLOWED
    BRIDGED  -> COMPLETED                               (the call ended)

REJECTED, ABANDONED, OVERFLOWED and COMPLETED are final in that queue. A caller overflowing to
another queue (:class:`ToQueue`) is OVERFLOWED in the first and starts over (``None ->``) in the
second; leaving by a DTMF key counts as overflowing (to the key's destination).

**Empty queues** (:class:`EmptyRule`, used for both ``join_empty`` and ``leave_empty``): a
queue is *empty* for a rule when no agent that serves it (member, with its required skills) is

* ``IGNORE``: never empty (join always; never leave for lack of agents);
* ``RELAXED``: logged in (paused agents count: they come back);
* ``STRICT``: logged in and not paused (busy agents count: they will be free).

This is Asterisk's ``joinempty`` / ``leaveempty`` reduced to the two questions that matter.
A caller refused at the door gets a ``Reject`` (480). ``leave_empty`` is checked when an
agent stops taking calls (log-out, pause, auto-pause, a changed definition) or the queue's
rules change, and sends every caller waiting in a queue that became empty to its ``overflow``
target at once; a caller that joins an already empty queue (``join_empty`` allowed it) waits.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TypeAlias

import attrs

from trio_voip.errors import CallCenterError

__all__ = [
    "AgentId",
    "QueueId",
    "CallerId",
    "AgentState",
    "AGENT_TRANSITIONS",
    "check_agent_transition",
    "CallerState",
    "CALLER_TRANSITIONS",
    "check_caller_transition",
    "AUTO_PAUSE_NO_ANSWER",
    "Strategy",
    "EmptyRule",
    "ToQueue",
    "ToRecording",
    "AnnounceAndHangup",
    "Busy",
    "OverflowTarget",
    "Agent",
    "Queue",
    "Caller",
]

AgentId: TypeAlias = str
QueueId: TypeAlias = str
CallerId: TypeAlias = str

#: The pause reason code the engine gives an agent it pauses after ``max_no_answer`` misses.
AUTO_PAUSE_NO_ANSWER = "auto:no-answer"


class AgentState(enum.Enum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on-call"
    WRAP_UP = "wrap-up"
    PAUSED = "paused"


_A = AgentState
AGENT_TRANSITIONS: Mapping[AgentState, frozenset[AgentState]] = MappingProxyType(
    {
        # ON_CALL from any state: a call outside the call center (agent_calls_elsewhere)
        _A.OFFLINE: frozenset({_A.AVAILABLE, _A.ON_CALL}),
        _A.AVAILABLE: frozenset({_A.RINGING, _A.PAUSED, _A.OFFLINE, _A.ON_CALL}),
        _A.RINGING: frozenset({_A.ON_CALL, _A.AVAILABLE, _A.PAUSED, _A.WRAP_UP, _A.OFFLINE}),
        _A.ON_CALL: frozenset({_A.WRAP_UP, _A.AVAILABLE, _A.PAUSED, _A.RINGING, _A.OFFLINE}),
        _A.WRAP_UP: frozenset({_A.AVAILABLE, _A.PAUSED, _A.RINGING, _A.OFFLINE, _A.ON_CALL}),
        _A.PAUSED: frozenset({_A.AVAILABLE, _A.OFFLINE, _A.ON_CALL}),
    }
)


def check_agent_transition(old: AgentState, new: AgentState) -> None:
    """Raise :class:`CallCenterError` unless ``old -> new`` is in :data:`AGENT_TRANSITIONS`."""
    if new not in AGENT_TRANSITIONS[old]:
        raise CallCenterError(f"illegal agent state change {old.value} -> {new.value}")


class CallerState(enum.Enum):
    WAITING = "waiting"
    RINGING = "ringing"  # offered to one or more agents, still in the queue at its position
    BRIDGED = "bridged"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    REJECTED = "rejected"

    @property
    def in_queue(self) -> bool:
        """Still waiting for an agent (ringing ones keep their place)."""
        return self is CallerState.WAITING or self is CallerState.RINGING

    @property
    def final(self) -> bool:
        return self in _FINAL


_C = CallerState
_FINAL = frozenset({_C.COMPLETED, _C.ABANDONED, _C.OVERFLOWED, _C.REJECTED})
CALLER_TRANSITIONS: Mapping[CallerState | None, frozenset[CallerState]] = MappingProxyType(
    {
        None: frozenset({_C.WAITING, _C.REJECTED}),
        _C.WAITING: frozenset({_C.RINGING, _C.ABANDONED, _C.OVERFLOWED}),
        _C.RINGING: frozenset({_C.WAITING, _C.BRIDGED, _C.ABANDONED, _C.OVERFLOWED}),
        _C.BRIDGED: frozenset({_C.COMPLETED}),
        _C.COMPLETED: frozenset(),
        _C.ABANDONED: frozenset(),
        _C.OVERFLOWED: frozenset(),
        _C.REJECTED: frozenset(),
    }
)


def check_caller_transition(old: CallerState | None, new: CallerState) -> None:
    """Raise :class:`CallCenterError` unless ``old -> new`` is in :data:`CALLER_TRANSITIONS`."""
    if new not in CALLER_TRANSITIONS[old]:
        name = old.value if old is not None else "none"
        raise CallCenterError(f"illegal caller state change {name} -> {new.value}")


class Strategy(enum.Enum):
    """How a queue picks among the agents free to take its next caller (see strategies.py)."""

    RING_ALL = "ring-all"
    LONGEST_IDLE = "longest-idle"
    ROUND_ROBIN = "round-robin"
    FEWEST_CALLS = "fewest-calls"
    LEAST_TALK_TIME = "least-talk-time"
    LINEAR = "linear"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"
    SKILL_BASED = "skill-based"
    RING_PROGRESSIVELY = "ring-progressively"


class EmptyRule(enum.Enum):
    """When a queue counts as empty of agents; see the module docstring."""

    IGNORE = "ignore"
    RELAXED = "relaxed"
    STRICT = "strict"


def _text(_inst: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise CallCenterError(f"{attribute.name} must be a non-empty string, not {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise CallCenterError(f"{attribute.name} must be a finite number >= 0, not {value!r}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise CallCenterError(f"{attribute.name} must be a finite number > 0, not {value!r}")


def _optional_positive(_inst: object, attribute: attrs.Attribute[float], value: object) -> None:
    if value is not None:
        _positive(_inst, attribute, value)


_Validator: TypeAlias = Callable[[object, "attrs.Attribute[int]", object], None]


def _count(minimum: int) -> _Validator:
    def check(_inst: object, attribute: attrs.Attribute[int], value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise CallCenterError(
                f"{attribute.name} must be an integer >= {minimum}, not {value!r}"
            )

    return check


def _optional_count(minimum: int) -> _Validator:
    check = _count(minimum)

    def optional(inst: object, attribute: attrs.Attribute[int], value: object) -> None:
        if value is not None:
            check(inst, attribute, value)

    return optional


@attrs.frozen
class ToQueue:
    """Overflow into another queue of the same engine (the caller starts over there)."""

    queue_id: QueueId = attrs.field(validator=_text)


@attrs.frozen
class ToRecording:
    """Overflow to a voicemail-like recording in ``mailbox``; the driver records the message."""

    mailbox: str = attrs.field(validator=_text)


@attrs.frozen
class AnnounceAndHangup:
    """Play ``prompt`` (a name the driver resolves to audio), then hang up."""

    prompt: str = attrs.field(validator=_text)


@attrs.frozen
class Busy:
    """Hang up with ``status`` (486 Busy Here unless told otherwise)."""

    status: int = attrs.field(default=486)

    @status.validator
    def _check(self, _attr: object, value: object) -> None:
        if not isinstance(value, int) or not 400 <= value <= 699:
            raise CallCenterError(f"a busy status must be a SIP failure code, not {value!r}")


OverflowTarget: TypeAlias = ToQueue | ToRecording | AnnounceAndHangup | Busy
_TARGETS = (ToQueue, ToRecording, AnnounceAndHangup, Busy)


def _skills(value: Mapping[str, int] | Iterable[str]) -> Mapping[str, int]:
    """A read-only skill map; a bare iterable of names means level 1 for each."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise CallCenterError(f"skills must be a mapping or names, not {value!r}")
    pairs = value.items() if isinstance(value, Mapping) else ((name, 1) for name in value)
    skills: dict[str, int] = {}
    for name, level in pairs:
        if not isinstance(name, str) or not name:
            raise CallCenterError(f"a skill name must be a non-empty string, not {name!r}")
        if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= 10:
            raise CallCenterError(f"skill {name!r}: level must be an integer 1-10, not {level!r}")
        skills[name] = level
    return MappingProxyType(skills)


def _ids(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise CallCenterError(f"expected a collection of ids, not {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise CallCenterError(f"an id must be a non-empty string, not {item!r}")
    return frozenset(items)


def _exit_keys(value: Mapping[str, OverflowTarget]) -> Mapping[str, OverflowTarget]:
    if not isinstance(value, Mapping):
        raise CallCenterError(f"exit keys must map DTMF digits to targets, not {value!r}")
    keys: dict[str, OverflowTarget] = {}
    for key, target in value.items():
        if not isinstance(key, str) or len(key) != 1 or key not in "0123456789*#ABCD":
            raise CallCenterError(f"an exit key must be one DTMF digit, not {key!r}")
        if not isinstance(target, _TARGETS):
            raise CallCenterError(f"exit key {key!r}: not an overflow target: {target!r}")
        keys[key] = target
    return MappingProxyType(keys)


def _target(_inst: object, _attr: object, value: object) -> None:
    if not isinstance(value, _TARGETS):
        raise CallCenterError(f"not an overflow target: {value!r}")


@attrs.frozen(hash=False)
class Agent:
    """A person who takes calls, and how routing sees them.

    ``queues`` are the queues the agent serves (it must also have each queue's required
    skills). ``tier`` 0 is tried first; tier ``k`` only once a caller has waited
    ``k * queue.tier_wait``. ``order`` is the rank for linear and ring-progressively routing
    (lower first), ``weight`` the share for weighted random routing.
    """

    agent_id: AgentId = attrs.field(validator=_text)
    name: str = attrs.field(validator=_text)
    sip_user: str = attrs.field(validator=_text)
    queues: frozenset[QueueId] = attrs.field(factory=frozenset, converter=_ids)
    skills: Mapping[str, int] = attrs.field(factory=dict, converter=_skills)
    max_concurrent: int = attrs.field(default=1, validator=_count(1))
    tier: int = attrs.field(default=0, validator=_count(0))
    order: int = attrs.field(default=0)
    weight: float = attrs.field(default=1.0, validator=_positive)

    @order.validator
    def _check_order(self, _attr: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise CallCenterError(f"order must be an integer, not {value!r}")

    def qualifies(self, required: Mapping[str, int]) -> bool:
        """Has every required skill at (at least) the required level."""
        return all(self.skills.get(name, 0) >= level for name, level in required.items())


@attrs.frozen(hash=False)
class Queue:
    """A queue and its rules; times are seconds.

    ``max_length`` refuses callers beyond it (486); ``max_wait`` sends a caller to
    ``overflow`` after that long in the queue (even while an agent rings: the wait is a
    promise); ``exit_keys`` maps DTMF digits a waiting caller may press to destinations.
    After each call its agent wraps up for ``wrap_up_time``. An agent that misses an offer is
    not offered again for ``retry_delay``, and is paused (reason
    :data:`AUTO_PAUSE_NO_ANSWER`) after ``max_no_answer`` misses in a row. A ring-progressively
    queue adds the next agent every ``progressive_step``. Waiting callers hear their position and
    estimated wait every ``announce_every`` (never if None), the estimate from the last
    ``estimate_window`` answered waits. ``required_skills`` maps skill names to minimum levels
    (a bare collection of names means level 1).
    """

    queue_id: QueueId = attrs.field(validator=_text)
    strategy: Strategy = attrs.field(default=Strategy.LONGEST_IDLE)
    max_length: int | None = attrs.field(default=None, validator=_optional_count(1))
    max_wait: float | None = attrs.field(default=None, validator=_optional_positive)
    overflow: OverflowTarget = attrs.field(factory=Busy, validator=_target)
    join_empty: EmptyRule = attrs.field(default=EmptyRule.IGNORE)
    leave_empty: EmptyRule = attrs.field(default=EmptyRule.IGNORE)
    ring_timeout: float = attrs.field(default=15.0, validator=_positive)
    retry_delay: float = attrs.field(default=5.0, validator=_non_negative)
    wrap_up_time: float = attrs.field(default=0.0, validator=_non_negative)
    max_no_answer: int | None = attrs.field(default=None, validator=_optional_count(1))
    tier_wait: float = attrs.field(default=0.0, validator=_non_negative)
    service_level_threshold: float = attrs.field(default=20.0, validator=_non_negative)
    required_skills: Mapping[str, int] = attrs.field(factory=dict, converter=_skills)
    progressive_step: float = attrs.field(default=5.0, validator=_positive)
    announce_every: float | None = attrs.field(default=None, validator=_optional_positive)
    estimate_window: int = attrs.field(default=10, validator=_count(1))
    exit_keys: Mapping[str, OverflowTarget] = attrs.field(factory=dict, converter=_exit_keys)

    @strategy.validator
    def _check_strategy(self, _attr: object, value: object) -> None:
        if not isinstance(value, Strategy):
            raise CallCenterError(f"not a routing strategy: {value!r}")

    @join_empty.validator
    @leave_empty.validator
    def _check_rule(self, attribute: attrs.Attribute[EmptyRule], value: object) -> None:
        if not isinstance(value, EmptyRule):
            raise CallCenterError(f"{attribute.name} must be an EmptyRule, not {value!r}")


@attrs.frozen
class Caller:
    """A customer's call as the engine sees it: ``session_id`` is the coordinator's session
    (what the driver bridges); a higher ``priority`` is served first, FIFO within a priority."""

    caller_id: CallerId = attrs.field(validator=_text)
    session_id: str = attrs.field(validator=_text)
    priority: int = attrs.field(default=0)

    @priority.validator
    def _check(self, _attr: object, value: object) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise CallCenterError(f"priority must be an integer, not {value!r}")
