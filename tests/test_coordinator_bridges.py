"""Bridges on the SessionCoordinator: real calls on the in-memory network, virtual time."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis.stateful import invariant

from trio_voip import (
    BridgeCreated,
    BridgeDestroyed,
    BridgeError,
    BridgeEvent,
    BridgeMode,
    CallSession,
    CallState,
    ParticipantAdded,
    ParticipantRemoved,
    RemovalReason,
    SessionAlreadyBridged,
    SessionCoordinator,
    SessionNotActive,
    UnknownBridge,
    UnknownSession,
)
from trio_voip.bridge import BridgeId, BridgeInfo, BridgeTable, SessionId
from trio_voip.session.bridges import BridgeManager
from trio_voip.testing.bridges import BridgeMachine

from test_coordinator import BOB, Scripted, pair, settle_and_check_empty

H, REMOVED, GONE, ALONE = (
    RemovalReason.HANGUP,
    RemovalReason.REMOVED,
    RemovalReason.BRIDGE_DESTROYED,
    RemovalReason.LEFT_ALONE,
)


@pytest.fixture
def clock(autojump_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    return autojump_clock


async def calls(a: SessionCoordinator, handler: Scripted, n: int) -> list[tuple[CallSession, CallSession]]:
    """``n`` answered calls from ``a``: (our leg, the callee's leg)."""
    out = []
    for _ in range(n):
        call = await a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        incoming = handler.incoming[-1]
        await incoming.wait_state(CallState.ACTIVE, timeout=5)
        out.append((call, incoming))
    return out


def drain(channel: trio.MemoryReceiveChannel[BridgeEvent]) -> list[BridgeEvent]:
    out: list[BridgeEvent] = []
    while True:
        try:
            out.append(channel.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


def strip_time(events: list[BridgeEvent]) -> list[object]:
    return [e.bridge_id if isinstance(e, BridgeCreated) else e for e in events]


async def test_bridge_two_calls_then_one_hangs_up(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_bridge_events()
        (x, x_far), (y, _y_far) = await calls(a, handler, 2)
        before = trio.current_time()
        bridge = a.bridge_sessions(x.id, y.id)
        assert strip_time(drain(events)) == [
            bridge,
            ParticipantAdded(bridge, x.id),
            ParticipantAdded(bridge, y.id),
        ]
        assert a.get_session_bridge(x.id) == a.get_session_bridge(y.id) == bridge
        (info,) = a.list_bridges()
        assert (info.bridge_id, info.participants, info.mode) == (
            bridge,
            (x.id, y.id),
            BridgeMode.RELAY,
        )
        assert info.created_at == before
        assert a.stats().bridges == 1
        # the far end hangs up x: x leaves (hangup), y is left alone, the bridge goes
        await x_far.hangup()
        await x.wait_ended()
        assert drain(events) == [
            ParticipantRemoved(bridge, x.id, H),
            ParticipantRemoved(bridge, y.id, ALONE),
            BridgeDestroyed(bridge),
        ]
        assert a.list_bridges() == [] and a.stats().bridges == 0
        assert a.get_session_bridge(x.id) is None and a.get_session_bridge(y.id) is None
        assert y.state is CallState.ACTIVE  # the application decides what to do with y
        await y.hangup()
        assert drain(events) == []
        await settle_and_check_empty(a, b)


async def test_on_hold_calls_are_active_and_hanging_up_locally_counts(
    clock: trio.testing.MockClock,
) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_bridge_events()
        (x, _), (y, _) = await calls(a, handler, 2)
        await x.hold()
        assert x.state is CallState.ON_HOLD
        bridge = a.bridge_sessions(x.id, y.id)
        drain(events)
        await y.hangup()
        assert drain(events) == [
            ParticipantRemoved(bridge, y.id, H),
            ParticipantRemoved(bridge, x.id, ALONE),
            BridgeDestroyed(bridge),
        ]
        await x.hangup()
        await settle_and_check_empty(a, b)


async def test_errors_change_nothing(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_bridge_events()
        (x, _), (y, _) = await calls(a, handler, 2)
        handler.delay = 100
        ringing = await a.make_call(BOB)  # the callee takes 100 s to decide
        await trio.sleep(1)
        assert ringing.state in (CallState.INITIATING, CallState.RINGING)
        with pytest.raises(SessionNotActive):
            a.bridge_sessions(x.id, ringing.id)
        with pytest.raises(SessionNotActive):
            a.bridge_sessions(x.id, "no-such-call")
        with pytest.raises(BridgeError):
            a.bridge_sessions(x.id, x.id)
        with pytest.raises(UnknownBridge):
            a.destroy_bridge(BridgeId("bridge-99"))
        with pytest.raises(UnknownBridge):
            a.add_session_to_bridge(BridgeId("bridge-99"), x.id)
        with pytest.raises(UnknownBridge):
            a.remove_session_from_bridge(BridgeId("bridge-99"), x.id)
        assert drain(events) == [] and a.list_bridges() == []
        bridge = a.bridge_sessions(x.id, y.id)
        room = a.create_bridge()
        drain(events)
        with pytest.raises(SessionAlreadyBridged) as caught:
            a.add_session_to_bridge(room, x.id)
        assert caught.value.bridge_id == bridge
        with pytest.raises(SessionAlreadyBridged):
            a.bridge_sessions(y.id, x.id)
        with pytest.raises(SessionNotActive):
            a.add_session_to_bridge(room, ringing.id)
        with pytest.raises(UnknownSession):
            a.remove_session_from_bridge(room, x.id)
        assert drain(events) == []
        assert [(i.bridge_id, i.participants) for i in a.list_bridges()] == [
            (bridge, (x.id, y.id)),
            (room, ()),
        ]
        # an ended call is not active either
        await x.hangup()
        drain(events)
        with pytest.raises(SessionNotActive):
            a.add_session_to_bridge(room, x.id)
        await y.hangup()
        await ringing.hangup()
        a.destroy_bridge(room)
        await settle_and_check_empty(a, b)


async def test_conference_room_and_destroy(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_bridge_events()
        legs = await calls(a, handler, 3)
        x, y, z = (call for call, _ in legs)
        room = a.create_bridge()
        for call in (x, y, z):
            a.add_session_to_bridge(room, call.id)
        (info,) = a.list_bridges()
        assert info.participants == (x.id, y.id, z.id) and info.mode is BridgeMode.MIX
        assert not info.destroy_when_alone
        a.remove_session_from_bridge(room, y.id)
        await z.hangup()
        # a room outlives its participants leaving
        assert [i.participants for i in a.list_bridges()] == [(x.id,)]
        a.destroy_bridge(room)
        assert strip_time(drain(events)) == [
            room,
            ParticipantAdded(room, x.id),
            ParticipantAdded(room, y.id),
            ParticipantAdded(room, z.id),
            ParticipantRemoved(room, y.id, REMOVED),
            ParticipantRemoved(room, z.id, H),
            ParticipantRemoved(room, x.id, GONE),
            BridgeDestroyed(room),
        ]
        # a destroyed pair frees both calls for another bridge
        pair_id = a.bridge_sessions(x.id, y.id)
        a.destroy_bridge(pair_id)
        assert drain(events)[-3:] == [
            ParticipantRemoved(pair_id, x.id, GONE),
            ParticipantRemoved(pair_id, y.id, GONE),
            BridgeDestroyed(pair_id),
        ]
        assert a.get_session_bridge(x.id) is None and a.stats().bridges == 0
        await x.hangup()
        await y.hangup()
        await settle_and_check_empty(a, b)


async def test_shutdown_ends_bridges_and_subscriptions(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        events = a.subscribe_to_bridge_events()
        (x, _), (y, _) = await calls(a, handler, 2)
        bridge = a.bridge_sessions(x.id, y.id)
        drain(events)
    # leaving the coordinator hangs the calls up: the bridge goes, then the channel ends
    assert [type(e) for e in drain(events)] == [ParticipantRemoved] * 2 + [BridgeDestroyed]
    assert a.list_bridges() == [] and a.get_session_bridge(x.id) is None
    with pytest.raises(trio.EndOfChannel):
        events.receive_nowait()
    assert bridge not in {i.bridge_id for i in a.list_bridges()}


async def test_subscriber_that_never_reads_does_not_block(clock: trio.testing.MockClock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, b):
        stuck = a.subscribe_to_bridge_events(buffer=2)  # never read
        reader = a.subscribe_to_bridge_events()
        (x, _), (y, _) = await calls(a, handler, 2)
        for _ in range(3):
            a.destroy_bridge(a.bridge_sessions(x.id, y.id))
        assert a.stats().events_dropped == 3 * 6 - 2
        assert len(drain(reader)) == 3 * 6  # the other subscriber lost nothing
        assert len(drain(stuck)) == 2
        await x.hangup()
        await y.hangup()
        await settle_and_check_empty(a, b)


# -- the BridgeMachine against the coordinator's bridge layer (the manager with its calls
# reduced to a set of active ids; the coordinator adds only the ACTIVE/ON_HOLD test above) --


class ManagerSystem:
    def __init__(self, destroy_when_alone: bool) -> None:
        self.active: set[SessionId] = set()
        self.now = 0.0
        self.manager = BridgeManager(
            self.active.__contains__,
            clock=self._tick,
            table=BridgeTable(destroy_when_alone=destroy_when_alone),
        )
        self.count = 0

    def _tick(self) -> float:
        self.now += 0.5
        return self.now

    def __getattr__(self, name: str) -> object:
        return getattr(self.manager, name)

    def subscribe_to_bridge_events(self) -> trio.MemoryReceiveChannel[BridgeEvent]:
        return self.manager.subscribe(1000)

    def start_session(self) -> SessionId:
        self.count += 1
        self.active.add(f"call-{self.count}")
        return f"call-{self.count}"

    def hang_up(self, session_id: SessionId) -> None:
        if session_id in self.active:
            self.active.remove(session_id)
            self.manager.session_ended(session_id)


class ManagerMachine(BridgeMachine):
    def make_system(self) -> ManagerSystem:  # type: ignore[override]
        return ManagerSystem(self.destroy_when_alone)


TestManagerMachine = ManagerMachine.TestCase


class CoordinatorSystem:
    """The machine's BridgeSystem on a real coordinator: a Trio loop on a thread runs a caller
    and a callee on the in-memory network; sessions are the caller's answered calls."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to the machine's thread
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self.handler = Scripted()
        self._done = trio.Event()
        async with pair(callee=self.handler) as (a, _b):
            self.a = a
            self.token = trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._done.wait()

    def _sync(self, name: str, *args: object) -> object:
        return trio.from_thread.run_sync(getattr(self.a, name), *args, trio_token=self.token)

    def create_bridge(self) -> BridgeId:
        return self._sync("create_bridge")  # type: ignore[return-value]

    def bridge_sessions(self, first: SessionId, second: SessionId) -> BridgeId:
        return self._sync("bridge_sessions", first, second)  # type: ignore[return-value]

    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._sync("add_session_to_bridge", bridge_id, session_id)

    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._sync("remove_session_from_bridge", bridge_id, session_id)

    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        self._sync("destroy_bridge", bridge_id)

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None:
        return self._sync("get_session_bridge", session_id)  # type: ignore[return-value]

    def list_bridges(self) -> list[BridgeInfo]:
        return self._sync("list_bridges")  # type: ignore[return-value]

    def subscribe_to_bridge_events(self) -> trio.MemoryReceiveChannel[BridgeEvent]:
        return self._sync("subscribe_to_bridge_events", 1000)  # type: ignore[return-value]

    async def _start(self) -> SessionId:
        call = await self.a.make_call(BOB)
        await call.wait_state(CallState.ACTIVE, timeout=5)
        await trio.testing.wait_all_tasks_blocked()
        return call.id

    def start_session(self) -> SessionId:
        return trio.from_thread.run(self._start, trio_token=self.token)

    async def _hang_up(self, session_id: SessionId) -> None:
        for call in self.a.calls:
            if call.id == session_id:
                await call.hangup()
        await trio.testing.wait_all_tasks_blocked()

    def hang_up(self, session_id: SessionId) -> None:
        trio.from_thread.run(self._hang_up, session_id, trio_token=self.token)

    def close(self) -> None:
        trio.from_thread.run_sync(self._done.set, trio_token=self.token)
        self._thread.join(10)
        if self._failure is not None:
            raise self._failure

    def held(self) -> tuple[int, int]:
        """(RTP ports held, live calls) on the caller: each live call holds one port."""

        def read() -> tuple[int, int]:
            return self.a.stats().rtp_ports, len(self.a.calls)

        return trio.from_thread.run_sync(read, trio_token=self.token)


class CoordinatorMachine(BridgeMachine):
    max_sessions = 5

    def make_system(self) -> CoordinatorSystem:  # type: ignore[override]
        return CoordinatorSystem()

    @invariant()
    def no_port_outlives_its_session(self) -> None:
        ports, calls = self.system.held()
        assert ports == calls, f"{ports} RTP ports held by {calls} live calls"


TestCoordinatorMachine = CoordinatorMachine.TestCase
TestCoordinatorMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- media: a relaying caller bridges two calls to "phones" on real UDP sockets (real time) --

RTP = b"\x80\x00\x00\x01" + b"\x00\x00\x00\xa0" + b"\x12\x34\x56\x78" + b"\xff" * 160


async def phone(port: int) -> trio.socket.SocketType:
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", port))
    return sock


async def heard(sock: trio.socket.SocketType, wait: float = 0.3) -> bytes | None:
    with trio.move_on_after(wait):
        data, _ = await sock.recvfrom(2048)
        return data
    return None


async def test_two_party_bridge_relays_media() -> None:
    handler = Scripted()
    setup = lambda b: b.media_relay().rtp_ports(31000, 31099)  # noqa: E731
    # The callee's ports are where the phones bind: a range of our own, out of others' way.
    phones = lambda b: b.rtp_ports(31700, 31799)  # noqa: E731
    async with pair(callee=handler, caller_setup=setup, callee_setup=phones) as (a, b):
        assert a.relay is not None
        (x, x_far), (y, y_far) = await calls(a, handler, 2)
        assert a.relay.endpoint_count == 2 and a.stats().rtp_ports == 2
        assert x.rtp_port is not None and y.rtp_port is not None
        assert x_far.rtp_port is not None and y_far.rtp_port is not None
        phone_x, phone_y = await phone(x_far.rtp_port), await phone(y_far.rtp_port)
        with phone_x, phone_y:
            # not bridged: what x's phone sends goes nowhere
            await phone_x.sendto(RTP, ("127.0.0.1", x.rtp_port))
            assert await heard(phone_y) is None
            bridge = a.bridge_sessions(x.id, y.id)
            await phone_x.sendto(RTP, ("127.0.0.1", x.rtp_port))
            assert await heard(phone_y, 5) == RTP
            await phone_y.sendto(RTP[:-1], ("127.0.0.1", y.rtp_port))
            assert await heard(phone_x, 5) == RTP[:-1]
            # a third participant turns the bridge into a mix (its content is checked in
            # test_coordinator_media.py): y hears generated frames, not x's packet relayed
            (z, _z_far), = await calls(a, handler, 1)
            a.add_session_to_bridge(bridge, z.id)
            await phone_x.sendto(RTP, ("127.0.0.1", x.rtp_port))
            mixed = await heard(phone_y, 5)
            assert mixed is not None and mixed[8:12] != RTP[8:12]  # the mixer's own SSRC
            a.remove_session_from_bridge(bridge, z.id)
            while await heard(phone_y, 0.1) is not None:
                pass  # mix frames sent before the mix ended
            await phone_x.sendto(RTP, ("127.0.0.1", x.rtp_port))
            assert await heard(phone_y, 5) == RTP
            a.remove_session_from_bridge(bridge, y.id)  # x left alone: bridge gone, unlinked
            await phone_x.sendto(RTP, ("127.0.0.1", x.rtp_port))
            assert await heard(phone_y) is None
            for call in (x, y, z):
                await call.hangup()
        assert a.relay.endpoint_count == 0 and a.stats().rtp_ports == 0
