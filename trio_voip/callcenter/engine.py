"""The call engine, sans-IO: :class:`CallCenter`.

Inputs go in as method calls with the current time (``now=``, seconds on any monotonic clock);
each returns the list of :data:`~.actions.Action` it caused, in order. The engine never waits:
it says when it next needs the time (:meth:`CallCenter.next_deadline`) and is told when that
time has come (:meth:`CallCenter.on_timer`), like aioquic's ``get_timer`` /
``handle_timer``. A driver is therefore a loop::

    engine = CallCenter(seed=1)
    engine.add_queue(Queue("sales", strategy=Strategy.LONGEST_IDLE, ring_timeout=20))
    engine.add_agent(Agent("a1", "Ann", "ann", queues={"sales"}))
    perform(engine.agent_login("a1", now=clock()))        # [AgentStateChanged(OFFLINE->AVAILABLE)]
    perform(engine.caller_arrives(Caller("c1", session_id), "sales", now=clock()))
    # [CallerStateChanged(None->WAITING), QueueMetricsChanged, ..., OfferCall("offer-1", ...)]
    ...                                                     # the agent's phone answers:
    perform(engine.offer_answered("offer-1", now=clock()))  # [..., BridgeCallerToAgent(...)]
    # and whenever engine.next_deadline() passes: perform(engine.on_timer(clock()))

**Routing.** After every input the engine offers waiting callers to free agents: callers in
order of priority (higher first) then arrival (FIFO), across all queues; an agent is *free* when
logged in, not paused, with fewer engagements (ringing offers, calls, wrap-ups) than its
``max_concurrent`` and not in its retry delay. A caller's candidates are the free agents that
serve its queue with the required skills and whose tier its wait has reached; the queue's
strategy orders each tier (lowest first) and the engine rings the first candidate, or all of
them (ring-all), or the first and then one more every ``progressive_step``
(ring-progressively). A caller being offered keeps its place in the queue; if every offer
fails it is waiting again at the same position. A caller nobody can take is skipped, so a later
caller (another queue, or agents only it may use) can still be served: FIFO holds among
callers that could take the same agent.

**Misses.** An offer that fails (``offer_failed``) or rings for ``ring_timeout`` (the engine
cancels it) counts a miss against its agent; ``max_no_answer`` misses in a row pause it
(reason :data:`~.model.AUTO_PAUSE_NO_ANSWER`), otherwise it is offered nothing for the
queue's ``retry_delay``. An answer resets the count, as does resuming. A caller goes to the
agents that missed it only after the others that may take it (the strategy's order among
each group), so with no retry delay it moves on rather than ringing the same phone again.

Every input checks its arguments and the state first and raises
:class:`~trio_voip.errors.CallCenterError` before changing anything.

**What a driver does with each action** (on the session coordinator):

* ``OfferCall``: call the agent's phone (``sip_user``) with the offer id attached; its 200 is
  ``offer_answered``; a failure (486/603/408/480...) is ``offer_failed`` (BUSY, REJECTED,
  NO_ANSWER). An answer to an offer no longer open (``offer_open`` is False: cancelled, timed
  out) must be hung up.
* ``CancelOffer``: CANCEL (or hang up) that call to the agent; report nothing back.
* ``BridgeCallerToAgent``: answer the customer if not yet answered, stop its music and
  announcements, ``bridge_sessions(customer, agent leg)``; when either side hangs up (the
  bridge's end), ``call_ended``.
* ``Overflow``: ``ToQueue`` needs nothing (done inside); else record a message, play the
  prompt and hang up, or answer with the busy status. ``Reject``: answer with ``status``.
* ``PlayAnnouncement``: play position and estimated wait over the music on hold.
* The reports (``*Changed``, ``WrapUpEnded``): publish them; store and supervisor feed on them.

Inputs in the other direction: ``agent_login`` / ``agent_logout`` when an agent's phone
registers or unregisters (or an admin says so), ``caller_arrives`` when a customer's call to a
queue's number comes in, ``caller_abandons`` when it hangs up while waiting,
``caller_leaves_by_dtmf`` for each digit it presses, and ``on_timer`` whenever
``next_deadline`` passes (re-read it after every input).
"""

from __future__ import annotations

import bisect
import enum
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Iterator

import attrs

from trio_voip.errors import CallCenterError

from .actions import (
    Action,
    AgentPauseChanged,
    AgentStateChanged,
    BridgeCallerToAgent,
    CallerStateChanged,
    CancelOffer,
    CancelReason,
    LeaveReason,
    OfferCall,
    OfferFailure,
    Overflow,
    PlayAnnouncement,
    QueueMetricsChanged,
    QueueStats,
    Reject,
    WrapUpEnded,
)
from .metrics import AgentStats, MetricsFold
from .model import (
    AUTO_PAUSE_NO_ANSWER,
    Agent,
    AgentId,
    AgentState,
    Caller,
    CallerId,
    CallerState,
    EmptyRule,
    OverflowTarget,
    Queue,
    QueueId,
    Strategy,
    ToQueue,
    check_agent_transition,
    check_caller_transition,
)
from .strategies import STRATEGIES, RINGS_ALL, RoutingContext, RoutingStats

__all__ = ["CallCenter", "AgentStatus", "WaitingCaller", "LiveCall"]

