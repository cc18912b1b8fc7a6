"""The impaired in-memory network: loss, duplication, reordering and delay, all in virtual time.

Rates are measured over thousands of datagrams with fixed seeds; the last tests drive two
SipEndpoints across a bad network and check that the transaction layer absorbs it all.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import TransactionTimeout, TransportError, TrioVoipError
from trio_voip.sip import Request, make_response, parse_message
from trio_voip.sip.stack import SipEndpoint
from trio_voip.testing.network import Impairments, MemoryNetwork, MemoryTransport, NetworkStats

A = ("10.0.0.1", 5060)
B = ("10.0.0.2", 5060)
Arrival = tuple[float, int]  # (virtual time, message number)


def request(n: int, method: str = "OPTIONS") -> Request:
    text = (
        f"{method} sip:b@10.0.0.2 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 0.0.0.0\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:b@10.0.0.2>\r\n"
        "From: <sip:a@10.0.0.1>;tag=a1\r\n"
        f"Call-ID: {n}\r\n"
        f"CSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def run_virtual(main: Callable[[], Awaitable[object]]) -> object:
    """trio.run under an autojumping MockClock (for hypothesis, which cannot use fixtures)."""
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def blast(
    network: MemoryNetwork,
    count: int,
    *,
    spacing: float = 0.0,
    transport: str = "UDP",
    settle: float = 10.0,
) -> list[Arrival]:
    """Send ``count`` numbered requests A -> B, ``spacing`` apart; return what B received."""
    arrivals: list[Arrival] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        a = MemoryTransport(network, *A)
        b = MemoryTransport(network, *B, inbound_capacity=4 * count)
        await nursery.start(a.run)
        await nursery.start(b.run)

        async def receive() -> None:
            async for inbound in b.inbound:
                arrivals.append((trio.current_time(), int(inbound.message.call_id)))

        nursery.start_soon(receive)
        for n in range(count):
            await a.send_request(request(n), *B, transport)
            if spacing:
                await trio.sleep(spacing)
        await trio.sleep(settle)
        nursery.cancel_scope.cancel()
    return arrivals


def held_back(arrivals: list[Arrival]) -> set[int]:
    """Messages that arrived after a later-numbered one (the overtaken)."""
    seen_max = -1
    late = set()
    for _, n in arrivals:
        if n < seen_max:
            late.add(n)
        seen_max = max(seen_max, n)
    return late


def assert_in_order(arrivals: list[Arrival]) -> None:
    numbers = [n for _, n in arrivals]
    assert numbers == sorted(numbers)


async def test_unimpaired_delivery_is_immediate_and_needs_no_scheduler(autojump_clock) -> None:
    network = MemoryNetwork()
    async with trio.open_nursery() as nursery:
        a, b = network.transport(*A), network.transport(*B)
        await nursery.start(a.run)
        await nursery.start(b.run)
        for n in range(5):
            await a.send_request(request(n), *B)
        got = [b.inbound.receive_nowait().message.call_id for _ in range(5)]
        nursery.cancel_scope.cancel()
    assert got == ["0", "1", "2", "3", "4"]
    assert network.stats == NetworkStats(sent=5, delivered=5)
    assert [p.arrived for p in network.log] == [p.time for p in network.log]


async def test_a_delayed_message_without_the_scheduler_is_an_error(autojump_clock) -> None:
    network = MemoryNetwork(delay=0.01)
    async with trio.open_nursery() as nursery:
        a = network.transport(*A)
        await nursery.start(a.run)
        with pytest.raises(TrioVoipError, match=r"network\.run"):
            await a.send_request(request(0), *B)
        await nursery.start(network.run)
        with pytest.raises(TrioVoipError, match="already running"):
            await network.run()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "fields",
    [{"loss": -0.1}, {"duplicate": 1.5}, {"reorder": math.nan}, {"delay": -1.0},
     {"jitter": math.inf}, {"reorder_hold": math.nan}],
)
def test_impairments_are_validated(fields: dict[str, float]) -> None:
    with pytest.raises(TrioVoipError):
        Impairments(**fields)
    with pytest.raises(TrioVoipError):
        MemoryNetwork(**fields)


async def test_loss_rate(autojump_clock) -> None:
    network = MemoryNetwork(loss=0.2, seed=1)
    arrivals = await blast(network, 4000)
    assert network.stats.sent == 4000
    assert 0.18 < network.stats.lost / 4000 < 0.22
    assert len(arrivals) == network.stats.delivered == 4000 - network.stats.lost
    assert sum(not p.delivered for p in network.log) == network.stats.lost
    assert_in_order(arrivals)


async def test_duplication_rate(autojump_clock) -> None:
    network = MemoryNetwork(duplicate=0.1, seed=2)
    arrivals = await blast(network, 4000)
    copies = Counter(n for _, n in arrivals)
    assert set(copies) == set(range(4000))  # nothing lost
    assert set(copies.values()) == {1, 2}
    twice = sum(1 for c in copies.values() if c == 2)
    assert twice == network.stats.duplicated
    assert 0.08 < twice / 4000 < 0.12
    assert network.stats.delivered == 4000 + twice
    assert_in_order(arrivals)


async def test_reorder_rate_and_what_overtakes(autojump_clock) -> None:
    # one datagram every 10 ms, held ones 50 ms late: each held one is overtaken by ~5
    network = MemoryNetwork(reorder=0.1, reorder_hold=0.05, seed=3)
    t0 = trio.current_time()
    arrivals = await blast(network, 2000, spacing=0.01)
    assert sorted(n for _, n in arrivals) == list(range(2000))
    late = held_back(arrivals)
    assert 0.08 < len(late) / 2000 < 0.12
    assert len(late) == network.stats.reordered  # held ones are overtaken (traffic follows)
    for at, n in arrivals:
        sent_at = t0 + n * 0.01
        assert at == pytest.approx(sent_at + (0.05 if n in late else 0.0))
    # everything not held keeps its order
    assert_in_order([(at, n) for at, n in arrivals if n not in late])


async def test_delay_and_jitter(autojump_clock) -> None:
    network = MemoryNetwork(delay=0.02, jitter=0.06, seed=4)
    t0 = trio.current_time()
    arrivals = await blast(network, 1000, spacing=0.1)  # further apart than the jitter
    latencies = [at - (t0 + n * 0.1) for at, n in arrivals]
    assert len(latencies) == 1000
    assert min(latencies) >= 0.02 - 1e-9 and max(latencies) <= 0.08 + 1e-9
    assert sum(latencies) / 1000 == pytest.approx(0.05, abs=0.003)
    assert max(latencies) - min(latencies) > 0.055  # the jitter really spreads them
    assert_in_order(arrivals)
    assert [p.arrived - p.time for p in network.log] == pytest.approx(latencies)


async def test_jitter_never_reorders_back_to_back_datagrams(autojump_clock) -> None:
    network = MemoryNetwork(delay=0.02, jitter=0.06, duplicate=0.2, seed=5)
    arrivals = await blast(network, 1500, spacing=0.001)
    assert_in_order(arrivals)
    assert len(arrivals) == 1500 + network.stats.duplicated


async def test_tcp_is_only_delayed(autojump_clock) -> None:
    network = MemoryNetwork(
        loss=0.5, duplicate=0.5, reorder=0.5, delay=0.02, jitter=0.06, seed=6,
        drop=lambda packet: True,
    )
    t0 = trio.current_time()
    arrivals = await blast(network, 1000, spacing=0.001, transport="TCP")
    assert [n for _, n in arrivals] == list(range(1000))
    assert all(at - (t0 + n * 0.001) >= 0.02 - 1e-9 for at, n in arrivals)
    assert network.stats == NetworkStats(sent=1000, delivered=1000)


async def test_tcp_to_nobody_is_refused_at_send(autojump_clock) -> None:
    network = MemoryNetwork(delay=0.05)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        a = network.transport(*A)
        await nursery.start(a.run)
        with pytest.raises(TransportError, match="refused"):
            await a.send_request(request(0), *B, "TCP")
        await a.send_request(request(1), *B, "UDP")  # UDP: lost in silence
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [p.delivered for p in network.log] == [False, False]


async def test_receiver_gone_before_arrival(autojump_clock) -> None:
    network = MemoryNetwork(delay=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        a, b = network.transport(*A), network.transport(*B)
        await nursery.start(a.run)
        await nursery.start(b.run)
        await a.send_request(request(0), *B)
        network.unreachable.add(B)
        await trio.sleep(2)
        assert network.in_flight == 0
        nursery.cancel_scope.cancel()
    assert network.stats.delivered == 0 and not network.log[0].delivered


async def test_per_link_impairments(autojump_clock) -> None:
    network = MemoryNetwork(delay=0.01)
    network.links[(A, B)] = Impairments(loss=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        a, b = network.transport(*A), network.transport(*B)
        await nursery.start(a.run)
        await nursery.start(b.run)
        t0 = trio.current_time()
        await a.send_request(request(0), *B)
        await b.send_request(request(1), *A)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [(p.source, p.delivered) for p in network.log] == [(A, False), (B, True)]
    assert network.log[1].arrived == pytest.approx(t0 + 0.01)
    assert network.impairments_for(B, A) == network.impairments
    assert network.stats.lost == 1


async def test_loss_property_and_drop_predicate_still_work(autojump_clock) -> None:
    network = MemoryNetwork(duplicate=0.3, seed=1)
    network.loss = 1.0
    assert network.impairments == Impairments(loss=1.0, duplicate=0.3)
    network.loss = 0.0
    network.drop = lambda packet: packet.data.count(b"Call-ID: 3\r\n") == 1
    arrivals = await blast(network, 10)
    assert 3 not in {n for _, n in arrivals} and len(set(arrivals)) == 9


def arrivals_for(seed: int, impairments: Impairments) -> list[Arrival]:
    async def main() -> list[Arrival]:
        network = MemoryNetwork(seed=seed, **attrs.asdict(impairments))
        return await blast(network, 500, spacing=0.003)

    result = run_virtual(main)
    assert isinstance(result, list)
    return result


def test_a_seed_reproduces_a_run_exactly() -> None:
    bad = Impairments(loss=0.1, duplicate=0.1, reorder=0.1, delay=0.02, jitter=0.06)
    first = arrivals_for(11, bad)
    assert arrivals_for(11, bad) == first
    assert arrivals_for(12, bad) != first
    assert held_back(first)  # the run really was impaired


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    impairments=st.builds(
        Impairments,
        loss=st.floats(0, 1),
        duplicate=st.floats(0, 1),
        reorder=st.floats(0, 1),
        delay=st.floats(0, 0.2),
        jitter=st.floats(0, 0.2),
        reorder_hold=st.floats(0, 0.2),
    ),
    spacing=st.sampled_from([0.0, 0.001, 0.05]),
)
def test_accounting_holds_for_any_impairments(
    seed: int, impairments: Impairments, spacing: float
) -> None:
    async def main() -> tuple[MemoryNetwork, list[Arrival], float]:
        network = MemoryNetwork(seed=seed, **attrs.asdict(impairments))
        t0 = trio.current_time()
        return network, await blast(network, 200, spacing=spacing, settle=1.0), t0

    result = run_virtual(main)
    assert isinstance(result, tuple)
    network, arrivals, t0 = result
    stats = network.stats
    copies = Counter(n for _, n in arrivals)
    assert stats.sent == 200 and network.in_flight == 0
    assert len(arrivals) == stats.delivered == 200 - stats.lost + stats.duplicated
    assert max(copies.values(), default=1) <= 2
    assert sum(not p.delivered for p in network.log) == stats.lost
    longest = impairments.delay + impairments.jitter + impairments.reorder_hold
    for at, n in arrivals:
        assert t0 + n * spacing + impairments.delay - 1e-9 <= at
        # in-order ones may wait for an earlier one, which was sent at most longest before
        assert at <= t0 + n * spacing + longest + 1e-9
    if impairments.reorder == 0:
        assert_in_order(arrivals)


def test_virtual_time_is_fast() -> None:
    start = time.perf_counter()
    arrivals_for(1, Impairments(delay=0.5, jitter=0.5))
    assert time.perf_counter() - start < 2.0


# The transaction layer over a bad network: every retransmission absorbed, every outcome once.


async def serve(endpoint: SipEndpoint, seen: list[str]) -> None:
    async for handle in endpoint.incoming:
        seen.append(handle.request.call_id)
        if handle.request.method == "INVITE":
            await handle.respond(make_response(handle.request, 180, to_tag="b1"))
            await handle.respond(make_response(handle.request, 486, to_tag="b1"))
        else:
            await handle.respond(make_response(handle.request, 200, to_tag="b1"))


@pytest.mark.parametrize("seed", [1, 2])
async def test_transactions_complete_over_a_bad_network(seed: int, autojump_clock) -> None:
    network = MemoryNetwork(
        loss=0.2, duplicate=0.1, reorder=0.1, delay=0.02, jitter=0.06, seed=seed
    )
    seen: list[str] = []
    outcomes: dict[str, list[object]] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        alice = SipEndpoint(network.transport(*A))
        bob = SipEndpoint(network.transport(*B))
        await nursery.start(alice.run)
        await nursery.start(bob.run)
        nursery.start_soon(serve, bob, seen)

        async def one(n: int, method: str) -> None:
            handle = await alice.request(request(n, method), *B)
            outcome: list[object] = outcomes.setdefault(str(n), [])
            try:
                outcome.append((await handle.final_response()).status)
            except TransactionTimeout:
                outcome.append("timeout")

        async with trio.open_nursery() as calls:
            for n in range(200):
                calls.start_soon(one, n, "INVITE" if n % 2 else "OPTIONS")
                await trio.sleep(0.01)
        await trio.sleep(64 * 0.5 + 1)
        assert len(alice.layer) == 0 and len(bob.layer) == 0
        nursery.cancel_scope.cancel()
    assert network.stats.lost and network.stats.duplicated and network.stats.reordered
    # Each request reaches the TU at most once, and each handle ends exactly once. A request
    # can still time out when every copy of it or of its answers is lost (about 0.36**7 for an
    # INVITE here), and trio's shuffled scheduling decides which datagrams the draws hit.
    assert max(Counter(seen).values()) == 1
    assert set(outcomes) == {str(n) for n in range(200)}
    for n, outcome in outcomes.items():
        assert outcome in ([486 if int(n) % 2 else 200], ["timeout"])
        if outcome != ["timeout"]:
            assert n in seen
    assert sum(outcome == ["timeout"] for outcome in outcomes.values()) <= 2
