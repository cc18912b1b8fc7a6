"""The softswitch on real 127.0.0.1 sockets: phones (coordinators of their own) register with
Digest auth and call each other by extension or through the demo queue."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio

from trio_voip import (
    CallDecision,
    CallHandler,
    CallSession,
    CallState,
    EndKind,
    SessionCoordinator,
    SessionManagerBuilder,
)
from trio_voip.callcenter import AgentState
from trio_voip.errors import SoftswitchError
from trio_voip.sip.registrar import RegistrationSucceeded
from trio_voip.softswitch import (
    HttpConfig,
    Presence,
    QueueConfig,
    RtpConfig,
    Running,
    SipConfig,
    SoftswitchConfig,
    failure_status,
    serve,
)
from trio_voip.session import EndReason
from trio_voip.softswitch.config import CallCenterConfig
from trio_voip.testing.network import MemoryNetwork
from trio_voip.testing.registration import register

PASSWORDS = {"1001": "demo1001", "1002": "demo1002", "1003": "demo1003"}
# Each phone its own RTP ports (the media test binds them), apart from the softswitch's.
PHONE_RTP = {"1001": (33100, 33131), "1002": (33132, 33163), "1003": (33164, 33199)}


def test_config(**changes: object) -> SoftswitchConfig:
    config = SoftswitchConfig(
        sip=SipConfig(port=0, transports=("udp",)),
        rtp=RtpConfig(33000, 33099),
        http=HttpConfig(port=0),
        callcenter=CallCenterConfig(store=None),  # no test shares a store, none in the repo
    )
    return attrs.evolve(config, **changes)


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@contextlib.asynccontextmanager
async def softswitch(config: SoftswitchConfig | None = None) -> AsyncIterator[Running]:
    lines: list[str] = []
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(
            lambda task_status: serve(config or test_config(), echo=lines.append,
                                      task_status=task_status)
        )
        assert any(line.startswith("SIP ") for line in lines)
        yield running
        nursery.cancel_scope.cancel()


class Phone(CallHandler):
    """A phone's call handler: ``decide`` answers each incoming call (default: accept)."""

    def __init__(self, decide: Callable[[CallSession], CallDecision] | None = None) -> None:
        self.decide = decide or (lambda call: CallDecision.accept())
        self.incoming: list[CallSession] = []
        self.arrived = trio.Event()

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.incoming.append(call)
        self.arrived.set()
        return self.decide(call)


@contextlib.asynccontextmanager
async def phone(
    user: str, softswitch_port: int, handler: Phone | None = None, *, register: bool = True,
    transport: str = "UDP",
) -> AsyncIterator[SessionCoordinator]:
    builder = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=(transport,))
        .rtp_ports(*PHONE_RTP[user])
        .credentials(user, PASSWORDS[user])
        .handler(handler or Phone())
    )
    async with builder.build() as coordinator:
        if register:
            await register_phone(coordinator, user, softswitch_port, transport)
        yield coordinator


async def register_phone(
    phone: SessionCoordinator, user: str, port: int, transport: str = "UDP"
) -> None:
    """REGISTER ``user`` at the softswitch on ``port``, answering its Digest challenge."""
    with trio.fail_after(5):
        outcome = await register(phone, user, PASSWORDS[user], port, transport=transport)
    assert isinstance(outcome, RegistrationSucceeded), outcome


def sip_port(running: Running) -> int:
    return running.softswitch.coordinator.port("UDP")


async def dial(caller: SessionCoordinator, user: str, number: str, port: int) -> CallSession:
    return await caller.make_call(f"sip:{number}@127.0.0.1:{port}", from_user=user)


async def until(predicate: Callable[[], bool], timeout: float = 5) -> None:
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def settled(running: Running) -> None:
    """Every call and bridge of the softswitch is gone."""
    coordinator = running.softswitch.coordinator
    await until(lambda: not coordinator.calls and not coordinator.list_bridges())


