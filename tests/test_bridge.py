"""Bridge state (trio_voip.bridge): the sans-IO table, event order, errors, replay, and the
reusable state machine (trio_voip.testing.bridges) run against the table."""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings
from hypothesis.stateful import invariant, run_state_machine_as_test

from trio_voip.bridge import (
    BridgeCreated,
    BridgeDestroyed,
    BridgeEvent,
    BridgeId,
    BridgeMode,
    BridgeTable,
    ParticipantAdded,
    ParticipantRemoved,
    RemovalReason,
    check_invariants,
    replay,
)
from trio_voip.errors import (
    BridgeError,
    SessionAlreadyBridged,
    SessionNotActive,
    TrioVoipError,
    UnknownBridge,
    UnknownSession,
)
from trio_voip.testing.bridges import BridgeMachine, BridgeSystem, TableBridgeSystem

R = RemovalReason


def paired(table: BridgeTable, a: str = "a", b: str = "b") -> BridgeId:
    bridge_id, _ = table.bridge_sessions(a, b, now=1.0, first_active=True, second_active=True)
    return bridge_id


def snapshot(table: BridgeTable) -> object:
    return (table.list_bridges(), {s: table.get_session_bridge(s) for s in "abcdef"})


# -- events and errors of each operation -------------------------------------------------------


def test_create_bridge_is_empty_and_idle() -> None:
    table = BridgeTable()
    first, events = table.create_bridge(5.0)
    second, _ = table.create_bridge(6.0)
    assert events == [BridgeCreated(first, 5.0)]
    assert first != second
    [info, _] = table.list_bridges()
    assert (info.bridge_id, info.participants, info.created_at) == (first, (), 5.0)
    assert info.mode is BridgeMode.IDLE and not info.destroy_when_alone
    assert table.media_plan(first).relay is None and table.media_plan(first).mixed == ()
    check_invariants(table)


def test_bridge_sessions_events_in_order() -> None:
    table = BridgeTable()
    bridge_id, events = table.bridge_sessions(
        "a", "b", now=2.5, first_active=True, second_active=True
    )
    assert events == [
        BridgeCreated(bridge_id, 2.5),
        ParticipantAdded(bridge_id, "a"),
        ParticipantAdded(bridge_id, "b"),
    ]
    assert table.participants(bridge_id) == ("a", "b")
    assert table.get_session_bridge("a") == table.get_session_bridge("b") == bridge_id
    assert table.info(bridge_id).destroy_when_alone
    plan = table.media_plan(bridge_id)
    assert (plan.mode, plan.relay, plan.mixed) == (BridgeMode.RELAY, ("a", "b"), ())
    check_invariants(table)


@pytest.mark.parametrize(
    ("first", "second", "first_active", "second_active", "error"),
    [
        ("a", "a", True, True, BridgeError),
        ("c", "d", False, True, SessionNotActive),
        ("c", "d", True, False, SessionNotActive),
        ("a", "c", True, True, SessionAlreadyBridged),
        ("c", "b", True, True, SessionAlreadyBridged),
        ("", "c", True, True, BridgeError),
    ],
)
def test_bridge_sessions_is_atomic(
    first: str, second: str, first_active: bool, second_active: bool, error: type[BridgeError]
) -> None:
    table = BridgeTable()
    existing = paired(table)
    before = snapshot(table)
    with pytest.raises(error) as caught:
        table.bridge_sessions(
            first, second, now=3.0, first_active=first_active, second_active=second_active
        )
    assert isinstance(caught.value, TrioVoipError)
    assert snapshot(table) == before
    if error is SessionAlreadyBridged:
        assert caught.value.bridge_id == existing
    # a failed attempt used no id: the next bridge is the second one
    assert table.create_bridge(4.0)[0] == "bridge-2"


def test_add_session_events_and_errors() -> None:
    table = BridgeTable()
    room, _ = table.create_bridge(0.0)
    other = paired(table, "x", "y")
    assert table.add_session(room, "a", True) == [ParticipantAdded(room, "a")]
    before = snapshot(table)
    with pytest.raises(UnknownBridge) as unknown:
        table.add_session(BridgeId("nope"), "b", True)
    assert unknown.value.bridge_id == "nope"
    with pytest.raises(SessionNotActive) as inactive:
        table.add_session(room, "b", False)
    assert inactive.value.session_id == "b"
    with pytest.raises(SessionAlreadyBridged):
        table.add_session(room, "a", True)  # already in this very bridge
    with pytest.raises(SessionAlreadyBridged) as elsewhere:
        table.add_session(room, "x", True)
    assert elsewhere.value.bridge_id == other
    assert snapshot(table) == before
    table.add_session(room, "b", True)
    table.add_session(room, "c", True)
    plan = table.media_plan(room)
    assert (plan.mode, plan.relay, plan.mixed) == (BridgeMode.MIX, None, ("a", "b", "c"))
    check_invariants(table)


