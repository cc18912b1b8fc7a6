"""The SIPp scenarios in ``scenarios/`` against each other and against the SessionCoordinator.

Each scenario is first played SIPp to SIPp (so a failure below is ours, not the scenario's),
then against a coordinator in this process: SIPp calling it (REGISTER with Digest, plain calls,
hold/resume, CANCEL while ringing, rejection) and the coordinator calling a SIPp UAS (we hang
up; SIPp hangs up; hold/resume; rejection). Every test checks both sides: what SIPp counted,
what the coordinator saw, and that the coordinator holds nothing afterwards (calls, dialogs,
transactions, RTP ports).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from trio_voip import (
    CallDecision,
    CallHandler,
    CallSession,
    CallState,
    CallStateChanged,
    EndKind,
    EndReason,
    SessionCoordinator,
    SessionManagerBuilder,
)
from trio_voip.sdp import Direction
from trio_voip.sip.transaction import TimerConfig
from trio_voip.testing.sipp import SippResult, run_sipp

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
# Short T1/T4/Timer D so every transaction runs out its timers (64*T1 = 6.4 s) and the
# "nothing left behind" check does not wait the RFC's 32 s. Not shorter: SIPp's built-in uas
# aborts a call when an INVITE retransmission reaches it after its 200, and with T1 = 50 ms
# a burst of calls delays our handling of the 180/200 that long.
FAST_TIMERS = TimerConfig(t1=0.1, t4=0.5, timer_d_unreliable=0.5)
# When we call SIPp: SIPp's UAS aborts a call on an INVITE retransmission that crosses its
# answer under load (seen in CI), so our Timer A waits longer; Timer M (64*T1) is then 16 s.
CALLER_TIMERS = TimerConfig(t1=0.25, t4=0.5, timer_d_unreliable=0.5)
CALLER_DRAIN = 30.0


def scenario(name: str) -> str:
    return str(SCENARIOS / name)


# -- SIPp helpers --


async def sipp_uac(target_port: int, local_port: int, scen: str, calls: int, rate: float = 50,
                   extra: list[str] | None = None, timeout: float = 30) -> SippResult:
    return await run_sipp(scen, target=f"127.0.0.1:{target_port}", local_port=local_port,
                          calls=calls, rate=rate, timeout=timeout, extra=extra or [])


@asynccontextmanager
async def sipp_uas(port: int, scen: str, calls: int, extra: list[str] | None = None,
                   timeout: float = 30) -> AsyncIterator[list[SippResult]]:
    """A SIPp UAS on 127.0.0.1:``port`` that exits after ``calls`` calls; the list holds its
    result once the block is left (the exit waits for SIPp to finish, bounded by timeout)."""
    result: list[SippResult] = []

    async def run(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        result.append(await run_sipp(scen, target=None, local_port=port, calls=calls,
                                     timeout=timeout, extra=extra or [], task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await trio.sleep(0.3)  # SIPp binds its socket after it starts
        yield result


def assert_clean(result: SippResult, calls: int) -> None:
    assert (result.successful, result.failed) == (calls, 0), result.stderr
    assert result.returncode == 0, result.stderr


# -- coordinator helpers --


class Recorder(CallHandler):
    """Decides every incoming call with ``decide`` and records what the coordinator reports."""

    def __init__(self, decide: Callable[[CallSession], CallDecision] | None = None) -> None:
        self.decide = decide or (lambda call: CallDecision.accept())
        self.incoming: list[CallSession] = []
        self.established: list[CallSession] = []
        self.ended: list[EndReason] = []

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.incoming.append(call)
        return self.decide(call)

    async def on_call_established(self, call: CallSession) -> None:
        self.established.append(call)

    async def on_call_ended(self, call: CallSession, reason: EndReason) -> None:
        self.ended.append(reason)

    def end_kinds(self) -> Counter[tuple[EndKind, int | None]]:
        return Counter((reason.kind, reason.status) for reason in self.ended)


def builder(handler: CallHandler | None = None,
            timers: TimerConfig = FAST_TIMERS) -> SessionManagerBuilder:
    b = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=["UDP"])
        .timers(timers)
        .limits(max_calls=5000, shutdown_timeout=2.0, event_buffer=20000)
    )
    return b.handler(handler) if handler is not None else b


async def drained(coordinator: SessionCoordinator, timeout: float = 10.0) -> tuple[int, ...]:
    """(calls, dialogs, transactions, rtp_ports) once all are zero, or as they are at timeout."""
    with trio.move_on_after(timeout):
        while True:
            s = coordinator.stats()
            held = (s.calls, s.dialogs, s.transactions, s.rtp_ports)
            if held == (0, 0, 0, 0):
                return held
            await trio.sleep(0.05)
    s = coordinator.stats()
    return (s.calls, s.dialogs, s.transactions, s.rtp_ports)


# -- the scenarios SIPp to SIPp --

PAIRS = {
    "register": ("uas_registrar.xml", "uac_register_auth.xml",
                 ["-set", "user", "alice", "-set", "password", "secret"],
                 ["-s", "alice", "-au", "alice", "-ap", "secret"]),
    "hold-resume": ("uas_hold_resume.xml", "uac_hold_resume.xml", [], []),
    "cancel": ("uas_ring_cancel.xml", "uac_cancel.xml", [], []),
    "callee-bye": ("uas_bye.xml", "uac_wait_bye.xml", [], []),
    "reject-503": ("uas_reject.xml", "uac_rejected.xml", [], ["-s", "503"]),
    "plain": ("uas", "uac", [], []),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
async def test_scenario_pairs_sipp_to_sipp(sipp, unused_udp_port_pair, name):
    uas_scen, uac_scen, uas_extra, uac_extra = PAIRS[name]
    uas_port, uac_port = unused_udp_port_pair

    def path(s: str) -> str:
        return scenario(s) if s.endswith(".xml") else s

    async with sipp_uas(uas_port, path(uas_scen), 20, uas_extra) as uas:
        uac = await sipp_uac(uas_port, uac_port, path(uac_scen), 20, rate=40, extra=uac_extra)
    assert_clean(uac, 20)
    assert_clean(uas[0], 20)


async def test_register_scenario_fails_on_a_wrong_password(sipp, unused_udp_port_pair):
    # The scenario really checks the outcome: a refused registration is a failed call.
    uas_port, uac_port = unused_udp_port_pair
    async with sipp_uas(uas_port, scenario("uas_registrar.xml"), 5,
                        ["-set", "user", "alice", "-set", "password", "secret"], timeout=10):
        uac = await sipp_uac(uas_port, uac_port, scenario("uac_register_auth.xml"), 5,
                             extra=["-s", "alice", "-au", "alice", "-ap", "wrong"], timeout=10)
    assert (uac.successful, uac.failed) == (0, 5)


# -- SIPp calling the coordinator --


async def test_hundreds_of_calls_to_the_coordinator(sipp, unused_udp_port_pair):
    handler = Recorder()
    async with builder(handler).build() as coordinator:
        result = await sipp_uac(coordinator.port(), unused_udp_port_pair[0], "uac", 400, rate=200)
        assert_clean(result, 400)
        assert await drained(coordinator) == (0, 0, 0, 0)
    assert len(handler.incoming) == len(handler.established) == 400
    assert handler.end_kinds() == {(EndKind.REMOTE_HANGUP, None): 400}


def md5_challenges_only(coordinator: SessionCoordinator) -> None:
    """Challenge with MD5 alone. SIPp 3.6 answers only the first WWW-Authenticate and only
    with MD5, and the coordinator offers SHA-256 first (RFC 8760 order) with no setting to
    change that (see test_register_with_the_default_challenge)."""
    assert coordinator.authenticator is not None
    auth = attrs.evolve(coordinator.authenticator, algorithms=("MD5",))
    coordinator.authenticator = auth
    coordinator.registrar.authenticator = auth


async def register(port: int, local_port: int, calls: int, password: str) -> SippResult:
    return await sipp_uac(port, local_port, scenario("uac_register_auth.xml"), calls, rate=50,
                          extra=["-s", "alice", "-au", "alice", "-ap", password], timeout=10)


async def test_register_with_digest(sipp, unused_udp_port_pair):
    coordinator = builder().user("alice", "secret").build()
    md5_challenges_only(coordinator)
    async with coordinator:
        good = await register(coordinator.port(), unused_udp_port_pair[0], 50, "secret")
        assert_clean(good, 50)
        # One AOR, one Contact: every REGISTER refreshed the same binding.
        assert coordinator.stats().registrations == 1
        bad = await register(coordinator.port(), unused_udp_port_pair[1], 5, "wrong")
        assert (bad.successful, bad.failed) == (0, 5)
        assert (await drained(coordinator))[2] == 0


@pytest.mark.xfail(strict=True, reason="coordinator challenges SHA-256 first, no way to offer "
                   "MD5 alone; SIPp (and older UAs) answer only the first challenge")
async def test_register_with_the_default_challenge(sipp, unused_udp_port_pair):
    async with builder().user("alice", "secret").build() as coordinator:
        good = await register(coordinator.port(), unused_udp_port_pair[0], 5, "secret")
        assert_clean(good, 5)


async def test_hold_and_resume_by_the_caller(sipp, unused_udp_port_pair):
    handler = Recorder()
    async with builder(handler).build() as coordinator:
        events = coordinator.subscribe_to_session_events()
        result = await sipp_uac(coordinator.port(), unused_udp_port_pair[0],
                                scenario("uac_hold_resume.xml"), 100, rate=100)
        assert_clean(result, 100)
        assert await drained(coordinator) == (0, 0, 0, 0)
    by_call: dict[str, list[CallState]] = {}
    async for event in events:
        if isinstance(event, CallStateChanged):
            by_call.setdefault(event.session_id, []).append(event.new)
    states = list(by_call.values())
    assert len(states) == 100
    for seen in states:
        assert seen == [CallState.ACTIVE, CallState.ON_HOLD, CallState.ACTIVE, CallState.TERMINATED]
    assert handler.end_kinds() == {(EndKind.REMOTE_HANGUP, None): 100}


async def test_cancel_while_ringing(sipp, unused_udp_port_pair):
    handler = Recorder(lambda call: CallDecision.defer())
    async with builder(handler).build() as coordinator:
        result = await sipp_uac(coordinator.port(), unused_udp_port_pair[0],
                                scenario("uac_cancel.xml"), 100, rate=100)
        assert_clean(result, 100)
        assert await drained(coordinator) == (0, 0, 0, 0)
    assert len(handler.incoming) == 100
    assert handler.established == []
    assert handler.end_kinds() == {(EndKind.CANCELLED, 487): 100}


async def test_coordinator_rejects(sipp, unused_udp_port_pair, tmp_path):
    handler = Recorder(lambda call: CallDecision.reject(486))
    log = tmp_path / "sipp.log"
    async with builder(handler).build() as coordinator:
        result = await sipp_uac(coordinator.port(), unused_udp_port_pair[0],
                                scenario("uac_rejected.xml"), 50, rate=100,
                                extra=["-trace_logs", "-log_file", str(log)])
        assert_clean(result, 50)
        assert await drained(coordinator) == (0, 0, 0, 0)
    assert Counter(log.read_text().split()) == {"final=486": 50}
    assert handler.end_kinds() == {(EndKind.REJECTED, 486): 50}


# -- the coordinator calling a SIPp UAS --


async def place_calls(coordinator: SessionCoordinator, port: int, calls: int,
                      body: Callable[[CallSession], Awaitable[None]],
                      parallel: int = 50) -> list[CallSession]:
    """Place ``calls`` calls to SIPp on ``port``, at most ``parallel`` at a time; each call is
    handed to ``body`` once placed."""
    limiter = trio.CapacityLimiter(parallel)
    placed: list[CallSession] = []

    async def one(n: int) -> None:
        async with limiter:
            call = await coordinator.make_call(f"sip:service@127.0.0.1:{port}", from_user=f"u{n}")
            placed.append(call)
            await body(call)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for n in range(calls):
                nursery.start_soon(one, n)
    return placed


async def test_coordinator_calls_sipp_and_hangs_up(sipp, unused_udp_port_pair):
    sipp_port = unused_udp_port_pair[0]

    async def talk(call: CallSession) -> None:
        assert await call.wait_state(CallState.ACTIVE, timeout=10) is CallState.ACTIVE
        await call.hangup()

    async with builder(timers=CALLER_TIMERS).build() as coordinator:
        async with sipp_uas(sipp_port, "uas", 300) as uas:
            calls = await place_calls(coordinator, sipp_port, 300, talk)
        assert_clean(uas[0], 300)
        assert await drained(coordinator, CALLER_DRAIN) == (0, 0, 0, 0)
    assert Counter(c.end_reason.kind for c in calls) == {EndKind.LOCAL_HANGUP: 300}


async def test_sipp_callee_hangs_up(sipp, unused_udp_port_pair):
    sipp_port = unused_udp_port_pair[0]

    async def wait_for_bye(call: CallSession) -> None:
        with trio.fail_after(10):
            await call.wait_ended()

    async with builder(timers=CALLER_TIMERS).build() as coordinator:
        async with sipp_uas(sipp_port, scenario("uas_bye.xml"), 200, ["-d", "100"]) as uas:
            calls = await place_calls(coordinator, sipp_port, 200, wait_for_bye)
        assert_clean(uas[0], 200)
        assert await drained(coordinator, CALLER_DRAIN) == (0, 0, 0, 0)
    assert Counter(c.end_reason.kind for c in calls) == {EndKind.REMOTE_HANGUP: 200}
    # SIPp hangs up 100 ms after our ACK, and a call is ACTIVE before its ACK goes out
    assert all(c.duration >= 0.09 for c in calls)


async def test_coordinator_holds_and_resumes(sipp, unused_udp_port_pair):
    sipp_port = unused_udp_port_pair[0]

    async def hold_resume(call: CallSession) -> None:
        assert await call.wait_state(CallState.ACTIVE, timeout=10) is CallState.ACTIVE
        await call.hold()
        assert call.state is CallState.ON_HOLD and call.local_hold
        assert call.remote_sdp is not None
        assert call.remote_sdp.media[0].direction is Direction.RECVONLY
        await call.resume()
        assert call.state is CallState.ACTIVE and not call.local_hold
        assert call.remote_sdp.media[0].direction is Direction.SENDRECV
        await call.hangup()

    async with builder(timers=CALLER_TIMERS).build() as coordinator:
        async with sipp_uas(sipp_port, scenario("uas_hold_resume.xml"), 50) as uas:
            calls = await place_calls(coordinator, sipp_port, 50, hold_resume, parallel=20)
        assert_clean(uas[0], 50)
        assert await drained(coordinator, CALLER_DRAIN) == (0, 0, 0, 0)
    assert Counter(c.end_reason.kind for c in calls) == {EndKind.LOCAL_HANGUP: 50}


async def test_coordinator_call_rejected_by_sipp(sipp, unused_udp_port_pair):
    sipp_port = unused_udp_port_pair[0]

    async def rejected(call: CallSession) -> None:
        with trio.fail_after(10):
            await call.wait_ended()

    async with builder().build() as coordinator:
        async with sipp_uas(sipp_port, scenario("uas_reject.xml"), 20) as uas:
            calls = []
            for n in range(20):  # sip:service@ -> the scenario's default, 486
                call = await coordinator.make_call(f"sip:service@127.0.0.1:{sipp_port}")
                await rejected(call)
                calls.append(call)
        assert_clean(uas[0], 20)
        assert await drained(coordinator) == (0, 0, 0, 0)
    assert {(c.end_reason.kind, c.end_reason.status) for c in calls} == {(EndKind.REJECTED, 486)}
