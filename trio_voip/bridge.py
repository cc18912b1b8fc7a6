"""Bridges, sans-IO: which sessions hear each other, as a :class:`BridgeTable`.

A bridge joins calls' media. The table only keeps the state: it never awaits, never touches a
socket or the RTP relay, and takes the time as an argument. Every operation returns the
:data:`BridgeEvent` list it caused, in order; the coordinator publishes exactly that list and
then asks :meth:`BridgeTable.media_plan` what the relay must do for each bridge it names::

    table = BridgeTable()
    bridge, events = table.bridge_sessions("a", "b", now=clock(), first_active=True,
                                           second_active=True)
    # [BridgeCreated(bridge), ParticipantAdded(bridge, "a"), ParticipantAdded(bridge, "b")]
    table.media_plan(bridge).relay          # ("a", "b"): relay a <-> b directly
    table.session_ended("b")
    # [ParticipantRemoved(bridge, "b", HANGUP), ParticipantRemoved(bridge, "a", LEFT_ALONE),
    #  BridgeDestroyed(bridge)]

**The rule for a participant left alone.** A bridge made by :meth:`~BridgeTable.bridge_sessions`
exists to connect calls, so when it drops to one participant (the other side hung up, was
removed or failed) the last one is removed with reason ``LEFT_ALONE`` and the bridge is
destroyed: the application is told, and decides whether to hang that call up, play a prompt or
bridge it elsewhere. The table option ``destroy_when_alone=False`` keeps such bridges instead. A
bridge made empty by :meth:`~BridgeTable.create_bridge` (a conference room) stays alive, with
any number of participants, until :meth:`~BridgeTable.destroy_bridge`.

**The event stream.** ``BridgeCreated`` opens a bridge, ``ParticipantAdded`` /
``ParticipantRemoved`` change its participants, and ``BridgeDestroyed`` comes only after every
participant was removed (reason ``BRIDGE_DESTROYED`` when the bridge took them down), so every
``ParticipantAdded`` is matched by a ``ParticipantRemoved``. :func:`replay` folds a stream back
into the participant sets and rejects a stream that breaks these rules.

Every operation checks everything before changing anything: one that raises has changed nothing
(``bridge_sessions`` joins both sessions or neither).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from typing import NewType, TypeAlias

import attrs

from trio_voip.errors import (
    BridgeError,
    SessionAlreadyBridged,
    SessionNotActive,
    UnknownBridge,
    UnknownSession,
)

__all__ = [
    "BridgeId",
    "SessionId",
    "RemovalReason",
    "BridgeMode",
    "BridgeCreated",
    "ParticipantAdded",
    "ParticipantRemoved",
    "BridgeDestroyed",
    "BridgeEvent",
    "BridgeInfo",
    "MediaPlan",
    "BridgeTable",
    "replay",
    "check_invariants",
]

BridgeId = NewType("BridgeId", str)
#: The coordinator's session id (a call's ``session_id``).
SessionId: TypeAlias = str


class RemovalReason(enum.Enum):
    """Why a participant left a bridge."""

    HANGUP = "hangup"  # its call ended
    REMOVED = "removed"  # by the API
    BRIDGE_DESTROYED = "bridge_destroyed"  # the bridge was destroyed around it
    LEFT_ALONE = "left_alone"  # the last one of a destroy-when-alone bridge
    FAILED = "failed"  # its media or call failed


#: Reasons only the table gives; a caller removing a participant may not claim them.
_TABLE_REASONS = frozenset({RemovalReason.BRIDGE_DESTROYED, RemovalReason.LEFT_ALONE})


class BridgeMode(enum.Enum):
    """What the media path of a bridge is, from its number of participants."""

    IDLE = "idle"  # 0 or 1 participants: no media flows
    RELAY = "relay"  # 2: packets are relayed directly between the two legs
    MIX = "mix"  # 3 or more: audio is decoded, mixed and re-encoded per leg

    @classmethod
    def for_count(cls, count: int) -> BridgeMode:
        return cls.IDLE if count < 2 else cls.RELAY if count == 2 else cls.MIX


def _id(_inst: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise BridgeError(f"{attribute.name} must be a non-empty string, not {value!r}")


def _reason(_inst: object, _attr: object, value: object) -> None:
    if not isinstance(value, RemovalReason):
        raise BridgeError(f"not a RemovalReason: {value!r}")


@attrs.frozen
class BridgeCreated:
    """Bridge ``bridge_id`` exists from ``created_at`` on, with no participants yet."""

    bridge_id: BridgeId = attrs.field(validator=_id)
    created_at: float


@attrs.frozen
class ParticipantAdded:
    """Session ``session_id`` joined bridge ``bridge_id``."""

    bridge_id: BridgeId = attrs.field(validator=_id)
    session_id: SessionId = attrs.field(validator=_id)


@attrs.frozen
class ParticipantRemoved:
    """Session ``session_id`` left bridge ``bridge_id`` for ``reason``."""

    bridge_id: BridgeId = attrs.field(validator=_id)
    session_id: SessionId = attrs.field(validator=_id)
    reason: RemovalReason = attrs.field(validator=_reason)


@attrs.frozen
class BridgeDestroyed:
    """Bridge ``bridge_id`` is gone; its participants were all removed before this event."""

    bridge_id: BridgeId = attrs.field(validator=_id)


BridgeEvent: TypeAlias = BridgeCreated | ParticipantAdded | ParticipantRemoved | BridgeDestroyed


@attrs.frozen
class BridgeInfo:
    """A snapshot of one live bridge; ``participants`` are in the order they joined."""

    bridge_id: BridgeId
    participants: tuple[SessionId, ...]
    created_at: float
    destroy_when_alone: bool

    @property
    def mode(self) -> BridgeMode:
        return BridgeMode.for_count(len(self.participants))


@attrs.frozen
class MediaPlan:
    """What the RTP relay must do for one bridge: relay the pair ``relay`` to each other
    directly (two participants), or mix every leg of ``mixed`` (three or more); neither for an
    idle bridge."""

    bridge_id: BridgeId
    mode: BridgeMode
    relay: tuple[SessionId, SessionId] | None
    mixed: tuple[SessionId, ...]


@attrs.define(eq=False)
class _Bridge:
    bridge_id: BridgeId
    created_at: float
    destroy_when_alone: bool
    # dict as an ordered set: join order kept, O(1) removal
    participants: dict[SessionId, None] = attrs.Factory(dict)

    def info(self) -> BridgeInfo:
        return BridgeInfo(
            self.bridge_id, tuple(self.participants), self.created_at, self.destroy_when_alone
        )


@attrs.define
class BridgeTable:
    """Every live bridge and who is in it; see the module docstring for the rules.

    ``destroy_when_alone`` applies to bridges made by :meth:`bridge_sessions`; ids are
    ``id_prefix`` followed by a counter, so they are predictable in tests and never reused
    by one table.
    """

    destroy_when_alone: bool = True
    id_prefix: str = "bridge-"
    _bridges: dict[BridgeId, _Bridge] = attrs.field(init=False, factory=dict)
    _session_bridge: dict[SessionId, BridgeId] = attrs.field(init=False, factory=dict)
    _ids: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))

    # -- queries ---------------------------------------------------------------------------

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None:
        return self._session_bridge.get(session_id)

    def list_bridges(self) -> list[BridgeInfo]:
        """The live bridges, oldest first."""
        return [bridge.info() for bridge in self._bridges.values()]

    def participants(self, bridge_id: BridgeId) -> tuple[SessionId, ...]:
        return tuple(self._bridge(bridge_id).participants)

    def info(self, bridge_id: BridgeId) -> BridgeInfo:
        return self._bridge(bridge_id).info()

    def media_plan(self, bridge_id: BridgeId) -> MediaPlan:
        members = tuple(self._bridge(bridge_id).participants)
        mode = BridgeMode.for_count(len(members))
        if mode is BridgeMode.RELAY:
            return MediaPlan(bridge_id, mode, (members[0], members[1]), ())
        return MediaPlan(bridge_id, mode, None, members if mode is BridgeMode.MIX else ())

    def __len__(self) -> int:
        return len(self._bridges)

    # -- operations --------------------------------------------------------------------------

    def create_bridge(self, now: float) -> tuple[BridgeId, list[BridgeEvent]]:
        """A new empty bridge; it lives, whoever joins or leaves, until :meth:`destroy_bridge`."""
        bridge = self._new(now, False)
        return bridge.bridge_id, [BridgeCreated(bridge.bridge_id, now)]

    def add_session(
        self, bridge_id: BridgeId, session_id: SessionId, session_active: bool
    ) -> list[BridgeEvent]:
        """Add ``session_id`` (whose call the caller knows to be active or not) to a bridge."""
        bridge = self._bridge(bridge_id)
        self._check_joinable(session_id, session_active)
        return [self._join(bridge, session_id)]

    def bridge_sessions(
        self,
        first: SessionId,
        second: SessionId,
        *,
        now: float,
        first_active: bool,
        second_active: bool,
    ) -> tuple[BridgeId, list[BridgeEvent]]:
        """A new bridge joining two active, unbridged sessions: both join, or nothing changes."""
        if first == second:
            raise BridgeError(f"cannot bridge session {first!r} with itself", session_id=first)
        self._check_joinable(first, first_active)
        self._check_joinable(second, second_active)
        bridge = self._new(now, self.destroy_when_alone)
        created = BridgeCreated(bridge.bridge_id, now)
        return bridge.bridge_id, [created, self._join(bridge, first), self._join(bridge, second)]

    def remove_session(
        self,
        bridge_id: BridgeId,
        session_id: SessionId,
        reason: RemovalReason = RemovalReason.REMOVED,
    ) -> list[BridgeEvent]:
        """Take ``session_id`` out of a bridge; may destroy it (see the module docstring)."""
        if reason in _TABLE_REASONS:
            raise BridgeError(f"only the bridge itself removes a participant for {reason.value}")
        bridge = self._bridge(bridge_id)
        if session_id not in bridge.participants:
            raise UnknownSession(
                f"session {session_id!r} is not in bridge {bridge_id!r}",
                bridge_id=bridge_id,
                session_id=session_id,
            )
        events = [self._leave(bridge, session_id, reason)]
        if bridge.destroy_when_alone and len(bridge.participants) == 1:
            (last,) = bridge.participants
            events.append(self._leave(bridge, last, RemovalReason.LEFT_ALONE))
            events.append(self._drop(bridge))
        return events

    def session_ended(
        self, session_id: SessionId, reason: RemovalReason = RemovalReason.HANGUP
    ) -> list[BridgeEvent]:
        """The call ``session_id`` ended: out of its bridge, if any (no events otherwise)."""
        bridge_id = self._session_bridge.get(session_id)
        if bridge_id is None:
            return []
        return self.remove_session(bridge_id, session_id, reason)

    def destroy_bridge(self, bridge_id: BridgeId) -> list[BridgeEvent]:
        """Remove every participant (reason ``BRIDGE_DESTROYED``), then the bridge."""
        bridge = self._bridge(bridge_id)
        events: list[BridgeEvent] = [
            self._leave(bridge, session_id, RemovalReason.BRIDGE_DESTROYED)
            for session_id in list(bridge.participants)
        ]
        events.append(self._drop(bridge))
        return events

    # -- internals ---------------------------------------------------------------------------

    def _bridge(self, bridge_id: BridgeId) -> _Bridge:
        try:
            return self._bridges[bridge_id]
        except KeyError:
            raise UnknownBridge(f"no bridge {bridge_id!r}", bridge_id=bridge_id) from None

    def _check_joinable(self, session_id: SessionId, active: bool) -> None:
        if not isinstance(session_id, str) or not session_id:
            raise BridgeError(f"not a session id: {session_id!r}")
        if not active:
            raise SessionNotActive(f"session {session_id!r} is not active", session_id=session_id)
        current = self._session_bridge.get(session_id)
        if current is not None:
            raise SessionAlreadyBridged(
                f"session {session_id!r} is already in bridge {current!r}",
                bridge_id=current,
                session_id=session_id,
            )

    def _new(self, now: float, destroy_when_alone: bool) -> _Bridge:
        bridge_id = BridgeId(f"{self.id_prefix}{next(self._ids)}")
        bridge = self._bridges[bridge_id] = _Bridge(bridge_id, now, destroy_when_alone)
        return bridge

    def _join(self, bridge: _Bridge, session_id: SessionId) -> ParticipantAdded:
        bridge.participants[session_id] = None
        self._session_bridge[session_id] = bridge.bridge_id
        return ParticipantAdded(bridge.bridge_id, session_id)

    def _leave(
        self, bridge: _Bridge, session_id: SessionId, reason: RemovalReason
    ) -> ParticipantRemoved:
        del bridge.participants[session_id]
        del self._session_bridge[session_id]
        return ParticipantRemoved(bridge.bridge_id, session_id, reason)

    def _drop(self, bridge: _Bridge) -> BridgeDestroyed:
        del self._bridges[bridge.bridge_id]
        return BridgeDestroyed(bridge.bridge_id)


def replay(events: Iterable[BridgeEvent]) -> dict[BridgeId, tuple[SessionId, ...]]:
    """Fold an event stream, from an empty table, into each live bridge's participants (in
    join order). Raises :class:`BridgeError` at the first event the rules of the module
    docstring forbid (a session in two bridges, a bridge destroyed with participants, ...)."""
    bridges: dict[BridgeId, dict[SessionId, None]] = {}
    where: dict[SessionId, BridgeId] = {}
    for index, event in enumerate(events):
        members = bridges.get(event.bridge_id)
        if isinstance(event, BridgeCreated):
            if members is not None:
                raise _broken(index, event, "bridge created twice")
            bridges[event.bridge_id] = {}
            continue
        if members is None:
            raise _broken(index, event, "no such live bridge")
        if isinstance(event, ParticipantAdded):
            if event.session_id in where:
                where_now = where[event.session_id]
                raise _broken(index, event, f"session already in bridge {where_now!r}")
            members[event.session_id] = None
            where[event.session_id] = event.bridge_id
        elif isinstance(event, ParticipantRemoved):
            if event.session_id not in members:
                raise _broken(index, event, "session is not in this bridge")
            del members[event.session_id]
            del where[event.session_id]
        else:
            if members:
                raise _broken(index, event, f"destroyed with participants {tuple(members)!r}")
            del bridges[event.bridge_id]
    return {bridge_id: tuple(members) for bridge_id, members in bridges.items()}


def _broken(index: int, event: BridgeEvent, why: str) -> BridgeError:
    return BridgeError(f"event {index} ({event!r}): {why}", bridge_id=event.bridge_id)


def check_invariants(table: BridgeTable) -> None:
    """Raise AssertionError, saying which, if ``table`` breaks a rule of its state: a session
    in two bridges, the session index disagreeing with a bridge's participants, a listed
    bridge that is not live (or the reverse), a destroy-when-alone bridge with fewer than two
    participants."""
    seen: dict[SessionId, BridgeId] = {}
    infos = table.list_bridges()
    listed = [info.bridge_id for info in infos]
    assert len(set(listed)) == len(listed), f"list_bridges repeats a bridge: {listed}"
    assert set(listed) == set(table._bridges), (
        f"list_bridges {listed} is not the live bridges {list(table._bridges)}"
    )
    for info in infos:
        assert info.participants == table.participants(info.bridge_id)
        assert len(set(info.participants)) == len(info.participants), (
            f"bridge {info.bridge_id!r} lists a participant twice: {info.participants}"
        )
        for session_id in info.participants:
            assert session_id not in seen, (
                f"session {session_id!r} is in bridges {seen[session_id]!r} and {info.bridge_id!r}"
            )
            seen[session_id] = info.bridge_id
            found = table.get_session_bridge(session_id)
            assert found == info.bridge_id, (
                f"get_session_bridge({session_id!r}) is {found!r}, not {info.bridge_id!r}"
            )
        if info.destroy_when_alone:
            assert len(info.participants) >= 2, (
                f"destroy-when-alone bridge {info.bridge_id!r} kept {info.participants}"
            )
    # the index holds nobody the bridges do not (e.g. a member of a destroyed bridge)
    assert table._session_bridge == seen, (
        f"session index {table._session_bridge} disagrees with the bridges {seen}"
    )