def test_remove_errors() -> None:
    table = BridgeTable()
    bridge_id = paired(table)
    before = snapshot(table)
    with pytest.raises(UnknownBridge):
        table.remove_session(BridgeId("nope"), "a")
    with pytest.raises(UnknownSession) as caught:
        table.remove_session(bridge_id, "c")
    assert (caught.value.bridge_id, caught.value.session_id) == (bridge_id, "c")
    for reason in (R.BRIDGE_DESTROYED, R.LEFT_ALONE):
        with pytest.raises(BridgeError):
            table.remove_session(bridge_id, "a", reason)
    assert snapshot(table) == before


@pytest.mark.parametrize("reason", [R.REMOVED, R.HANGUP, R.FAILED])
def test_paired_bridge_left_alone_is_destroyed(reason: RemovalReason) -> None:
    table = BridgeTable()
    bridge_id = paired(table)
    assert table.remove_session(bridge_id, "b", reason) == [
        ParticipantRemoved(bridge_id, "b", reason),
        ParticipantRemoved(bridge_id, "a", R.LEFT_ALONE),
        BridgeDestroyed(bridge_id),
    ]
    assert table.list_bridges() == [] and table.get_session_bridge("a") is None
    with pytest.raises(UnknownBridge):
        table.participants(bridge_id)
    check_invariants(table)


def test_paired_bridge_with_a_third_survives_one_leaving() -> None:
    table = BridgeTable()
    bridge_id = paired(table)
    table.add_session(bridge_id, "c", True)
    assert table.session_ended("a") == [ParticipantRemoved(bridge_id, "a", R.HANGUP)]
    assert table.participants(bridge_id) == ("b", "c")
    assert table.media_plan(bridge_id).relay == ("b", "c")
    assert table.session_ended("c", R.FAILED) == [
        ParticipantRemoved(bridge_id, "c", R.FAILED),
        ParticipantRemoved(bridge_id, "b", R.LEFT_ALONE),
        BridgeDestroyed(bridge_id),
    ]


def test_destroy_when_alone_off_keeps_the_bridge() -> None:
    table = BridgeTable(destroy_when_alone=False)
    bridge_id = paired(table)
    assert table.session_ended("a") == [ParticipantRemoved(bridge_id, "a", R.HANGUP)]
    assert table.participants(bridge_id) == ("b",)
    assert table.media_plan(bridge_id).mode is BridgeMode.IDLE
    check_invariants(table)


def test_created_bridge_stays_alive_when_emptied() -> None:
    table = BridgeTable()
    room, _ = table.create_bridge(0.0)
    table.add_session(room, "a", True)
    table.add_session(room, "b", True)
    assert table.remove_session(room, "a") == [ParticipantRemoved(room, "a", R.REMOVED)]
    assert table.session_ended("b") == [ParticipantRemoved(room, "b", R.HANGUP)]
    assert table.participants(room) == ()
    check_invariants(table)


def test_session_ended_unbridged_is_a_no_op() -> None:
    table = BridgeTable()
    paired(table)
    before = snapshot(table)
    assert table.session_ended("c") == []
    assert snapshot(table) == before


def test_destroy_bridge_removes_everyone_then_the_bridge() -> None:
    table = BridgeTable()
    room, _ = table.create_bridge(0.0)
    for session_id in "cab":
        table.add_session(room, session_id, True)
    assert table.destroy_bridge(room) == [
        ParticipantRemoved(room, "c", R.BRIDGE_DESTROYED),
        ParticipantRemoved(room, "a", R.BRIDGE_DESTROYED),
        ParticipantRemoved(room, "b", R.BRIDGE_DESTROYED),
        BridgeDestroyed(room),
    ]
    with pytest.raises(UnknownBridge):
        table.destroy_bridge(room)
    with pytest.raises(UnknownBridge):
        table.add_session(room, "a", True)
    # freed sessions may join a new bridge; the destroyed id is never reused
    assert paired(table) != room
    check_invariants(table)


def test_list_bridges_oldest_first() -> None:
    table = BridgeTable(id_prefix="br")
    ids = [table.create_bridge(float(n))[0] for n in range(3)]
    table.destroy_bridge(ids[1])
    assert [info.bridge_id for info in table.list_bridges()] == [ids[0], ids[2]] == ["br1", "br3"]
    assert len(table) == 2


# -- events validate themselves; replay and the invariant checker catch broken states ----------


