"""The call engine driven on a real softswitch (127.0.0.1 sockets): agents' phones register
with Digest auth, a customer calls the queue, the driver rings, bridges, wraps up and
records every phase in the store."""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from test_softswitch_app import (
    PASSWORDS, Phone, dial, phone, register_phone, settled, test_config, until,
)
from trio_voip import (
    CallDecision, CallSession, CallState, SessionCoordinator, SessionManagerBuilder,
)
from trio_voip.callcenter import (
    Agent, AgentState, AnnounceAndHangup, Busy, CallCenter, EmptyRule, Queue, Strategy, ToQueue,
    ToRecording,
)
from trio_voip.callcenter import prompts as prompts_module
from trio_voip.callcenter.actions import OfferFailure
from trio_voip.callcenter.driver import CallCenterDriver, offer_failure
from trio_voip.callcenter.prompts import SOUNDS
from trio_voip.callcenter.store import CallOutcome, CallRecord, MemoryStore
from trio_voip.session import EndKind, EndReason, hangup_quietly
from trio_voip.errors import ConfigError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.packet import RtpPacket, parse_rtp
from trio_voip.rtp.playback import FrameListSource, ToneSource, WavSource
from trio_voip.rtp.ticker import Playback
from trio_voip.rtp.wav import read_wav, write_wav
from trio_voip.softswitch import QueueConfig, Softswitch, UserConfig, parse_config
from trio_voip.softswitch.app import make_call_center
from trio_voip.softswitch.config import CallCenterConfig

QUEUE = "6000"


@attrs.define
class Center:
    switch: Softswitch
    driver: CallCenterDriver
    engine: CallCenter
    store: MemoryStore

    @property
    def port(self) -> int:
        return self.switch.coordinator.port("UDP")

    async def records(self) -> list[CallRecord]:
        await self.driver.flush_store()
        return await self.store.call_records(0, 1e12)

    async def register(self, phone_coordinator: object, user: str) -> None:
        await register_phone(phone_coordinator, user, self.port)  # type: ignore[arg-type]
        self.driver.refresh_agents()

    def state(self, agent_id: str) -> AgentState:
        return self.engine.agent_state(agent_id)


@contextlib.asynccontextmanager
async def call_center(
    *, others: tuple[Queue, ...] = (), driver_options: dict | None = None, **queue: object
) -> AsyncIterator[Center]:
    """The softswitch with the driver as its router: queue 6000 (``queue`` settings, longest
    idle by default) and ``others``, served by agents a1001 and a1002."""
    config = test_config(queues=(QueueConfig(QUEUE, "support", members=("1001", "1002")),))
    engine = CallCenter(seed=1)
    settings: dict = {"strategy": Strategy.LONGEST_IDLE, **queue}
    engine.add_queue(Queue(QUEUE, **settings))
    for other in others:
        engine.add_queue(other)
    served = {QUEUE, *(other.queue_id for other in others)}
    for user in ("1001", "1002"):
        engine.add_agent(Agent(f"a{user}", f"Agent {user}", user, queues=served))
    async with MemoryStore.open() as store, trio.open_nursery() as nursery:
        options = {"store": store, "busy_tone": 0.2, **(driver_options or {})}
        switch: Softswitch = await nursery.start(
            Softswitch(config, engine=engine, driver_options=options).run
        )
        driver = switch.driver
        assert driver is not None and driver.engine is engine
        yield Center(switch, driver, engine, store)
        nursery.cancel_scope.cancel()


async def clean(center: Center) -> None:
    """Nothing left: no calls, bridges, waiting callers or unwritten records."""
    await settled_switch(center)
    # the driver hears of a call's end a moment after the coordinator forgets it
    await until(lambda: not center.engine.waiting(QUEUE) and not center.engine.live_calls())
    stats = center.switch.coordinator.stats()
    assert (stats.calls, stats.dialogs, stats.bridges, stats.rtp_ports) == (0, 0, 0, 0)


async def settled_switch(center: Center) -> None:
    coordinator = center.switch.coordinator
    await until(lambda: not coordinator.calls and not coordinator.list_bridges())


