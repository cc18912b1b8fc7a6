"""A hypothesis state machine for anything that keeps bridges: :class:`BridgeMachine`.

The machine drives a :class:`BridgeSystem` (the eight bridge operations of the coordinator,
:class:`BridgeApi`, plus starting and hanging up sessions) with random sequences of operations,
keeps a model of what must be true, and after every step checks:

* each operation succeeds or fails as the model says (which errors are allowed when several
  rules are broken at once is left open), and a failed one publishes nothing;
* the events published are exactly the ones the model expects, in order;
* a session is in at most one bridge, ``get_session_bridge`` agrees with every bridge's
  participants, ``list_bridges`` is exactly the live bridges (destroyed ones are gone and hold
  nobody), ended sessions are in no bridge, each bridge's mode fits its size;
* :func:`~trio_voip.bridge.replay` of every event published so far gives the current bridges;
* once every bridge is destroyed and every call hung up (a step of its own), every
  ``ParticipantAdded`` has been matched by a ``ParticipantRemoved``.

Run it against the sans-IO table (the default :class:`TableBridgeSystem`)::

    from trio_voip.testing.bridges import BridgeMachine
    TestBridges = BridgeMachine.TestCase

Run it against something else by overriding :meth:`BridgeMachine.make_system`. The
coordinator is async and the machine is not: host it in a Trio loop on a background thread
and make each adapter method a blocking call into it, for instance::

    class CoordinatorSystem:                      # sketch of a BridgeSystem adapter
        def __init__(self):                       # a thread runs trio.run(self._main), which
            ...                                   # opens the coordinator, stores
                                                  # trio.lowlevel.current_trio_token() and
                                                  # sleeps until close()
        def bridge_sessions(self, first, second):
            return trio.from_thread.run(self.coordinator.bridge_sessions, first, second,
                                        trio_token=self.token)
        def hang_up(self, session_id):            # return only once the bridge events are out
            trio.from_thread.run(self._hang_up_and_settle, session_id, trio_token=self.token)

    class TestCoordinatorBridges(BridgeMachine):
        def make_system(self):
            return CoordinatorSystem()
    TestCoordinator = TestCoordinatorBridges.TestCase

Settle with ``trio.testing.wait_all_tasks_blocked()`` inside the loop so every event is
published before the call returns: the machine reads events with ``receive_nowait``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import ClassVar, Protocol

import attrs
import trio
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from trio_voip.bridge import (
    BridgeCreated,
    BridgeDestroyed,
    BridgeEvent,
    BridgeId,
    BridgeInfo,
    BridgeMode,
    BridgeTable,
    ParticipantAdded,
    ParticipantRemoved,
    RemovalReason,
    SessionId,
    replay,
)
from trio_voip.errors import (
    BridgeError,
    SessionAlreadyBridged,
    SessionNotActive,
    UnknownBridge,
    UnknownSession,
)
from trio_voip.events import EventBus

__all__ = ["BridgeApi", "BridgeSystem", "TableBridgeSystem", "BridgeMachine"]


class BridgeApi(Protocol):
    """The coordinator's bridge operations, as blocking calls."""

    def create_bridge(self) -> BridgeId: ...

    def bridge_sessions(self, first: SessionId, second: SessionId) -> BridgeId: ...

    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None: ...

    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None: ...

    def destroy_bridge(self, bridge_id: BridgeId) -> None: ...

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None: ...

    def list_bridges(self) -> list[BridgeInfo]: ...

    def subscribe_to_bridge_events(self) -> trio.MemoryReceiveChannel[BridgeEvent]: ...


class BridgeSystem(BridgeApi, Protocol):
    """A :class:`BridgeApi` the machine can also give calls to: ``start_session`` returns the
    id of a new active call, ``hang_up`` ends one (no-op if it already ended) and returns once
    its bridge events are published; ``close`` releases everything at the end of a run."""

    def start_session(self) -> SessionId: ...

    def hang_up(self, session_id: SessionId) -> None: ...

    def close(self) -> None: ...


