"""Call center numbers as a fold over the engine's reports: :class:`MetricsFold`.

The engine's :class:`~.actions.CallerStateChanged`, :class:`~.actions.AgentStateChanged` and
:class:`~.actions.OfferCall` carry timestamps and everything a metric needs, so the same fold
gives the live numbers (the engine feeds it as it goes) and the numbers over any interval
``[t0, t1)`` from a stream of reports (:func:`interval_stats`), such as the one
:func:`stored_reports` rebuilds from the store's call records and agent history. Over an
interval, a count counts events inside it, a time counts the part of each state inside it,
and "current" means at ``t1`` (events from ``t1`` on are ignored).

Definitions: *offered* callers joined the queue; *service level* is the share of callers that
left the queue in the interval (answered + abandoned + overflowed) that were answered within
the queue's threshold; *average speed of answer* is the mean wait of answered callers;
*average handle time* is the mean talk time plus wrap-up of calls that ended; *occupancy* is
the time on a call or wrapping up over the time logged in (any state but OFFLINE).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .actions import (
    Action,
    AgentStateChanged,
    CallerStateChanged,
    OfferCall,
    QueueStats,
)
from .model import AgentId, AgentState, CallerId, CallerState, QueueId
from .store import AgentStateChange, CallOutcome, CallRecord

__all__ = ["AgentStats", "MetricsFold", "interval_stats", "stored_reports", "DEFAULT_THRESHOLD"]

#: Service level threshold (seconds) for a queue the fold was not told about.
DEFAULT_THRESHOLD = 20.0

_BUSY = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})


@attrs.frozen
class AgentStats:
    """An agent's numbers (see the module docstring); ``state`` is its current one."""

    agent_id: AgentId
    state: AgentState
    state_since: float | None
    offered: int
    answered: int
    talk_time: float
    average_handle_time: float | None
    logged_in_time: float
    busy_time: float
    occupancy: float | None


@attrs.define
class _QueueAcc:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0
    rejected: int = 0
    within: int = 0
    wait_sum: float = 0.0
    handled: int = 0
    handle_sum: float = 0.0
    # insertion order is join order, and joins come in time order: the first is the oldest
    waiting: dict[CallerId, float] = attrs.Factory(dict)


@attrs.define
class _AgentAcc:
    state: AgentState = AgentState.OFFLINE
    since: float | None = None
    offered: int = 0
    answered: int = 0
    handled: int = 0
    talk_time: float = 0.0
    handle_sum: float = 0.0
    logged_in: float = 0.0
    busy: float = 0.0


@attrs.define
class MetricsFold:
    """Folds reports (any :data:`~.actions.Action`; the others are ignored) into per-queue and
    per-agent numbers over ``[t0, t1)``. ``thresholds`` maps queue ids to their service level
    threshold in seconds (:data:`DEFAULT_THRESHOLD` for others); it may be updated as queues
    are added."""

    thresholds: dict[QueueId, float] = attrs.Factory(dict)
    t0: float = -math.inf
    t1: float = math.inf
    _queues: dict[QueueId, _QueueAcc] = attrs.field(init=False, factory=dict)
    _agents: dict[AgentId, _AgentAcc] = attrs.field(init=False, factory=dict)

    def apply(self, action: Action) -> None:
        if isinstance(action, CallerStateChanged):
            self._caller(action)
        elif isinstance(action, AgentStateChanged):
            self._agent(action)
        elif isinstance(action, OfferCall):
            if self.t0 <= action.at < self.t1:
                self._agent_acc(action.agent_id).offered += 1

    def apply_all(self, actions: Iterable[Action]) -> None:
        for action in actions:
            self.apply(action)

    def queue_ids(self) -> list[QueueId]:
        return list(self._queues)

    def agent_ids(self) -> list[AgentId]:
        return list(self._agents)

    def queue_stats(self, queue_id: QueueId, now: float) -> QueueStats:
        """The queue's numbers, "current" meaning at ``min(now, t1)``."""
        acc = self._queues.get(queue_id) or _QueueAcc()
        at = min(now, self.t1)
        left = acc.answered + acc.abandoned + acc.overflowed
        oldest = next(iter(acc.waiting.values()), None)
        return QueueStats(
            queue_id=queue_id,
            offered=acc.offered,
            answered=acc.answered,
            abandoned=acc.abandoned,
            overflowed=acc.overflowed,
            rejected=acc.rejected,
            waiting=len(acc.waiting),
            answered_within_threshold=acc.within,
            service_level=acc.within / left if left else None,
            average_speed_of_answer=acc.wait_sum / acc.answered if acc.answered else None,
            average_handle_time=acc.handle_sum / acc.handled if acc.handled else None,
            longest_current_wait=max(0.0, at - oldest) if oldest is not None else 0.0,
        )

    def agent_stats(self, agent_id: AgentId, now: float) -> AgentStats:
        """The agent's numbers, its current state's time counted up to ``min(now, t1)``."""
        acc = self._agents.get(agent_id) or _AgentAcc()
        logged_in, busy = acc.logged_in, acc.busy
        if acc.since is not None:
            open_part = self._overlap(acc.since, min(now, self.t1))
            if acc.state is not AgentState.OFFLINE:
                logged_in += open_part
            if acc.state in _BUSY:
                busy += open_part
        return AgentStats(
            agent_id=agent_id,
            state=acc.state,
            state_since=acc.since,
            offered=acc.offered,
            answered=acc.answered,
            talk_time=acc.talk_time,
            average_handle_time=acc.handle_sum / acc.handled if acc.handled else None,
            logged_in_time=logged_in,
            busy_time=busy,
            occupancy=busy / logged_in if logged_in > 0 else None,
        )

    # -- internals ---------------------------------------------------------------------------

    def _overlap(self, start: float, end: float) -> float:
        return max(0.0, min(end, self.t1) - max(start, self.t0))

    def _agent_acc(self, agent_id: AgentId) -> _AgentAcc:
        acc = self._agents.get(agent_id)
        if acc is None:
            acc = self._agents[agent_id] = _AgentAcc()
        return acc

    def _caller(self, event: CallerStateChanged) -> None:
        if event.at >= self.t1:
            return
        acc = self._queues.get(event.queue_id)
        if acc is None:
            acc = self._queues[event.queue_id] = _QueueAcc()
        counted = event.at >= self.t0
        new = event.new
        if new is CallerState.WAITING:
            if event.old is None:
                acc.waiting[event.caller_id] = event.joined_at
                acc.offered += counted
            return
        if new is CallerState.RINGING:
            return
        acc.waiting.pop(event.caller_id, None)
        if not counted:
            return
        if new is CallerState.BRIDGED:
            wait = event.at - event.joined_at
            acc.answered += 1
            acc.wait_sum += wait
            acc.within += wait <= self.thresholds.get(event.queue_id, DEFAULT_THRESHOLD)
            if event.agent_id is not None:
                self._agent_acc(event.agent_id).answered += 1
        elif new is CallerState.COMPLETED:
            talk = event.at - (event.answered_at if event.answered_at is not None else event.at)
            handle = talk + event.wrap_up
            acc.handled += 1
            acc.handle_sum += handle
            if event.agent_id is not None:
                agent = self._agent_acc(event.agent_id)
                agent.handled += 1
                agent.handle_sum += handle
                agent.talk_time += talk
        elif new is CallerState.ABANDONED:
            acc.abandoned += 1
        elif new is CallerState.OVERFLOWED:
            acc.overflowed += 1
        elif new is CallerState.REJECTED:
            acc.rejected += 1

    def _agent(self, event: AgentStateChanged) -> None:
        if event.at >= self.t1:
            return
        acc = self._agent_acc(event.agent_id)
        if acc.since is not None:
            part = self._overlap(acc.since, event.at)
            if acc.state is not AgentState.OFFLINE:
                acc.logged_in += part
            if acc.state in _BUSY:
                acc.busy += part
        acc.state = event.new
        acc.since = event.at