async def test_longest_idle_agent_answers_is_bridged_then_wraps_up():
    async with call_center(wrap_up_time=0.3) as center:
        bob, ann = Phone(lambda call: CallDecision.defer()), Phone()
        async with phone("1002", center.port, bob, register=False) as bob_phone, \
                phone("1001", center.port, ann, register=False) as ann_phone:
            # 1002 logs in first, so it has been idle longest
            await center.register(bob_phone, "1002")
            await trio.sleep(0.05)
            await center.register(ann_phone, "1001")
            assert center.state("a1002") is center.state("a1001") is AgentState.AVAILABLE
            async with phone("1003", center.port, register=False) as customer_phone:
                call = await dial(customer_phone, "1003", QUEUE, center.port)
                assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
                with trio.fail_after(5):
                    await bob.arrived.wait()
                assert ann.incoming == []
                assert center.state("a1002") is AgentState.RINGING
                (waiting,) = center.switch.state()["queues"][0]["waiting"]
                assert waiting["from"].startswith("sip:1003@") and waiting["position"] == 1
                await bob.incoming[0].answer()
                coordinator = center.switch.coordinator
                await until(lambda: len(coordinator.list_bridges()) == 1)
                assert center.state("a1002") is AgentState.ON_CALL
                (bridge,) = coordinator.list_bridges()
                assert set(bridge.participants) == {
                    c.id for c in coordinator.calls
                }
                await call.hangup()
                with trio.fail_after(5):
                    await bob.incoming[0].wait_ended()
                await until(lambda: center.state("a1002") is AgentState.WRAP_UP)
                await until(lambda: center.state("a1002") is AgentState.AVAILABLE, timeout=2)
                await clean(center)
                (record,) = await center.records()
                assert record.outcome is CallOutcome.ANSWERED and record.agent_id == "a1002"
                assert [o.agent_id for o in record.offers] == ["a1002"]
                assert record.caller.startswith("sip:1003@") and record.queue_id == QUEUE
                times = (record.arrived_at, record.offers[0].at, record.answered_at,
                         record.bridged_at, record.ended_at, record.wrapup_ended_at)
                assert None not in times and list(times) == sorted(times)  # type: ignore[type-var]
                states = [c.state for c in await center.store.agent_history("a1002")]
                assert states == ["available", "ringing", "on-call", "wrap-up", "available"]
                metrics = center.switch.state()["queues"][0]["metrics"]
                assert (metrics["offered"], metrics["answered"], metrics["waiting"]) == (1, 1, 0)


async def test_no_answer_rings_the_next_agent_after_the_ring_timeout():
    async with call_center(ring_timeout=0.5, retry_delay=5.0) as center:
        bob, ann = Phone(lambda call: CallDecision.defer()), Phone()
        async with phone("1002", center.port, bob, register=False) as bob_phone, \
                phone("1001", center.port, ann, register=False) as ann_phone:
            await center.register(bob_phone, "1002")
            await trio.sleep(0.05)
            await center.register(ann_phone, "1001")
            async with phone("1003", center.port, register=False) as customer_phone:
                call = await dial(customer_phone, "1003", QUEUE, center.port)
                with trio.fail_after(5):
                    await bob.arrived.wait()
                    # not answered in 0.5 s: CANCELled, and the other agent rings
                    assert (await bob.incoming[0].wait_ended()).kind is EndKind.CANCELLED
                    await ann.arrived.wait()
                await until(lambda: len(center.switch.coordinator.list_bridges()) == 1)
                assert center.state("a1001") is AgentState.ON_CALL
                assert center.engine.agent_status("a1002").no_answer_count == 1
                await call.hangup()
                await clean(center)
                (record,) = await center.records()
                assert [(o.agent_id, o.missed_reason) for o in record.offers] == [
                    ("a1002", "ring-timeout"), ("a1001", None)]
                assert record.agent_id == "a1001"


async def test_an_agent_refusing_is_an_offer_failure_and_the_other_one_rings():
    async with call_center(retry_delay=5.0) as center:
        bob, ann = Phone(lambda call: CallDecision.reject(486)), Phone()
        async with phone("1002", center.port, bob, register=False) as bob_phone, \
                phone("1001", center.port, ann, register=False) as ann_phone:
            await center.register(bob_phone, "1002")
            await trio.sleep(0.05)
            await center.register(ann_phone, "1001")
            async with phone("1003", center.port, register=False) as customer_phone:
                call = await dial(customer_phone, "1003", QUEUE, center.port)
                with trio.fail_after(5):
                    await ann.arrived.wait()
                await until(lambda: len(center.switch.coordinator.list_bridges()) == 1)
                await ann.incoming[0].hangup()  # the agent ends it this time
                with trio.fail_after(5):
                    await call.wait_ended()
                await clean(center)
                (record,) = await center.records()
                assert [(o.agent_id, o.missed_reason) for o in record.offers] == [
                    ("a1002", "busy"), ("a1001", None)]


