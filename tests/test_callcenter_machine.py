"""The call engine under random traffic: a hypothesis state machine.

Random queues and agents, then random arrivals, abandons, DTMF exits, answers, failures, call
ends, logins, logouts, pauses and time. The machine keeps its own model, built only from its
inputs and the engine's actions, and checks after every step that

* no agent rings or talks beyond its ``max_concurrent``, and no paused or logged-out agent is
  offered a call;
* no caller is lost: every caller that arrived is in exactly one state (waiting, ringing,
  bridged, completed, abandoned, overflowed, rejected), the engine agrees for the live ones,
  and each final state came with its action (Reject, Overflow);
* FIFO: when an agent is offered a caller, no caller ranked ahead of it (higher priority, or
  same priority and earlier) was waiting and could have taken that agent;
* the metrics agree with what happened (offered == answered + abandoned + overflowed +
  waiting, each counted from the inputs);
* an input the model says is illegal raises CallCenterError and changes nothing;
* after ``drain`` (every agent logged in and answering, time running), nobody waits.
"""

from __future__ import annotations

import math

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from trio_voip.callcenter import (
    AUTO_PAUSE_NO_ANSWER,
    Action,
    Agent,
    AgentPauseChanged,
    AgentState,
    AgentStateChanged,
    BridgeCallerToAgent,
    Busy,
    CallCenter,
    Caller,
    CallerState,
    CallerStateChanged,
    CancelOffer,
    EmptyRule,
    OfferCall,
    OfferFailure,
    Overflow,
    PlayAnnouncement,
    Queue,
    Reject,
    Strategy,
    ToQueue,
    ToRecording,
    WrapUpEnded,
)
from trio_voip.errors import CallCenterError

QUEUE_IDS = ("q1", "q2")
LIVE = frozenset({CallerState.WAITING, CallerState.RINGING, CallerState.BRIDGED})
IN_QUEUE = frozenset({CallerState.WAITING, CallerState.RINGING})


@st.composite
def queues(draw: st.DrawFn, queue_id: str) -> Queue:
    other = QUEUE_IDS[1 - QUEUE_IDS.index(queue_id)]
    times = st.sampled_from([1.0, 2.5, 5.0, 10.0, 30.0])
    return Queue(
        queue_id,
        strategy=draw(st.sampled_from(Strategy)),
        max_length=draw(st.none() | st.integers(1, 4)),
        max_wait=draw(st.none() | times),
        overflow=draw(st.sampled_from([Busy(), ToQueue(other), ToRecording("vm")])),
        join_empty=draw(st.sampled_from(EmptyRule)),
        leave_empty=draw(st.sampled_from(EmptyRule)),
        ring_timeout=draw(times),
        retry_delay=draw(st.sampled_from([0.0, 1.0, 5.0])),
        wrap_up_time=draw(st.sampled_from([0.0, 2.0, 10.0])),
        max_no_answer=draw(st.none() | st.integers(1, 3)),
        tier_wait=draw(st.sampled_from([0.0, 3.0, 10.0])),
        required_skills=draw(st.sampled_from([{}, {"en": 1}, {"en": 5}])),
        progressive_step=draw(times),
        announce_every=draw(st.none() | times),
        exit_keys=draw(st.sampled_from([{}, {"0": ToRecording("vm")}, {"9": ToQueue(other)}])),
    )


@st.composite
def agents(draw: st.DrawFn, index: int) -> Agent:
    if index == 0:
        # one agent able to serve every queue, so draining always ends
        return Agent("a0", "Agent 0", "a0", queues=QUEUE_IDS, skills={"en": 10})
    return Agent(
        f"a{index}",
        f"Agent {index}",
        f"a{index}",
        queues=draw(st.sets(st.sampled_from(QUEUE_IDS))),
        skills=draw(st.sampled_from([{}, {"en": 3}, {"en": 7}])),
        max_concurrent=draw(st.integers(1, 2)),
        tier=draw(st.integers(0, 2)),
        order=draw(st.integers(0, 5)),
        weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
    )


@attrs.define
class _Seen:
    """The model's view of one caller."""

    queue_id: str
    priority: int
    joined_at: float
    seq: int
    state: CallerState
    final_action: bool = False  # a Reject or Overflow came with a final state


class CallCenterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.callers: dict[str, _Seen] = {}
        self.offers: dict[str, tuple[str, str]] = {}  # offer -> (caller, agent)
        self.calls: dict[str, str] = {}  # caller -> agent
        self.wrap_ups: set[tuple[str, str]] = set()  # (agent, caller)
        self.logged_in: set[str] = set()
        self.paused: set[str] = set()
        self.elsewhere: dict[str, int] = {}  # agent -> calls outside the call center
        self.agent_states: dict[str, AgentState] = {}
        self.seq = 0
        self.count = 0
        self.joined = {q: 0 for q in QUEUE_IDS}
        self.answered = {q: 0 for q in QUEUE_IDS}
        self.abandoned = {q: 0 for q in QUEUE_IDS}
        self.overflowed = {q: 0 for q in QUEUE_IDS}

    @initialize(
        q1=queues("q1"),
        q2=queues("q2"),
        team=st.integers(1, 5).flatmap(lambda n: st.tuples(*(agents(i) for i in range(n)))),
        seed=st.integers(0, 2**32),
    )
    def setup(self, q1: Queue, q2: Queue, team: tuple[Agent, ...], seed: int) -> None:
        self.engine = CallCenter(seed=seed)
        self.queues = {q1.queue_id: q1, q2.queue_id: q2}
        self.agents = {agent.agent_id: agent for agent in team}
        for queue in (q1, q2):
            self.engine.add_queue(queue)
        for agent in team:
            self.engine.add_agent(agent)
            self.agent_states[agent.agent_id] = AgentState.OFFLINE

    # -- the observer ------------------------------------------------------------------------

    def observe(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, CallerStateChanged):
                self.caller_changed(action)
            elif isinstance(action, OfferCall):
                self.offered(action)
            elif isinstance(action, CancelOffer):
                assert self.offers.pop(action.offer_id) == (action.caller_id, action.agent_id)
            elif isinstance(action, BridgeCallerToAgent):
                assert self.callers[action.caller_id].state is CallerState.BRIDGED
                self.calls[action.caller_id] = action.agent_id
            elif isinstance(action, AgentStateChanged):
                assert self.agent_states[action.agent_id] is action.old
                assert action.at == self.now
                self.agent_states[action.agent_id] = action.new
            elif isinstance(action, AgentPauseChanged):
                if action.reason == AUTO_PAUSE_NO_ANSWER:
                    assert action.paused and action.agent_id in self.logged_in
                    self.paused.add(action.agent_id)
                else:
                    assert (action.agent_id in self.paused) == action.paused
            elif isinstance(action, (Reject, Overflow)):
                seen = self.callers[action.caller_id]
                rejected = isinstance(action, Reject)
                expected = CallerState.REJECTED if rejected else CallerState.OVERFLOWED
                if isinstance(action, Overflow):
                    self.overflowed[action.queue_id] += 1
                    if isinstance(action.target, ToQueue):
                        continue  # the caller's next event is its join (or refusal) there
                assert seen.state is expected, (action, seen)
                seen.final_action = True
            elif isinstance(action, WrapUpEnded):
                self.wrap_ups.remove((action.agent_id, action.caller_id))
                assert action.cut_short == (action.agent_id not in self.logged_in)
            elif isinstance(action, PlayAnnouncement):
                seen = self.callers[action.caller_id]
                assert seen.state in IN_QUEUE and seen.queue_id == action.queue_id
                assert action.position == self.position(action.caller_id)
                if action.estimated_wait is not None:
                    assert action.estimated_wait >= 0

    def caller_changed(self, event: CallerStateChanged) -> None:
        assert event.at == self.now
        if event.old is None:
            seen = self.callers.get(event.caller_id)
            # joining: a new caller, or one overflowing here from the other queue
            assert seen is None or seen.state is CallerState.OVERFLOWED
            self.seq += 1
            self.callers[event.caller_id] = _Seen(
                event.queue_id, self.priority_of(event.caller_id), event.joined_at, self.seq,
                event.new,
            )
            if event.new is CallerState.WAITING:
                self.joined[event.queue_id] += 1
            return
        seen = self.callers[event.caller_id]
        assert seen.queue_id == event.queue_id and seen.state is event.old, (event, seen)
        seen.state = event.new
        if event.new is CallerState.COMPLETED and event.wrap_up > 0:
            assert event.agent_id is not None and event.agent_id in self.logged_in
            assert event.wrap_up == self.queues[event.queue_id].wrap_up_time
            self.wrap_ups.add((event.agent_id, event.caller_id))

    def priority_of(self, caller_id: str) -> int:
        return int(caller_id.split("-")[1])

    def position(self, caller_id: str) -> int:
        me = self.callers[caller_id]
        return 1 + sum(
            1
            for other in self.callers.values()
            if other.queue_id == me.queue_id and other.state in IN_QUEUE
            and (-other.priority, other.seq) < (-me.priority, me.seq)
        )

    def eligible(self, seen: _Seen, agent: Agent) -> bool:
        queue = self.queues[seen.queue_id]
        if seen.queue_id not in agent.queues or not agent.qualifies(queue.required_skills):
            return False
        return queue.tier_wait == 0 or seen.joined_at + agent.tier * queue.tier_wait <= self.now

    def offered(self, offer: OfferCall) -> None:
        agent = self.agents[offer.agent_id]
        assert offer.agent_id in self.logged_in, f"offline agent offered: {offer}"
        assert offer.agent_id not in self.paused, f"paused agent offered: {offer}"
        assert offer.at == self.now
        seen = self.callers[offer.caller_id]
        assert seen.state is CallerState.RINGING and seen.queue_id == offer.queue_id
        assert self.eligible(seen, agent), f"{offer} to an agent that may not take it"
        assert offer.offer_id not in self.offers
        self.offers[offer.offer_id] = (offer.caller_id, offer.agent_id)
        engaged = self.engaged(offer.agent_id)
        assert engaged <= agent.max_concurrent, f"{offer.agent_id} has {engaged} calls"
        mine = (-seen.priority, seen.seq)
        for caller_id, other in self.callers.items():
            if other.state is CallerState.WAITING and (-other.priority, other.seq) < mine:
                assert not self.eligible(other, agent), (
                    f"{offer.agent_id} offered {offer.caller_id} while {caller_id} waited ahead"
                )

    def engaged(self, agent_id: str) -> int:
        ringing = sum(1 for _, agent in self.offers.values() if agent == agent_id)
        wrapping = sum(1 for agent, _ in self.wrap_ups if agent == agent_id)
        calls = sum(1 for agent in self.calls.values() if agent == agent_id)
        return ringing + wrapping + calls + self.elsewhere.get(agent_id, 0)

    def expected_state(self, agent_id: str) -> AgentState:
        if agent_id in self.calls.values():
            return AgentState.ON_CALL
        if any(agent == agent_id for _, agent in self.offers.values()):
            return AgentState.RINGING
        if any(agent == agent_id for agent, _ in self.wrap_ups):
            return AgentState.WRAP_UP
        if agent_id not in self.logged_in:
            return AgentState.OFFLINE
        if agent_id in self.paused:
            return AgentState.PAUSED
        return AgentState.ON_CALL if self.elsewhere.get(agent_id) else AgentState.AVAILABLE

    def do(self, legal: bool, method: str, *args: object) -> None:
        call = getattr(self.engine, method)
        if legal:
            self.observe(call(*args, now=self.now))
            return
        before = self.snapshot()
        with pytest.raises(CallCenterError):
            call(*args, now=self.now)
        assert self.snapshot() == before

    def snapshot(self) -> object:
        return (
            [self.engine.agent_status(a) for a in self.agents],
            [self.engine.waiting(q) for q in QUEUE_IDS],
            self.engine.next_deadline(),
        )

    # -- rules -------------------------------------------------------------------------------

    @rule(index=st.integers(0, 4))
    def login(self, index: int) -> None:
        agent_id = f"a{index % len(self.agents)}"
        legal = agent_id not in self.logged_in
        self.logged_in.add(agent_id)  # before the call: its actions may offer this agent
        self.do(legal, "agent_login", agent_id)

    @rule(index=st.integers(0, 4))
    def logout(self, index: int) -> None:
        agent_id = f"a{index % len(self.agents)}"
        legal = agent_id in self.logged_in
        self.logged_in.discard(agent_id)  # before the call, as the engine sees it
        self.paused.discard(agent_id)
        self.do(legal, "agent_logout", agent_id)

    @rule(index=st.integers(0, 4), reason=st.sampled_from(["lunch", "training"]))
    def pause(self, index: int, reason: str) -> None:
        agent_id = f"a{index % len(self.agents)}"
        legal = agent_id in self.logged_in and agent_id not in self.paused
        if legal:
            self.paused.add(agent_id)
        self.do(legal, "agent_pause", agent_id, reason)
        if legal:
            self.offers_gone_for(agent_id)

    def offers_gone_for(self, agent_id: str) -> None:
        assert all(agent != agent_id for _, agent in self.offers.values())

    @rule(index=st.integers(0, 4))
    def resume(self, index: int) -> None:
        agent_id = f"a{index % len(self.agents)}"
        legal = agent_id in self.paused
        self.paused.discard(agent_id)
        self.do(legal, "agent_resume", agent_id)

    @rule(index=st.integers(0, 4), calls=st.integers(0, 2))
    def calls_elsewhere(self, index: int, calls: int) -> None:
        agent_id = f"a{index % len(self.agents)}"
        self.elsewhere[agent_id] = calls
        self.do(True, "agent_calls_elsewhere", agent_id, calls)

    @rule(data=st.data())
    def redefine_agent(self, data: st.DataObject) -> None:
        """Admin: new queues, skills, tier, order (not its limit: calls in progress stay)."""
        if len(self.agents) < 2:
            return
        index = data.draw(st.integers(1, len(self.agents) - 1))
        old = self.agents[f"a{index}"]
        new = attrs.evolve(data.draw(agents(index)), max_concurrent=old.max_concurrent)
        self.agents[new.agent_id] = new
        self.observe(self.engine.update_agent(new, now=self.now))

    @rule(queue_id=st.sampled_from(QUEUE_IDS), strategy=st.sampled_from(Strategy))
    def change_strategy(self, queue_id: str, strategy: Strategy) -> None:
        queue = attrs.evolve(self.queues[queue_id], strategy=strategy)
        self.queues[queue_id] = queue
        self.observe(self.engine.update_queue(queue, now=self.now))

    @rule(queue_id=st.sampled_from(QUEUE_IDS), priority=st.integers(0, 2))
    def arrive(self, queue_id: str, priority: int) -> None:
        self.count += 1
        caller = Caller(f"c-{priority}-{self.count}", f"s{self.count}", priority)
        self.observe(self.engine.caller_arrives(caller, queue_id, now=self.now))
        assert caller.caller_id in self.callers

    def pick_caller(self, data: st.DataObject) -> str | None:
        if not self.callers:
            return None
        return data.draw(st.sampled_from(sorted(self.callers)))

    @rule(data=st.data())
    def abandon(self, data: st.DataObject) -> None:
        caller_id = self.pick_caller(data)
        if caller_id is None:
            return
        seen = self.callers[caller_id]
        legal = seen.state in IN_QUEUE
        self.do(legal, "caller_abandons", caller_id)
        if legal:
            self.abandoned[seen.queue_id] += 1
            assert seen.state is CallerState.ABANDONED

    @rule(data=st.data(), key=st.sampled_from(["0", "9", "5"]))
    def dtmf(self, data: st.DataObject, key: str) -> None:
        caller_id = self.pick_caller(data)
        if caller_id is None:
            return
        seen = self.callers[caller_id]
        self.do(seen.state in IN_QUEUE, "caller_leaves_by_dtmf", caller_id, key)

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        if not self.offers or data.draw(st.integers(0, 9)) == 0:
            self.do(False, "offer_answered", "offer-0")
            return
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        caller_id, _ = self.offers.pop(offer_id)
        queue_id = self.callers[caller_id].queue_id
        self.do(True, "offer_answered", offer_id)
        self.answered[queue_id] += 1
        assert not any(caller == caller_id for caller, _ in self.offers.values())

    @rule(data=st.data(), reason=st.sampled_from(OfferFailure))
    def fail(self, data: st.DataObject, reason: OfferFailure) -> None:
        if not self.offers:
            return
        offer_id = data.draw(st.sampled_from(sorted(self.offers)))
        del self.offers[offer_id]
        self.do(True, "offer_failed", offer_id, reason)

    @rule(data=st.data())
    def end_call(self, data: st.DataObject) -> None:
        caller_id = self.pick_caller(data)
        if caller_id is None:
            return
        legal = self.callers[caller_id].state is CallerState.BRIDGED
        if legal:
            del self.calls[caller_id]  # before the call: its actions may offer the agent again
        self.do(legal, "call_ended", caller_id)

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0, 45.0]))
    def advance(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until(self, target: float) -> None:
        deadline = self.engine.next_deadline()
        while deadline is not None and deadline <= target:
            assert deadline >= self.now
            self.now = deadline
            self.observe(self.engine.on_timer(deadline))
            deadline = self.engine.next_deadline()
        self.now = target

    @rule()
    def drain(self) -> None:
        """Everyone logs in and answers at once, calls end at once: nobody may stay."""
        for agent_id in self.agents:
            if self.elsewhere.get(agent_id):
                self.elsewhere[agent_id] = 0
                self.do(True, "agent_calls_elsewhere", agent_id, 0)
            if agent_id not in self.logged_in:
                self.logged_in.add(agent_id)
                self.do(True, "agent_login", agent_id)
            if agent_id in self.paused:
                self.paused.discard(agent_id)
                self.do(True, "agent_resume", agent_id)
        for _ in range(500):
            # answering and hanging up make new offers: settle before time moves
            while self.offers or self.calls:
                for offer_id in sorted(self.offers):
                    if offer_id in self.offers:  # answering one cancels its siblings
                        caller_id, _ = self.offers.pop(offer_id)
                        self.answered[self.callers[caller_id].queue_id] += 1
                        self.do(True, "offer_answered", offer_id)
                for caller_id in sorted(self.calls):
                    del self.calls[caller_id]
                    self.do(True, "call_ended", caller_id)
            if not any(seen.state in LIVE for seen in self.callers.values()):
                return
            deadline = self.engine.next_deadline()
            assert deadline is not None, "callers wait and nothing will ever happen"
            self.run_until(max(deadline, self.now))
        raise AssertionError("callers still waiting after draining")

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def callers_accounted_for(self) -> None:
        if not hasattr(self, "engine"):
            return
        for caller_id, seen in self.callers.items():
            live = seen.state if seen.state in LIVE else None
            assert self.engine.caller_state(caller_id) is live
            assert (seen.state is CallerState.RINGING) == any(
                caller == caller_id for caller, _ in self.offers.values()
            ), (caller_id, seen)
            if seen.state in (CallerState.REJECTED, CallerState.OVERFLOWED):
                assert seen.final_action, f"{caller_id} {seen.state} without its action"
        live = {c.caller.caller_id: c.agent_id for c in self.engine.live_calls()}
        assert live == self.calls
        for queue_id in QUEUE_IDS:
            waiting = self.engine.waiting(queue_id)
            mine = sorted(
                (
                    c
                    for c, s in self.callers.items()
                    if s.queue_id == queue_id and s.state in IN_QUEUE
                ),
                key=lambda c: (-self.callers[c].priority, self.callers[c].seq),
            )
            assert [w.caller.caller_id for w in waiting] == mine

    @invariant()
    def agents_within_limits(self) -> None:
        if not hasattr(self, "engine"):
            return
        for agent_id, agent in self.agents.items():
            # calls elsewhere may exceed it (not ours to refuse); ours may not
            ours = self.engaged(agent_id) - self.elsewhere.get(agent_id, 0)
            assert ours <= agent.max_concurrent
            assert self.engine.agent_state(agent_id) is self.agent_states[agent_id]
            assert self.agent_states[agent_id] is self.expected_state(agent_id)
            status = self.engine.agent_status(agent_id)
            assert status.logged_in == (agent_id in self.logged_in)
            assert status.paused == (agent_id in self.paused)
            if agent_id not in self.logged_in or agent_id in self.paused:
                assert not status.ringing

    @invariant()
    def no_agent_idles_while_a_caller_it_may_take_waits(self) -> None:
        if not hasattr(self, "engine"):
            return
        waiting = [s for s in self.callers.values() if s.state is CallerState.WAITING]
        for agent_id, agent in self.agents.items():
            status = self.engine.agent_status(agent_id)
            free = (
                agent_id in self.logged_in
                and agent_id not in self.paused
                and self.engaged(agent_id) < agent.max_concurrent
                and status.retry_until <= self.now
            )
            if free:
                assert not any(self.eligible(seen, agent) for seen in waiting), agent_id

    @invariant()
    def metrics_consistent(self) -> None:
        if not hasattr(self, "engine"):
            return
        for queue_id in QUEUE_IDS:
            stats = self.engine.queue_stats(queue_id, self.now)
            waiting = sum(
                1 for s in self.callers.values() if s.queue_id == queue_id and s.state in IN_QUEUE
            )
            assert stats.waiting == waiting
            assert stats.offered == self.joined[queue_id]
            assert stats.answered == self.answered[queue_id]
            assert stats.abandoned == self.abandoned[queue_id]
            assert stats.overflowed == self.overflowed[queue_id]
            assert stats.offered == stats.answered + stats.abandoned + stats.overflowed + waiting
            if stats.service_level is not None:
                assert 0 <= stats.service_level <= 1
            assert stats.longest_current_wait >= 0
            if waiting:
                oldest = min(
                    s.joined_at for s in self.callers.values()
                    if s.queue_id == queue_id and s.state in IN_QUEUE
                )
                assert math.isclose(stats.longest_current_wait, self.now - oldest)


TestCallCenter = CallCenterMachine.TestCase
TestCallCenter.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