@attrs.define
class TableBridgeSystem:
    """:class:`~trio_voip.bridge.BridgeTable` behind the :class:`BridgeSystem` interface:
    the smallest coordinator, publishing each operation's events on an
    :class:`~trio_voip.events.EventBus` (also a model of how the real one uses the table)."""

    table: BridgeTable = attrs.Factory(BridgeTable)
    bus: EventBus[BridgeEvent] = attrs.Factory(EventBus)
    #: the time each operation is stamped with; advances by one per operation
    now: float = 0.0
    active: set[SessionId] = attrs.Factory(set)
    _ids: itertools.count[int] = attrs.field(init=False, factory=lambda: itertools.count(1))

    def _publish(self, events: list[BridgeEvent]) -> None:
        for event in events:
            self.bus.publish(event)

    def _tick(self) -> float:
        self.now += 1.0
        return self.now

    def create_bridge(self) -> BridgeId:
        bridge_id, events = self.table.create_bridge(self._tick())
        self._publish(events)
        return bridge_id

    def bridge_sessions(self, first: SessionId, second: SessionId) -> BridgeId:
        bridge_id, events = self.table.bridge_sessions(
            first,
            second,
            now=self._tick(),
            first_active=first in self.active,
            second_active=second in self.active,
        )
        self._publish(events)
        return bridge_id

    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._publish(self.table.add_session(bridge_id, session_id, session_id in self.active))

    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._publish(self.table.remove_session(bridge_id, session_id))

    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        self._publish(self.table.destroy_bridge(bridge_id))

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None:
        return self.table.get_session_bridge(session_id)

    def list_bridges(self) -> list[BridgeInfo]:
        return self.table.list_bridges()

    def subscribe_to_bridge_events(self) -> trio.MemoryReceiveChannel[BridgeEvent]:
        return self.bus.subscribe(buffer=1000)

    def start_session(self) -> SessionId:
        session_id = f"session-{next(self._ids)}"
        self.active.add(session_id)
        return session_id

    def hang_up(self, session_id: SessionId) -> None:
        if session_id in self.active:
            self.active.remove(session_id)
            self._publish(self.table.session_ended(session_id))

    def close(self) -> None:
        self.bus.close()


def _same(actual: BridgeEvent, expected: BridgeEvent) -> bool:
    # the model cannot know the system's clock: a creation matches on its bridge alone
    if isinstance(expected, BridgeCreated):
        return isinstance(actual, BridgeCreated) and actual.bridge_id == expected.bridge_id
    return actual == expected


