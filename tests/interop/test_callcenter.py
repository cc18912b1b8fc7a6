"""The call engine end to end with SIPp phones on 127.0.0.1: a running :class:`Softswitch` with
``[callcenter] engine = true`` and a SQLite store; SIPp agents register with Digest (MD5) and
then answer (or only ring) as UASs; SIPp customers call the queue's number.

Each test checks three witnesses against each other: the call records in the store (who was
offered each call, who answered, the outcome, the time of each phase), the engine's metrics
(``queue_stats`` / ``agent_stats`` must count what the records hold) and SIPp's own verdict on
both sides (every customer's and every phone's calls successful, and each phone got exactly
the offers the records name: a switch that swallowed or duplicated a call would show there).

This module holds the harness (:func:`call_center`, :class:`Rig`) and the queue behaviours:
ring timeout (miss, next agent, auto-pause), wrap-up, abandonment, overflow (to another queue,
to busy) and the max-length refusal. ``test_callcenter_strategies.py`` routes with each
strategy. Timers are short (ring timeout 1 s, wrap-up 1 s, max wait 1 s); timing assertions
allow a busy machine at least half a second, except lower bounds, which the engine's timers
guarantee exactly.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from trio_voip.callcenter import AUTO_PAUSE_NO_ANSWER, AgentState, CallCenter
from trio_voip.callcenter.driver import CallCenterDriver
from trio_voip.callcenter.store import CallOutcome, CallRecord
from trio_voip.softswitch import HttpConfig, QueueConfig, RtpConfig, SipConfig, Softswitch
from trio_voip.softswitch.app import make_call_center
from trio_voip.softswitch.config import CallCenterConfig, SoftswitchConfig, UserConfig
from trio_voip.testing.sipp import SippResult, run_sipp

from .test_sipp_scenarios import assert_clean, scenario, sipp_uac
from .test_softswitch import free_udp_port

A, B, C = "1001", "1002", "1003"
PASSWORDS = {A: "demo1001", B: "demo1002", C: "demo1003"}
QUEUE = "6000"


@attrs.frozen
class Phone:
    """What an agent's phone (a SIPp UAS) does with each call: its scenario and options."""

    scen: str
    extra: tuple[str, ...] = ()


ANSWER = Phone(scenario("agent_answer.xml"))  # answers at once, the customer hangs up
RING = Phone(scenario("agent_ring.xml"))  # rings until the queue cancels it
REJECT = Phone(scenario("uas_reject.xml"))  # 486 Busy Here
HANG_UP = Phone(scenario("uas_bye.xml"), ("-d", "1000"))  # answers, hangs up after 1 s
#: the engine's seed: the random strategies route the same way on every run
SEED = 7
# the timestamps of a record are the engine's times moved to the Unix epoch: a float sum
EPSILON = 1e-3
# slack for a busy machine on upper bounds of times
SLACK = 1.0


@attrs.frozen
class Customer:
    """A SIPp customer calling ``queue``, in a group (:meth:`Rig.call`) ``delay`` seconds
    after the one before it arrived in the engine. The queue answers at once (music on
    hold), so ``hold`` (SIPp's ``-d``) counts the wait too."""

    hold: float = 0.3
    delay: float = 0.0
    queue: str = QUEUE
    scen: str = "uac"
    extra: tuple[str, ...] = ()


def config(queues: Sequence[QueueConfig], store: str) -> SoftswitchConfig:
    return SoftswitchConfig(
        # SIPp's stock callers do not answer INVITE challenges; SIPp answers MD5 only
        sip=SipConfig(port=0, transports=("udp",), auth_invite=False, digest_algorithms=("MD5",)),
        rtp=RtpConfig(33400, 33499),
        http=HttpConfig(enabled=False),
        callcenter=CallCenterConfig(store=store),
        users=tuple(UserConfig(name, password) for name, password in PASSWORDS.items()),
        queues=tuple(queues),
    )


def queue(number: str = QUEUE, **settings: object) -> QueueConfig:
    """A queue of agents A, B, C (in that order) unless ``members`` says otherwise."""
    settings.setdefault("members", (A, B, C))
    return QueueConfig(number, **settings)  # type: ignore[arg-type]


Tweak = Callable[[CallCenter, float], None]