async def test_extension_call_is_bridged_and_both_sides_end_cleanly():
    async with softswitch() as running:
        port = sip_port(running)
        bob = Phone()
        async with phone("1002", port, bob) as callee, phone("1001", port) as caller:
            assert running.softswitch.state()["users"][1]["online"]
            bridges = running.softswitch.coordinator.subscribe_to_bridge_events()
            call = await dial(caller, "1001", "1002", port)
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await bob.arrived.wait()
            far = bob.incoming[0]
            assert await far.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            # The callee sees the caller's user; the softswitch authenticated the INVITE.
            assert far.remote_party.uri.user == "1001"
            coordinator = running.softswitch.coordinator
            await until(lambda: len(coordinator.list_bridges()) == 1)
            (bridge,) = coordinator.list_bridges()
            legs = {c.id: c for c in coordinator.calls}
            assert set(bridge.participants) == set(legs)
            assert {c.direction.value for c in legs.values()} == {"incoming", "outgoing"}
            assert (await bridges.receive()).bridge_id == bridge.bridge_id
            state = running.softswitch.state()
            assert {c["user"] for c in state["calls"]} == {"1001", "1002"}
            assert all(c["bridge"] == bridge.bridge_id for c in state["calls"])
            assert {u["name"]: u["state"] for u in state["users"]} == {
                "1001": "on-call", "1002": "on-call", "1003": "offline"}
            await call.hangup()
            assert (await far.wait_ended()).kind is EndKind.REMOTE_HANGUP
            await settled(running)
            assert caller.stats().calls == callee.stats().calls == 0


RTP = b"\x80\x00\x00\x01" + b"\x00\x00\x00\xa0" + b"\x12\x34\x56\x78" + b"\xff" * 160


async def test_media_flows_between_the_phones_through_the_relay():
    async with softswitch() as running:
        port = sip_port(running)
        bob = Phone()
        async with phone("1002", port, bob), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            far = bob.incoming[0]
            await far.wait_state(CallState.ACTIVE, timeout=5)
            coordinator = running.softswitch.coordinator
            await until(lambda: len(coordinator.list_bridges()) == 1)
            assert call.media is not None and far.media is not None
            assert call.rtp_port is not None and far.rtp_port is not None
            # Each phone talks to its own relay endpoint on the softswitch.
            assert {call.media.remote_port, far.media.remote_port} <= set(range(33000, 33100))
            alice_rtp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            bob_rtp = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with alice_rtp, bob_rtp:
                await alice_rtp.bind(("127.0.0.1", call.rtp_port))
                await bob_rtp.bind(("127.0.0.1", far.rtp_port))
                with trio.fail_after(5):
                    await alice_rtp.sendto(RTP, ("127.0.0.1", call.media.remote_port))
                    assert (await bob_rtp.recvfrom(2048))[0] == RTP
                    await bob_rtp.sendto(RTP[:-1], ("127.0.0.1", far.media.remote_port))
                    assert (await alice_rtp.recvfrom(2048))[0] == RTP[:-1]
            await call.hangup()
            await settled(running)
            assert coordinator.stats().rtp_ports == 0


async def test_extension_call_over_tcp():
    config = test_config(sip=SipConfig(port=0, transports=("tcp",)))
    async with softswitch(config) as running:
        port = running.softswitch.coordinator.port("TCP")
        bob = Phone()
        async with phone("1002", port, bob, transport="TCP"), \
                phone("1001", port, transport="TCP") as caller:
            (contact,) = running.softswitch.state()["users"][1]["contacts"]
            assert contact["source"].startswith("tcp:127.0.0.1:")
            call = await caller.make_call(
                f"sip:1002@127.0.0.1:{port};transport=tcp", from_user="1001", transport="TCP"
            )
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert await bob.incoming[0].wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await call.hangup()
            assert (await bob.incoming[0].wait_ended()).kind is EndKind.REMOTE_HANGUP
            await settled(running)


async def test_callee_hanging_up_ends_the_caller_too():
    async with softswitch() as running:
        port = sip_port(running)
        bob = Phone()
        async with phone("1002", port, bob), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            await bob.incoming[0].wait_state(CallState.ACTIVE, timeout=5)
            await bob.incoming[0].hangup()
            with trio.fail_after(5):
                assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
            await settled(running)


