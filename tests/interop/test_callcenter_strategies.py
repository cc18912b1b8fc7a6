"""Each routing strategy end to end: SIPp agents and customers on a running softswitch with the
call engine (harness and witnesses in ``test_callcenter.py``).

Every case is built so that the agent answering each call is determined, and differs from
what the other strategies would pick wherever the setup allows it: the agents' log-in order
(who has been idle longest), a history of earlier calls (how many, how long), skills, weights,
or phones that only ring. Customers call one at a time (the switch idle in between) unless a
step puts several together (each 0.1 s after the one before it arrived). The random
strategies run on the engine's fixed seed: their expected agents are the library's own
strategy functions replayed on that seed, one draw per call (each caller is routed once, on
arrival, with every agent free).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
import pytest

from trio_voip.callcenter import CallCenter
from trio_voip.callcenter.store import CallRecord
from trio_voip.callcenter.strategies import (
    RoutingContext,
    RoutingStats,
    StrategyFunction,
    random_order,
    weighted_random,
)

from .test_callcenter import (
    EPSILON,
    QUEUE,
    RING,
    SEED,
    SLACK,
    A,
    B,
    C,
    Customer,
    Phone,
    Rig,
    Tweak,
    call_center,
    offered_to,
    queue,
    tweak_agent,
    tweak_queue,
)


@attrs.frozen
class Login:
    users: tuple[str, ...]


Step = Login | tuple[Customer, ...]


def login(*users: str) -> Login:
    return Login(users)


def one_by_one(calls: int, hold: float = 0.3) -> tuple[Step, ...]:
    return tuple((Customer(hold),) for _ in range(calls))


def together(calls: int, hold: float = 1.0) -> tuple[Step, ...]:
    return (tuple(Customer(hold, delay=0.1) for _ in range(calls)),)


def replay(strategy: StrategyFunction, calls: int) -> Callable[[CallCenter], list[str]]:
    """The first pick of ``strategy`` for each call, from a generator seeded like the
    engine's, over the queue's agents as the engine has them (weights included)."""

    def expected(engine: CallCenter) -> list[str]:
        rng = random.Random(SEED)
        agents = [agent for agent in engine.agents() if QUEUE in agent.queues]
        stats = {agent.agent_id: RoutingStats(0.0) for agent in agents}
        return [strategy(agents, stats, RoutingContext(rng))[0].agent_id for _ in range(calls)]

    return expected


def offers_together(records: list[CallRecord]) -> None:
    """Ring-all: each call rang every agent at the same moment; the others were cancelled
    when one answered."""
    for r in records:
        assert max(o.at for o in r.offers) - min(o.at for o in r.offers) < EPSILON
        assert all(o.missed_reason == "answered-elsewhere" for o in r.offers
                   if o.agent_id != r.agent_id)


STEP = 1.0  # ring-progressively: one more agent rings every STEP seconds


def offers_a_step_apart(records: list[CallRecord]) -> None:
    for r in records:
        for before, after in zip(r.offers, r.offers[1:]):
            assert STEP - EPSILON <= after.at - before.at < STEP + SLACK
        assert all(o.missed_reason == "answered-elsewhere" for o in r.offers
                   if o.agent_id != r.agent_id)


def spread(records: list[CallRecord]) -> None:
    """The seed spreads the random calls over more than one agent."""
    assert len({r.agent_id for r in records}) >= 2


def spread_without_a(records: list[CallRecord]) -> None:
    """Weights 0.001 / 4 / 1: A never answers; B and C both do."""
    assert {r.agent_id for r in records} == {B, C}


@attrs.frozen
class Case:
    """``answered``: the agent of each call in arrival order (or how to compute it from the
    engine); ``offers``: the agents each call rang, when not only the one that answered."""

    strategy: str
    script: tuple[Step, ...]
    answered: tuple[str, ...] | Callable[[CallCenter], list[str]]
    members: tuple[str, ...] = (A, B, C)
    settings: Mapping[str, object] = attrs.field(factory=dict)
    tweaks: tuple[Tweak, ...] = ()
    phones: Mapping[str, Phone] = attrs.field(factory=dict)
    offers: tuple[tuple[str, ...], ...] | None = None
    check: Callable[[list[CallRecord]], None] | None = None


CASES = {
    # A and B only ring: both are offered every call with C, at once, and cancelled
    "ring-all": Case(
        "ring-all", (login(A, B, C), *one_by_one(2)), answered=(C, C),
        phones={A: RING, B: RING}, offers=((A, B, C),) * 2, check=offers_together,
    ),
    # A took two calls alone, then C and B logged in: A, idle since before they came, takes
    # the next one too (although it took the most calls), then C, idle longer than B
    "longest-idle": Case(
        "longest-idle", (login(A), *one_by_one(2), login(C, B), *one_by_one(2)),
        answered=(A, A, A, C),
    ),
    # logged in C, B, A (C idle longest), but round-robin starts at the first in order and
    # goes round
    "round-robin": Case(
        "round-robin", (login(C, B, A), *one_by_one(4)), answered=(A, B, C, A),
    ),
    # A took two short calls alone; B, logged in after, takes the next two (a long one,
    # then one more although A has been idle longer and talked less)
    "fewest-calls": Case(
        "fewest-calls",
        (login(A), *one_by_one(2), login(B), (Customer(1.5),), (Customer(),)),
        answered=(A, A, B, B), members=(A, B),
    ),
    # A took one long call alone; B, logged in after, takes the next two (the second one
    # although A has been idle longer and answered as many calls)
    "least-talk-time": Case(
        "least-talk-time",
        (login(A), (Customer(2.0),), login(B), *one_by_one(2)),
        answered=(A, B, B), members=(A, B),
    ),
    # the first in order whenever it is free, whoever idled longest; B when A is ringing
    "linear": Case(
        "linear", (login(C, B, A), *one_by_one(2), *together(2)), answered=(A, A, A, B),
    ),
    "random": Case(
        "random", (login(A, B, C), *one_by_one(4)), answered=replay(random_order, 4),
        check=spread,
    ),
    # A's weight is next to nothing: B and C share the calls about 4 to 1
    "weighted-random": Case(
        "weighted-random", (login(A, B, C), *one_by_one(4)),
        answered=replay(weighted_random, 4),
        tweaks=(tweak_agent(A, weight=0.001), tweak_agent(B, weight=4.0)),
        check=spread_without_a,
    ),
    # billing >= 1 required: B (level 5) before A (level 2, first in order, idle longest);
    # C lacks the skill and is never offered a call; A takes one while B is on a call
    "skill-based": Case(
        "skill-based", (login(A, B, C), *one_by_one(2), *together(2)),
        answered=(B, B, B, A),
        tweaks=(tweak_queue(QUEUE, required_skills={"billing": 1}),
                tweak_agent(A, skills={"billing": 2}), tweak_agent(B, skills={"billing": 5})),
    ),
    # A and B only ring; each step adds the next agent in order until C answers
    "ring-progressively": Case(
        "ring-progressively", (login(A, B, C), (Customer(2 * STEP + 1.5),)), answered=(C,),
        settings={"ring_timeout": 10.0}, tweaks=(tweak_queue(QUEUE, progressive_step=STEP),),
        phones={A: RING, B: RING}, offers=((A, B, C),), check=offers_a_step_apart,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_strategy_routes_as_specified(sipp, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    q = queue(strategy=case.strategy, members=case.members, **case.settings)
    async with call_center(tmp_path, [q], *case.tweaks, phones=case.phones) as rig:
        await run_script(rig, case.script)
        records = await rig.finish()
        answered = case.answered if isinstance(case.answered, tuple) else tuple(
            case.answered(rig.engine))
        assert tuple(r.agent_id for r in records) == answered
        offers = case.offers or tuple((agent,) for agent in answered)
        assert tuple(tuple(offered_to(r)) for r in records) == offers
        if case.check is not None:
            case.check(records)


async def run_script(rig: Rig, script: tuple[Step, ...]) -> None:
    for step in script:
        if isinstance(step, Login):
            await rig.login(*step.users)
        else:
            await rig.call(*step)



async def test_ring_all_when_every_phone_answers_one_wins(sipp, tmp_path: Path) -> None:
    """Ring-all with phones that all answer at once: one answer wins the race, the other
    phones' answers are hung up (each phone still sees a complete call); whichever wins, each
    call is bridged with exactly one agent."""
    async with call_center(tmp_path, [queue(strategy="ring-all")]) as rig:
        await rig.login(A, B, C)
        for _ in range(3):
            await rig.call(Customer())
        records = await rig.finish()
    for r in records:
        assert offered_to(r) == [A, B, C] and r.agent_id in (A, B, C)
        assert [o.missed_reason for o in r.offers if o.agent_id != r.agent_id] == [
            "answered-elsewhere"] * 2