def tweak_queue(queue_id: str, **changes: object) -> Tweak:
    """Change engine queue settings the config has no key for (before any call)."""

    def apply(engine: CallCenter, now: float) -> None:
        old = next(q for q in engine.queues() if q.queue_id == queue_id)
        assert engine.update_queue(attrs.evolve(old, **changes), now=now) == []

    return apply


def tweak_agent(agent_id: str, **changes: object) -> Tweak:
    """Change an agent's definition (skills, weight...) the config has no key for."""

    def apply(engine: CallCenter, now: float) -> None:
        old = next(a for a in engine.agents() if a.agent_id == agent_id)
        assert engine.update_agent(attrs.evolve(old, **changes), now=now) == []

    return apply


class Rig:
    """A running softswitch with its call engine, the SIPp phones of its agents and its
    customers; see :func:`call_center`."""

    def __init__(self, switch: Softswitch, phones: trio.Nursery,
                 scenarios: Mapping[str, Phone]) -> None:
        self.switch = switch
        self.port = switch.coordinator.port("UDP")
        self.queue_ids = [q.number for q in switch.config.queues]
        self.members = sorted({m for q in switch.config.queues for m in q.members})
        self._nursery = phones
        self._scenarios = scenarios
        self._phones: dict[str, trio.Process] = {}
        self.phone_results: dict[str, SippResult] = {}

    @property
    def driver(self) -> CallCenterDriver:
        assert self.switch.driver is not None
        return self.switch.driver

    @property
    def engine(self) -> CallCenter:
        return self.driver.engine

    async def login(self, *users: str) -> None:
        """Log agents in, in turn (the order in which they become idle): each registers with
        Digest, then its phone, a SIPp UAS (``phones`` of :func:`call_center`; default
        :data:`ANSWER`), listens on the port it registered from, for any number of calls.
        (The switch calls a registration's source address, so the REGISTER must come from
        the phone's own port, before the phone binds it.)"""
        for user in users:
            port = free_udp_port()
            result = await sipp_uac(self.port, port, scenario("uac_register_auth.xml"), 1,
                                    timeout=10,
                                    extra=["-s", user, "-au", user, "-ap", PASSWORDS[user]])
            assert_clean(result, 1)
            self._phones[user] = await self._nursery.start(
                self._phone, user, self._scenarios.get(user, ANSWER), port)
            with trio.fail_after(5):
                while not (udp_bound(port) and self.engine.agent_status(user).logged_in):
                    await trio.sleep(0.01)

    async def _phone(self, user: str, phone: Phone, port: int,
                     task_status: trio.TaskStatus[trio.Process]) -> None:
        self.phone_results[user] = await run_sipp(phone.scen, target=None, local_port=port,
                                                  calls=1000, timeout=60, extra=phone.extra,
                                                  task_status=task_status)

    def arrivals(self) -> int:
        """Callers that came to any queue so far (joined or refused)."""
        now = trio.current_time()
        stats = [self.engine.queue_stats(q, now) for q in self.queue_ids]
        return sum(s.offered + s.rejected for s in stats)

    async def call(self, *customers: Customer) -> None:
        """Run the customers together, in order: each starts once the one before it is in
        the engine (a slow SIPp start cannot swap them), after its delay; every one must
        succeed by its own scenario. Returns once the switch is idle again."""
        results: list[SippResult] = []

        async def run(customer: Customer) -> None:
            results.append(await sipp_uac(
                self.port, free_udp_port(), customer.scen, 1, timeout=20,
                extra=["-s", customer.queue, "-d", str(int(customer.hold * 1000)),
                       *customer.extra],
            ))

        arrived = self.arrivals()
        async with trio.open_nursery() as nursery:
            for index, customer in enumerate(customers):
                with trio.fail_after(10):
                    while self.arrivals() < arrived + index:
                        await trio.sleep(0.01)
                await trio.sleep(customer.delay)
                nursery.start_soon(run, customer)
        for result in results:
            assert_clean(result, 1)
        await self.idle()

    def busy(self) -> list[object]:
        """What is left on the switch or in the engine: calls, waiting callers, offers."""
        engine = self.engine
        return [
            *self.switch.coordinator.calls,
            *engine.live_calls(),
            *(caller for q in self.queue_ids for caller in engine.waiting(q)),
            *(status for status in map(engine.agent_status, self.members) if status.ringing),
        ]

    async def idle(self) -> None:
        """Wait until no call is left on the switch or in the engine."""
        with trio.move_on_after(10):
            while self.busy():
                await trio.sleep(0.02)
        assert not self.busy(), self.busy()

    async def records(self) -> list[CallRecord]:
        """Every call record in the store, by arrival; each must have an outcome."""
        await self.driver.flush_store()
        assert self.driver.store is not None
        records = await self.driver.store.call_records(0, 1e12)
        for r in records:
            assert r.outcome is not None, r
            if r.outcome is CallOutcome.ANSWERED:
                assert r.bridged_at is not None and r.ended_at is not None, r
        return records

    def check_metrics(self, records: Sequence[CallRecord]) -> None:
        """The engine's live numbers count exactly what the records hold."""
        now = trio.current_time()
        for queue_id in self.queue_ids:
            mine = [r for r in records if r.queue_id == queue_id]
            outcomes = Counter(r.outcome for r in mine)
            stats = self.engine.queue_stats(queue_id, now)
            counts = (stats.offered, stats.answered, stats.abandoned, stats.overflowed,
                      stats.rejected, stats.waiting)
            assert counts == (
                len(mine) - outcomes[CallOutcome.REJECTED], outcomes[CallOutcome.ANSWERED],
                outcomes[CallOutcome.ABANDONED], outcomes[CallOutcome.OVERFLOWED],
                outcomes[CallOutcome.REJECTED], 0,
            ), queue_id
            rules = next(q for q in self.engine.queues() if q.queue_id == queue_id)
            waits = [r.answered_at - r.arrived_at for r in mine if r.answered_at is not None]
            assert stats.average_speed_of_answer == (
                pytest.approx(sum(waits) / len(waits), abs=EPSILON) if waits else None)
            left = len(mine) - outcomes[CallOutcome.REJECTED]
            within = sum(wait <= rules.service_level_threshold for wait in waits)
            assert stats.service_level == (pytest.approx(within / left) if left else None)
            handled = [talk(r) + rules.wrap_up_time for r in mine if r.ended_at is not None]
            assert stats.average_handle_time == (
                pytest.approx(sum(handled) / len(handled), abs=EPSILON) if handled else None)
        for agent in self.members:
            stats = self.engine.agent_stats(agent, now)
            offers = sum(o.agent_id == agent for r in records for o in r.offers)
            mine = [r for r in records if r.agent_id == agent]
            assert (stats.offered, stats.answered) == (offers, len(mine)), agent
            assert stats.talk_time == pytest.approx(sum(map(talk, mine)), abs=EPSILON)

    async def finish(self) -> list[CallRecord]:
        """Once the switch is idle, stop the phones (SIGUSR1: SIPp ends once its calls are
        over) and return the records, checked against the metrics and against each phone:
        it took exactly the calls the records offered it, all successfully."""
        await self.idle()
        for proc in self._phones.values():
            proc.send_signal(signal.SIGUSR1)
        with trio.fail_after(10):
            while len(self.phone_results) < len(self._phones):
                await trio.sleep(0.02)
        records = await self.records()
        self.check_metrics(records)
        for user, result in self.phone_results.items():
            assert_clean(result, sum(o.agent_id == user for r in records for o in r.offers))
        return records