def interval_stats(
    actions: Iterable[Action],
    t0: float,
    t1: float,
    thresholds: Mapping[QueueId, float] | None = None,
) -> tuple[dict[QueueId, QueueStats], dict[AgentId, AgentStats]]:
    """Every queue's and agent's numbers over ``[t0, t1)`` from a report stream that starts
    when the engine did (earlier events give the state at ``t0``)."""
    fold = MetricsFold(dict(thresholds or {}), t0, t1)
    fold.apply_all(actions)
    queues = {queue_id: fold.queue_stats(queue_id, t1) for queue_id in fold.queue_ids()}
    agents = {agent_id: fold.agent_stats(agent_id, t1) for agent_id in fold.agent_ids()}
    return queues, agents


_Report = CallerStateChanged | AgentStateChanged | OfferCall


def stored_reports(
    records: Iterable[CallRecord], history: Iterable[AgentStateChange]
) -> list[_Report]:
    """The reports the engine gave, rebuilt from what the store keeps of them (call records
    and agent history; times are the store's), in time order: what :func:`interval_stats`
    needs for the numbers of any past interval. A wrap-up lasts until the record's
    ``wrapup_ended_at``."""
    reports: list[_Report] = []
    for record in records:
        reports.extend(_record_reports(record))
    states: dict[str, AgentState] = {}
    for change in history:
        try:
            new = AgentState(change.state)
        except ValueError:  # a state name this engine does not have
            continue
        old = states.get(change.agent_id, AgentState.OFFLINE)
        states[change.agent_id] = new
        reports.append(AgentStateChanged(change.agent_id, old, new, change.at, change.reason))
    reports.sort(key=lambda action: action.at)  # stable: a record's own order is kept
    return reports


def _record_reports(record: CallRecord) -> list[_Report]:
    queue, joined = record.queue_id, record.arrived_at
    if queue is None:
        return []

    def caller(old: CallerState | None, new: CallerState, at: float, **more: Any) -> _Report:
        return CallerStateChanged(record.id, queue, old, new, at, joined, **more)

    if record.outcome is CallOutcome.REJECTED and record.rejected_at is not None:
        return [caller(None, CallerState.REJECTED, record.rejected_at)]  # at the door
    reports: list[_Report] = [caller(None, CallerState.WAITING, joined)]
    reports += [
        OfferCall(f"{record.id}/{n}", record.id, record.session_id, queue, offer.agent_id, "",
                  0.0, offer.at)
        for n, offer in enumerate(record.offers)
    ]
    if record.answered_at is not None:
        answered = {"agent_id": record.agent_id, "answered_at": record.answered_at}
        reports.append(caller(CallerState.RINGING, CallerState.BRIDGED, record.answered_at,
                              **answered))
        if record.ended_at is not None:
            wrap_up = (record.wrapup_ended_at - record.ended_at
                       if record.wrapup_ended_at is not None else 0.0)
            reports.append(caller(CallerState.BRIDGED, CallerState.COMPLETED, record.ended_at,
                                  wrap_up=max(0.0, wrap_up), **answered))
    elif record.abandoned_at is not None:
        reports.append(caller(CallerState.WAITING, CallerState.ABANDONED, record.abandoned_at))
    elif record.overflowed_at is not None:
        reports.append(caller(CallerState.WAITING, CallerState.OVERFLOWED, record.overflowed_at))
    return reports