def test_events_reject_bad_values() -> None:
    with pytest.raises(BridgeError):
        ParticipantAdded(BridgeId(""), "a")
    with pytest.raises(BridgeError):
        ParticipantAdded(BridgeId("b"), 7)  # type: ignore[arg-type]
    with pytest.raises(BridgeError):
        ParticipantRemoved(BridgeId("b"), "a", "hangup")  # type: ignore[arg-type]


B = BridgeId("b1")
C = BridgeId("b2")


@pytest.mark.parametrize(
    "stream",
    [
        [BridgeCreated(B, 0), BridgeCreated(B, 1)],
        [ParticipantAdded(B, "a")],
        [BridgeCreated(B, 0), ParticipantAdded(B, "a")]
        + [BridgeCreated(C, 0), ParticipantAdded(C, "a")],
        [BridgeCreated(B, 0), ParticipantAdded(B, "a"), ParticipantAdded(B, "a")],
        [BridgeCreated(B, 0), ParticipantRemoved(B, "a", R.HANGUP)],
        [BridgeCreated(B, 0), ParticipantAdded(B, "a"), BridgeDestroyed(B)],
        [BridgeCreated(B, 0), BridgeDestroyed(B), BridgeDestroyed(B)],
    ],
)
def test_replay_rejects_broken_streams(stream: list[BridgeEvent]) -> None:
    with pytest.raises(BridgeError):
        replay(stream)


def test_replay_rebuilds_the_table() -> None:
    table = BridgeTable()
    log: list[BridgeEvent] = []
    room, events = table.create_bridge(0.0)
    log += events
    for session_id in "abc":
        log += table.add_session(room, session_id, True)
    bridge_id, events = table.bridge_sessions(
        "d", "e", now=1.0, first_active=True, second_active=True
    )
    log += events
    log += table.session_ended("b")
    assert replay(log) == {room: ("a", "c"), bridge_id: ("d", "e")}
    log += table.session_ended("d")
    log += table.destroy_bridge(room)
    assert replay(log) == {} and table.list_bridges() == []


def test_check_invariants_detects_a_stale_index() -> None:
    table = BridgeTable()
    bridge_id = paired(table)
    check_invariants(table)
    table._session_bridge["c"] = bridge_id  # a session the bridge does not list
    with pytest.raises(AssertionError, match="'c'"):
        check_invariants(table)
    del table._session_bridge["c"]
    table._bridges[bridge_id].participants.pop("b")  # a paired bridge left with one
    with pytest.raises(AssertionError):
        check_invariants(table)


# -- the state machine -------------------------------------------------------------------------


class TableMachine(BridgeMachine):
    """The reusable machine, plus the table's own invariant checker after every step."""

    @invariant()
    def table_invariants(self) -> None:
        assert isinstance(self.system, TableBridgeSystem)
        check_invariants(self.system.table)


class KeepAloneMachine(TableMachine):
    destroy_when_alone = False


STATEFUL = settings(max_examples=100, stateful_step_count=30, deadline=None)

TestBridgeTable = TableMachine.TestCase
TestBridgeTable.settings = STATEFUL
TestBridgeTableKeepAlone = KeepAloneMachine.TestCase
TestBridgeTableKeepAlone.settings = settings(STATEFUL, max_examples=50)


class ForgetsHangups(TableBridgeSystem):
    """A broken system: a hung-up call stays in its bridge."""

    def hang_up(self, session_id: str) -> None:
        self.active.discard(session_id)


class ReplaysBadly(TableBridgeSystem):
    """A broken system: destroying a bridge announces nobody's removal."""

    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        self.table.destroy_bridge(bridge_id)
        self.bus.publish(BridgeDestroyed(bridge_id))


class NotAtomic(TableBridgeSystem):
    """A broken system: bridging a free call with an ended one still puts the first in a
    bridge before failing."""

    def bridge_sessions(self, first: str, second: str) -> BridgeId:
        if second not in self.active and first in self.active:
            if self.table.get_session_bridge(first) is None:
                self.add_session_to_bridge(self.create_bridge(), first)
        return super().bridge_sessions(first, second)


@pytest.mark.parametrize("broken", [ForgetsHangups, ReplaysBadly, NotAtomic])
def test_machine_catches_a_broken_system(broken: type[TableBridgeSystem]) -> None:
    class Machine(BridgeMachine):
        def make_system(self) -> BridgeSystem:
            return broken()

    with pytest.raises(AssertionError):
        run_state_machine_as_test(
            Machine,
            settings=settings(
                max_examples=200,
                stateful_step_count=30,
                deadline=None,
                phases=[Phase.generate],
                database=None,
            ),
        )