@asynccontextmanager
async def call_center(
    tmp_path: Path, queues: Sequence[QueueConfig], *tweaks: Tweak,
    phones: Mapping[str, Phone] | None = None,
) -> AsyncIterator[Rig]:
    """A softswitch running ``queues`` on the call engine; ``phones``: what each agent's
    phone does (default :data:`ANSWER`). The engine is the config's
    (:func:`make_call_center`) with a fixed seed and ``tweaks`` applied: the config has no
    key for a seed, skills, weights or progressive steps. (They go through the empty store
    and back as the switch starts.)"""
    settings = config(queues, str(tmp_path / "cc.sqlite"))
    engine = make_call_center(settings, seed=SEED)
    for tweak in tweaks:
        tweak(engine, trio.current_time())
    async with trio.open_nursery() as nursery:
        switch: Softswitch = await nursery.start(Softswitch(settings, engine=engine).run)
        assert switch.driver is not None and switch.driver.engine is engine
        async with trio.open_nursery() as phone_nursery:
            yield Rig(switch, phone_nursery, phones or {})
            phone_nursery.cancel_scope.cancel()  # phones of a test that did not finish()
        nursery.cancel_scope.cancel()


def udp_bound(port: int) -> bool:
    """Whether a socket is bound to UDP ``port`` on 127.0.0.1 (read from /proc/net/udp, not
    probed by binding it: that could make the phone starting there fail)."""
    address = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == address for line in table.readlines()[1:])