async def test_a_customer_hanging_up_while_waiting_is_abandoned():
    async with call_center() as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            # nobody logged in, and the queue lets callers wait: answered, hears ringback
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert len(center.engine.waiting(QUEUE)) == 1
            await call.hangup()
            await clean(center)
            (record,) = await center.records()
            assert record.outcome is CallOutcome.ABANDONED and record.offers == ()
            assert center.engine.queue_stats(QUEUE, trio.current_time()).abandoned == 1


async def test_a_queue_refusing_at_the_door_gives_its_status():
    async with call_center(join_empty=EmptyRule.STRICT) as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.status == 480  # nobody logged in
            await clean(center)
            (record,) = await center.records()
            assert record.outcome is CallOutcome.REJECTED
            assert record.outcome_detail == "join-empty"


async def test_a_dtmf_exit_key_sends_the_customer_to_busy():
    async with call_center(exit_keys={"0": Busy(486)}) as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            await call.send_dtmf("0", method="info")
            with trio.fail_after(5):
                reason = await call.wait_ended()
            assert reason.kind is EndKind.REMOTE_HANGUP
            await clean(center)
            (record,) = await center.records()
            assert record.outcome is CallOutcome.OVERFLOWED and record.outcome_detail == "busy"


@pytest.mark.parametrize(
    ("status", "failure"),
    [(None, OfferFailure.NO_ANSWER), (408, OfferFailure.NO_ANSWER),
     (480, OfferFailure.NO_ANSWER), (486, OfferFailure.BUSY), (600, OfferFailure.BUSY),
     (603, OfferFailure.REJECTED), (404, OfferFailure.REJECTED)],
)
def test_offer_failure(status, failure):
    assert offer_failure(EndReason(EndKind.REJECTED, status)) is failure


def test_make_call_center_maps_queues_and_member_users():
    config = test_config(
        users=(UserConfig("1001", "p1", "Ann"), UserConfig("1002", "p2"), UserConfig("1003", "p3")),
        queues=(
            QueueConfig("6000", "support", strategy="linear", members=("1002", "1001"),
                        ring_timeout=7.0, wrap_up_time=3.0, overflow="queue:6001",
                        max_wait=60.0),
            QueueConfig("6001", "sales", members=("1001",), join_empty="ignore"),
        ),
    )
    engine = make_call_center(config)
    support, sales = engine.queues()
    assert (support.queue_id, support.strategy, support.ring_timeout) == (
        "6000", Strategy.LINEAR, 7.0)
    assert (support.wrap_up_time, support.overflow, support.max_wait) == (
        3.0, ToQueue("6001"), 60.0)
    assert support.join_empty is EmptyRule.STRICT and sales.join_empty is EmptyRule.IGNORE
    agents = {a.agent_id: a for a in engine.agents()}
    assert set(agents) == {"1001", "1002"}  # 1003 is in no queue
    assert (agents["1001"].name, agents["1001"].queues, agents["1001"].order) == (
        "Ann", frozenset({"6000", "6001"}), 0)
    assert (agents["1002"].name, agents["1002"].sip_user, agents["1002"].order) == (
        "1002", "1002", 0)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[queues]]\nnumber = "7"\nwrap_up_time = -1.0\n', "queues[0].wrap_up_time"),
        ('[[queues]]\nnumber = "7"\n\noverflow = "elsewhere"\n', "queues[0].overflow"),
        ('[[queues]]\nnumber = "7"\nleave_empty = "sometimes"\n', "queues[0].leave_empty"),
        ('[callcenter]\npause_code = "46a"\n', "callcenter.pause_code"),
        ('[callcenter]\nresume_code = ""\n', "callcenter.resume_code"),
    ],
)
def test_a_call_engine_setting_mistake_names_its_key_and_line(text, key):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert caught.value.key == key
    assert caught.value.line == text.rstrip().count("\n") + 1


