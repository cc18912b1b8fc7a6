"""What the call engine keeps across restarts: agents, queues, call records, agent history.

:class:`Store` is the interface the engine talks to, so a database shared by several
softswitch nodes can back it later. Two implementations ship:

* :class:`SqliteStore`, the default: one SQLite file (or ``":memory:"``), WAL journal.
* :class:`MemoryStore`: plain dicts, for tests and single-node development.

Both accept the same values and raise the same errors (:class:`~trio_voip.errors.StoreError`,
:class:`~trio_voip.errors.RecordNotFound`, :class:`~trio_voip.errors.DuplicateRecord`); one
contract test-suite runs against both.

**Values.** Records are frozen attrs classes that check themselves on construction, so a value
a store could not give back unchanged (a lone surrogate in a name, an integer beyond 64 bits, a
NaN time, queue settings that are not JSON) is refused with ``StoreError`` before any store
sees it. Times are seconds since the Unix epoch (``time.time()``): records outlive the process,
so Trio's clock, which starts anew with each run, would mean nothing after a restart.

**Call records are built from events.** The engine reports each phase of a call as a
:class:`CallEvent` (arrived, offered to an agent, offer missed, answered, bridged, ended,
abandoned, overflowed, rejected, wrap-up ended) and the store folds it into the call's
:class:`CallRecord` with :func:`apply_call_event`, a pure function that both stores share. It
rejects what the call's state does not allow (a second outcome, an answer by an agent the call
was not offered to, wrap-up before the call ended), so a record always tells one consistent
story. An overflow to another queue ends the record with outcome ``OVERFLOWED``; the engine then
opens a new record (new call id, same session id) in the target queue, so per-queue numbers
count each queue's own part.

**SqliteStore and the Trio loop.** Every database operation runs in a worker thread
(``trio.to_thread.run_sync``) behind a ``CapacityLimiter(1)``: one operation at a time, on one
connection created in the worker with ``check_same_thread=False`` (the limiter is what
serialises its use; Trio may pick a different pooled thread each time). One shared connection
rather than one per call, because ``":memory:"`` lives only as long as its connection, and
because opening and migrating once is cheaper. The loop only waits on a channel, so a slow disk
or a lock held by another process never stalls it; waiting for a lock is bounded by
``busy_timeout`` (then ``StoreError``). An operation that started is never abandoned half way:
cancelling the caller waits for it to finish. ``synchronous=NORMAL`` with WAL keeps the
database consistent after a power loss but may lose the last commits; that is the usual trade
for a call log.

**Schema versions.** ``schema_version`` holds the version of the schema; :data:`MIGRATIONS`
lists the steps from an empty database, step *n* producing version *n*. Opening a database runs
the missing steps, and records the new version, in one transaction: it either migrates fully
or not at all. A database from a newer trio-voip is refused with ``StoreError`` rather than
misread. Version 1 kept a single offer per call and had no queue membership, tier, order,
weight or credentials for agents; version 2 keeps every offer (ring-all, retries) in
``call_offers``; version 3 adds ``seeds`` (empty after the upgrade).

**Seeds.** Besides agents and queues, a store keeps the *seed* of each configured one: the
definition (:func:`record_definition`) the configuration last wrote into the store, by kind
("agent", "queue") and id. It is what lets a restart tell a configuration edit (the
configured definition differs from the seed) from a runtime edit (the stored record differs
from a seed that still matches the configuration), and a record removed at runtime (seeded,
no longer stored) from a new one (never seeded); the driver's ``restore`` applies that rule.
The store does not interpret seeds: they are text, kept until replaced or forgotten.
"""

from __future__ import annotations

import enum
import json
import math
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs
import trio

from trio_voip.errors import DuplicateRecord, RecordNotFound, StoreError
from trio_voip.sip.digest import PrecomputedHA1

__all__ = [
    "Store",
    "SqliteStore",
    "MemoryStore",
    "AgentRecord",
    "QueueRecord",
    "AgentStateChange",
    "CallPhase",
    "CallOutcome",
    "CallEvent",
    "Offer",
    "CallRecord",
    "apply_call_event",
    "record_definition",
    "Migration",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "BUSY_TIMEOUT",
]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_T = TypeVar("_T")


# --- validation at the boundary: what a record accepts, every store can give back ---------


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{name} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError(f"{name} is not storable text (it has a lone surrogate)") from None
    return value


def _check_id(name: str, value: object) -> str:
    if not _check_text(name, value):
        raise StoreError(f"{name} must not be empty")
    return value  # type: ignore[return-value]


def _check_int(name: str, value: object, minimum: int = _INT64_MIN) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{name} must be an integer, not {type(value).__name__}")
    if not minimum <= value <= _INT64_MAX:
        raise StoreError(f"{name} must be between {minimum} and {_INT64_MAX}, not {value}")
    return value


def _text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_text(attribute.name, value)