def talk(record: CallRecord) -> float:
    assert record.answered_at is not None and record.ended_at is not None
    return record.ended_at - record.answered_at


def offered_to(record: CallRecord) -> list[str | None]:
    return [o.agent_id for o in record.offers]


# -- misses: ring timeout, busy --


@pytest.mark.parametrize(("phone", "reason"), [(RING, "ring-timeout"), (REJECT, "busy")],
                         ids=["ring-timeout", "busy"])
async def test_an_agent_that_misses_is_skipped_then_auto_paused(sipp, tmp_path, phone, reason):
    """Linear: A is offered first but its phone only rings (the offer times out after 1 s)
    or answers 486 (a miss at once); the call goes on to B (A is in its 0.5 s retry delay,
    over before the next call). A's second miss in a row pauses it (max_no_answer = 2), so
    the third call goes straight to B."""
    ring = 1.0
    q = queue(strategy="linear", members=(A, B), ring_timeout=ring, retry_delay=0.5,
              max_no_answer=2)
    async with call_center(tmp_path, [q], phones={A: phone}) as rig:
        await rig.login(A, B)
        for _ in range(3):  # B talks for 1 s
            await rig.call(Customer(hold=(ring if phone == RING else 0.0) + 1.0))
        records = await rig.finish()
        assert [offered_to(r) for r in records] == [[A, B], [A, B], [B]]
        assert [r.agent_id for r in records] == [B, B, B]
        for r in records[:2]:
            missed, answered = r.offers
            assert missed.missed_reason == reason
            assert missed.missed_at is not None
            rang = missed.missed_at - missed.at
            if phone == RING:
                assert ring - EPSILON <= rang < ring + SLACK
            else:
                assert rang < ring
            # the next agent rings as the first stops
            assert answered.at == pytest.approx(missed.missed_at, abs=0.5)
            assert answered.missed_at is None
        status = rig.engine.agent_status(A)
        assert (status.paused, status.pause_reason, status.no_answer_count) == (
            True, AUTO_PAUSE_NO_ANSWER, 2)
        history = await rig.driver.store.agent_history(A)
        assert [(h.state, h.reason) for h in history][-2:] == [
            ("ringing", None), ("paused", AUTO_PAUSE_NO_ANSWER)]


# -- wrap-up --


@pytest.mark.parametrize("hangs_up", ["customer", "agent"])
async def test_an_agent_is_not_offered_a_call_during_its_wrap_up(sipp, tmp_path, hangs_up):
    """One agent, wrap-up 1 s: the second customer, waiting since before the first call
    ended, is offered to the agent only once the wrap-up is over. Each call lasts about 1 s
    and is ended by the customer, or by the agent (the switch then hangs up the customer)."""
    wrap = 1.0
    q = queue(strategy="linear", members=(A,), wrap_up_time=wrap)
    by_agent = hangs_up == "agent"
    async with call_center(tmp_path, [q], phones={A: HANG_UP if by_agent else ANSWER}) as rig:
        await rig.login(A)
        if by_agent:  # each customer waits for the switch's BYE
            wait_bye = scenario("uac_wait_bye.xml")
            await rig.call(Customer(scen=wait_bye), Customer(scen=wait_bye, delay=0.3))
        else:
            await rig.call(Customer(hold=1.0), Customer(hold=3.0, delay=0.3))
        with trio.fail_after(5):  # the second wrap-up
            while rig.engine.agent_state(A) is not AgentState.AVAILABLE:
                await trio.sleep(0.02)
        first, second = await rig.finish()
        assert [r.agent_id for r in (first, second)] == [A, A]
        assert first.ended_at is not None and first.wrapup_ended_at is not None
        assert wrap - EPSILON <= first.wrapup_ended_at - first.ended_at < wrap + SLACK
        # waiting all along (it arrived during the first call), offered after the wrap-up
        assert second.arrived_at < first.ended_at
        assert second.offered_at is not None
        assert first.wrapup_ended_at - EPSILON <= second.offered_at < first.wrapup_ended_at + SLACK
        assert second.wrapup_ended_at is not None
        states = [h.state for h in await rig.driver.store.agent_history(A)]
        assert states == ["available"] + ["ringing", "on-call", "wrap-up", "available"] * 2