#: SIP statuses for callers refused at the door.
_FULL_STATUS = 486
_EMPTY_STATUS = 480
_NO_QUEUE_STATUS = 503


@attrs.frozen
class AgentStatus:
    """A snapshot of one agent for a supervisor: state, pause, engagements, misses in a row,
    and until when a miss keeps it from new offers (``retry_until``)."""

    agent: Agent
    state: AgentState
    logged_in: bool
    paused: bool
    pause_reason: str | None
    ringing: tuple[str, ...]  # offer ids
    calls: tuple[CallerId, ...]
    wrap_ups: int
    elsewhere: int
    no_answer_count: int
    retry_until: float
    idle_since: float


@attrs.frozen
class WaitingCaller:
    """A snapshot of one caller still in a queue (waiting or being offered)."""

    caller: Caller
    queue_id: QueueId
    state: CallerState
    joined_at: float
    position: int
    offers: tuple[str, ...]


@attrs.frozen
class LiveCall:
    """A caller bridged to an agent, for a supervisor's list of live calls."""

    caller: Caller
    queue_id: QueueId
    agent_id: AgentId
    joined_at: float
    answered_at: float


class _Kind(enum.Enum):
    RING = "ring"  # an offer rang for ring_timeout
    WRAP_UP = "wrap-up"
    MAX_WAIT = "max-wait"
    TIER = "tier"  # a caller's wait reaches the next tier
    RETRY = "retry"  # an agent's retry delay is over
    ANNOUNCE = "announce"
    PROGRESSIVE = "progressive"  # ring one more agent


@attrs.define(eq=False)
class _Timer:
    when: float
    kind: _Kind
    target: object
    cancelled: bool = False


@attrs.define(eq=False)
class _AgentRt:
    agent: Agent
    state: AgentState = AgentState.OFFLINE
    logged_in: bool = False
    paused: bool = False
    pause_reason: str | None = None
    offers: dict[str, _Offer] = attrs.Factory(dict)
    calls: dict[CallerId, _CallerRt] = attrs.Factory(dict)
    # wrap-up timer -> the call it follows (caller, queue)
    wrap_ups: dict[_Timer, tuple[CallerId, QueueId]] = attrs.Factory(dict)
    idle_since: float = 0.0
    no_answer: int = 0
    retry_until: float = -math.inf
    retry_timer: _Timer | None = None
    calls_answered: int = 0
    talk_time: float = 0.0
    # calls the agent's phone is on outside the call center (e.g. extension to extension)
    elsewhere: int = 0

    @property
    def engaged(self) -> int:
        return len(self.offers) + len(self.calls) + len(self.wrap_ups) + self.elsewhere

    def free(self, now: float) -> bool:
        return (
            self.logged_in
            and not self.paused
            and self.engaged < self.agent.max_concurrent
            and self.retry_until <= now
        )

    def derived_state(self) -> AgentState:
        if self.calls:
            return AgentState.ON_CALL
        if self.offers:
            return AgentState.RINGING
        if self.wrap_ups:
            return AgentState.WRAP_UP
        if not self.logged_in:
            return AgentState.OFFLINE
        if self.paused:
            return AgentState.PAUSED
        return AgentState.ON_CALL if self.elsewhere else AgentState.AVAILABLE


@attrs.define(eq=False)
class _CallerRt:
    caller: Caller
    queue: _QueueRt
    joined_at: float
    seq: int
    state: CallerState
    offers: dict[str, _Offer] = attrs.Factory(dict)
    agent: _AgentRt | None = None
    answered_at: float | None = None
    timers: list[_Timer] = attrs.Factory(list)
    # ring-progressively: a step passed, ring one more agent as soon as one is free
    ring_more: bool = False
    # agents that missed an offer of this caller: tried again only after the others
    missed_by: set[_AgentRt] = attrs.Factory(set)

    @property
    def key(self) -> tuple[int, int]:
        return -self.caller.priority, self.seq


@attrs.define(eq=False)
class _Offer:
    offer_id: str
    caller: _CallerRt
    agent: _AgentRt
    timer: _Timer


@attrs.define(eq=False)
class _QueueRt:
    queue: Queue
    # callers still in the queue (waiting or ringing), ordered by _CallerRt.key
    callers: list[_CallerRt] = attrs.Factory(list)
    members: list[_AgentRt] = attrs.Factory(list)
    tiers: tuple[int, ...] = ()
    last_offered: tuple[int, AgentId] | None = None
    recent_waits: deque[float] = attrs.Factory(deque)

    def position(self, caller: _CallerRt) -> int:
        return bisect.bisect_left(self.callers, caller.key, key=_caller_key) + 1


def _caller_key(caller: _CallerRt) -> tuple[int, int]:
    return caller.key