@pytest.mark.parametrize(("status", "expected"), [(486, 486), (603, 603), (503, 502)])
async def test_a_callee_refusal_maps_back_to_the_caller(status, expected):
    async with softswitch() as running:
        port = sip_port(running)
        refusing = Phone(lambda call: CallDecision.reject(status))
        async with phone("1002", port, refusing), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert (reason.kind, reason.status) == (EndKind.REJECTED, expected)
            await settled(running)


@pytest.mark.parametrize(("number", "status"), [("1003", 480), ("7777", 404)])
async def test_unregistered_and_unknown_numbers(number, status):
    async with softswitch() as running:
        port = sip_port(running)
        async with phone("1001", port) as caller:
            call = await dial(caller, "1001", number, port)
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.status == status
            await settled(running)


async def test_an_unauthenticated_caller_is_refused():
    async with softswitch() as running:
        port = sip_port(running)
        async with phone("1002", port), phone("1001", port) as caller:
            call = await caller.make_call(
                f"sip:1002@127.0.0.1:{port}", from_user="1001", credentials=("1001", "wrong")
            )
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.status in (401, 403)
            await settled(running)


async def test_no_answer_within_the_ring_timeout_is_480():
    config = test_config()
    config = attrs.evolve(config, calls=attrs.evolve(config.calls, ring_timeout=0.5))
    async with softswitch(config) as running:
        port = sip_port(running)
        silent = Phone(lambda call: CallDecision.defer())  # rings and rings
        async with phone("1002", port, silent), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            assert await call.wait_state(CallState.RINGING, timeout=5) is CallState.RINGING
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.status == 480
            # The callee's ringing leg was cancelled.
            assert (await silent.incoming[0].wait_ended()).kind is EndKind.CANCELLED
            await settled(running)


async def test_a_caller_giving_up_cancels_the_callee():
    async with softswitch() as running:
        port = sip_port(running)
        silent = Phone(lambda call: CallDecision.defer())
        async with phone("1002", port, silent), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.RINGING, timeout=5)
            await call.hangup()  # CANCEL
            with trio.fail_after(5):
                assert (await silent.incoming[0].wait_ended()).kind is EndKind.CANCELLED
            await settled(running)


async def test_queue_rings_free_agents_and_bridges_the_first_to_answer():
    """The demo queue (call engine, ring-all): the caller, a member on this very call, is
    not offered; the other two ring, the first to answer takes it, the other is cancelled."""
    async with softswitch() as running:
        port = sip_port(running)
        late = Phone(lambda call: CallDecision.defer())
        async with phone("1003", port, late), phone("1002", port) as bob_phone:
            async with phone("1001", port) as caller:
                bob_phone.handler = bob = Phone(lambda call: CallDecision.defer())
                driver = running.softswitch.driver
                assert driver is not None
                await until(lambda: all(
                    driver.engine.agent_state(u) is AgentState.AVAILABLE
                    for u in ("1001", "1002", "1003")))
                call = await dial(caller, "1001", "6000", port)
                # answered at once: the caller waits with music
                await call.wait_state(CallState.ACTIVE, timeout=5)
                with trio.fail_after(5):
                    await bob.arrived.wait()
                    await late.arrived.wait()
                queue = running.softswitch.state()["queues"][0]
                assert [w["from"].split("@")[0] for w in queue["waiting"]] == ["sip:1001"]
                assert {a["name"]: a["state"] for a in queue["agents"]} == {
                    "1001": "on-call", "1002": "ringing", "1003": "ringing"}
                await bob.incoming[0].answer()
                with trio.fail_after(5):
                    assert (await late.incoming[0].wait_ended()).kind is EndKind.CANCELLED
                coordinator = running.softswitch.coordinator
                await until(lambda: len(coordinator.list_bridges()) == 1)
                assert running.softswitch.state()["queues"][0]["waiting"] == []
                await call.hangup()
                await settled(running)
            # its call over, 1001 is available again
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)


