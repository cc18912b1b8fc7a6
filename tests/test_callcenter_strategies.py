"""Routing strategies: each orders the eligible agents as documented, deterministically for a
seeded generator, whatever order the agents come in."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from trio_voip.callcenter import Agent, RoutingContext, RoutingStats, Strategy
from trio_voip.callcenter.strategies import (
    STRATEGIES,
    fewest_calls,
    least_talk_time,
    linear,
    longest_idle,
    random_order,
    ring_all,
    round_robin,
    skill_based,
    skill_score,
    weighted_random,
)


def agent(agent_id: str, **kwargs: object) -> Agent:
    return Agent(agent_id, agent_id.upper(), agent_id, **kwargs)  # type: ignore[arg-type]


def ids(agents: list[Agent]) -> list[str]:
    return [a.agent_id for a in agents]


def ctx(seed: int = 0, **kwargs: object) -> RoutingContext:
    return RoutingContext(random.Random(seed), **kwargs)  # type: ignore[arg-type]


TEAM = [agent("a", order=2), agent("b", order=0), agent("c", order=1), agent("d", order=1)]
STATS = {
    "a": RoutingStats(idle_since=5.0, calls_answered=3, talk_time=100.0),
    "b": RoutingStats(idle_since=9.0, calls_answered=1, talk_time=300.0),
    "c": RoutingStats(idle_since=1.0, calls_answered=1, talk_time=50.0),
    "d": RoutingStats(idle_since=1.0, calls_answered=0, talk_time=50.0),
}


def test_linear_and_ring_all_follow_order_then_id() -> None:
    assert ids(linear(TEAM, STATS, ctx())) == ["b", "c", "d", "a"]
    assert ids(ring_all(TEAM, STATS, ctx())) == ["b", "c", "d", "a"]


def test_longest_idle_first() -> None:
    # c and d idle equally long: order (equal) then id decides
    assert ids(longest_idle(TEAM, STATS, ctx())) == ["c", "d", "a", "b"]


def test_fewest_calls_first_then_longest_idle() -> None:
    assert ids(fewest_calls(TEAM, STATS, ctx())) == ["d", "c", "b", "a"]


def test_least_talk_time_first_then_longest_idle() -> None:
    assert ids(least_talk_time(TEAM, STATS, ctx())) == ["c", "d", "a", "b"]


def test_round_robin_starts_after_the_last_offered() -> None:
    assert ids(round_robin(TEAM, STATS, ctx())) == ["b", "c", "d", "a"]
    assert ids(round_robin(TEAM, STATS, ctx(last_offered=(1, "c")))) == ["d", "a", "b", "c"]
    # the last agent left (or is busy): start at the next one in the ring
    assert ids(round_robin(TEAM, STATS, ctx(last_offered=(1, "cc")))) == ["d", "a", "b", "c"]
    # past the end: wrap around
    assert ids(round_robin(TEAM, STATS, ctx(last_offered=(9, "z")))) == ["b", "c", "d", "a"]


def test_skill_based_best_match_first() -> None:
    team = [
        agent("a", skills={"en": 3, "billing": 2}),
        agent("b", skills={"en": 9, "billing": 9}),
        agent("c", skills={"en": 9, "billing": 1, "fr": 10}),
    ]
    required = {"en": 1, "billing": 1}
    stats = {a.agent_id: RoutingStats(0.0) for a in team}
    assert [skill_score(a, required) for a in team] == [5, 18, 10]
    assert ids(skill_based(team, stats, ctx(required_skills=required))) == ["b", "c", "a"]


def test_random_order_is_seeded_and_fair() -> None:
    team = [agent(name) for name in "abcd"]
    stats = {a.agent_id: RoutingStats(0.0) for a in team}
    assert ids(random_order(team, stats, ctx(7))) == ids(random_order(team, stats, ctx(7)))
    rng = random.Random(1)
    context = RoutingContext(rng)
    firsts = Counter(random_order(team, stats, context)[0].agent_id for _ in range(4000))
    assert set(firsts) == set("abcd")
    assert all(850 < count < 1150 for count in firsts.values()), firsts


def test_weighted_random_first_pick_follows_weights() -> None:
    team = [agent("a", weight=1.0), agent("b", weight=3.0), agent("c", weight=6.0)]
    stats = {a.agent_id: RoutingStats(0.0) for a in team}
    rng = random.Random(3)
    context = RoutingContext(rng)
    firsts = Counter(weighted_random(team, stats, context)[0].agent_id for _ in range(10000))
    assert 800 < firsts["a"] < 1200
    assert 2700 < firsts["b"] < 3300
    assert 5600 < firsts["c"] < 6400


agent_sets = st.lists(
    st.builds(
        lambda i, order, weight, level: agent(
            f"x{i}", order=order, weight=weight, skills={"en": level}
        ),
        st.integers(0, 50),
        st.integers(0, 3),
        st.sampled_from([0.5, 1.0, 2.0]),
        st.integers(1, 10),
    ),
    min_size=0,
    max_size=8,
    unique_by=lambda a: a.agent_id,
)


@given(
    team=agent_sets,
    strategy=st.sampled_from(Strategy),
    seed=st.integers(0, 1000),
    data=st.data(),
)
def test_every_strategy_returns_a_permutation_independent_of_input_order(
    team: list[Agent], strategy: Strategy, seed: int, data: st.DataObject
) -> None:
    stats = {
        a.agent_id: RoutingStats(float(i % 3), calls_answered=i % 2, talk_time=float(i % 4))
        for i, a in enumerate(team)
    }
    function = STRATEGIES[strategy]
    ranks = [(a.order, a.agent_id) for a in team] or [(0, "x")]
    last = data.draw(st.none() | st.sampled_from(ranks))
    first = function(team, stats, ctx(seed, required_skills={"en": 1}, last_offered=last))
    shuffled = data.draw(st.permutations(team))
    second = function(shuffled, stats, ctx(seed, required_skills={"en": 1}, last_offered=last))
    assert sorted(ids(first)) == sorted(ids(team))
    assert ids(first) == ids(second)