async def test_the_softswitch_runs_the_engine_when_configured(tmp_path):
    config = test_config(
        callcenter=CallCenterConfig(store=str(tmp_path / "cc.sqlite")),
        queues=(QueueConfig(QUEUE, "support", members=("1001", "1002"), wrap_up_time=0.1),),
    )
    ann = Phone()
    async with trio.open_nursery() as nursery:
        switch: Softswitch = await nursery.start(Softswitch(config).run)
        driver = switch.driver
        assert driver is not None and switch.router is driver
        port = switch.coordinator.port("UDP")
        async with phone("1001", port, ann), phone("1003", port, register=False) as customer:
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            call = await dial(customer, "1003", QUEUE, port)
            with trio.fail_after(5):
                await ann.arrived.wait()
            await until(lambda: len(switch.coordinator.list_bridges()) == 1)
            state = switch.state()
            assert state["router"] == "call engine"
            agents = {a["name"]: a["state"] for a in state["queues"][0]["agents"]}
            assert agents == {"1001": "on-call", "1002": "offline"}
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            await driver.flush_store()
            assert driver.store is not None
            (record,) = await driver.store.call_records(0, 1e12)
            assert record.outcome is CallOutcome.ANSWERED and record.wrapup_ended_at is not None
        nursery.cancel_scope.cancel()
    assert switch.router is not driver


def playing(center: Center, call_id: str) -> Playback | None:
    media = center.switch.coordinator.media
    assert media is not None
    playback = media.playback(call_id)
    return playback if playback is not None and not playback.done else None


def customer_leg(center: Center) -> str:
    (waiting,) = center.engine.waiting(QUEUE)
    return waiting.caller.session_id


async def test_waiting_customers_hear_ringback_and_announcements_until_answered():
    async with call_center(announce_every=0.6) as center:  # a beep is 0.4 s
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            leg = customer_leg(center)

            def hears(kind: type, loop: bool) -> bool:
                playback = playing(center, leg)
                return (playback is not None and type(playback.source) is kind
                        and playback.loop is loop)

            await until(lambda: hears(ToneSource, True))  # music on hold: ringback
            await until(lambda: hears(FrameListSource, False))  # the announcement
            await until(lambda: hears(ToneSource, True), timeout=10)  # and the music again
            ann = Phone()
            async with phone("1001", center.port, ann, register=False) as ann_phone:
                await center.register(ann_phone, "1001")
                await until(lambda: len(center.switch.coordinator.list_bridges()) == 1)
                # bridged: nothing plays over the agent, announcements stop
                assert playing(center, leg) is None
                await trio.sleep(0.4)
                assert playing(center, leg) is None
                await call.hangup()
                await clean(center)


async def test_music_on_hold_from_a_wav_file(tmp_path):
    wav = tmp_path / "moh.wav"
    write_wav(str(wav), [0, 1000, -1000, 0] * 800)  # 0.4 s
    async with call_center(driver_options={"music_on_hold": wav}) as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            leg = customer_leg(center)
            await until(lambda: (p := playing(center, leg)) is not None
                        and isinstance(p.source, WavSource) and p.loop)
            await call.hangup()
            await clean(center)


async def test_max_wait_overflows_into_another_queue_where_an_agent_answers():
    sales = Queue("6001", strategy=Strategy.LONGEST_IDLE)
    async with call_center(others=(sales,), max_wait=0.3, overflow=ToQueue("6001"),
                           required_skills={"support": 1}) as center:
        ann = Phone()
        async with phone("1001", center.port, ann, register=False) as ann_phone:
            await center.register(ann_phone, "1001")  # a1001 lacks the skill for 6000
            async with phone("1003", center.port, register=False) as customer_phone:
                call = await dial(customer_phone, "1003", QUEUE, center.port)
                with trio.fail_after(5):
                    await ann.arrived.wait()
                await until(lambda: len(center.switch.coordinator.list_bridges()) == 1)
                await call.hangup()
                await clean(center)
                first, second = sorted(await center.records(), key=lambda r: r.arrived_at)
                assert (first.queue_id, first.outcome, first.outcome_detail) == (
                    QUEUE, CallOutcome.OVERFLOWED, "queue:6001")
                assert (second.queue_id, second.outcome, second.agent_id) == (
                    "6001", CallOutcome.ANSWERED, "a1001")
                assert first.session_id == second.session_id


