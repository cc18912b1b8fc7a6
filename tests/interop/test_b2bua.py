"""examples/b2bua.py in this process, between a SIPp caller and a SIPp callee on 127.0.0.1.

Every test counts both SIPp sides (a B2BUA that swallows a BYE or a CANCEL still looks fine
to the caller) and checks that the B2BUA's coordinator holds nothing afterwards.
"""

from __future__ import annotations

import socket
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_voip import CallState, EndKind, EndReason, SessionManagerBuilder, TrioVoipError
from trio_voip.sip.transaction import TimerConfig
from trio_voip.sip.uri import SipUri

from .test_sipp_scenarios import (
    CALLER_DRAIN,
    CALLER_TIMERS,
    FAST_TIMERS,
    assert_clean,
    drained,
    scenario,
    sipp_uac,
    sipp_uas,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from b2bua import B2bua, MediaMode, map_failure  # noqa: E402


async def start_b2bua(nursery: trio.Nursery, target_port: int,
                      timers: TimerConfig = CALLER_TIMERS,
                      media: MediaMode = "passthrough") -> tuple[B2bua, object]:
    # The B2BUA calls SIPp's UAS: the longer Timer A of CALLER_TIMERS (see there).
    b2bua = B2bua(SipUri(host="127.0.0.1", port=target_port), media=media)
    builder = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=["UDP"])
        .timers(timers)
        .limits(max_calls=5000)
        .media_relay(media == "relay")
    )
    coordinator = await nursery.start(b2bua.run, builder)
    return b2bua, coordinator


async def through_b2bua(ports, uac_scen: str, uas_scen: str, calls: int, rate: float = 100,
                        uac_extra: list[str] | None = None, uas_extra: list[str] | None = None,
                        media: MediaMode = "passthrough"):
    """SIPp caller -> B2BUA -> SIPp callee; returns (uac, uas, b2bua, held-after)."""
    uas_port, uac_port = ports
    async with trio.open_nursery() as nursery:
        b2bua, coordinator = await start_b2bua(nursery, uas_port, media=media)
        async with sipp_uas(uas_port, uas_scen, calls, uas_extra) as uas:
            uac = await sipp_uac(coordinator.port(), uac_port, uac_scen, calls, rate=rate,
                                 extra=uac_extra)
        held = await drained(coordinator, CALLER_DRAIN)
        nursery.cancel_scope.cancel()
    return uac, uas[0], b2bua, held


async def test_hundreds_of_calls(sipp, unused_udp_port_pair):
    uac, uas, b2bua, held = await through_b2bua(unused_udp_port_pair, "uac", "uas", 400,
                                                rate=200)
    assert_clean(uac, 400)
    assert_clean(uas, 400)  # every INVITE, ACK and the caller's BYE reached the callee
    assert held == (0, 0, 0, 0)
    assert (b2bua.stats.calls, b2bua.stats.answered, b2bua.stats.active) == (400, 400, 0)


async def test_relay_mode_bridges_every_call(sipp, unused_udp_port_pair):
    # Built-in uac and uas both speak PCMU only, so every pair of legs is bridged on the
    # relay; the 300 ms hold lets the caller's ACK (which triggers the bridge) land first.
    uac, uas, b2bua, held = await through_b2bua(unused_udp_port_pair, "uac", "uas", 100,
                                                rate=50, uac_extra=["-d", "300"], media="relay")
    assert_clean(uac, 100)
    assert_clean(uas, 100)
    assert held == (0, 0, 0, 0)  # both relay endpoints of every call are closed again
    assert (b2bua.stats.answered, b2bua.stats.bridged, b2bua.stats.active) == (100, 100, 0)


def test_relay_mode_needs_a_relaying_coordinator():
    b2bua = B2bua(SipUri(host="127.0.0.1", port=5), media="relay")
    builder = SessionManagerBuilder().listen("127.0.0.1", 0, transports=["UDP"])
    with pytest.raises(TrioVoipError, match="media_relay"):
        trio.run(b2bua.run, builder)
    with pytest.raises(TrioVoipError, match="media mode"):
        B2bua(SipUri(host="127.0.0.1"), media="mix")  # type: ignore[arg-type]


async def test_cancel_propagates_to_the_callee(sipp, unused_udp_port_pair):
    uac, uas, b2bua, held = await through_b2bua(
        unused_udp_port_pair, scenario("uac_cancel.xml"), scenario("uas_ring_cancel.xml"), 100)
    assert_clean(uac, 100)
    assert_clean(uas, 100)  # the callee got a CANCEL and ACKed 487 for each call
    assert held == (0, 0, 0, 0)
    assert (b2bua.stats.cancelled, b2bua.stats.active) == (100, 0)


@pytest.mark.parametrize("media", ["passthrough", "relay"])
async def test_callee_bye_propagates_to_the_caller(sipp, unused_udp_port_pair, media):
    uac, uas, b2bua, held = await through_b2bua(
        unused_udp_port_pair, scenario("uac_wait_bye.xml"), scenario("uas_bye.xml"), 200,
        uas_extra=["-d", "300"], media=media)
    assert_clean(uac, 200)  # every caller got the BYE
    assert_clean(uas, 200)  # every callee's BYE was answered 200
    assert held == (0, 0, 0, 0)
    bridged = 200 if media == "relay" else 0  # the callee's BYE ended each bridge
    assert (b2bua.stats.answered, b2bua.stats.bridged, b2bua.stats.active) == (200, bridged, 0)


@pytest.mark.parametrize(("callee", "caller"), [(486, 486), (603, 603), (404, 404),
                                                (408, 408), (503, 502), (500, 502)])