class BridgeMachine(RuleBasedStateMachine):
    """Random bridge operations against :meth:`make_system`, checked against a model (see the
    module docstring). ``destroy_when_alone`` is the rule the system applies to bridges made
    by ``bridge_sessions``; ``max_sessions`` bounds how many calls are up at once and
    ``max_bridges`` how many live bridges ``create_bridge`` may add to."""

    destroy_when_alone: ClassVar[bool] = True
    max_sessions: ClassVar[int] = 10
    max_bridges: ClassVar[int] = 4

    sessions = Bundle("sessions")
    bridges = Bundle("bridges")

    def make_system(self) -> BridgeSystem:
        return TableBridgeSystem(BridgeTable(destroy_when_alone=self.destroy_when_alone))

    def __init__(self) -> None:
        super().__init__()
        self.system = self.make_system()
        self.events = self.system.subscribe_to_bridge_events()
        self.log: list[BridgeEvent] = []
        # the model: live bridges and their participants in join order
        self.model: dict[BridgeId, list[SessionId]] = {}
        self.paired: set[BridgeId] = set()  # made by bridge_sessions
        self.destroyed: set[BridgeId] = set()
        self.created_at: dict[BridgeId, float] = {}  # as published, the system's clock
        self.last_created = float("-inf")
        self.active: set[SessionId] = set()
        self.ended: set[SessionId] = set()

    # -- helpers -----------------------------------------------------------------------------

    def _drain(self) -> list[BridgeEvent]:
        out: list[BridgeEvent] = []
        while True:
            try:
                out.append(self.events.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        self.log.extend(out)
        return out

    def _where(self, session_id: SessionId) -> BridgeId | None:
        for bridge_id, members in self.model.items():
            if session_id in members:
                return bridge_id
        return None

    def _joinable_errors(self, session_id: SessionId) -> set[type[BridgeError]]:
        errors: set[type[BridgeError]] = set()
        if session_id not in self.active:
            errors.add(SessionNotActive)
        if self._where(session_id) is not None:
            errors.add(SessionAlreadyBridged)
        return errors

    def _failed(self, errors: set[type[BridgeError]], error: BridgeError | None) -> bool:
        """Check an attempt's outcome against the errors the model allows; True if it failed."""
        if error is None:
            assert not errors, f"expected one of {sorted(e.__name__ for e in errors)}, it worked"
            return False
        assert errors, f"unexpected {error!r}"
        assert isinstance(error, tuple(errors)), (
            f"{error!r} is none of {sorted(e.__name__ for e in errors)}"
        )
        assert self._drain() == [], f"the failed operation ({error!r}) published events"
        return True

    def _expect(self, expected: list[BridgeEvent]) -> None:
        """The step published ``expected`` exactly; apply it to the model."""
        actual = self._drain()
        assert len(actual) == len(expected) and all(map(_same, actual, expected)), (
            f"published {actual}, expected {expected}"
        )
        for event in actual:
            if isinstance(event, BridgeCreated):
                assert event.created_at >= self.last_created, "bridge creation went back in time"
                self.last_created = self.created_at[event.bridge_id] = event.created_at
        for event in expected:
            if isinstance(event, BridgeCreated):
                self.model[event.bridge_id] = []
            elif isinstance(event, ParticipantAdded):
                self.model[event.bridge_id].append(event.session_id)
            elif isinstance(event, ParticipantRemoved):
                self.model[event.bridge_id].remove(event.session_id)
            else:
                del self.model[event.bridge_id]
                self.paired.discard(event.bridge_id)
                self.destroyed.add(event.bridge_id)

    def _expect_bridged(self, bridge_id: BridgeId, first: SessionId, second: SessionId) -> None:
        assert bridge_id not in self.model and bridge_id not in self.destroyed, (
            f"bridge id {bridge_id!r} reused"
        )
        self._expect(
            [
                BridgeCreated(bridge_id, 0.0),
                ParticipantAdded(bridge_id, first),
                ParticipantAdded(bridge_id, second),
            ]
        )
        self.paired.add(bridge_id)

    def _removal(
        self, bridge_id: BridgeId, session_id: SessionId, reason: RemovalReason
    ) -> list[BridgeEvent]:
        events: list[BridgeEvent] = [ParticipantRemoved(bridge_id, session_id, reason)]
        rest = [member for member in self.model[bridge_id] if member != session_id]
        if bridge_id in self.paired and self.destroy_when_alone and len(rest) == 1:
            events.append(ParticipantRemoved(bridge_id, rest[0], RemovalReason.LEFT_ALONE))
            events.append(BridgeDestroyed(bridge_id))
        return events

    def _start(self) -> SessionId:
        session_id = self.system.start_session()
        assert session_id not in self.active and session_id not in self.ended, (
            f"session id {session_id!r} reused"
        )
        assert self._drain() == [], "starting a session published bridge events"
        self.active.add(session_id)
        return session_id

    def _free(self) -> list[SessionId]:
        return sorted(s for s in self.active if self._where(s) is None)

    # -- rules: any operation on any ids, errors included ------------------------------------

    @initialize(target=sessions)
    def start_sessions(self) -> object:
        return multiple(*(self._start() for _ in range(3)))

    @precondition(lambda self: len(self.active) < self.max_sessions)
    @rule(target=sessions)
    def start_session(self) -> SessionId:
        return self._start()

    @precondition(lambda self: len(self.model) < self.max_bridges)
    @rule(target=bridges)
    def create_bridge(self) -> BridgeId:
        bridge_id = self.system.create_bridge()
        assert bridge_id not in self.model and bridge_id not in self.destroyed, (
            f"bridge id {bridge_id!r} reused"
        )
        self._expect([BridgeCreated(bridge_id, 0.0)])
        return bridge_id

    @rule(target=bridges, first=sessions, second=sessions)
    def bridge_sessions(self, first: SessionId, second: SessionId) -> object:
        errors = self._joinable_errors(first) | self._joinable_errors(second)
        if first == second:
            errors.add(BridgeError)
        error: BridgeError | None = None
        try:
            bridge_id = self.system.bridge_sessions(first, second)
        except BridgeError as exc:
            error = exc
        if self._failed(errors, error):
            return multiple()
        self._expect_bridged(bridge_id, first, second)
        return bridge_id

    @rule(bridge_id=bridges, session_id=sessions)
    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        errors = self._joinable_errors(session_id)
        if bridge_id not in self.model:
            errors.add(UnknownBridge)
        error: BridgeError | None = None
        try:
            self.system.add_session_to_bridge(bridge_id, session_id)
        except BridgeError as exc:
            error = exc
        if not self._failed(errors, error):
            self._expect([ParticipantAdded(bridge_id, session_id)])

    @rule(bridge_id=bridges, session_id=sessions)
    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        errors: set[type[BridgeError]] = set()
        if bridge_id not in self.model:
            errors.add(UnknownBridge)
        elif session_id not in self.model[bridge_id]:
            errors.add(UnknownSession)
        error: BridgeError | None = None
        try:
            self.system.remove_session_from_bridge(bridge_id, session_id)
        except BridgeError as exc:
            error = exc
        if not self._failed(errors, error):
            self._expect(self._removal(bridge_id, session_id, RemovalReason.REMOVED))

    @rule(bridge_id=bridges)
    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        error: BridgeError | None = None
        try:
            self.system.destroy_bridge(bridge_id)
        except BridgeError as exc:
            error = exc
        if self._failed(set() if bridge_id in self.model else {UnknownBridge}, error):
            return
        expected: list[BridgeEvent] = [
            ParticipantRemoved(bridge_id, member, RemovalReason.BRIDGE_DESTROYED)
            for member in self.model[bridge_id]
        ]
        self._expect([*expected, BridgeDestroyed(bridge_id)])

    @rule(session_id=sessions)
    def session_hangs_up(self, session_id: SessionId) -> None:
        self.system.hang_up(session_id)
        bridge_id = self._where(session_id)
        if bridge_id is None:
            self._expect([])
        else:
            self._expect(self._removal(bridge_id, session_id, RemovalReason.HANGUP))
        self.active.discard(session_id)
        self.ended.add(session_id)

    # -- rules: valid operations, which random ids rarely make -------------------------------

    @precondition(lambda self: len(self._free()) >= 2)
    @rule(target=bridges, data=st.data())
    def bridge_free_sessions(self, data: st.DataObject) -> BridgeId:
        first, second = data.draw(st.permutations(self._free()))[:2]
        bridge_id = self.system.bridge_sessions(first, second)
        self._expect_bridged(bridge_id, first, second)
        return bridge_id

    @precondition(lambda self: self.model and self._free())
    @rule(data=st.data())
    def add_free_session(self, data: st.DataObject) -> None:
        bridge_id = data.draw(st.sampled_from(sorted(self.model)))
        session_id = data.draw(st.sampled_from(self._free()))
        self.system.add_session_to_bridge(bridge_id, session_id)
        self._expect([ParticipantAdded(bridge_id, session_id)])

    @precondition(lambda self: any(self.model.values()))
    @rule(data=st.data(), hang_up=st.booleans())
    def participant_leaves(self, data: st.DataObject, hang_up: bool) -> None:
        bridge_id = data.draw(st.sampled_from(sorted(b for b, m in self.model.items() if m)))
        session_id = data.draw(st.sampled_from(self.model[bridge_id]))
        if hang_up:
            self.session_hangs_up(session_id)
        else:
            self.system.remove_session_from_bridge(bridge_id, session_id)
            self._expect(self._removal(bridge_id, session_id, RemovalReason.REMOVED))

    # ends every call and bridge, then runs on: a step, so a failure earlier is not masked
    @precondition(lambda self: self.model or self.active)
    @rule()
    def end_everything(self) -> None:
        for bridge_id in list(self.model):
            self.destroy_bridge(bridge_id)
        for session_id in sorted(self.active):
            self.session_hangs_up(session_id)
        assert replay(self.log) == {}
        added = Counter(
            (e.bridge_id, e.session_id) for e in self.log if isinstance(e, ParticipantAdded)
        )
        removed = Counter(
            (e.bridge_id, e.session_id) for e in self.log if isinstance(e, ParticipantRemoved)
        )
        assert added == removed, f"unmatched: {added - removed}, {removed - added}"

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def bridges_are_the_model(self) -> None:
        infos = self.system.list_bridges()
        listed = {info.bridge_id: info.participants for info in infos}
        assert len(listed) == len(infos), f"list_bridges repeats a bridge: {infos}"
        assert listed == {b: tuple(m) for b, m in self.model.items()}, (
            f"list_bridges {listed} is not the live bridges {self.model}"
        )
        assert not self.destroyed & listed.keys(), "a destroyed bridge is listed"
        for info in infos:
            assert info.mode is BridgeMode.for_count(len(info.participants)), info
            assert info.created_at == self.created_at[info.bridge_id], (
                f"{info} was announced created at {self.created_at[info.bridge_id]}"
            )

    @invariant()
    def one_bridge_per_session(self) -> None:
        seen: dict[SessionId, BridgeId] = {}
        for info in self.system.list_bridges():
            for session_id in info.participants:
                assert session_id not in seen, (
                    f"{session_id!r} is in bridges {seen[session_id]!r} and {info.bridge_id!r}"
                )
                seen[session_id] = info.bridge_id
        for session_id in self.active | self.ended:
            found = self.system.get_session_bridge(session_id)
            assert found == seen.get(session_id), (
                f"get_session_bridge({session_id!r}) is {found!r}, the bridges say "
                f"{seen.get(session_id)!r}"
            )
            assert found not in self.destroyed, f"{session_id!r} is in destroyed bridge {found!r}"
        still = self.ended & seen.keys()
        assert not still, f"ended sessions still bridged: {still}"

    @invariant()
    def replay_gives_the_bridges(self) -> None:
        state = replay(self.log)
        listed = {info.bridge_id: info.participants for info in self.system.list_bridges()}
        assert state == listed, f"replay gives {state}, the system has {listed}"

    def teardown(self) -> None:
        self.system.close()