async def test_an_announce_overflow_plays_then_hangs_up_and_an_unknown_queue_is_503():
    async with call_center(max_wait=0.2, overflow=AnnounceAndHangup("closed")) as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            leg = customer_leg(center)
            # no WAV for "closed": the built-in "all agents busy", then the hang-up
            await until(lambda: (p := playing(center, leg)) is not None and not p.loop)
            with trio.fail_after(5):
                assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
            await clean(center)
            (record,) = await center.records()
            assert (record.outcome, record.outcome_detail) == (
                CallOutcome.OVERFLOWED, "announce:closed")
            center.engine.remove_queue(QUEUE)
            again = await dial(customer_phone, "1003", QUEUE, center.port)
            with trio.fail_after(5):
                assert (await again.wait_ended()).status == 503
            await settled_switch(center)


async def test_a_recording_overflow_takes_a_message_then_hangs_up(tmp_path):
    options = {"recordings": tmp_path, "max_message": 0.5}
    async with call_center(driver_options=options, max_wait=0.2,
                           overflow=ToRecording("sales")) as center:
        async with phone("1003", center.port, register=False) as customer_phone:
            call = await dial(customer_phone, "1003", QUEUE, center.port)
            with trio.fail_after(5):
                assert (await call.wait_ended()).kind is EndKind.REMOTE_HANGUP
            await clean(center)
            (message,) = (tmp_path / "sales").iterdir()
            assert message.suffix == ".wav" and message.stat().st_size >= 44  # a WAV header
            (record,) = await center.records()
            assert (record.outcome, record.outcome_detail) == (
                CallOutcome.OVERFLOWED, "recording:sales")


# -- spoken prompts: what the customer's phone really receives --


PROMPT_SOUNDS = Path(prompts_module.__file__).with_name(SOUNDS)


class Ear:
    """The RTP socket of a customer's phone: every packet the softswitch sends it, in order.
    The test binds the socket first (a port the OS says is free) and gives the phone that
    port, so test runs elsewhere on this machine cannot take it or send to it."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.call: CallSession | None = None
        self.received: list[tuple[int, RtpPacket]] = []

    async def listen(self) -> None:
        while True:
            data, (_, port) = await self.sock.recvfrom(2048)
            self.received.append((port, parse_rtp(data)))

    @property
    def packets(self) -> list[RtpPacket]:
        """What came from the softswitch's end of :attr:`call` (not of an earlier call)."""
        media = self.call.media if self.call is not None else None
        return [p for port, p in self.received if media is not None and port == media.remote_port]

    def find(self, frames: tuple[bytes, ...]) -> int | None:
        """Where ``frames`` were received one after the other (packet index), if they were."""
        got = [bytes(p.payload) for p in self.packets]
        for i in range(len(got) - len(frames) + 1):
            if got[i] == frames[0] and got[i:i + len(frames)] == list(frames):
                return i
        return None


@contextlib.asynccontextmanager
async def customer_with_ear() -> AsyncIterator[tuple[SessionCoordinator, Ear]]:
    """Phone 1003 (not registered) whose calls' RTP the :class:`Ear` receives."""
    while True:  # an even port: the phone hands out even RTP ports only
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if port % 2 == 0:
            break
        sock.close()
    builder = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=("UDP",))
        .rtp_ports(port, port + 1)
        .credentials("1003", PASSWORDS["1003"])
        .handler(Phone())
    )
    ear = Ear(sock)
    with sock:
        async with builder.build() as coordinator, trio.open_nursery() as nursery:
            nursery.start_soon(ear.listen)
            yield coordinator, ear
            nursery.cancel_scope.cancel()