async def test_callee_rejection_is_mapped(sipp, unused_udp_port_pair, tmp_path, callee, caller):
    log = tmp_path / "uac.log"
    uac, uas, b2bua, held = await through_b2bua(
        unused_udp_port_pair, scenario("uac_rejected.xml"), scenario("uas_reject.xml"), 10,
        uac_extra=["-s", str(callee), "-trace_logs", "-log_file", str(log)])
    assert_clean(uac, 10)
    assert_clean(uas, 10)  # the callee got its ACK
    assert Counter(log.read_text().split()) == {f"final={caller}": 10}
    assert held == (0, 0, 0, 0)
    assert (b2bua.stats.refused, b2bua.stats.active) == (10, 0)


async def test_unreachable_callee_times_out_as_408(sipp, unused_udp_port_pair, tmp_path):
    # Nothing listens on the target port: the callee's INVITE gets no answer (Timer B).
    log = tmp_path / "uac.log"
    dead_port, uac_port = unused_udp_port_pair
    async with trio.open_nursery() as nursery:
        b2bua, coordinator = await start_b2bua(nursery, dead_port, FAST_TIMERS)
        uac = await sipp_uac(coordinator.port(), uac_port, scenario("uac_rejected.xml"), 3,
                             extra=["-trace_logs", "-log_file", str(log)], timeout=20)
        assert await drained(coordinator) == (0, 0, 0, 0)
        nursery.cancel_scope.cancel()
    assert_clean(uac, 3)
    assert Counter(log.read_text().split()) == {"final=408": 3}


def test_failure_mapping_table():
    def m(kind, status=None):
        return map_failure(EndReason(kind, status))[0]

    assert m(EndKind.REJECTED, 486) == 486
    assert m(EndKind.REJECTED, 603) == 603
    assert m(EndKind.NO_ANSWER, 408) == 408
    assert m(EndKind.NO_ANSWER) == 408
    assert m(EndKind.REJECTED, 503) == 502
    assert m(EndKind.REJECTED, 407) == 403
    assert m(EndKind.REDIRECTED, 302) == 480
    assert m(EndKind.FAILED) == 500
    assert map_failure(None)[0] == 500


@given(st.sampled_from(list(EndKind)), st.none() | st.integers(100, 699))
def test_failure_mapping_is_always_a_final_failure(kind, status):
    mapped, reason = map_failure(EndReason(kind, status))
    assert 400 <= mapped <= 699
    assert mapped not in (401, 407)  # a challenge the caller cannot answer
    assert not 500 <= mapped < 600 or mapped in (500, 502)
    if status is not None and 400 <= status < 700 and status not in (401, 407) and status < 500:
        assert mapped == status


async def test_relay_mode_out_of_ports_refuses_with_503(sipp, unused_udp_port_pair, tmp_path):
    # Four relay ports: one call's two endpoints. A second call while it lasts gets 503.
    uas_port, uac_port = unused_udp_port_pair
    log = tmp_path / "uac.log"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        first = probe.getsockname()[1] & ~1
    b2bua = B2bua(SipUri(host="127.0.0.1", port=uas_port), media="relay")
    builder = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=["UDP"])
        .timers(CALLER_TIMERS)
        .rtp_ports(first, first + 3)
        .media_relay(True)
    )
    async with trio.open_nursery() as nursery:
        coordinator = await nursery.start(b2bua.run, builder)
        async with sipp_uas(uas_port, "uas", 1) as uas:
            answered = []

            async def first_call() -> None:
                answered.append(await sipp_uac(coordinator.port(), uac_port, "uac", 1,
                                               extra=["-d", "3000"]))

            async with trio.open_nursery() as callers:
                callers.start_soon(first_call)
                while not b2bua.stats.bridged:
                    await trio.sleep(0.05)
                refused = await sipp_uac(coordinator.port(), _free_port(),
                                         scenario("uac_rejected.xml"), 1,
                                         extra=["-trace_logs", "-log_file", str(log)])
        nursery.cancel_scope.cancel()
    assert_clean(refused, 1)
    assert Counter(log.read_text().split()) == {"final=503": 1}
    assert_clean(answered[0], 1)
    assert_clean(uas[0], 1)  # the first call went through untouched
    assert (b2bua.stats.calls, b2bua.stats.answered, b2bua.stats.refused) == (2, 1, 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_stop_hangs_up_both_legs_of_live_calls(sipp, unused_udp_port_pair):
    # b2bua.stop() (what SIGTERM does) leaves the coordinator normally: every live call gets a
    # BYE on both legs, which both SIPp sides count as success.
    uas_port, uac_port = unused_udp_port_pair
    calls = 20
    async with trio.open_nursery() as nursery:
        b2bua, coordinator = await start_b2bua(nursery, uas_port)
        async with sipp_uas(uas_port, "uas", calls) as uas:
            uac: list = []

            async def caller() -> None:
                uac.append(await sipp_uac(coordinator.port(), uac_port,
                                          scenario("uac_wait_bye.xml"), calls, rate=100))

            nursery.start_soon(caller)
            def up() -> int:  # both legs of a call are ACTIVE once the caller's ACK landed
                return sum(c.state is CallState.ACTIVE for c in coordinator.calls)

            with trio.fail_after(10):
                while up() < 2 * calls:
                    await trio.sleep(0.05)
            b2bua.stop()
    assert_clean(uac[0], calls)
    assert_clean(uas[0], calls)
    assert coordinator.stats().calls == 0
    assert (b2bua.stats.answered, b2bua.stats.active) == (calls, 0)