class Answering:
    """A QueueRouter that answers every caller itself (as an engine playing music would)."""

    name = "answering"

    def __init__(self) -> None:
        self.routed: list[tuple[CallSession, str]] = []

    async def route(self, call: CallSession, queue: QueueConfig) -> CallDecision:
        self.routed.append((call, queue.number))
        return CallDecision.accept()

    def queue_state(self, queue: QueueConfig, presence: Presence) -> dict:
        waiting = [{"call": c.id, "from": str(c.remote_party.uri), "wait": 0.0}
                   for c, _ in self.routed if c.state.live]
        agents = [{"name": m, "state": presence.agent_state(m)} for m in queue.members]
        return {"waiting": waiting, "agents": agents, "metrics": {"offered": len(self.routed)}}


async def test_a_router_takes_the_queue_calls():
    async with softswitch() as running:
        router = running.softswitch.router = Answering()
        port = sip_port(running)
        async with phone("1001", port) as caller:
            call = await dial(caller, "1001", "6000", port)
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert [number for _, number in router.routed] == ["6000"]
            state = running.softswitch.state()
            assert state["router"] == "answering"
            (queue,) = state["queues"]
            assert queue["metrics"] == {"offered": 1}
            assert {a["name"]: a["state"] for a in queue["agents"]} == {
                "1001": "on-call", "1002": "offline", "1003": "offline"}
            (leg,) = state["calls"]
            assert (leg["queue"], leg["user"]) == ("6000", "1001")
            await call.hangup()
            await settled(running)


async def test_a_queue_without_agents_logged_in_is_480():
    async with softswitch() as running:
        port = sip_port(running)
        async with phone("1001", port, register=False) as caller:
            call = await dial(caller, "1001", "6000", port)
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.status == 480
            await settled(running)


async def test_admin_hangup_and_logout():
    async with softswitch() as running:
        port = sip_port(running)
        bob = Phone()
        switch = running.softswitch
        async with phone("1002", port, bob), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            incoming = next(c for c in switch.coordinator.calls if c.direction.value == "incoming")
            await switch.hangup(incoming.id)
            with trio.fail_after(5):
                await call.wait_ended()
                await bob.incoming[0].wait_ended()
            await settled(running)
            with pytest.raises(SoftswitchError):
                await switch.hangup(incoming.id)
            assert switch.logout("1002") == 1
            assert switch.logout("1002") == 0
            assert [u["online"] for u in switch.state()["users"]] == [True, False, False]
            with pytest.raises(SoftswitchError):
                switch.logout("nobody")
            # Logged out: calls to 1002 find it unavailable.
            again = await dial(caller, "1001", "1002", port)
            assert (await again.wait_ended()).status == 480


async def test_shutdown_ends_live_calls_with_bye_and_frees_the_ports():
    bob = Phone()
    async with trio.open_nursery() as outer:
        running: Running = await outer.start(
            lambda task_status: serve(test_config(), echo=lambda line: None,
                                      task_status=task_status)
        )
        port = sip_port(running)
        http_port = int(running.http_url.rsplit(":", 1)[1].strip("/"))
        async with phone("1002", port, bob), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            outer.cancel_scope.cancel()  # what SIGINT does
            with trio.fail_after(5):
                assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
                assert (await bob.incoming[0].wait_ended()).kind is EndKind.REMOTE_HANGUP
    # Nothing left listening: the SIP and HTTP ports can be bound again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", http_port)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(None, 480), (302, 480), (401, 403), (407, 403), (404, 404), (486, 486), (500, 502),
     (503, 502), (600, 600), (603, 603)],
)
def test_failure_status(status, expected):
    assert failure_status(EndReason(EndKind.REJECTED, status)) == expected
    assert failure_status(None) == 480


