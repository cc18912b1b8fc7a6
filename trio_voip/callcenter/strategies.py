"""Routing strategies: which of the agents free to take a caller is offered first.

Each strategy is a pure function ``(agents, stats, context) -> ordered agents``: ``agents`` are
the eligible ones (free, serving the queue with its skills, tier reached; the engine filters),
``stats`` their :class:`RoutingStats`, and ``context`` the queue's :class:`RoutingContext`
(required skills, round-robin memory, the engine's seeded ``random.Random``). The result is a
permutation of ``agents``, best first; ties are broken by ``order`` then ``agent_id`` so the
outcome never depends on the input order. The engine applies tiers before the strategy (it
orders each tier on its own, lowest tier first) and decides how many to ring:
:data:`RINGS_ALL` strategies ring every candidate at once, ring-progressively rings the first
and adds the next one every ``progressive_step``, the rest ring the first only.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeAlias

import attrs

from .model import Agent, AgentId, Strategy

__all__ = [
    "RoutingStats",
    "RoutingContext",
    "StrategyFunction",
    "ring_all",
    "longest_idle",
    "round_robin",
    "fewest_calls",
    "least_talk_time",
    "linear",
    "random_order",
    "weighted_random",
    "skill_based",
    "ring_progressively",
    "skill_score",
    "STRATEGIES",
    "RINGS_ALL",
]


@attrs.frozen
class RoutingStats:
    """What routing knows of an agent: free since ``idle_since`` (login, or the end of its last
    call's wrap-up), ``calls_answered`` and ``talk_time`` since the engine started."""

    idle_since: float
    calls_answered: int = 0
    talk_time: float = 0.0


@attrs.frozen
class RoutingContext:
    """A queue's routing memory: its required skills and the rank ``(order, agent_id)`` of the
    agent it offered last (round-robin starts after that one)."""

    rng: random.Random
    required_skills: Mapping[str, int] = attrs.field(factory=lambda: MappingProxyType({}))
    last_offered: tuple[int, AgentId] | None = None


StrategyFunction: TypeAlias = Callable[
    [Sequence[Agent], Mapping[AgentId, RoutingStats], RoutingContext], list[Agent]
]


def _rank(agent: Agent) -> tuple[int, str]:
    return agent.order, agent.agent_id


def linear(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """Top-down by ``order`` (then id): the first agent always gets the call when free."""
    return sorted(agents, key=_rank)


def ring_all(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """Every agent rings at once; the order only decides the order of the offers."""
    return sorted(agents, key=_rank)


def ring_progressively(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """The agents in ``order``; the engine adds one to the ringing set every step."""
    return sorted(agents, key=_rank)


def longest_idle(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """The agent free for the longest time first."""
    return sorted(agents, key=lambda a: (stats[a.agent_id].idle_since, *_rank(a)))


def round_robin(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """Agents in ``order``, starting with the first one ranked after the queue's last offered
    agent (wrapping around), so successive calls go round the team even as agents come, go
    or are busy."""
    ordered = sorted(agents, key=_rank)
    last = context.last_offered
    if last is None:
        return ordered
    start = next((i for i, agent in enumerate(ordered) if _rank(agent) > last), 0)
    return ordered[start:] + ordered[:start]


def fewest_calls(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """The agent that answered the fewest calls first (longest idle among equals)."""
    return sorted(
        agents,
        key=lambda a: (stats[a.agent_id].calls_answered, stats[a.agent_id].idle_since, *_rank(a)),
    )


def least_talk_time(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """The agent with the least total talk time first (longest idle among equals)."""
    return sorted(
        agents,
        key=lambda a: (stats[a.agent_id].talk_time, stats[a.agent_id].idle_since, *_rank(a)),
    )


def random_order(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """A uniformly random order (from the context's seeded generator)."""
    ordered = sorted(agents, key=_rank)
    context.rng.shuffle(ordered)
    return ordered


def weighted_random(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """A random order where an agent comes first with probability ``weight / total``
    (Efraimidis-Spirakis: sort by ``u ** (1 / weight)``, largest first)."""
    ordered = sorted(agents, key=_rank)
    keys = [context.rng.random() ** (1.0 / agent.weight) for agent in ordered]
    return [agent for _, agent in sorted(zip(keys, ordered), key=lambda p: -p[0])]


def skill_score(agent: Agent, required: Mapping[str, int]) -> int:
    """The sum of the agent's levels in the required skills (0 for a queue requiring none)."""
    return sum(agent.skills.get(name, 0) for name in required)


def skill_based(
    agents: Sequence[Agent], stats: Mapping[AgentId, RoutingStats], context: RoutingContext
) -> list[Agent]:
    """The best skill match first: highest :func:`skill_score` over the queue's required
    skills (an agent lacking one is not eligible at all), longest idle among equals."""
    required = context.required_skills
    return sorted(
        agents,
        key=lambda a: (-skill_score(a, required), stats[a.agent_id].idle_since, *_rank(a)),
    )


STRATEGIES: Mapping[Strategy, StrategyFunction] = MappingProxyType(
    {
        Strategy.RING_ALL: ring_all,
        Strategy.LONGEST_IDLE: longest_idle,
        Strategy.ROUND_ROBIN: round_robin,
        Strategy.FEWEST_CALLS: fewest_calls,
        Strategy.LEAST_TALK_TIME: least_talk_time,
        Strategy.LINEAR: linear,
        Strategy.RANDOM: random_order,
        Strategy.WEIGHTED_RANDOM: weighted_random,
        Strategy.SKILL_BASED: skill_based,
        Strategy.RING_PROGRESSIVELY: ring_progressively,
    }
)

#: Strategies that ring every candidate at once.
RINGS_ALL = frozenset({Strategy.RING_ALL})