async def test_a_waiting_customer_hears_its_position_and_estimated_wait_spoken():
    async with call_center(announce_every=0.5) as center:
        ann = Phone()
        async with phone("1001", center.port, ann, register=False) as ann_phone, \
                phone("1003", center.port, register=False) as first_phone, \
                customer_with_ear() as (customer_phone, ear):
            await center.register(ann_phone, "1001")
            # a first call answered at once: the history the estimate comes from
            first = await dial(first_phone, "1003", QUEUE, center.port)
            await until(lambda: len(center.switch.coordinator.list_bridges()) == 1)
            await first.hangup()
            await until(lambda: center.state("a1001") is AgentState.AVAILABLE)
            center.driver.pause("a1001", "lunch")
            call = ear.call = await dial(customer_phone, "1003", QUEUE, center.port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            leg = customer_leg(center)
            # the announcement, then the music again
            await until(lambda: (p := playing(center, leg)) is not None and not p.loop)
            await until(lambda: (p := playing(center, leg)) is not None and p.loop, 10)
            await trio.sleep(0.2)
            law = G711Law(ear.packets[0].payload_type)
            words = ("you-are-caller-number", "one", "your-estimated-wait-is",
                     "less-than-one-minute", "thank-you-for-holding")
            spoken = center.driver.prompts.source(words, law).frames
            start = ear.find(spoken)
            assert start is not None  # every frame of the five prompts, in order, none lost
            packets = ear.packets
            run = packets[start:start + len(spoken)]
            assert [p.sequence for p in run] == [
                (run[0].sequence + k) % 65536 for k in range(len(run))]
            # decoded, it is the prompts' recorded speech (up to G.711's quantisation)
            heard = law.decode(b"".join(bytes(p.payload) for p in run))
            said = [s for word in words for s in read_wav(str(PROMPT_SOUNDS / f"{word}.wav"))]
            assert len(heard) == len(said)
            dot = sum(map(operator.mul, heard, said))
            assert dot / math.sqrt(sum(x * x for x in heard) * sum(x * x for x in said)) > 0.99
            # music on hold before and after: ringback from its start again
            ringback = ToneSource.named("ringback", law).frames
            assert bytes(packets[start - 1].payload) in ringback
            after = [bytes(p.payload) for p in packets[start + len(spoken):][:5]]
            assert after == list(ringback[:len(after)]) and after
            await call.hangup()
            await clean(center)


@pytest.mark.parametrize("case", ["configured", "default", "recording", "queue"])
async def test_an_overflow_says_its_prompt(case, tmp_path):
    closed = tmp_path / "closed.wav"
    write_wav(str(closed), [((i * 37) % 2000) - 1000 for i in range(2400)])  # 0.3 s
    overflow, options = {
        "configured": (AnnounceAndHangup("closed"), {"prompts": {"closed": closed}}),
        "default": (AnnounceAndHangup("closed"), {}),
        "recording": (ToRecording("sales"), {"recordings": tmp_path, "max_message": 0.2}),
        "queue": (ToQueue("6001"), {}),
    }[case]
    async with call_center(driver_options=options, others=(Queue("6001"),), max_wait=0.3,
                           overflow=overflow) as center:
        async with customer_with_ear() as (customer_phone, ear):
            call = ear.call = await dial(customer_phone, "1003", QUEUE, center.port)
            await until(lambda: bool(ear.packets))  # ringback while it waits
            law = G711Law(ear.packets[0].payload_type)
            beep = center.driver._beeps(1, law).frames
            expected = {
                "configured": WavSource.read(closed, law).frames,
                # unconfigured and not built in: the first second of "all agents busy"
                "default": center.driver.prompts.source(["all-agents-busy"], law).frames[:50],
                "recording": center.driver.prompts.source(["leave-message"], law).frames + beep,
                # moved to another queue: told to hold on, then the music again
                "queue": (center.driver.prompts.source(["please-hold"], law).frames
                          + ToneSource.named("ringback", law).frames[:5]),
            }[case]
            await until(lambda: ear.find(expected) is not None, 10)
            await hangup_quietly(call)
            await clean(center)


async def test_without_its_prompts_the_driver_beeps_the_position(monkeypatch, caplog):
    monkeypatch.setattr(prompts_module, "SOUNDS", "no-such-folder")  # a broken installation
    async with call_center(announce_every=0.3) as center:
        async with customer_with_ear() as (customer_phone, ear):
            call = ear.call = await dial(customer_phone, "1003", QUEUE, center.port)
            await until(lambda: bool(ear.packets))
            beep = center.driver._beeps(1, G711Law(ear.packets[0].payload_type)).frames
            await until(lambda: ear.find(beep) is not None)  # position 1: one beep
            await call.hangup()
            await clean(center)
    assert "no voice prompts" in caplog.text and "cannot say you-are-caller-number" in caplog.text