async def test_describe_says_where_everything_listens(tmp_path):
    lines: list[str] = []
    config = test_config()
    async with trio.open_nursery() as nursery:
        running = await nursery.start(
            lambda task_status: serve(config, echo=lines.append, task_status=task_status)
        )
        port = sip_port(running)
        nursery.cancel_scope.cancel()
    assert lines[0] == f"SIP      UDP 127.0.0.1:{port} (domain 127.0.0.1)"
    assert lines[1] == "RTP      ports 33000-33099 on 127.0.0.1 (media relayed)"
    assert lines[2] == f"HTTP     {running.http_url} (supervisor page; /api/state, WebSocket /ws)"
    assert lines[3:] == [
        "user     1001 (Alice), password demo1001",
        "user     1002 (Bob), password demo1002",
        "user     1003 (Carol), password demo1003",
        "queue    6000 support: ring-all, agents 1001, 1002, 1003",
        "store    none (agents and queues as configured at each start)",
    ]
    lines.clear()
    # A public address, on the in-memory network (no socket is opened: no relay, no page).
    public = SoftswitchConfig(
        sip=SipConfig(host="192.0.2.1"), rtp=RtpConfig(relay=False),
        http=HttpConfig(enabled=False),
        callcenter=CallCenterConfig(store=str(tmp_path / "cc.sqlite")),
    )
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve(public, transport_factory=network.transport,
                                      echo=lines.append, task_status=task_status)
        )
        nursery.cancel_scope.cancel()
    assert lines[0].startswith("SIP      ") and "192.0.2.1:5060" in lines[0]
    assert lines[2] == "HTTP     off"
    assert lines[-2] == f"store    {tmp_path / 'cc.sqlite'} (agents, queues, call records)"
    assert lines[-1].startswith("warning  the demo users' passwords are published")


async def test_agents_pause_and_resume_from_their_phone_with_feature_codes():
    """*46*<code> pauses with that reason code, *47 resumes: answered, two beeps (0.6 s),
    hung up by us. A refused one (resume when not paused) gets the busy tone (2 s)."""
    async with softswitch() as running:
        port = sip_port(running)
        driver = running.softswitch.driver
        assert driver is not None
        async with phone("1001", port) as agent:
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)

            async def feature(code: str) -> float:
                call = await dial(agent, "1001", code, port)
                with trio.fail_after(5):
                    assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
                return call.duration

            assert 0.5 <= await feature("*46*7") < 1.5
            status = driver.engine.agent_status("1001")
            assert (status.state, status.pause_reason) == (AgentState.PAUSED, "7")
            assert 0.5 <= await feature("*47") < 1.5
            # on call (this one) until its end reaches the engine
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            assert await feature("*47") >= 1.9  # not paused: refused
            assert await feature("*46") < 1.5
            assert driver.engine.agent_status("1001").pause_reason == "phone"
            await settled(running)
        # other numbers starting like a code are not codes
        async with phone("1002", port) as other:
            call = await dial(other, "1002", "*46*", port)
            with trio.fail_after(5):
                assert (await call.wait_ended()).status == 404


async def test_agents_on_an_extension_call_are_not_offered_queue_calls():
    """1001 calls 1002: both are on call for the engine, so a customer waits; when they hang
    up both are free and the customer is offered to them (ring-all) and answered."""
    async with softswitch() as running:
        port = sip_port(running)
        driver = running.softswitch.driver
        assert driver is not None
        ann_phone, bob = Phone(), Phone()
        async with phone("1002", port, bob), phone("1001", port, ann_phone) as ann, \
                phone("1003", port, register=False) as customer:
            await until(lambda: driver.engine.agent_state("1002") is AgentState.AVAILABLE)
            extension = await dial(ann, "1001", "1002", port)
            assert await extension.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await until(lambda: driver.engine.agent_state("1001") is AgentState.ON_CALL
                        and driver.engine.agent_state("1002") is AgentState.ON_CALL)
            call = await dial(customer, "1003", "6000", port)
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await trio.sleep(0.3)
            assert (len(ann_phone.incoming), len(bob.incoming)) == (0, 1)  # no offer
            assert [w.position for w in driver.engine.waiting("6000")] == [1]
            await extension.hangup()
            await until(lambda: len(driver.engine.live_calls()) == 1)  # offered and answered
            await call.hangup()
            await settled(running)