# -- abandonment --


@pytest.mark.parametrize("case", ["all-busy", "no-agent", "ringing"])
async def test_a_customer_hanging_up_while_waiting_is_abandoned(sipp, tmp_path, case):
    """The last customer hangs up after 1 s in the queue: its one agent is on a call with
    another customer (all-busy), or none is logged in (no-agent; join_empty = ignore), or
    the agent's phone rings all that time (ringing: the offer is withdrawn, no miss for
    the agent)."""
    q = queue(strategy="linear", members=(A,), join_empty="ignore", ring_timeout=10.0)
    async with call_center(tmp_path, [q], phones={A: RING if case == "ringing" else ANSWER}
                           ) as rig:
        if case != "no-agent":
            await rig.login(A)
        first = [Customer(hold=2.5)] if case == "all-busy" else []
        await rig.call(*first, Customer(hold=1.0, delay=0.3))
        records = await rig.finish()
        assert [r.outcome for r in records] == (
            [CallOutcome.ANSWERED] * len(first) + [CallOutcome.ABANDONED])
        abandoned = records[-1]
        assert abandoned.agent_id is None and abandoned.abandoned_at is not None
        assert 1.0 - 0.5 <= abandoned.abandoned_at - abandoned.arrived_at < 1.0 + SLACK
        if case == "ringing":
            assert offered_to(abandoned) == [A]
            assert abandoned.offers[0].missed_reason == "caller-gone"
            assert rig.engine.agent_status(A).no_answer_count == 0
        else:
            assert abandoned.offers == ()
        assert rig.engine.queue_stats(QUEUE, trio.current_time()).abandoned == 1


# -- overflow and max length --


async def test_max_wait_overflows_into_another_queue_where_an_agent_answers(sipp, tmp_path):
    """Nobody serves 6000 (join_empty = ignore); after max_wait 1 s its caller moves to 6001
    and A answers it there: two records of one session, OVERFLOWED then ANSWERED."""
    wait = 1.0
    first = queue(members=(), join_empty="ignore", max_wait=wait, overflow="queue:6001")
    second = queue("6001", strategy="linear", members=(A,))
    async with call_center(tmp_path, [first, second]) as rig:
        await rig.login(A)
        await rig.call(Customer(hold=wait + 1.5))
        overflowed, answered = await rig.finish()
        assert (overflowed.queue_id, overflowed.outcome, overflowed.outcome_detail) == (
            QUEUE, CallOutcome.OVERFLOWED, "queue:6001")
        assert overflowed.overflowed_at is not None
        assert wait - EPSILON <= overflowed.overflowed_at - overflowed.arrived_at < wait + SLACK
        assert (answered.queue_id, answered.outcome, answered.agent_id) == (
            "6001", CallOutcome.ANSWERED, A)
        assert answered.session_id == overflowed.session_id
        assert answered.arrived_at == pytest.approx(overflowed.overflowed_at, abs=EPSILON)


async def test_max_wait_overflows_to_busy_and_a_full_queue_refuses(sipp, tmp_path):
    """6000 holds one caller (max_length 1) and nobody serves it: the first customer waits
    1 s, hears the busy tone and is hung up by the switch (OVERFLOWED, busy); the second,
    arriving meanwhile, is refused with 486 at the door (REJECTED, full)."""
    wait = 1.0
    q = queue(members=(), join_empty="ignore", max_wait=wait, max_length=1, overflow="busy")
    log = tmp_path / "refused.log"
    async with call_center(tmp_path, [q]) as rig:
        await rig.call(Customer(scen=scenario("uac_wait_bye.xml")),
                       Customer(scen=scenario("uac_rejected.xml"), delay=0.3,
                                extra=("-trace_logs", "-log_file", str(log))))
        assert log.read_text().split() == ["final=486"]
        busy, full = await rig.finish()
        assert (busy.outcome, busy.outcome_detail) == (CallOutcome.OVERFLOWED, "busy")
        assert busy.overflowed_at is not None
        assert wait - EPSILON <= busy.overflowed_at - busy.arrived_at < wait + SLACK
        assert (full.outcome, full.outcome_detail) == (CallOutcome.REJECTED, "full")
        assert full.rejected_at is not None and full.offers == ()