def _identifier(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _check_id(attribute.name, value)


def _optional_text(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _check_text(attribute.name, value)


def _optional_identifier(
    _instance: object, attribute: attrs.Attribute[Any], value: object
) -> None:
    if value is not None:
        _check_id(attribute.name, value)


def _integer(
    minimum: int = _INT64_MIN,
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        _check_int(attribute.name, value, minimum)

    return check


def _weight(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float) or not 0 < value < math.inf:
        raise StoreError(f"{attribute.name} must be a positive finite number, not {value!r}")


def _boolean(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise StoreError(f"{attribute.name} must be True or False, not {value!r}")


def _to_float(value: object) -> object:
    # Integers become floats here so both stores give back the same type (SQLite REAL does).
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise StoreError(f"{value} is out of range") from None
    return value


def _time(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, float) or not math.isfinite(value):
        raise StoreError(f"{attribute.name} must be a finite number of seconds, not {value!r}")


def _queue_ids(value: object) -> frozenset[str]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise StoreError(f"queues must be a collection of queue ids, not {value!r}")
    return frozenset(_check_id("queue id", queue_id) for queue_id in value)


def _credentials(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, PrecomputedHA1):
        raise StoreError(f"{attribute.name} must be a PrecomputedHA1 or None")
    for field in _HA1_FIELDS:
        digest = getattr(value, field)
        if digest is not None:
            _check_text(f"{attribute.name}.{field}", digest)


_HA1_FIELDS = tuple(field.name for field in attrs.fields(PrecomputedHA1))


def _skills(value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise StoreError(f"skills must be a mapping of skill name to level, not {value!r}")
    for skill, level in value.items():
        _check_id("skill name", skill)
        _check_int(f"level of skill {skill!r}", level)
    return MappingProxyType(dict(value))


def _settings(value: object) -> Mapping[str, Any]:
    """A private, read-only copy of JSON-shaped settings; anything JSON would change is refused."""
    if not isinstance(value, Mapping):
        raise StoreError(f"queue settings must be a mapping, not {value!r}")
    plain = dict(value)
    try:
        decoded = json.loads(_settings_json(plain))
    except (TypeError, ValueError, RecursionError) as exc:
        raise StoreError(f"queue settings are not JSON: {exc}") from None
    if decoded != plain:
        raise StoreError(
            "queue settings must be JSON values (str keys; lists, not tuples; no NaN): "
            f"{plain!r} would come back as {decoded!r}"
        )
    return MappingProxyType(decoded)


def _settings_json(settings: Mapping[str, Any]) -> str:
    text = json.dumps(dict(settings), allow_nan=False, ensure_ascii=False, sort_keys=True)
    text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    return text


def _skills_json(skills: Mapping[str, int]) -> str:
    return json.dumps(dict(skills), ensure_ascii=False, sort_keys=True)


def _credentials_json(credentials: PrecomputedHA1 | None) -> str | None:
    if credentials is None:
        return None
    return json.dumps({field: getattr(credentials, field) for field in _HA1_FIELDS})


def _expect(value: _T, kind: type[_T]) -> _T:
    if not isinstance(value, kind):
        raise StoreError(f"expected a {kind.__name__}, not {value!r}")
    return value


def _check_seed(kind: object, record_id: object, definition: object) -> None:
    _check_id("kind", kind)
    _check_id("record_id", record_id)
    if definition is not None:
        _check_text("definition", definition)


def _optional_key(name: str, value: object) -> None:
    if value is not None:
        _check_text(name, value)


def _bound(name: str, value: object, *, optional: bool = False) -> None:
    """A time bound of a query: a number, not NaN (infinities mean "no bound")."""
    if value is None and optional:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        _check_int(name, value)  # SQLite binds 64-bit integers only
    elif not isinstance(value, float) or math.isnan(value):
        raise StoreError(f"{name} must be a number of seconds, not {value!r}")


# --- records ------------------------------------------------------------------------------


@attrs.frozen
class AgentRecord:
    """An agent as configured: who it is, what it can do, how routing treats it.

    ``queues`` are the ids of the queues it serves. ``skills`` maps a skill name to a level
    (higher is better). ``tier`` 0 is tried first, higher tiers only after the queue's configured
    wait; ``order`` is the position for linear/top-down routing; ``weight`` is the share for
    weighted-random routing. ``pause_reason`` is only set while paused. ``credentials`` are the
    Digest HA1 values its phone registers with (``PrecomputedHA1.from_password(sip_user, realm,
    password)``): never the password itself. The record holds a mapping, so it is not hashable.
    """

    id: str = attrs.field(validator=_identifier)
    name: str = attrs.field(validator=_text)
    sip_user: str = attrs.field(validator=_identifier)
    queues: frozenset[str] = attrs.field(factory=frozenset, converter=_queue_ids)
    skills: Mapping[str, int] = attrs.field(factory=dict, converter=_skills)
    max_concurrent: int = attrs.field(default=1, validator=_integer(1))
    tier: int = attrs.field(default=0, validator=_integer(0))
    order: int = attrs.field(default=0, validator=_integer())
    weight: float = attrs.field(default=1.0, converter=_to_float, validator=_weight)
    paused: bool = attrs.field(default=False, validator=_boolean)
    pause_reason: str | None = attrs.field(default=None, validator=_optional_text)
    credentials: PrecomputedHA1 | None = attrs.field(
        default=None, validator=_credentials, repr=False
    )

    def __attrs_post_init__(self) -> None:
        if self.pause_reason is not None and not self.paused:
            raise StoreError(f"agent {self.id!r} has a pause reason but is not paused")


@attrs.frozen
class QueueRecord:
    """A queue: its routing ``strategy`` name and the engine's ``settings`` for it.

    The store keeps ``settings`` as one JSON document, so the engine can add knobs (timeouts,
    overflow targets, announcements) without a schema migration; it does not interpret them.
    """

    id: str = attrs.field(validator=_identifier)
    name: str = attrs.field(validator=_text)
    strategy: str = attrs.field(validator=_identifier)
    settings: Mapping[str, Any] = attrs.field(factory=dict, converter=_settings)


def record_definition(record: AgentRecord | QueueRecord) -> str:
    """The canonical text (JSON, sorted keys) of what ``record`` defines, for comparing
    definitions (the seeds): a queue in full; an agent without its pause (runtime state) and
    its credentials (a configured agent's phone has its user's)."""
    value: dict[str, Any]
    if isinstance(record, AgentRecord):
        value = {
            "agent": record.id, "name": record.name, "sip_user": record.sip_user,
            "queues": sorted(record.queues), "skills": dict(record.skills),
            "max_concurrent": record.max_concurrent, "tier": record.tier,
            "order": record.order, "weight": record.weight,
        }
    elif isinstance(record, QueueRecord):
        value = {
            "queue": record.id, "name": record.name, "strategy": record.strategy,
            "settings": dict(record.settings),
        }
    else:
        raise StoreError(f"expected an AgentRecord or a QueueRecord, not {record!r}")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@attrs.frozen
class AgentStateChange:
    """An agent entered ``state`` (the engine's state name: "available", "paused", ...) at
    ``at``, for ``reason`` (a pause code, "no-answer", ...) when there is one."""

    agent_id: str = attrs.field(validator=_identifier)
    state: str = attrs.field(validator=_identifier)
    at: float = attrs.field(converter=_to_float, validator=_time)
    reason: str | None = attrs.field(default=None, validator=_optional_text)


class CallPhase(enum.Enum):
    """What happened to a call; see :func:`apply_call_event` for what each one requires."""

    ARRIVED = "arrived"
    OFFERED = "offered"
    OFFER_MISSED = "offer_missed"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    REJECTED = "rejected"
    WRAPUP_ENDED = "wrapup_ended"


class CallOutcome(enum.Enum):
    """How a call left its queue; a call has at most one."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    OVERFLOWED = "overflowed"
    REJECTED = "rejected"


_OUTCOME_OF_PHASE = {
    CallPhase.ANSWERED: CallOutcome.ANSWERED,
    CallPhase.ABANDONED: CallOutcome.ABANDONED,
    CallPhase.OVERFLOWED: CallOutcome.OVERFLOWED,
    CallPhase.REJECTED: CallOutcome.REJECTED,
}
_NEEDS_AGENT = frozenset({CallPhase.OFFERED, CallPhase.OFFER_MISSED, CallPhase.ANSWERED})
_TAKES_DETAIL = frozenset(
    {CallPhase.OFFER_MISSED, CallPhase.ABANDONED, CallPhase.OVERFLOWED, CallPhase.REJECTED}
)


@attrs.frozen
class CallEvent:
    """One phase of call ``call_id`` at time ``at``.

    ``ARRIVED`` opens the record and carries ``session_id``, ``caller``, ``queue_id`` and
    ``priority``; the other phases must not carry those. ``OFFERED``, ``OFFER_MISSED`` and
    ``ANSWERED`` name the ``agent_id``. ``detail`` says why, for ``OFFER_MISSED`` ("no-answer",
    "declined") and the outcomes ``ABANDONED`` (e.g. "dtmf"), ``OVERFLOWED`` (the target) and
    ``REJECTED`` ("queue-full").
    """

    call_id: str = attrs.field(validator=_identifier)
    phase: CallPhase = attrs.field()
    at: float = attrs.field(converter=_to_float, validator=_time)
    agent_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    session_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    queue_id: str | None = attrs.field(default=None, validator=_optional_identifier)
    caller: str | None = attrs.field(default=None, validator=_optional_text)
    priority: int = attrs.field(default=0, validator=_integer())
    detail: str | None = attrs.field(default=None, validator=_optional_text)

    @phase.validator
    def _check_phase(self, _attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, CallPhase):
            raise StoreError(f"phase must be a CallPhase, not {value!r}")

    def __attrs_post_init__(self) -> None:
        phase = self.phase
        if phase is CallPhase.ARRIVED:
            if self.session_id is None or self.caller is None:
                raise StoreError(f"call {self.call_id!r}: ARRIVED needs a session_id and a caller")
        elif (self.session_id, self.queue_id, self.caller, self.priority) != (None, None, None, 0):
            raise StoreError(
                f"call {self.call_id!r}: only ARRIVED carries session_id, queue_id, caller and "
                f"priority, not {phase.name}"
            )
        if (self.agent_id is None) == (phase in _NEEDS_AGENT):
            need = "needs" if phase in _NEEDS_AGENT else "does not take"
            raise StoreError(f"call {self.call_id!r}: {phase.name} {need} an agent_id")
        if self.detail is not None and phase not in _TAKES_DETAIL:
            raise StoreError(f"call {self.call_id!r}: {phase.name} does not take a detail")


@attrs.frozen
class Offer:
    """The call rang agent ``agent_id`` from ``at``; ``missed_at`` is set if that agent did not
    take it (ring timeout, declined, answered elsewhere), with ``missed_reason``."""

    agent_id: str
    at: float
    missed_at: float | None = None
    missed_reason: str | None = None


@attrs.frozen
class CallRecord:
    """Everything that happened to one call in one queue, built by :func:`apply_call_event`.

    ``offers`` lists every offer in order. ``agent_id`` is the agent that answered. Each
    ``*_at`` is set once, when that phase happened; ``outcome`` is set by the first of
    answered / abandoned / overflowed / rejected, with ``outcome_detail`` from its event.
    """

    id: str
    session_id: str
    queue_id: str | None
    caller: str
    priority: int
    arrived_at: float
    offers: tuple[Offer, ...] = ()
    answered_at: float | None = None
    bridged_at: float | None = None
    ended_at: float | None = None
    abandoned_at: float | None = None
    overflowed_at: float | None = None
    rejected_at: float | None = None
    wrapup_ended_at: float | None = None
    outcome: CallOutcome | None = None
    outcome_detail: str | None = None
    agent_id: str | None = None

    @property
    def offered_at(self) -> float | None:
        """When the call was first offered to an agent (None if never)."""
        return self.offers[0].at if self.offers else None


# Phases that set one timestamp field, once.
_PHASE_FIELD = {
    CallPhase.ANSWERED: "answered_at",
    CallPhase.BRIDGED: "bridged_at",
    CallPhase.ENDED: "ended_at",
    CallPhase.ABANDONED: "abandoned_at",
    CallPhase.OVERFLOWED: "overflowed_at",
    CallPhase.REJECTED: "rejected_at",
    CallPhase.WRAPUP_ENDED: "wrapup_ended_at",
}


def _open_offer(record: CallRecord, agent_id: str) -> int | None:
    for index in range(len(record.offers) - 1, -1, -1):
        offer = record.offers[index]
        if offer.agent_id == agent_id:
            return index if offer.missed_at is None else None
    return None


def apply_call_event(record: CallRecord | None, event: CallEvent) -> CallRecord:
    """The call record after ``event`` (``record`` is None before ``ARRIVED``). Sans-IO.

    Raises :class:`~trio_voip.errors.DuplicateRecord` for a second ``ARRIVED``,
    :class:`~trio_voip.errors.RecordNotFound` for any other phase of an unknown call, and
    ``StoreError`` when the call's state does not allow the phase:

    * every phase with a timestamp field happens at most once;
    * ``OFFERED``: not after the outcome or the end, nor while the agent is still ringing;
    * ``OFFER_MISSED``: the agent has an unanswered offer still ringing;
    * ``ANSWERED``: by an agent whose offer is still ringing, before any other outcome and the end;
    * ``ABANDONED``, ``OVERFLOWED``, ``REJECTED``: before any other outcome;
    * ``BRIDGED``: after ``ANSWERED``; ``WRAPUP_ENDED``: after ``ANSWERED`` and ``ENDED``.
    """
    phase = event.phase
    if phase is CallPhase.ARRIVED:
        if record is not None:
            raise DuplicateRecord(f"call {event.call_id!r} has already arrived")
        assert event.session_id is not None and event.caller is not None  # CallEvent checks
        return CallRecord(
            id=event.call_id,
            session_id=event.session_id,
            queue_id=event.queue_id,
            caller=event.caller,
            priority=event.priority,
            arrived_at=event.at,
        )
    if record is None:
        raise RecordNotFound(f"no call {event.call_id!r}: a call's first event is ARRIVED")

    def refuse(why: str) -> StoreError:
        return StoreError(f"call {record.id!r}: {phase.name} {why}")

    if phase is CallPhase.OFFERED:
        assert event.agent_id is not None
        if record.outcome is not None or record.ended_at is not None:
            raise refuse("after the call was settled or ended")
        if _open_offer(record, event.agent_id) is not None:
            raise refuse(f"while agent {event.agent_id!r} is still ringing")
        return attrs.evolve(record, offers=(*record.offers, Offer(event.agent_id, event.at)))
    if phase is CallPhase.OFFER_MISSED:
        assert event.agent_id is not None
        index = _open_offer(record, event.agent_id)
        if index is None or record.agent_id == event.agent_id:
            raise refuse(f"but agent {event.agent_id!r} has no ringing offer")
        missed = attrs.evolve(record.offers[index], missed_at=event.at, missed_reason=event.detail)
        offers = (*record.offers[:index], missed, *record.offers[index + 1 :])
        return attrs.evolve(record, offers=offers)

    field = _PHASE_FIELD[phase]
    if getattr(record, field) is not None:
        raise refuse("twice")
    changes: dict[str, Any] = {field: event.at}
    outcome = _OUTCOME_OF_PHASE.get(phase)
    if outcome is not None:
        if record.outcome is not None:
            raise refuse(f"but the call was already {record.outcome.value}")
        changes["outcome"] = outcome
        changes["outcome_detail"] = event.detail
    if phase is CallPhase.ANSWERED:
        assert event.agent_id is not None
        if record.ended_at is not None:
            raise refuse("after the call ended")
        if _open_offer(record, event.agent_id) is None:
            raise refuse(f"by agent {event.agent_id!r}, which it is not ringing")
        changes["agent_id"] = event.agent_id
    elif phase is CallPhase.BRIDGED and record.answered_at is None:
        raise refuse("before ANSWERED")
    elif phase is CallPhase.WRAPUP_ENDED and None in (record.answered_at, record.ended_at):
        raise refuse("before the call was answered and ended")
    return attrs.evolve(record, **changes)


# --- the interface ------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """The call engine's persistence. Every method may raise ``StoreError``; adding an id that
    exists raises ``DuplicateRecord``; updating or removing one that does not raises
    ``RecordNotFound``. Lists come back in a stable order (by id; by time for records)."""

    async def add_agent(self, agent: AgentRecord) -> None:
        """Store a new agent (its id and its SIP user must both be unused)."""

    async def update_agent(self, agent: AgentRecord) -> None:
        """Replace the stored agent with this id."""

    async def remove_agent(self, agent_id: str) -> None:
        """Forget the agent; its history and call records stay."""

    async def get_agent(self, agent_id: str) -> AgentRecord | None: ...

    async def list_agents(self) -> list[AgentRecord]: ...

    async def add_queue(self, queue: QueueRecord) -> None: ...

    async def update_queue(self, queue: QueueRecord) -> None: ...

    async def remove_queue(self, queue_id: str) -> None:
        """Forget the queue; its call records stay."""

    async def get_queue(self, queue_id: str) -> QueueRecord | None: ...

    async def list_queues(self) -> list[QueueRecord]: ...

    async def record_call_event(self, event: CallEvent) -> CallRecord:
        """Fold ``event`` into its call's record (see :func:`apply_call_event`), atomically;
        return the record as stored."""

    async def call_record(self, call_id: str) -> CallRecord | None: ...

    async def call_records(
        self, since: float, until: float, queue_id: str | None = None
    ) -> list[CallRecord]:
        """Records of calls that arrived in ``[since, until)`` (in ``queue_id`` only, when
        given), by arrival time then id."""

    async def record_agent_state(self, change: AgentStateChange) -> None: ...

    async def agent_history(
        self,
        agent_id: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[AgentStateChange]:
        """State changes with ``since <= at < until`` (either bound optional), of one agent or
        all, by time then recording order."""

    async def seeds(self, kind: str) -> dict[str, str]:
        """The seeds of ``kind`` (see the module docstring): record id -> definition, by id."""

    async def set_seed(self, kind: str, record_id: str, definition: str | None) -> None:
        """Remember ``definition`` as the seed of ``record_id`` of ``kind``, replacing any;
        None forgets it (forgetting one there is not is fine)."""

    async def aclose(self) -> None:
        """Release the store; any later call raises ``StoreError``. Closing twice is fine."""


# --- MemoryStore --------------------------------------------------------------------------


class MemoryStore:
    """:class:`Store` in dicts: nothing survives the process. Each method is one Trio
    checkpoint followed by a synchronous update, so every operation is atomic."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}
        self._queues: dict[str, QueueRecord] = {}
        self._calls: dict[str, CallRecord] = {}
        self._history: list[AgentStateChange] = []
        self._seeds: dict[str, dict[str, str]] = {}
        self._closed = False

    @classmethod
    @asynccontextmanager
    async def open(cls) -> AsyncIterator[MemoryStore]:
        """``async with MemoryStore.open() as store:``, the same shape as SqliteStore's."""
        store = cls()
        try:
            yield store
        finally:
            await store.aclose()

    async def _ready(self) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise StoreError("the store is closed")

    async def add_agent(self, agent: AgentRecord) -> None:
        _expect(agent, AgentRecord)
        await self._ready()
        if agent.id in self._agents:
            raise DuplicateRecord(f"agent {agent.id!r} exists")
        self._check_sip_user(agent)
        self._agents[agent.id] = agent

    async def update_agent(self, agent: AgentRecord) -> None:
        _expect(agent, AgentRecord)
        await self._ready()
        if agent.id not in self._agents:
            raise RecordNotFound(f"no agent {agent.id!r}")
        self._check_sip_user(agent)
        self._agents[agent.id] = agent

    def _check_sip_user(self, agent: AgentRecord) -> None:
        for other in self._agents.values():
            if other.sip_user == agent.sip_user and other.id != agent.id:
                raise DuplicateRecord(f"SIP user {agent.sip_user!r} belongs to agent {other.id!r}")

    async def remove_agent(self, agent_id: str) -> None:
        _check_text("agent_id", agent_id)
        await self._ready()
        if self._agents.pop(agent_id, None) is None:
            raise RecordNotFound(f"no agent {agent_id!r}")

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        _check_text("agent_id", agent_id)
        await self._ready()
        return self._agents.get(agent_id)

    async def list_agents(self) -> list[AgentRecord]:
        await self._ready()
        return [self._agents[key] for key in sorted(self._agents)]

    async def add_queue(self, queue: QueueRecord) -> None:
        _expect(queue, QueueRecord)
        await self._ready()
        if queue.id in self._queues:
            raise DuplicateRecord(f"queue {queue.id!r} exists")
        self._queues[queue.id] = queue

    async def update_queue(self, queue: QueueRecord) -> None:
        _expect(queue, QueueRecord)
        await self._ready()
        if queue.id not in self._queues:
            raise RecordNotFound(f"no queue {queue.id!r}")
        self._queues[queue.id] = queue

    async def remove_queue(self, queue_id: str) -> None:
        _check_text("queue_id", queue_id)
        await self._ready()
        if self._queues.pop(queue_id, None) is None:
            raise RecordNotFound(f"no queue {queue_id!r}")

    async def get_queue(self, queue_id: str) -> QueueRecord | None:
        _check_text("queue_id", queue_id)
        await self._ready()
        return self._queues.get(queue_id)

    async def list_queues(self) -> list[QueueRecord]:
        await self._ready()
        return [self._queues[key] for key in sorted(self._queues)]

    async def record_call_event(self, event: CallEvent) -> CallRecord:
        _expect(event, CallEvent)
        await self._ready()
        record = apply_call_event(self._calls.get(event.call_id), event)
        self._calls[record.id] = record
        return record

    async def call_record(self, call_id: str) -> CallRecord | None:
        _check_text("call_id", call_id)
        await self._ready()
        return self._calls.get(call_id)

    async def call_records(
        self, since: float, until: float, queue_id: str | None = None
    ) -> list[CallRecord]:
        _bound("since", since)
        _bound("until", until)
        _optional_key("queue_id", queue_id)
        await self._ready()
        found = [
            record
            for record in self._calls.values()
            if since <= record.arrived_at < until
            and (queue_id is None or record.queue_id == queue_id)
        ]
        found.sort(key=lambda record: (record.arrived_at, record.id))
        return found

    async def record_agent_state(self, change: AgentStateChange) -> None:
        _expect(change, AgentStateChange)
        await self._ready()
        self._history.append(change)

    async def agent_history(
        self,
        agent_id: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[AgentStateChange]:
        _bound("since", since, optional=True)
        _bound("until", until, optional=True)
        _optional_key("agent_id", agent_id)
        await self._ready()
        found = [
            change
            for change in self._history
            if (agent_id is None or change.agent_id == agent_id)
            and (since is None or change.at >= since)
            and (until is None or change.at < until)
        ]
        found.sort(key=lambda change: change.at)  # stable: recording order among equal times
        return found

    async def seeds(self, kind: str) -> dict[str, str]:
        _check_id("kind", kind)
        await self._ready()
        seeds = self._seeds.get(kind, {})
        return {key: seeds[key] for key in sorted(seeds)}

    async def set_seed(self, kind: str, record_id: str, definition: str | None) -> None:
        _check_seed(kind, record_id, definition)
        await self._ready()
        if definition is None:
            self._seeds.get(kind, {}).pop(record_id, None)
        else:
            self._seeds.setdefault(kind, {})[record_id] = definition

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()


# --- SqliteStore: schema and migrations ---------------------------------------------------

Migration = Callable[[sqlite3.Connection], None]
"""One schema step, run inside the migration transaction (so it must not commit)."""


def _sql(*statements: str) -> Migration:
    # Statement by statement: executescript() would COMMIT the migration transaction.
    def run(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return run


MIGRATIONS: tuple[Migration, ...] = (
    # 1: agents, queues, calls with a single offer, agent state history.
    _sql(
        """CREATE TABLE agents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            sip_user TEXT NOT NULL UNIQUE,
            skills TEXT NOT NULL DEFAULT '{}',
            max_concurrent INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            pause_reason TEXT
        )""",
        """CREATE TABLE queues (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            strategy TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            queue_id TEXT,
            caller TEXT NOT NULL,
            priority INTEGER NOT NULL,
            arrived_at REAL NOT NULL,
            offered_at REAL,
            offered_agent TEXT,
            answered_at REAL,
            bridged_at REAL,
            ended_at REAL,
            abandoned_at REAL,
            overflowed_at REAL,
            rejected_at REAL,
            wrapup_ended_at REAL,
            outcome TEXT,
            outcome_detail TEXT,
            agent_id TEXT
        )""",
        "CREATE INDEX calls_by_arrival ON calls (arrived_at)",
        """CREATE TABLE agent_states (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            agent_id TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT,
            at REAL NOT NULL
        )""",
        "CREATE INDEX agent_states_by_time ON agent_states (at)",
        "CREATE INDEX agent_states_by_agent ON agent_states (agent_id, at)",
    ),
    # 2: queue membership, routing attributes and credentials of agents; every offer of a
    # call (ring-all, retries), not just one.
    _sql(
        "ALTER TABLE agents ADD COLUMN tier INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE agents ADD COLUMN position INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE agents ADD COLUMN weight REAL NOT NULL DEFAULT 1.0",
        "ALTER TABLE agents ADD COLUMN queues TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE agents ADD COLUMN credentials TEXT",
        """CREATE TABLE call_offers (
            call_id TEXT NOT NULL REFERENCES calls (id),
            seq INTEGER NOT NULL,
            agent_id TEXT NOT NULL,
            at REAL NOT NULL,
            missed_at REAL,
            missed_reason TEXT,
            PRIMARY KEY (call_id, seq)
        )""",
        """INSERT INTO call_offers (call_id, seq, agent_id, at)
            SELECT id, 0, offered_agent, offered_at FROM calls
            WHERE offered_at IS NOT NULL AND offered_agent IS NOT NULL""",
        "ALTER TABLE calls DROP COLUMN offered_at",
        "ALTER TABLE calls DROP COLUMN offered_agent",
    ),
    # 3: the definition the configuration last seeded each configured agent and queue from.
    _sql(
        """CREATE TABLE seeds (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            definition TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        )""",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes; a database with a higher one is refused."""

BUSY_TIMEOUT = 5.0
"""Seconds an operation waits for a lock held by another connection before ``StoreError``."""


@contextmanager
def _transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front: a read-then-write cannot fail half way on a lock.
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _schema_version(conn: sqlite3.Connection) -> int:
    tables = {
        name
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    }
    if "schema_version" not in tables:
        if tables:
            raise StoreError(
                f"not a trio-voip store: it has tables {sorted(tables)} but no schema_version"
            )
        return 0
    rows = conn.execute("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int):
        raise StoreError(f"schema_version must hold one integer, not {rows!r}")
    return rows[0][0]


def _migrate(conn: sqlite3.Connection) -> int:
    with _transaction(conn):
        version = _schema_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database has schema version {version}, newer than the {SCHEMA_VERSION} "
                "this trio-voip knows: use a newer trio-voip (or a backup from before the upgrade)"
            )
        if version == SCHEMA_VERSION:
            return version
        for migration in MIGRATIONS[version:]:
            migration(conn)
        if version == 0:
            conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        else:
            conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    return SCHEMA_VERSION


# --- SqliteStore: rows <-> records (these run in the worker thread) -------------------------

_AGENT_COLUMNS = (
    "id, name, sip_user, queues, skills, max_concurrent, tier, position, weight, paused, "
    "pause_reason, credentials"
)
_CALL_COLUMNS = (
    "id, session_id, queue_id, caller, priority, arrived_at, answered_at, bridged_at, ended_at, "
    "abandoned_at, overflowed_at, rejected_at, wrapup_ended_at, outcome, outcome_detail, agent_id"
)
_OFFER_COLUMNS = "call_id, seq, agent_id, at, missed_at, missed_reason"


def _assignments(columns: str) -> str:
    """``a = ?, b = ?`` for every column but the first (the id)."""
    return ", ".join(f"{column} = ?" for column in columns.split(", ")[1:])


def _decode_json(what: str, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise StoreError(f"{what} in the database is not JSON: {text!r}") from None


def _agent_from_row(row: Sequence[Any]) -> AgentRecord:
    (agent_id, name, sip_user, queues, skills, max_concurrent, tier, position, weight, paused,
     reason, credentials) = row  # fmt: skip
    ha1 = _decode_json(f"credentials of agent {agent_id!r}", credentials or "null")
    if ha1 is not None and (not isinstance(ha1, dict) or set(ha1) != set(_HA1_FIELDS)):
        raise StoreError(f"credentials of agent {agent_id!r} in the database are malformed")
    return AgentRecord(
        id=agent_id,
        name=name,
        sip_user=sip_user,
        queues=_decode_json(f"queues of agent {agent_id!r}", queues),
        skills=_decode_json(f"skills of agent {agent_id!r}", skills),
        max_concurrent=max_concurrent,
        tier=tier,
        order=position,
        weight=weight,
        paused=bool(paused),
        pause_reason=reason,
        credentials=None if ha1 is None else PrecomputedHA1(**ha1),
    )


def _agent_row(agent: AgentRecord) -> tuple[Any, ...]:
    return (
        agent.id,
        agent.name,
        agent.sip_user,
        json.dumps(sorted(agent.queues), ensure_ascii=False),
        _skills_json(agent.skills),
        agent.max_concurrent,
        agent.tier,
        agent.order,
        agent.weight,
        int(agent.paused),
        agent.pause_reason,
        _credentials_json(agent.credentials),
    )


def _queue_from_row(row: Sequence[Any]) -> QueueRecord:
    queue_id, name, strategy, settings = row
    return QueueRecord(
        id=queue_id,
        name=name,
        strategy=strategy,
        settings=_decode_json(f"settings of queue {queue_id!r}", settings),
    )


def _call_from_row(row: Sequence[Any], offers: tuple[Offer, ...]) -> CallRecord:
    (call_id, session_id, queue_id, caller, priority, arrived_at, answered_at, bridged_at,
     ended_at, abandoned_at, overflowed_at, rejected_at, wrapup_ended_at, outcome,
     outcome_detail, agent_id) = row  # fmt: skip
    try:
        outcome_value = None if outcome is None else CallOutcome(outcome)
    except ValueError:
        raise StoreError(f"call {call_id!r} has an unknown outcome {outcome!r}") from None
    return CallRecord(
        id=call_id,
        session_id=session_id,
        queue_id=queue_id,
        caller=caller,
        priority=priority,
        arrived_at=arrived_at,
        offers=offers,
        answered_at=answered_at,
        bridged_at=bridged_at,
        ended_at=ended_at,
        abandoned_at=abandoned_at,
        overflowed_at=overflowed_at,
        rejected_at=rejected_at,
        wrapup_ended_at=wrapup_ended_at,
        outcome=outcome_value,
        outcome_detail=outcome_detail,
        agent_id=agent_id,
    )


def _call_row(record: CallRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.session_id,
        record.queue_id,
        record.caller,
        record.priority,
        record.arrived_at,
        record.answered_at,
        record.bridged_at,
        record.ended_at,
        record.abandoned_at,
        record.overflowed_at,
        record.rejected_at,
        record.wrapup_ended_at,
        None if record.outcome is None else record.outcome.value,
        record.outcome_detail,
        record.agent_id,
    )


def _offer_from_row(row: Sequence[Any]) -> Offer:
    _call_id, _seq, agent_id, at, missed_at, missed_reason = row
    return Offer(agent_id, at, missed_at, missed_reason)


def _load_call(conn: sqlite3.Connection, call_id: str) -> CallRecord | None:
    row = conn.execute(f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?", (call_id,)).fetchone()
    if row is None:
        return None
    offers = conn.execute(
        f"SELECT {_OFFER_COLUMNS} FROM call_offers WHERE call_id = ? ORDER BY seq", (call_id,)
    )
    return _call_from_row(row, tuple(map(_offer_from_row, offers)))


def _add_agent(conn: sqlite3.Connection, agent: AgentRecord) -> None:
    with _transaction(conn):
        if conn.execute("SELECT 1 FROM agents WHERE id = ?", (agent.id,)).fetchone():
            raise DuplicateRecord(f"agent {agent.id!r} exists")
        _check_sip_user(conn, agent)
        conn.execute(
            f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES ({', '.join('?' * 12)})",
            _agent_row(agent),
        )


def _update_agent(conn: sqlite3.Connection, agent: AgentRecord) -> None:
    with _transaction(conn):
        if not conn.execute("SELECT 1 FROM agents WHERE id = ?", (agent.id,)).fetchone():
            raise RecordNotFound(f"no agent {agent.id!r}")
        _check_sip_user(conn, agent)
        conn.execute(
            f"UPDATE agents SET {_assignments(_AGENT_COLUMNS)} WHERE id = ?",
            (*_agent_row(agent)[1:], agent.id),
        )


def _check_sip_user(conn: sqlite3.Connection, agent: AgentRecord) -> None:
    row = conn.execute(
        "SELECT id FROM agents WHERE sip_user = ? AND id != ?", (agent.sip_user, agent.id)
    ).fetchone()
    if row is not None:
        raise DuplicateRecord(f"SIP user {agent.sip_user!r} belongs to agent {row[0]!r}")


def _add_queue(conn: sqlite3.Connection, queue: QueueRecord) -> None:
    with _transaction(conn):
        if conn.execute("SELECT 1 FROM queues WHERE id = ?", (queue.id,)).fetchone():
            raise DuplicateRecord(f"queue {queue.id!r} exists")
        conn.execute(
            "INSERT INTO queues (id, name, strategy, settings) VALUES (?, ?, ?, ?)",
            (queue.id, queue.name, queue.strategy, _settings_json(queue.settings)),
        )


def _update_queue(conn: sqlite3.Connection, queue: QueueRecord) -> None:
    cursor = conn.execute(
        "UPDATE queues SET name = ?, strategy = ?, settings = ? WHERE id = ?",
        (queue.name, queue.strategy, _settings_json(queue.settings), queue.id),
    )
    if cursor.rowcount == 0:
        raise RecordNotFound(f"no queue {queue.id!r}")


def _remove(table: str, what: str) -> Callable[[sqlite3.Connection, str], None]:
    def remove(conn: sqlite3.Connection, record_id: str) -> None:
        if conn.execute(f"DELETE FROM {table} WHERE id = ?", (record_id,)).rowcount == 0:
            raise RecordNotFound(f"no {what} {record_id!r}")

    return remove


_remove_agent = _remove("agents", "agent")
_remove_queue = _remove("queues", "queue")


def _get_agent(conn: sqlite3.Connection, agent_id: str) -> AgentRecord | None:
    row = conn.execute(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,)).fetchone()
    return None if row is None else _agent_from_row(row)


def _list_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    rows = conn.execute(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY id")
    return [_agent_from_row(row) for row in rows]


def _get_queue(conn: sqlite3.Connection, queue_id: str) -> QueueRecord | None:
    row = conn.execute(
        "SELECT id, name, strategy, settings FROM queues WHERE id = ?", (queue_id,)
    ).fetchone()
    return None if row is None else _queue_from_row(row)


def _list_queues(conn: sqlite3.Connection) -> list[QueueRecord]:
    rows = conn.execute("SELECT id, name, strategy, settings FROM queues ORDER BY id")
    return [_queue_from_row(row) for row in rows]


def _record_call_event(conn: sqlite3.Connection, event: CallEvent) -> CallRecord:
    with _transaction(conn):
        before = _load_call(conn, event.call_id)
        after = apply_call_event(before, event)
        row = _call_row(after)
        if before is None:
            placeholders = ", ".join("?" * len(row))
            conn.execute(f"INSERT INTO calls ({_CALL_COLUMNS}) VALUES ({placeholders})", row)
            return after
        if row != _call_row(before):
            conn.execute(
                f"UPDATE calls SET {_assignments(_CALL_COLUMNS)} WHERE id = ?", (*row[1:], after.id)
            )
        # An event adds one offer or changes one; write only that.
        for seq, offer in enumerate(after.offers):
            if seq >= len(before.offers):
                conn.execute(
                    f"INSERT INTO call_offers ({_OFFER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                    (after.id, seq, offer.agent_id, offer.at, offer.missed_at, offer.missed_reason),
                )
            elif offer != before.offers[seq]:
                conn.execute(
                    "UPDATE call_offers SET missed_at = ?, missed_reason = ? "
                    "WHERE call_id = ? AND seq = ?",
                    (offer.missed_at, offer.missed_reason, after.id, seq),
                )
    return after


def _call_record(conn: sqlite3.Connection, call_id: str) -> CallRecord | None:
    with _transaction(conn, write=False):
        return _load_call(conn, call_id)


def _call_records(
    conn: sqlite3.Connection, since: float, until: float, queue_id: str | None
) -> list[CallRecord]:
    where = "arrived_at >= ? AND arrived_at < ?"
    parameters: tuple[Any, ...] = (since, until)
    if queue_id is not None:
        where += " AND queue_id = ?"
        parameters += (queue_id,)
    with _transaction(conn, write=False):
        calls = conn.execute(
            f"SELECT {_CALL_COLUMNS} FROM calls WHERE {where} ORDER BY arrived_at, id", parameters
        ).fetchall()
        offers: dict[str, list[Offer]] = {}
        for row in conn.execute(
            f"SELECT {_OFFER_COLUMNS} FROM call_offers WHERE call_id IN "
            f"(SELECT id FROM calls WHERE {where}) ORDER BY call_id, seq",
            parameters,
        ):
            offers.setdefault(row[0], []).append(_offer_from_row(row))
    return [_call_from_row(row, tuple(offers.get(row[0], ()))) for row in calls]


def _record_agent_state(conn: sqlite3.Connection, change: AgentStateChange) -> None:
    conn.execute(
        "INSERT INTO agent_states (agent_id, state, reason, at) VALUES (?, ?, ?, ?)",
        (change.agent_id, change.state, change.reason, change.at),
    )


def _agent_history(
    conn: sqlite3.Connection, agent_id: str | None, since: float | None, until: float | None
) -> list[AgentStateChange]:
    conditions: list[str] = []
    parameters: list[Any] = []
    for condition, value in (("agent_id = ?", agent_id), ("at >= ?", since), ("at < ?", until)):
        if value is not None:
            conditions.append(condition)
            parameters.append(value)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    rows = conn.execute(
        f"SELECT agent_id, state, reason, at FROM agent_states {where} ORDER BY at, seq", parameters
    )
    return [AgentStateChange(agent_id=a, state=s, reason=r, at=t) for a, s, r, t in rows]


def _seeds(conn: sqlite3.Connection, kind: str) -> dict[str, str]:
    rows = conn.execute("SELECT id, definition FROM seeds WHERE kind = ? ORDER BY id", (kind,))
    return dict(rows.fetchall())


def _set_seed(
    conn: sqlite3.Connection, kind: str, record_id: str, definition: str | None
) -> None:
    if definition is None:
        conn.execute("DELETE FROM seeds WHERE kind = ? AND id = ?", (kind, record_id))
    else:
        conn.execute(
            "INSERT OR REPLACE INTO seeds (kind, id, definition) VALUES (?, ?, ?)",
            (kind, record_id, definition),
        )


# --- SqliteStore ----------------------------------------------------------------------------


class SqliteStore:
    """:class:`Store` in SQLite; see the module docstring for threading and migrations.

    Use ``async with SqliteStore.open(path) as store:``; ``path`` may be ``":memory:"``.
    ``schema_version`` is the version of the open database (always :data:`SCHEMA_VERSION`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.schema_version: int | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._conn: sqlite3.Connection | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | os.PathLike[str]) -> AsyncIterator[SqliteStore]:
        """Open (creating or migrating) the database at ``path``; close it on exit."""
        store = cls(path)
        try:
            await store._in_thread(store._connect)
            yield store
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()

    async def _in_thread(self, function: Callable[..., _T], *args: Any) -> _T:
        return await trio.to_thread.run_sync(self._guarded, function, *args, limiter=self._limiter)

    def _guarded(self, function: Callable[..., _T], *args: Any) -> _T:
        try:
            return function(*args)
        except sqlite3.IntegrityError as exc:
            raise DuplicateRecord(f"{self.path}: database constraint: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: database error: {exc}") from exc

    def _connect(self) -> None:
        if self._conn is not None:
            raise StoreError("the store is already open")
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self.schema_version = _migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def _run(self, function: Callable[..., _T], *args: Any) -> _T:
        if self._conn is None:
            raise StoreError("the store is not open (closed, or never opened with open())")
        return await self._in_thread(self._with_connection, function, *args)

    def _with_connection(self, function: Callable[..., _T], *args: Any) -> _T:
        conn = self._conn
        if conn is None:  # closed while this operation waited for the worker
            raise StoreError("the store is closed")
        return function(conn, *args)

    async def add_agent(self, agent: AgentRecord) -> None:
        await self._run(_add_agent, _expect(agent, AgentRecord))

    async def update_agent(self, agent: AgentRecord) -> None:
        await self._run(_update_agent, _expect(agent, AgentRecord))

    async def remove_agent(self, agent_id: str) -> None:
        await self._run(_remove_agent, _check_text("agent_id", agent_id))

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        return await self._run(_get_agent, _check_text("agent_id", agent_id))

    async def list_agents(self) -> list[AgentRecord]:
        return await self._run(_list_agents)

    async def add_queue(self, queue: QueueRecord) -> None:
        await self._run(_add_queue, _expect(queue, QueueRecord))

    async def update_queue(self, queue: QueueRecord) -> None:
        await self._run(_update_queue, _expect(queue, QueueRecord))

    async def remove_queue(self, queue_id: str) -> None:
        await self._run(_remove_queue, _check_text("queue_id", queue_id))

    async def get_queue(self, queue_id: str) -> QueueRecord | None:
        return await self._run(_get_queue, _check_text("queue_id", queue_id))

    async def list_queues(self) -> list[QueueRecord]:
        return await self._run(_list_queues)

    async def record_call_event(self, event: CallEvent) -> CallRecord:
        return await self._run(_record_call_event, _expect(event, CallEvent))

    async def call_record(self, call_id: str) -> CallRecord | None:
        return await self._run(_call_record, _check_text("call_id", call_id))

    async def call_records(
        self, since: float, until: float, queue_id: str | None = None
    ) -> list[CallRecord]:
        _bound("since", since)
        _bound("until", until)
        _optional_key("queue_id", queue_id)
        return await self._run(_call_records, since, until, queue_id)

    async def record_agent_state(self, change: AgentStateChange) -> None:
        await self._run(_record_agent_state, _expect(change, AgentStateChange))

    async def agent_history(
        self,
        agent_id: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[AgentStateChange]:
        _bound("since", since, optional=True)
        _bound("until", until, optional=True)
        _optional_key("agent_id", agent_id)
        return await self._run(_agent_history, agent_id, since, until)

    async def seeds(self, kind: str) -> dict[str, str]:
        return await self._run(_seeds, _check_id("kind", kind))

    async def set_seed(self, kind: str, record_id: str, definition: str | None) -> None:
        _check_seed(kind, record_id, definition)
        await self._run(_set_seed, kind, record_id, definition)

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._in_thread(self._close)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