@attrs.define
class CallCenter:
    """Agents, queues and callers, and every routing decision; see the module docstring.

    ``seed`` seeds the random strategies; offer ids are ``offer_prefix`` plus a counter.
    """

    seed: int | None = None
    offer_prefix: str = "offer-"
    _rng: random.Random = attrs.field(init=False)
    _agents: dict[AgentId, _AgentRt] = attrs.field(init=False, factory=dict)
    _queues: dict[QueueId, _QueueRt] = attrs.field(init=False, factory=dict)
    _callers: dict[CallerId, _CallerRt] = attrs.field(init=False, factory=dict)
    _offers: dict[str, _Offer] = attrs.field(init=False, factory=dict)
    _heap: list[tuple[float, int, _Timer]] = attrs.field(init=False, factory=list)
    _counter: Iterator[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _offer_ids: Iterator[int] = attrs.field(init=False, factory=lambda: itertools.count(1))
    _now: float = attrs.field(init=False, default=-math.inf)
    _out: list[Action] = attrs.field(init=False, factory=list)
    _touched: dict[QueueId, None] = attrs.field(init=False, factory=dict)
    _metrics: MetricsFold = attrs.field(init=False, factory=MetricsFold)
    # routing has work only if a caller waits or a progressive ring wants one more agent
    _waiting: int = attrs.field(init=False, default=0)
    _ring_more: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    # -- configuration -----------------------------------------------------------------------

    def add_queue(self, queue: Queue) -> None:
        if not isinstance(queue, Queue):
            raise CallCenterError(f"not a Queue: {queue!r}")
        if queue.queue_id in self._queues:
            raise CallCenterError(f"queue {queue.queue_id!r} already exists")
        waits: deque[float] = deque(maxlen=queue.estimate_window)
        self._queues[queue.queue_id] = _QueueRt(queue, recent_waits=waits)
        self._metrics.thresholds[queue.queue_id] = queue.service_level_threshold
        self._index_members()

    def update_queue(self, queue: Queue, *, now: float) -> list[Action]:
        """Replace a queue's rules. Routing, tier escalation, the estimate window and wrap-up
        use the new ones at once; the max wait and announcement timers of callers already
        waiting keep the times they were set with."""
        rt = self._queue(queue.queue_id) if isinstance(queue, Queue) else None
        if rt is None:
            raise CallCenterError(f"not a Queue: {queue!r}")
        self._begin(now)
        rt.queue = queue
        rt.recent_waits = deque(rt.recent_waits, maxlen=queue.estimate_window)
        self._metrics.thresholds[queue.queue_id] = queue.service_level_threshold
        self._index_members()
        self._reschedule_tiers(rt)
        self._check_leave_empty(rt)
        return self._finish()

    def remove_queue(self, queue_id: QueueId) -> None:
        """Remove a queue nobody waits in (calls it already bridged go on)."""
        rt = self._queue(queue_id)
        if rt.callers:
            raise CallCenterError(f"queue {queue_id!r} still has {len(rt.callers)} callers")
        del self._queues[queue_id]
        self._index_members()

    def add_agent(self, agent: Agent) -> None:
        """A new agent, logged out."""
        if not isinstance(agent, Agent):
            raise CallCenterError(f"not an Agent: {agent!r}")
        if agent.agent_id in self._agents:
            raise CallCenterError(f"agent {agent.agent_id!r} already exists")
        self._agents[agent.agent_id] = _AgentRt(agent)
        self._index_members()

    def update_agent(self, agent: Agent, *, now: float) -> list[Action]:
        """Replace an agent's definition (skills, queues, limits); its state is kept."""
        rt = self._agent(agent.agent_id) if isinstance(agent, Agent) else None
        if rt is None:
            raise CallCenterError(f"not an Agent: {agent!r}")
        self._begin(now)
        before = {q.queue.queue_id for q in self._queues.values() if rt in q.members}
        rt.agent = agent
        self._index_members()
        for queue_id in sorted(before):
            self._check_leave_empty(self._queues[queue_id])
        return self._finish()

    def remove_agent(self, agent_id: AgentId) -> None:
        """Remove an agent that is OFFLINE (logged out, no call left)."""
        rt = self._agent(agent_id)
        if rt.state is not AgentState.OFFLINE:
            raise CallCenterError(f"agent {agent_id!r} is {rt.state.value}, not offline")
        del self._agents[agent_id]
        self._index_members()

    # -- agent inputs ------------------------------------------------------------------------

    def agent_login(self, agent_id: AgentId, *, now: float) -> list[Action]:
        """Log in, unpaused (back in before the last call of a log-out ended: the log-out is
        forgotten). The driver calls it when the agent's phone registers."""
        rt = self._agent(agent_id)
        if rt.logged_in:
            raise CallCenterError(f"agent {agent_id!r} is already logged in")
        self._begin(now)
        rt.logged_in = True
        rt.paused = False
        rt.pause_reason = None
        rt.no_answer = 0
        if not rt.engaged:
            rt.idle_since = now
        self._refresh(rt)
        return self._finish()

    def agent_logout(self, agent_id: AgentId, *, now: float) -> list[Action]:
        """Log out: ringing offers are cancelled and wrap-up dropped at once; calls go on and
        the agent is OFFLINE when the last one ends."""
        rt = self._agent(agent_id)
        if not rt.logged_in:
            raise CallCenterError(f"agent {agent_id!r} is not logged in")
        self._begin(now)
        rt.logged_in = False
        if rt.paused:
            rt.paused = False
            rt.pause_reason = None
            self._emit(AgentPauseChanged(agent_id, False, None, now))
        self._cancel_agent_offers(rt, CancelReason.AGENT_LOGGED_OUT)
        for timer, (caller_id, queue_id) in rt.wrap_ups.items():
            timer.cancelled = True
            self._emit(WrapUpEnded(agent_id, caller_id, queue_id, now, cut_short=True))
        rt.wrap_ups.clear()
        self._refresh(rt)
        self._agent_left(rt)
        return self._finish()

    def agent_pause(self, agent_id: AgentId, reason: str, *, now: float) -> list[Action]:
        """Pause with a reason code: ringing offers are cancelled; calls go on."""
        rt = self._agent(agent_id)
        if not isinstance(reason, str) or not reason:
            raise CallCenterError(f"a pause reason must be a non-empty string, not {reason!r}")
        if not rt.logged_in or rt.paused:
            what = "paused" if rt.paused else "not logged in"
            raise CallCenterError(f"agent {agent_id!r} cannot pause: {what}")
        self._begin(now)
        self._pause(rt, reason)
        return self._finish()

    def agent_resume(self, agent_id: AgentId, *, now: float) -> list[Action]:
        """End a pause (requested or automatic); the miss count starts again from 0."""
        rt = self._agent(agent_id)
        if not rt.paused:
            raise CallCenterError(f"agent {agent_id!r} is not paused")
        self._begin(now)
        rt.paused = False
        rt.pause_reason = None
        rt.no_answer = 0
        self._emit(AgentPauseChanged(agent_id, False, None, now))
        self._refresh(rt)
        return self._finish()

    def agent_calls_elsewhere(self, agent_id: AgentId, calls: int, *, now: float) -> list[Action]:
        """The agent's phone is on ``calls`` calls that are not the call center's (an
        extension call): they count against its ``max_concurrent``, and a logged-in, unpaused
        agent on one is ON_CALL. Idle time (longest-idle) starts again when the last ends."""
        rt = self._agent(agent_id)
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
            raise CallCenterError(f"calls must be a count, not {calls!r}")
        self._begin(now)
        if calls != rt.elsewhere:
            rt.elsewhere = calls
            if not rt.engaged:
                rt.idle_since = now
            self._refresh(rt)
        return self._finish()

    # -- caller inputs -----------------------------------------------------------------------

    def caller_arrives(self, caller: Caller, queue_id: QueueId, *, now: float) -> list[Action]:
        """A caller asks for ``queue_id``: it joins, or is refused (:class:`~.actions.Reject`:
        486 when the queue is full, 480 when its ``join_empty`` rule finds no agents)."""
        if not isinstance(caller, Caller):
            raise CallCenterError(f"not a Caller: {caller!r}")
        if caller.caller_id in self._callers:
            raise CallCenterError(f"caller {caller.caller_id!r} is already in the engine")
        self._queue(queue_id)
        self._begin(now)
        self._join(caller, queue_id)
        return self._finish()

    def caller_abandons(self, caller_id: CallerId, *, now: float) -> list[Action]:
        """The caller hung up while waiting or being offered (a bridged call ends with
        :meth:`call_ended` instead)."""
        rt = self._in_queue(caller_id)
        self._begin(now)
        self._leave_queue(rt, CallerState.ABANDONED)
        return self._finish()

    def caller_leaves_by_dtmf(self, caller_id: CallerId, key: str, *, now: float) -> list[Action]:
        """The waiting caller pressed ``key``: to the queue's destination for it, if any
        (other keys do nothing, so the driver may pass every digit)."""
        rt = self._in_queue(caller_id)
        if not isinstance(key, str):
            raise CallCenterError(f"a DTMF key must be a string, not {key!r}")
        self._begin(now)
        target = rt.queue.queue.exit_keys.get(key)
        if target is not None:
            self._overflow(rt, target, LeaveReason.KEY)
        return self._finish()

    # -- offer and call inputs ---------------------------------------------------------------

    def offer_open(self, offer_id: str) -> bool:
        """Still ringing: an answer to a closed offer (cancelled, timed out) must be hung up."""
        return offer_id in self._offers

    def offer_answered(self, offer_id: str, *, now: float) -> list[Action]:
        """The agent answered: the caller is bridged to it (:class:`~.actions.BridgeCallerToAgent`)
        and the caller's other offers are cancelled. Raises for a closed offer (see
        :meth:`offer_open`)."""
        offer = self._offer(offer_id)
        self._begin(now)
        caller, agent = offer.caller, offer.agent
        self._close_offer(offer)
        for other in list(caller.offers.values()):
            self._cancel_offer(other, CancelReason.ANSWERED_ELSEWHERE)
        self._drop_from_queue(caller)
        caller.agent = agent
        caller.answered_at = now
        agent.calls[caller.caller.caller_id] = caller
        agent.no_answer = 0
        agent.calls_answered += 1
        caller.queue.recent_waits.append(now - caller.joined_at)
        self._caller_to(
            caller, CallerState.BRIDGED, agent_id=agent.agent.agent_id, answered_at=now
        )
        queue_id = caller.queue.queue.queue_id
        self._emit(
            BridgeCallerToAgent(
                offer_id, caller.caller.caller_id, caller.caller.session_id, queue_id,
                agent.agent.agent_id,
            )
        )
        self._refresh(agent)
        return self._finish()

    def offer_failed(self, offer_id: str, reason: OfferFailure, *, now: float) -> list[Action]:
        """The agent's phone did not take the offer: a miss (see the module docstring); the
        caller keeps its place and is offered again."""
        offer = self._offer(offer_id)
        if not isinstance(reason, OfferFailure):
            raise CallCenterError(f"not an OfferFailure: {reason!r}")
        self._begin(now)
        self._missed(offer)
        return self._finish()

    def call_ended(self, caller_id: CallerId, *, now: float) -> list[Action]:
        """The bridged call of ``caller_id`` ended (either side hung up): the agent wraps up
        for the queue's ``wrap_up_time`` (none if it logged out meanwhile)."""
        rt = self._callers.get(caller_id)
        if rt is None or rt.state is not CallerState.BRIDGED or rt.agent is None:
            raise CallCenterError(f"caller {caller_id!r} is not on a call")
        self._begin(now)
        agent = rt.agent
        del agent.calls[caller_id]
        answered_at = rt.answered_at if rt.answered_at is not None else now
        agent.talk_time += now - answered_at
        wrap = rt.queue.queue.wrap_up_time if agent.logged_in else 0.0
        if wrap > 0:
            timer = self._schedule(now + wrap, _Kind.WRAP_UP, agent)
            agent.wrap_ups[timer] = (caller_id, rt.queue.queue.queue_id)
        elif not agent.engaged:
            agent.idle_since = now
        del self._callers[caller_id]
        self._caller_to(
            rt, CallerState.COMPLETED, agent_id=agent.agent.agent_id, answered_at=answered_at,
            wrap_up=wrap,
        )
        self._refresh(agent)
        return self._finish()

    # -- time --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (None: only an input can change
        anything)."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def on_timer(self, now: float) -> list[Action]:
        """Run every timer due at ``now`` (ring timeouts, wrap-up ends, max waits, tier
        escalations, retry delays, announcements, progressive rings), then route."""
        self._begin(now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, timer = heapq.heappop(heap)
            if not timer.cancelled:
                timer.cancelled = True
                self._fire(timer)
        return self._finish()

    # -- queries -----------------------------------------------------------------------------

    def agent_state(self, agent_id: AgentId) -> AgentState:
        return self._agent(agent_id).state

    def agent_elsewhere(self, agent_id: AgentId) -> int:
        """The calls outside the call center last reported for the agent (cheaper than
        :meth:`agent_status` for a driver comparing counts on every call event)."""
        return self._agent(agent_id).elsewhere

    def agent_status(self, agent_id: AgentId) -> AgentStatus:
        rt = self._agent(agent_id)
        return AgentStatus(
            agent=rt.agent,
            state=rt.state,
            logged_in=rt.logged_in,
            paused=rt.paused,
            pause_reason=rt.pause_reason,
            ringing=tuple(rt.offers),
            calls=tuple(rt.calls),
            wrap_ups=len(rt.wrap_ups),
            elsewhere=rt.elsewhere,
            no_answer_count=rt.no_answer,
            retry_until=rt.retry_until,
            idle_since=rt.idle_since,
        )

    def agents(self) -> list[Agent]:
        return [rt.agent for rt in self._agents.values()]

    def queues(self) -> list[Queue]:
        return [rt.queue for rt in self._queues.values()]

    def caller_state(self, caller_id: CallerId) -> CallerState | None:
        """WAITING, RINGING or BRIDGED for a caller the engine holds; None once it is done."""
        rt = self._callers.get(caller_id)
        return rt.state if rt is not None else None

    def waiting(self, queue_id: QueueId) -> list[WaitingCaller]:
        """The callers in a queue, in the order they will be served."""
        rt = self._queue(queue_id)
        return [
            WaitingCaller(c.caller, queue_id, c.state, c.joined_at, index, tuple(c.offers))
            for index, c in enumerate(rt.callers, 1)
        ]

    def live_calls(self) -> list[LiveCall]:
        """Every caller bridged to an agent (in the order they joined their queue)."""
        return [
            LiveCall(c.caller, c.queue.queue.queue_id, c.agent.agent.agent_id, c.joined_at,
                     c.answered_at)
            for c in self._callers.values()
            if c.agent is not None and c.answered_at is not None
        ]

    def queue_stats(self, queue_id: QueueId, now: float) -> QueueStats:
        """Live numbers since the engine started (see :mod:`.metrics`)."""
        self._queue(queue_id)
        return self._metrics.queue_stats(queue_id, now)

    def agent_stats(self, agent_id: AgentId, now: float) -> AgentStats:
        self._agent(agent_id)
        return self._metrics.agent_stats(agent_id, now)

    # -- internals: bookkeeping --------------------------------------------------------------

    def _agent(self, agent_id: AgentId) -> _AgentRt:
        rt = self._agents.get(agent_id)
        if rt is None:
            raise CallCenterError(f"no agent {agent_id!r}")
        return rt

    def _queue(self, queue_id: QueueId) -> _QueueRt:
        rt = self._queues.get(queue_id)
        if rt is None:
            raise CallCenterError(f"no queue {queue_id!r}")
        return rt

    def _offer(self, offer_id: str) -> _Offer:
        offer = self._offers.get(offer_id)
        if offer is None:
            raise CallCenterError(f"offer {offer_id!r} is not open (never made, or closed)")
        return offer

    def _in_queue(self, caller_id: CallerId) -> _CallerRt:
        rt = self._callers.get(caller_id)
        if rt is None or not rt.state.in_queue:
            raise CallCenterError(f"caller {caller_id!r} is not waiting in a queue")
        return rt

    def _begin(self, now: float) -> None:
        if not isinstance(now, (int, float)) or not math.isfinite(now):
            raise CallCenterError(f"now must be a finite number, not {now!r}")
        if now < self._now:
            raise CallCenterError(f"time went backwards: {now} after {self._now}")
        self._now = now
        self._out = []
        self._touched = {}

    def _finish(self) -> list[Action]:
        self._route()
        for queue_id in self._touched:
            stats = self._metrics.queue_stats(queue_id, self._now)
            self._out.append(QueueMetricsChanged(stats, self._now))
        out, self._out = self._out, []
        return out

    def _emit(self, action: Action) -> None:
        self._out.append(action)
        self._metrics.apply(action)

    def _schedule(self, when: float, kind: _Kind, target: object) -> _Timer:
        timer = _Timer(when, kind, target)
        heapq.heappush(self._heap, (when, next(self._counter), timer))
        return timer

    def _index_members(self) -> None:
        """Recompute which agents serve each queue (membership and required skills)."""
        for rt in self._queues.values():
            queue = rt.queue
            rt.members = sorted(
                (
                    agent
                    for agent in self._agents.values()
                    if queue.queue_id in agent.agent.queues
                    and agent.agent.qualifies(queue.required_skills)
                ),
                key=lambda a: (a.agent.order, a.agent.agent_id),
            )
            tiers = tuple(sorted({agent.agent.tier for agent in rt.members}))
            if tiers != rt.tiers:
                rt.tiers = tiers
                self._reschedule_tiers(rt)

    def _reschedule_tiers(self, rt: _QueueRt) -> None:
        """Waiting callers' next escalation depends on the tiers that exist and tier_wait."""
        for caller in rt.callers:
            for timer in caller.timers:
                if timer.kind is _Kind.TIER:
                    timer.cancelled = True
            caller.timers = [t for t in caller.timers if not t.cancelled]
            self._schedule_tier(caller)

    # -- internals: state changes ------------------------------------------------------------

    def _refresh(self, agent: _AgentRt) -> None:
        new = agent.derived_state()
        if new is agent.state:
            return
        check_agent_transition(agent.state, new)
        old, agent.state = agent.state, new
        reason = agent.pause_reason if new is AgentState.PAUSED else None
        self._emit(AgentStateChanged(agent.agent.agent_id, old, new, self._now, reason))

    def _caller_to(
        self,
        caller: _CallerRt,
        new: CallerState,
        *,
        joining: bool = False,
        agent_id: AgentId | None = None,
        answered_at: float | None = None,
        wrap_up: float = 0.0,
    ) -> None:
        previous = None if joining else caller.state
        check_caller_transition(previous, new)
        caller.state = new
        self._waiting += (new is CallerState.WAITING) - (previous is CallerState.WAITING)
        queue_id = caller.queue.queue.queue_id
        self._touched[queue_id] = None
        self._emit(
            CallerStateChanged(
                caller.caller.caller_id, queue_id, previous, new, self._now, caller.joined_at,
                agent_id, answered_at, wrap_up,
            )
        )

    def _pause(self, agent: _AgentRt, reason: str) -> None:
        agent.paused = True
        agent.pause_reason = reason
        self._emit(AgentPauseChanged(agent.agent.agent_id, True, reason, self._now))
        self._cancel_agent_offers(agent, CancelReason.AGENT_PAUSED)
        self._refresh(agent)
        self._agent_left(agent)

    def _agent_left(self, agent: _AgentRt) -> None:
        """An agent stopped taking calls: queues it served may now be empty."""
        for rt in list(self._queues.values()):
            if agent in rt.members:
                self._check_leave_empty(rt)

    def _check_leave_empty(self, rt: _QueueRt) -> None:
        queue = rt.queue
        if rt.callers and self._empty(rt, queue.leave_empty):
            for caller in list(rt.callers):
                self._overflow(caller, queue.overflow, LeaveReason.EMPTY)

    def _empty(self, rt: _QueueRt, rule: EmptyRule) -> bool:
        if rule is EmptyRule.IGNORE:
            return False
        if rule is EmptyRule.RELAXED:
            return not any(agent.logged_in for agent in rt.members)
        return not any(agent.logged_in and not agent.paused for agent in rt.members)

    def _join(self, caller: Caller, queue_id: QueueId) -> None:
        now = self._now
        rt = self._queues.get(queue_id)
        if rt is None:
            # only an overflow target can name a missing queue (arrivals are checked)
            self._reject(caller, queue_id, _NO_QUEUE_STATUS, LeaveReason.UNKNOWN_QUEUE)
            return
        queue = rt.queue
        if queue.max_length is not None and len(rt.callers) >= queue.max_length:
            self._reject(caller, queue_id, _FULL_STATUS, LeaveReason.FULL)
            return
        if self._empty(rt, queue.join_empty):
            self._reject(caller, queue_id, _EMPTY_STATUS, LeaveReason.JOIN_EMPTY)
            return
        entry = _CallerRt(caller, rt, now, next(self._counter), CallerState.WAITING)
        bisect.insort(rt.callers, entry, key=_caller_key)
        self._callers[caller.caller_id] = entry
        self._caller_to(entry, CallerState.WAITING, joining=True)
        if queue.max_wait is not None:
            entry.timers.append(self._schedule(now + queue.max_wait, _Kind.MAX_WAIT, entry))
        if queue.announce_every is not None:
            entry.timers.append(self._schedule(now + queue.announce_every, _Kind.ANNOUNCE, entry))
        self._schedule_tier(entry)

    def _reject(self, caller: Caller, queue_id: QueueId, status: int, reason: LeaveReason) -> None:
        self._touched[queue_id] = None
        now = self._now
        self._emit(
            CallerStateChanged(caller.caller_id, queue_id, None, CallerState.REJECTED, now, now)
        )
        self._emit(Reject(caller.caller_id, caller.session_id, queue_id, status, reason))

    def _schedule_tier(self, caller: _CallerRt) -> None:
        rt = caller.queue
        step = rt.queue.tier_wait
        if step <= 0:
            return
        for tier in rt.tiers:
            when = caller.joined_at + tier * step
            if when > self._now:
                caller.timers.append(self._schedule(when, _Kind.TIER, caller))
                return

    def _drop_from_queue(self, caller: _CallerRt) -> None:
        """Out of the queue list, its timers stopped (its offers must be closed already)."""
        rt = caller.queue
        index = bisect.bisect_left(rt.callers, caller.key, key=_caller_key)
        del rt.callers[index]
        self._set_ring_more(caller, False)
        for timer in caller.timers:
            timer.cancelled = True
        caller.timers.clear()

    def _leave_queue(self, caller: _CallerRt, new: CallerState) -> None:
        for offer in list(caller.offers.values()):
            self._cancel_offer(offer, CancelReason.CALLER_GONE)
        self._drop_from_queue(caller)
        del self._callers[caller.caller.caller_id]
        self._caller_to(caller, new)

    def _overflow(self, caller: _CallerRt, target: OverflowTarget, reason: LeaveReason) -> None:
        self._leave_queue(caller, CallerState.OVERFLOWED)
        c = caller.caller
        self._emit(Overflow(c.caller_id, c.session_id, caller.queue.queue.queue_id, target, reason))
        if isinstance(target, ToQueue):
            self._join(c, target.queue_id)

    # -- internals: offers -------------------------------------------------------------------

    def _make_offer(self, caller: _CallerRt, agent: _AgentRt) -> None:
        queue = caller.queue.queue
        offer_id = f"{self.offer_prefix}{next(self._offer_ids)}"
        timer = self._schedule(self._now + queue.ring_timeout, _Kind.RING, None)
        offer = _Offer(offer_id, caller, agent, timer)
        timer.target = offer
        self._offers[offer_id] = caller.offers[offer_id] = agent.offers[offer_id] = offer
        caller.queue.last_offered = (agent.agent.order, agent.agent.agent_id)
        if caller.state is CallerState.WAITING:
            self._caller_to(caller, CallerState.RINGING)
        c = caller.caller
        self._emit(
            OfferCall(
                offer_id, c.caller_id, c.session_id, queue.queue_id, agent.agent.agent_id,
                agent.agent.sip_user, queue.ring_timeout, self._now,
            )
        )
        self._refresh(agent)

    def _close_offer(self, offer: _Offer) -> None:
        offer.timer.cancelled = True
        del self._offers[offer.offer_id]
        del offer.caller.offers[offer.offer_id]
        del offer.agent.offers[offer.offer_id]

    def _cancel_offer(self, offer: _Offer, reason: CancelReason) -> None:
        """Withdraw a ringing offer without blaming its agent."""
        self._close_offer(offer)
        self._emit(
            CancelOffer(
                offer.offer_id, offer.caller.caller.caller_id, offer.agent.agent.agent_id, reason
            )
        )
        self._refresh(offer.agent)

    def _cancel_agent_offers(self, agent: _AgentRt, reason: CancelReason) -> None:
        for offer in list(agent.offers.values()):
            self._cancel_offer(offer, reason)
            self._back_to_waiting(offer.caller)

    def _set_ring_more(self, caller: _CallerRt, value: bool) -> None:
        if caller.ring_more is not value:
            caller.ring_more = value
            self._ring_more += 1 if value else -1

    def _back_to_waiting(self, caller: _CallerRt) -> None:
        if caller.state is CallerState.RINGING and not caller.offers:
            self._set_ring_more(caller, False)
            for timer in caller.timers:
                if timer.kind is _Kind.PROGRESSIVE:
                    timer.cancelled = True
            caller.timers = [t for t in caller.timers if not t.cancelled]
            self._caller_to(caller, CallerState.WAITING)

    def _missed(self, offer: _Offer) -> None:
        agent, caller = offer.agent, offer.caller
        queue = caller.queue.queue
        self._close_offer(offer)
        self._back_to_waiting(caller)
        caller.missed_by.add(agent)
        agent.no_answer += 1
        if agent.logged_in and not agent.paused and (
            queue.max_no_answer is not None and agent.no_answer >= queue.max_no_answer
        ):
            self._pause(agent, AUTO_PAUSE_NO_ANSWER)
        else:
            if queue.retry_delay > 0:
                until = self._now + queue.retry_delay
                if until > agent.retry_until:
                    agent.retry_until = until
                    if agent.retry_timer is not None:
                        agent.retry_timer.cancelled = True
                    agent.retry_timer = self._schedule(until, _Kind.RETRY, agent)
            self._refresh(agent)

    # -- internals: timers -------------------------------------------------------------------

    def _fire(self, timer: _Timer) -> None:
        kind, target = timer.kind, timer.target
        if kind is _Kind.RING:
            assert isinstance(target, _Offer)
            c = target.caller.caller
            self._emit(
                CancelOffer(target.offer_id, c.caller_id, target.agent.agent.agent_id,
                            CancelReason.RING_TIMEOUT)
            )
            self._missed(target)
        elif kind is _Kind.WRAP_UP:
            assert isinstance(target, _AgentRt)
            caller_id, queue_id = target.wrap_ups.pop(timer)
            self._emit(WrapUpEnded(target.agent.agent_id, caller_id, queue_id, self._now))
            if not target.engaged:
                target.idle_since = self._now
            self._refresh(target)
        elif kind is _Kind.RETRY:
            assert isinstance(target, _AgentRt)
            target.retry_timer = None
        else:
            assert isinstance(target, _CallerRt)
            target.timers.remove(timer)
            self._caller_timer(kind, target)

    def _caller_timer(self, kind: _Kind, caller: _CallerRt) -> None:
        rt = caller.queue
        queue = rt.queue
        if kind is _Kind.MAX_WAIT:
            self._overflow(caller, queue.overflow, LeaveReason.MAX_WAIT)
        elif kind is _Kind.TIER:
            self._schedule_tier(caller)
        elif kind is _Kind.ANNOUNCE:
            c = caller.caller
            self._emit(
                PlayAnnouncement(
                    c.caller_id, c.session_id, queue.queue_id, rt.position(caller),
                    self._estimate(caller),
                )
            )
            every = queue.announce_every
            if every is not None:
                caller.timers.append(self._schedule(self._now + every, _Kind.ANNOUNCE, caller))
        elif kind is _Kind.PROGRESSIVE:
            # the offer itself is made by _route, so callers ahead of this one go first
            self._set_ring_more(caller, True)
            caller.timers.append(
                self._schedule(self._now + queue.progressive_step, _Kind.PROGRESSIVE, caller)
            )

    def _estimate(self, caller: _CallerRt) -> float | None:
        """The mean of the queue's recent answered waits, less what this caller has waited."""
        waits = caller.queue.recent_waits
        if not waits:
            return None
        return max(0.0, sum(waits) / len(waits) - (self._now - caller.joined_at))

    # -- internals: routing ------------------------------------------------------------------

    def _candidates(self, caller: _CallerRt, free: set[_AgentRt]) -> list[_AgentRt]:
        """The free agents that may take ``caller`` now, best first (tiers, then strategy)."""
        rt = caller.queue
        queue = rt.queue
        reach = math.inf
        if queue.tier_wait > 0:
            # the highest tier whose wait has passed (same expression as the tier timers)
            reach = max(
                (t for t in rt.tiers if caller.joined_at + t * queue.tier_wait <= self._now),
                default=-1,
            )
        eligible = [
            agent
            for agent in rt.members
            if agent in free and agent.agent.tier <= reach
            and all(offer.caller is not caller for offer in agent.offers.values())
        ]
        if not eligible:
            return []
        strategy = STRATEGIES[queue.strategy]
        context = RoutingContext(self._rng, queue.required_skills, rt.last_offered)
        stats = {
            agent.agent.agent_id: RoutingStats(
                agent.idle_since, agent.calls_answered, agent.talk_time
            )
            for agent in eligible
        }
        by_id = {agent.agent.agent_id: agent for agent in eligible}
        ordered: list[_AgentRt] = []
        for tier in sorted({agent.agent.tier for agent in eligible}):
            group = [agent.agent for agent in eligible if agent.agent.tier == tier]
            ordered.extend(by_id[a.agent_id] for a in strategy(group, stats, context))
        if caller.missed_by:  # e.g. no retry delay: the next agent, not the one that missed
            ordered.sort(key=lambda agent: agent in caller.missed_by)
        return ordered

    def _route(self) -> None:
        now = self._now
        if not self._waiting and not self._ring_more:
            return
        free = {agent for agent in self._agents.values() if agent.free(now)}
        if not free:
            return
        lists = [rt.callers for rt in self._queues.values() if rt.callers]
        for caller in heapq.merge(*lists, key=_caller_key):
            adding = caller.ring_more and caller.state is CallerState.RINGING
            if caller.state is not CallerState.WAITING and not adding:
                continue
            ordered = self._candidates(caller, free)
            if not ordered:
                continue
            strategy = caller.queue.queue.strategy
            chosen = ordered if strategy in RINGS_ALL else ordered[:1]
            for agent in chosen:
                self._make_offer(caller, agent)
                if not agent.free(now):
                    free.discard(agent)
            if adding:
                self._set_ring_more(caller, False)
            elif strategy is Strategy.RING_PROGRESSIVELY:
                step = caller.queue.queue.progressive_step
                caller.timers.append(self._schedule(now + step, _Kind.PROGRESSIVE, caller))
            if not free:
                return
