"""The call engine on a session coordinator: :class:`CallCenterDriver`.

The engine (:class:`~.engine.CallCenter`) decides; the driver feeds it what happens on the
coordinator and performs what it returns. ``await nursery.start(driver.run)`` starts it; it is
also a softswitch ``QueueRouter`` (``name``, :meth:`~CallCenterDriver.route`,
:meth:`~CallCenterDriver.queue_state`).

* **Time**: one task sleeps until ``engine.next_deadline()`` and calls ``on_timer``; every
  other input wakes it, since an input may move the deadline.
* **Agents** log in when their phone (``sip_user``) has a live registration and out when it
  has none (on each ``RegistrationChanged`` session event); calls their phone is on outside
  the call center count against their limit (:meth:`~CallCenterDriver.calls_elsewhere`).
* **Customers**: :meth:`~CallCenterDriver.route` hands a call to a queue number to the engine
  and answers it, unless the engine refused it at the door (its status). While waiting the
  customer hears music on hold (a looped WAV if given, else ringback) and, for each
  ``PlayAnnouncement``, its position and estimated wait spoken (:mod:`.prompts`; one still
  playing is not cut off by the next), then the music again; moved to another queue (an
  overflow), "please hold". Hanging up while waiting is ``caller_abandons``; each DTMF digit
  is ``caller_leaves_by_dtmf``.
* **Offers**: ``OfferCall`` calls the agent's registered phone; its answer is
  ``offer_answered``, its refusal ``offer_failed``; ``CancelOffer`` hangs that leg up.
  ``BridgeCallerToAgent`` stops the music and bridges the customer with the agent's leg once
  both are up; the first of the two to hang up ends the other, then ``call_ended`` starts the
  agent's wrap-up.
* **Leaving**: ``Overflow`` to a busy target plays the busy tone (``busy_tone`` seconds) and
  hangs up; to an announcement plays its prompt (else "all our agents are busy"), then hangs
  up; to a recording says "please leave a message after the tone", beeps and records the
  customer into ``recordings/<mailbox>/`` until it hangs up (at most ``max_message`` seconds;
  no ``recordings``: hang up); ``Reject`` after the answer (the queue it overflowed into
  refused it) just hangs up.
* **Prompts**: the built-in voice prompts (:class:`~.prompts.PromptSet`); ``prompts`` maps a
  prompt name to a WAV that replaces the built-in one or adds a name. Beeps stand in only if
  the prompts cannot be loaded (logged).
* **Supervisor events**: :meth:`~CallCenterDriver.subscribe_to_events` gives a channel of
  the engine's reports as they happen (:data:`SUPERVISOR_EVENTS`: agent state and pause
  changes, caller state changes, wrap-up ends, queue metrics), each with the engine's time
  (``at``, Trio's clock). A subscriber that falls behind loses events (``events_dropped``).
* **Store**: each phase of a call (:class:`~.store.CallEvent`) and each agent state change
  goes to ``store`` in order through one writer task, so the engine's loop never waits for
  the database; a write the store refuses is logged and skipped.
* **Admin** at runtime: :meth:`~CallCenterDriver.add_agent`, ``update_agent``,
  ``remove_agent``, ``add_queue``, ``update_queue``, ``remove_queue`` change the engine
  first (it checks the definition and the state) and then the store; a store refusal undoes
  the engine's change. An agent record's ``credentials`` are set at the coordinator (its
  phone can register at once). :meth:`~CallCenterDriver.logout` logs an agent out and drops
  its phone's registrations (logged in means registered).
* **Restart**: :meth:`~CallCenterDriver.restore` (before :meth:`~CallCenterDriver.run`)
  reconciles the configured agents and queues (the engine's at that point) with the store
  through its seeds, the definition the configuration last wrote for each
  (:func:`~.store.record_definition`): a configured one that is new or whose definition
  changed since its seed is written to the store and its seed updated, so an edit of the
  configuration applies (an agent keeps its stored pause; its credentials are its user's);
  one whose definition equals its seed is the store's: the stored record wins, so runtime
  edits survive, and with no stored record it was removed at runtime and stays removed.
  One seeded but no longer configured is removed from the store. Those added at runtime
  (never seeded) load from the store. A pause is kept in the store
  (``AgentRecord.paused``) until a resume or a log-out; one that was on at a restart is put
  back when the agent logs in again, before it is offered anything.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from trio_voip.events import EventBus
from trio_voip.errors import (
    CallCenterError, DuplicateRecord, RecordNotFound, StoreError, TrioVoipError,
)
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.playback import FrameListSource, WavSource
from trio_voip.rtp.ticker import PlaybackEnd
from trio_voip.rtp.tones import tone_frames
from trio_voip.sip.digest import PrecomputedHA1
from trio_voip.session import (
    CallDecision,
    CallSession,
    CallState,
    DtmfReceived,
    EndReason,
    RegistrationChanged,
    first_to_end,
    hangup_quietly,
)

from .actions import (
    Action,
    AgentPauseChanged,
    AgentStateChanged,
    BridgeCallerToAgent,
    CallerStateChanged,
    CancelOffer,
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
from .engine import CallCenter
from .model import (
    Agent,
    AgentId,
    AgentState,
    AnnounceAndHangup,
    Busy,
    Caller,
    CallerId,
    CallerState,
    Queue,
    QueueId,
    ToQueue,
    ToRecording,
)
from .prompts import ALL_AGENTS_BUSY, LEAVE_MESSAGE, PLEASE_HOLD, PromptSet, announcement
from .metrics import AgentStats, interval_stats, stored_reports
from .settings import format_target, queue_from_settings, queue_settings
from .store import (
    AgentRecord, AgentStateChange, CallEvent, CallPhase, QueueRecord, Store, record_definition,
)

if TYPE_CHECKING:
    from trio_voip.session import SessionCoordinator
    from trio_voip.softswitch.app import Presence
    from trio_voip.softswitch.config import QueueConfig

__all__ = [
    "CallCenterDriver", "offer_failure", "agent_from_record", "agent_record",
    "queue_from_record", "queue_record", "SUPERVISOR_EVENTS", "SupervisorEvent",
]

#: The engine's reports a supervisor subscribes to (:meth:`CallCenterDriver.subscribe_to_events`).
SUPERVISOR_EVENTS = (
    AgentStateChanged, AgentPauseChanged, CallerStateChanged, WrapUpEnded, QueueMetricsChanged,
)
SupervisorEvent = (
    AgentStateChanged | AgentPauseChanged | CallerStateChanged | WrapUpEnded | QueueMetricsChanged
)

logger = logging.getLogger(__name__)

# A beep: the tone before a recorded message, and what stands in for speech if the prompts
# cannot be loaded. 0.2 s of 660 Hz, 0.2 s apart (whole 20 ms frames).
_BEEP = (660.0,)
_BEEP_CADENCE = ((0.2, 0.2),)
_MAX_BEEPS = 9
# How far before an interval the store is read for the calls and states it overlaps.
_INTERVAL_LOOKBACK = 86400.0
# Session events of every call pass through to reach the registration ones: room for bursts.
_REGISTRATION_BUFFER = 10_000


def offer_failure(reason: EndReason | None) -> OfferFailure:
    """What an agent leg that ended unanswered for ``reason`` tells the engine: 486/600 are
    BUSY, 603 and other refusals REJECTED, no response / 408 / 480 / a CANCEL NO_ANSWER."""
    status = reason.status if reason is not None else None
    if status in (486, 600):
        return OfferFailure.BUSY
    if status is None or status in (408, 480, 487):
        return OfferFailure.NO_ANSWER
    return OfferFailure.REJECTED


def agent_from_record(record: AgentRecord) -> Agent:
    """The engine's agent of a stored one (CallCenterError if the engine refuses it, e.g. a
    skill level beyond 1-10)."""
    return Agent(record.id, record.name, record.sip_user, queues=record.queues,
                 skills=record.skills, max_concurrent=record.max_concurrent, tier=record.tier,
                 order=record.order, weight=record.weight)


def agent_record(
    agent: Agent, pause_reason: str | None = None, credentials: PrecomputedHA1 | None = None
) -> AgentRecord:
    """The stored form of an engine agent (paused when ``pause_reason`` is given)."""
    return AgentRecord(agent.agent_id, agent.name, agent.sip_user, queues=agent.queues,
                       skills=agent.skills, max_concurrent=agent.max_concurrent,
                       tier=agent.tier, order=agent.order, weight=float(agent.weight),
                       paused=pause_reason is not None, pause_reason=pause_reason,
                       credentials=credentials)


def queue_from_record(record: QueueRecord) -> Queue:
    """The engine's queue of a stored one (see :func:`~.settings.queue_from_settings`)."""
    return queue_from_settings(record.id, record.strategy, record.settings)


def queue_record(queue: Queue, name: str = "") -> QueueRecord:
    """The stored form of an engine queue: its strategy and the settings off the defaults."""
    return QueueRecord(queue.queue_id, name, *queue_settings(queue))


def _expect(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise CallCenterError(f"expected a {kind.__name__}, not {value!r}")
    return value


async def _update_or_add(
    update: Callable[[Any], Awaitable[None]], add: Callable[[Any], Awaitable[None]], record: Any
) -> None:
    """Update a stored record, or add it if the store never had it (no restore ran)."""
    try:
        await update(record)
    except RecordNotFound:
        await add(record)


@attrs.frozen
class _KeepPause:
    """For the store writer: write the agent's pause as it is when the writer gets to it."""

    agent_id: AgentId


@attrs.define(eq=False)
class _Customer:
    call: CallSession
    # while route() decides: a Reject among the arrival's actions refuses at the door
    deciding: bool = True
    refused: Reject | None = None
    # the store's record of the caller's current queue (a new one per queue it joins)
    record: str | None = None
    answered: bool = False
    announcing: bool = False


class CallCenterDriver:
    """Runs ``engine`` on ``coordinator`` (see the module docstring). ``store``: where call
    records and agent history go (None: nowhere). ``clock`` must be on Trio's time base
    (the driver sleeps until the engine's deadlines). ``on_change`` is called after every
    input (e.g. the supervisor page's ``notify_changed``)."""

    name = "call engine"

    def __init__(
        self,
        coordinator: SessionCoordinator,
        engine: CallCenter,
        store: Store | None = None,
        clock: Callable[[], float] = trio.current_time,
        *,
        music_on_hold: str | os.PathLike[str] | None = None,
        prompts: Mapping[str, str | os.PathLike[str]] | None = None,
        recordings: str | os.PathLike[str] | None = None,
        max_message: float = 120.0,
        busy_tone: float = 2.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.coordinator = coordinator
        self.engine = engine
        self.store = store
        self.clock = clock
        self.music_on_hold = Path(music_on_hold) if music_on_hold is not None else None
        self.prompts = PromptSet(prompts)
        self.recordings = Path(recordings) if recordings is not None else None
        self.max_message = max_message
        self.busy_tone = busy_tone
        self.on_change = on_change
        self._customers: dict[CallerId, _Customer] = {}
        self._legs: dict[str, CallSession] = {}  # offer id -> the agent's leg
        # for the store: offer id -> agent id and call record; (caller, queue) -> the record
        # of a call whose wrap-up is running
        self._offer_agent: dict[str, str] = {}
        self._offer_records: dict[str, str] = {}
        self._wrap_ups: dict[tuple[CallerId, QueueId], str] = {}
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._events: EventBus[SupervisorEvent] = EventBus()
        self._sources: dict[tuple[str, G711Law], FrameListSource] = {}
        send, receive = trio.open_memory_channel[CallEvent | AgentStateChange | _KeepPause](
            math.inf
        )
        self._to_store, self._store_queue = send, receive
        self._sent = self._written = 0
        self._wrote = trio.Event()
        self._records = itertools.count(1)
        # store times are Unix times; the engine's are on the Trio clock
        self._epoch = 0.0
        # the pause each agent keeps across a restart (as the store has it): set and cleared
        # by the engine's AgentPauseChanged; one still here at a log-in is put back
        self._pauses: dict[AgentId, str] = {}
        #: the name of each queue (the engine's queues have none), for its store record
        self.queue_names: dict[QueueId, str] = {}
        # one admin change (engine, then store) at a time: an undo must find what it undoes
        self._admin = trio.Lock()
        # the SIP users whose credentials came from an agent record (removed with the agent)
        self._given_credentials: set[str] = set()

    # -- running --

    async def run(
        self, *, task_status: trio.TaskStatus[CallCenterDriver] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self._epoch = time.time() - self.clock()
        if self.music_on_hold is not None:
            await self._source("music", self.music_on_hold, G711Law.PCMU)
        try:  # read now, not when the first caller waits
            await self.prompts.load(G711Law.PCMU)
        except TrioVoipError as exc:
            logger.warning("no voice prompts, beeps instead: %s", exc)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.store is not None:
                    nursery.start_soon(self._write_store, self.store)
                # subscribed before the first look, so that no registration is missed
                events = self.coordinator.subscribe_to_session_events(_REGISTRATION_BUFFER)
                self.refresh_agents()
                nursery.start_soon(self._follow_registrations, events)
                task_status.started(self)
                await self._timers()
        finally:
            self._events.close()  # subscribers' channels end with us

    async def _timers(self) -> None:
        while True:
            deadline = self.engine.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self._wake.wait()
            self._wake = trio.Event()
            now = self.clock()
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= now:
                self._perform(self.engine.on_timer(now))

    def _input(self, step: Callable[..., list[Action]], *args: Any) -> None:
        """Feed the engine one input (its time is added) and perform what it returns."""
        if step == self.engine.agent_login and args[0] in self._pauses:
            self._login_paused(args[0])
            return
        self._perform(step(*args, now=self.clock()))

    def _login_paused(self, agent_id: AgentId) -> None:
        """Log in an agent whose pause survived a restart, paused. A log-in routes at once,
        so it is logged in without queues (offered nothing), paused, then given them back."""
        agent = self._agent_def(agent_id)
        now = self.clock()
        actions = self.engine.update_agent(attrs.evolve(agent, queues=()), now=now)
        try:
            actions += self.engine.agent_login(agent_id, now=now)
            actions += self.engine.agent_pause(agent_id, self._pauses[agent_id], now=now)
        finally:  # its queues back, also when the log-in was refused
            actions += self.engine.update_agent(agent, now=now)
        self._perform(actions)

    def _agent_def(self, agent_id: AgentId) -> Agent:
        return self.engine.agent_status(agent_id).agent

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        if self._nursery is None:
            raise CallCenterError("the call-center driver is not running")
        self._nursery.start_soon(fn, *args)

    # -- agents --

    def registered_users(self) -> set[str]:
        """The users with a live registration at the coordinator's registrar."""
        location = self.coordinator.registrar.location
        now = trio.current_time()
        return {
            aor.partition(":")[2].rpartition("@")[0]
            for aor in location.aors()
            if location.lookup(aor, now)
        }

    def refresh_agents(self) -> None:
        """Log agents in or out as their phones' registrations came or went."""
        registered = self.registered_users()
        for agent in self.engine.agents():
            logged_in = self.engine.agent_status(agent.agent_id).logged_in
            if agent.sip_user in registered and not logged_in:
                self._input(self.engine.agent_login, agent.agent_id)
            elif agent.sip_user not in registered and logged_in:
                self._input(self.engine.agent_logout, agent.agent_id)

    async def _follow_registrations(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        async with events:
            async for event in events:
                if isinstance(event, RegistrationChanged):
                    self.refresh_agents()

    def calls_elsewhere(self, sip_user: str, calls: int) -> None:
        """The phone of ``sip_user`` is now on ``calls`` calls outside the call center (e.g.
        extension calls): the engine counts them against its agents' ``max_concurrent``
        and shows them on call."""
        for agent in self.engine.agents():
            if agent.sip_user != sip_user:
                continue
            if self.engine.agent_elsewhere(agent.agent_id) != calls:
                self._input(self.engine.agent_calls_elsewhere, agent.agent_id, calls)

    def pause(self, agent_id: str, reason: str) -> None:
        """Pause an agent (its calls go on; it is offered nothing until :meth:`resume`)."""
        self._input(self.engine.agent_pause, agent_id, reason)

    def resume(self, agent_id: str) -> None:
        self._input(self.engine.agent_resume, agent_id)

    # -- admin: runtime changes, kept in the store --

    def logout(self, agent_id: AgentId) -> None:
        """Log an agent out and drop its phone's registrations: it stays out until the phone
        registers again (its next refresh)."""
        self._input(self.engine.agent_logout, agent_id)
        self.coordinator.drop_registrations(self._agent_def(agent_id).sip_user)

    async def get_agent(self, agent_id: AgentId) -> AgentRecord:
        """The agent as stored (with its credentials), else as the engine has it
        (CallCenterError for an agent the engine does not have)."""
        agent = self._agent_def(agent_id)
        stored = await self.store.get_agent(agent_id) if self.store is not None else None
        return stored if stored is not None else agent_record(agent, self._pauses.get(agent_id))

    def get_queue(self, queue_id: QueueId) -> QueueRecord:
        """The engine's queue as a record (CallCenterError for one it does not have)."""
        return queue_record(self._queue_def(queue_id), self.queue_names.get(queue_id, ""))

    async def add_agent(self, record: AgentRecord) -> None:
        """A new agent, logged out until its phone registers; paused at that log-in if the
        record says so. Its ``credentials`` (if any) are set at the coordinator."""
        agent = agent_from_record(_expect(record, AgentRecord))
        async with self._admin:
            self._check_agent(agent)
            self.engine.add_agent(agent)
            if record.paused:
                self._pauses[agent.agent_id] = record.pause_reason or "paused"
            stored = False
            try:
                if self.store is not None:
                    await self.store.add_agent(self._with_pause(record))
                    stored = True
                self._give_credentials(record)
            except TrioVoipError:
                self.engine.remove_agent(agent.agent_id)
                self._pauses.pop(agent.agent_id, None)
                if stored and self.store is not None:
                    with contextlib.suppress(StoreError):
                        await self.store.remove_agent(agent.agent_id)
                raise
        self._admin_done()

    async def update_agent(self, record: AgentRecord) -> None:
        """Replace an agent's definition; its state is kept, and its pause (the record's is
        ignored: :meth:`pause` and :meth:`resume` change it). New ``credentials`` are set at
        the coordinator; none leaves the coordinator's as they are."""
        agent = agent_from_record(_expect(record, AgentRecord))
        async with self._admin:
            old = self._agent_def(agent.agent_id)
            self._check_agent(agent, old)
            self._input(self.engine.update_agent, agent)
            try:
                if self.store is not None:
                    await _update_or_add(self.store.update_agent, self.store.add_agent,
                                         self._with_pause(record))
                self._give_credentials(record)
            except TrioVoipError:
                self._input(self.engine.update_agent, old)
                raise
        self._admin_done()

    async def remove_agent(self, agent_id: AgentId) -> None:
        """Remove an agent: logged out first (its phone's registrations dropped) unless it is
        on a call (CallCenterError: remove it when the call ended). Credentials its phone
        was given here (a record's) are removed from the coordinator."""
        async with self._admin:
            status = self.engine.agent_status(agent_id)
            if status.calls or status.state is AgentState.ON_CALL:
                raise CallCenterError(f"agent {agent_id!r} is on a call; remove it after")
            if status.logged_in:
                self.logout(agent_id)
            self.engine.remove_agent(agent_id)
            pause = self._pauses.pop(agent_id, None)
            if self.store is not None:
                try:
                    await self.store.remove_agent(agent_id)
                except RecordNotFound:
                    pass  # never stored (no restore, or a store that refused it)
                except StoreError:
                    self.engine.add_agent(status.agent)
                    if pause is not None:
                        self._pauses[agent_id] = pause
                    raise
            sip_user = status.agent.sip_user
            if sip_user in self._given_credentials:
                self._given_credentials.discard(sip_user)
                with contextlib.suppress(TrioVoipError):  # already gone
                    self.coordinator.remove_user(sip_user)
        self._admin_done()

    async def add_queue(self, record: QueueRecord) -> None:
        """A new queue (its id is the number customers call)."""
        queue = queue_from_record(_expect(record, QueueRecord))
        async with self._admin:
            self.engine.add_queue(queue)
            try:
                if self.store is not None:
                    await self.store.add_queue(record)
            except StoreError:
                self.engine.remove_queue(queue.queue_id)
                raise
            self.queue_names[record.id] = record.name
        self._admin_done()

    async def update_queue(self, record: QueueRecord) -> None:
        """Replace a queue's name, strategy and settings (see ``CallCenter.update_queue`` for
        what callers already waiting keep)."""
        queue = queue_from_record(_expect(record, QueueRecord))
        async with self._admin:
            old = self._queue_def(queue.queue_id)
            self._input(self.engine.update_queue, queue)
            try:
                if self.store is not None:
                    await _update_or_add(self.store.update_queue, self.store.add_queue, record)
            except StoreError:
                self._input(self.engine.update_queue, old)
                raise
            self.queue_names[record.id] = record.name
        self._admin_done()

    async def remove_queue(self, queue_id: QueueId) -> None:
        """Remove a queue nobody waits in (CallCenterError otherwise)."""
        async with self._admin:
            old = self._queue_def(queue_id)
            self.engine.remove_queue(queue_id)
            if self.store is not None:
                try:
                    await self.store.remove_queue(queue_id)
                except RecordNotFound:
                    pass
                except StoreError:
                    self.engine.add_queue(old)
                    raise
            self.queue_names.pop(queue_id, None)
        self._admin_done()

    async def restore(self, queue_names: Mapping[QueueId, str] | None = None) -> list[QueueRecord]:
        """Before :meth:`run`: reconcile the engine's agents and queues (the configuration's,
        queues named from ``queue_names``) with the store by the restart rule of the module
        docstring. A record the engine or the store refuses is logged and skipped. Returns
        the engine's queues as they are then."""
        store = self.store
        if store is None:
            raise CallCenterError("the call-center driver has no store to restore from")
        self.queue_names.update(queue_names or {})
        async with self._admin:
            configured = [self.get_queue(queue.queue_id) for queue in self.engine.queues()]
            for record in await self._reconcile(store, "queue", configured):
                try:
                    self._load_queue(record)
                except CallCenterError as exc:
                    logger.warning("stored queue %r not loaded: %s", record.id, exc)
            configured = [agent_record(agent) for agent in self.engine.agents()]
            for agent_rec in await self._reconcile(store, "agent", configured):
                try:
                    self._load_agent(agent_rec)
                except TrioVoipError as exc:
                    logger.warning("stored agent %r not loaded: %s", agent_rec.id, exc)
        return [self.get_queue(queue.queue_id) for queue in self.engine.queues()]

    async def _reconcile(self, store: Store, kind: str, configured: list[Any]) -> list[Any]:
        """The restart rule for the configured records of ``kind`` ("queue" or "agent"): the
        store (and its seeds) brought in line; returns the stored records to load."""
        if kind == "agent":
            stored, add, update, remove = (await store.list_agents(), store.add_agent,
                                           store.update_agent, store.remove_agent)
        else:
            stored, add, update, remove = (await store.list_queues(), store.add_queue,
                                           store.update_queue, store.remove_queue)
        seeds = await store.seeds(kind)
        to_load: dict[str, Any] = {record.id: record for record in stored}
        for record_id in sorted(seeds.keys() - {record.id for record in configured}):
            try:  # dropped from the configuration: from the store too
                if to_load.pop(record_id, None) is not None:
                    await remove(record_id)
                await store.set_seed(kind, record_id, None)
            except StoreError as exc:
                logger.warning("%s %r (no longer configured) not removed: %s", kind, record_id,
                               exc)
        for record in configured:
            definition = record_definition(record)
            if seeds.get(record.id) == definition:  # configured as seeded: the store's word
                if record.id not in to_load:  # removed at runtime: it stays removed
                    self._forget(kind, record.id)
                continue
            old = to_load.pop(record.id, None)  # the engine has the configured one already
            if isinstance(old, AgentRecord) and old.paused:
                record = attrs.evolve(record, paused=True, pause_reason=old.pause_reason)
                self._pauses[record.id] = old.pause_reason or "paused"
            try:
                await (add if old is None else update)(record)
                await store.set_seed(kind, record.id, definition)
            except DuplicateRecord as exc:  # its phone is a stored agent's
                logger.warning("configured %s %r not loaded: %s", kind, record.id, exc)
                self._forget(kind, record.id)
            except StoreError as exc:  # tried again at the next start (its seed is as it was)
                logger.warning("configured %s %r not stored: %s", kind, record.id, exc)
        return list(to_load.values())

    def _forget(self, kind: str, record_id: str) -> None:
        if kind == "agent":
            self.engine.remove_agent(record_id)
            self._pauses.pop(record_id, None)
        else:
            self.engine.remove_queue(record_id)
            self.queue_names.pop(record_id, None)

    def _load_queue(self, record: QueueRecord) -> None:
        queue = queue_from_record(record)
        if any(q.queue_id == queue.queue_id for q in self.engine.queues()):
            self._input(self.engine.update_queue, queue)
        else:
            self.engine.add_queue(queue)
        self.queue_names[record.id] = record.name

    def _load_agent(self, record: AgentRecord) -> None:
        agent = agent_from_record(record)
        if any(a.agent_id == agent.agent_id for a in self.engine.agents()):
            self._input(self.engine.update_agent, agent)
        else:
            self.engine.add_agent(agent)
        if record.paused:
            self._pauses[agent.agent_id] = record.pause_reason or "paused"
        self._give_credentials(record)

    def credentials(self, sip_user: str, password: str) -> PrecomputedHA1:
        """The HA1 values of ``password`` for our Digest realm (what a record stores)."""
        authenticator = self.coordinator.authenticator
        if authenticator is None:
            raise CallCenterError("the coordinator has no users: agents cannot authenticate")
        if not isinstance(password, str) or not password:
            raise CallCenterError("a password must be a non-empty string")
        return PrecomputedHA1.from_password(sip_user, authenticator.realm, password)

    def _check_agent(self, agent: Agent, old: Agent | None = None) -> None:
        """What the engine does not check: the queues it joins exist (one removed since it
        joined may stay), its phone is nobody else's."""
        queues = {queue.queue_id for queue in self.engine.queues()}
        joined = agent.queues - (old.queues if old is not None else frozenset())
        for queue_id in sorted(joined - queues):
            raise CallCenterError(f"agent {agent.agent_id!r}: no queue {queue_id!r}")
        for other in self.engine.agents():
            if other.sip_user == agent.sip_user and other.agent_id != agent.agent_id:
                raise CallCenterError(
                    f"SIP user {agent.sip_user!r} is agent {other.agent_id!r}'s phone"
                )

    def _give_credentials(self, record: AgentRecord) -> None:
        if record.credentials is not None:
            self.coordinator.set_user(record.sip_user, record.credentials)
            self._given_credentials.add(record.sip_user)

    def _queue_def(self, queue_id: QueueId) -> Queue:
        for queue in self.engine.queues():
            if queue.queue_id == queue_id:
                return queue
        raise CallCenterError(f"no queue {queue_id!r}")

    def _with_pause(self, record: AgentRecord) -> AgentRecord:
        reason = self._pauses.get(record.id)
        return attrs.evolve(record, paused=reason is not None, pause_reason=reason)

    def _admin_done(self) -> None:
        if self._nursery is not None:  # e.g. a new agent whose phone is registered already
            self.refresh_agents()
        self._perform([])  # wakes the timers and tells on_change

    # -- metrics over intervals --

    async def interval_metrics(
        self, since: float, until: float
    ) -> tuple[dict[QueueId, QueueStats], dict[AgentId, AgentStats]]:
        """Every queue's and agent's numbers over ``[since, until)`` (Unix times), from the
        store (:func:`~.metrics.stored_reports`): calls that arrived up to a day before
        ``since`` and agent states since then count, so a call's or a state's part inside
        the interval is there. CallCenterError without a store."""
        if self.store is None:
            raise CallCenterError("metrics over intervals need a store")
        await self.flush_store()
        start = since - _INTERVAL_LOOKBACK
        records = await self.store.call_records(start, until)
        history = await self.store.agent_history(since=start, until=until)
        thresholds = {q.queue_id: q.service_level_threshold for q in self.engine.queues()}
        return interval_stats(stored_reports(records, history), since, until, thresholds)

    # -- supervisor events --

    def subscribe_to_events(
        self, buffer: int = 1000
    ) -> trio.MemoryReceiveChannel[SupervisorEvent]:
        """The engine's reports from now on (see the module docstring); the channel ends when
        the driver stops."""
        return self._events.subscribe(buffer)

    @property
    def events_dropped(self) -> int:
        """Reports lost by subscribers that fell behind."""
        return self._events.dropped

    # -- customers --

    async def route(self, call: CallSession, queue: QueueConfig) -> CallDecision:
        """The softswitch's ``QueueRouter.route``: the queue's number is its engine id."""
        return self.route_to(call, queue.number)

    def route_to(self, call: CallSession, queue_id: QueueId, priority: int = 0) -> CallDecision:
        """Put the incoming ``call`` in queue ``queue_id``: answer it, or refuse it with the
        engine's status (full, no agents, no such queue)."""
        if self._nursery is None:
            raise CallCenterError("the call-center driver is not running")
        customer = _Customer(call)
        self._customers[call.id] = customer
        # subscribed before the answer, so that no digit is missed
        events = call.events()
        try:
            self._input(self.engine.caller_arrives, Caller(call.id, call.id, priority), queue_id)
        except CallCenterError as exc:  # e.g. a queue the engine does not have
            logger.warning("cannot queue %s in %s: %s", call.id, queue_id, exc)
            customer.refused = Reject(call.id, call.id, queue_id, 503, LeaveReason.UNKNOWN_QUEUE)
        finally:
            customer.deciding = False
        if customer.refused is not None:
            del self._customers[call.id]
            events.close()
            return CallDecision.reject(customer.refused.status)
        self._spawn(self._follow_customer, customer, events)
        return CallDecision.accept()

    def _in_queue(self, caller_id: CallerId) -> bool:
        state = self.engine.caller_state(caller_id)
        return state is not None and state.in_queue

    async def _follow_customer(
        self, customer: _Customer, events: trio.MemoryReceiveChannel[Any]
    ) -> None:
        call = customer.call
        try:
            async with events:
                state = await call.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
                if state.established and self._in_queue(call.id):
                    await self._hold_music(call)
                async for event in events:
                    if isinstance(event, DtmfReceived) and self._in_queue(call.id):
                        self._input(self.engine.caller_leaves_by_dtmf, call.id, event.digit)
            await call.wait_ended()
            if self._in_queue(call.id):
                self._input(self.engine.caller_abandons, call.id)
        finally:
            if not customer.answered:
                self._customers.pop(call.id, None)

    async def _source(self, key: str, path: Path, law: G711Law) -> FrameListSource | None:
        source = self._sources.get((key, law))
        if source is None:
            try:
                source = await trio.to_thread.run_sync(WavSource.read, path, law)
            except TrioVoipError as exc:
                logger.warning("cannot use %s: %s", path, exc)
                return None
            self._sources[(key, law)] = source
        source.rewind()
        return source

    def _law(self, call: CallSession) -> G711Law:
        media = self.coordinator.media
        return media.law(call.id) if media is not None else G711Law.PCMU

    async def _hold_music(self, call: CallSession) -> None:
        try:
            if self.music_on_hold is not None:
                music = await self._source("music", self.music_on_hold, self._law(call))
                # a fresh copy each: every customer hears it from the start
                if music is not None and self._in_queue(call.id):
                    call.start_playback(attrs.evolve(music, position=0), loop=True)
                    return
            if self._in_queue(call.id):
                call.play_tone("ringback")
        except TrioVoipError as exc:  # ended meanwhile, or no relayed media
            logger.info("no music on hold for %s: %s", call.id, exc)

    async def _speech(self, names: tuple[str, ...], law: G711Law) -> FrameListSource | None:
        """The prompts ``names`` as one source; None (logged) if they cannot be had."""
        try:
            return await self.prompts.compose(names, law)
        except TrioVoipError as exc:
            logger.warning("cannot say %s: %s", " ".join(names), exc)
            return None

    def _beeps(self, count: int, law: G711Law) -> FrameListSource:
        return FrameListSource(tone_frames(_BEEP, cadence=_BEEP_CADENCE * count, law=law), law)

    async def _announce(self, customer: _Customer, action: PlayAnnouncement | None) -> None:
        """Tell a waiting customer ``action``'s position and estimated wait (None: "please
        hold"), then play the music again."""
        call = customer.call
        if call.state is not CallState.ACTIVE or customer.announcing:
            return
        customer.announcing = True
        try:
            law = self._law(call)
            if action is None:
                names, beeps = (PLEASE_HOLD,), 1
            else:
                names = announcement(action.position, action.estimated_wait)
                beeps = min(max(action.position, 1), _MAX_BEEPS)
            source = await self._speech(names, law) or self._beeps(beeps, law)
            if not self._in_queue(call.id):  # answered or gone while the prompts loaded
                return
            end = await call.play(source)
        except TrioVoipError as exc:
            logger.info("no announcement for %s: %s", call.id, exc)
            return
        finally:
            customer.announcing = False
        if end is PlaybackEnd.COMPLETED and self._in_queue(call.id):
            await self._hold_music(call)

    # -- offers --

    async def _offer(self, offer: OfferCall) -> None:
        customer = self._customers.get(offer.caller_id)
        party = customer.call.remote_party if customer is not None else None
        user = getattr(party.uri, "user", None) if party is not None else None
        try:
            leg = await self.coordinator.make_call(
                offer.sip_user,
                from_user=user or "queue",
                display_name=party.display_name if party is not None else None,
            )
        except TrioVoipError as exc:
            logger.info("cannot ring %s for %s: %s", offer.sip_user, offer.caller_id, exc)
            self._offer_failed(offer.offer_id, OfferFailure.NO_ANSWER)
            return
        if not self.engine.offer_open(offer.offer_id):  # cancelled while we placed it
            await hangup_quietly(leg)
            return
        self._legs[offer.offer_id] = leg
        state = await leg.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
        if state.established and self.engine.offer_open(offer.offer_id):
            self._input(self.engine.offer_answered, offer.offer_id)
            return
        self._legs.pop(offer.offer_id, None)
        if state.established:  # answered as we cancelled it
            await hangup_quietly(leg)
        else:
            self._offer_failed(offer.offer_id, offer_failure(leg.end_reason))

    def _offer_failed(self, offer_id: str, reason: OfferFailure) -> None:
        if not self.engine.offer_open(offer_id):
            return
        agent = self._offer_agent.pop(offer_id, None)
        record = self._offer_records.pop(offer_id, None)
        if agent is not None and record is not None:
            self._store(CallEvent(record, CallPhase.OFFER_MISSED, self._wall(),
                                  agent_id=agent, detail=reason.value))
        self._input(self.engine.offer_failed, offer_id, reason)

    async def _bridge(
        self, caller_id: CallerId, customer: _Customer | None, leg: CallSession | None
    ) -> None:
        if customer is None or leg is None:  # cannot happen: offers are answered by their leg
            logger.error("no customer or agent leg to bridge for %s", caller_id)
            if leg is not None:
                await hangup_quietly(leg)
            self._input(self.engine.call_ended, caller_id)
            return
        call = customer.call
        try:
            state = await call.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
            if state.established and leg.state is not CallState.TERMINATED:
                try:
                    call.stop_playback()
                    self.coordinator.bridge_sessions(call.id, leg.id)
                except TrioVoipError as exc:  # a leg ended meanwhile
                    logger.info("cannot bridge %s and %s: %s", call.id, leg.id, exc)
                else:
                    if customer.record is not None:
                        self._store(CallEvent(customer.record, CallPhase.BRIDGED, self._wall()))
                await first_to_end(call, leg)
        finally:
            with trio.CancelScope(shield=True):
                await hangup_quietly(call)
                await hangup_quietly(leg)
        self._input(self.engine.call_ended, call.id)
        self._customers.pop(call.id, None)

    # -- leaving --

    async def _leave(self, call: CallSession, target: object) -> None:
        try:
            if call.state is CallState.INITIATING or call.state is CallState.RINGING:
                await call.wait_state(CallState.ACTIVE, CallState.ON_HOLD, timeout=5)
            if isinstance(target, Busy):
                call.play_tone("busy")
                await trio.sleep(self.busy_tone)
            elif isinstance(target, AnnounceAndHangup):
                law = self._law(call)
                # a prompt name with no audio (none configured, none built in): the busy one
                source = (await self._speech((target.prompt,), law)
                          if target.prompt in self.prompts else None)
                source = source or await self._speech((ALL_AGENTS_BUSY,), law)
                await call.play(source or self._beeps(3, law))
            elif isinstance(target, ToRecording) and self.recordings is not None:
                folder = self.recordings / target.mailbox
                await trio.to_thread.run_sync(lambda: folder.mkdir(parents=True, exist_ok=True))
                law = self._law(call)
                beep = self._beeps(1, law).frames
                speech = await self._speech((LEAVE_MESSAGE,), law)
                frames = beep if speech is None else speech.frames + beep
                await call.play(FrameListSource(frames, law))
                # our session id, not the peer's Call-ID: a file name we chose
                recording = await call.record(folder / f"{int(time.time())}-{call.id}.wav")
                with trio.move_on_after(self.max_message):
                    await call.wait_ended()
                await recording.stop()
        except TrioVoipError as exc:
            logger.info("overflow of %s: %s", call.id, exc)
        finally:
            with trio.CancelScope(shield=True):
                await hangup_quietly(call)

    # -- performing the engine's actions --

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SUPERVISOR_EVENTS):
                self._events.publish(action)
            if isinstance(action, OfferCall):
                self._offer_agent[action.offer_id] = action.agent_id
                customer = self._customers.get(action.caller_id)
                if customer is not None and customer.record is not None:
                    self._offer_records[action.offer_id] = customer.record
                    self._store(CallEvent(customer.record, CallPhase.OFFERED,
                                          self._wall(action.at), agent_id=action.agent_id))
                self._spawn(self._offer, action)
            elif isinstance(action, CancelOffer):
                self._offer_agent.pop(action.offer_id, None)
                record = self._offer_records.pop(action.offer_id, None)
                if record is not None:
                    self._store(CallEvent(record, CallPhase.OFFER_MISSED, self._wall(),
                                          agent_id=action.agent_id, detail=action.reason.value))
                leg = self._legs.pop(action.offer_id, None)
                if leg is not None:
                    self._spawn(hangup_quietly, leg)
            elif isinstance(action, BridgeCallerToAgent):
                self._offer_agent.pop(action.offer_id, None)
                self._offer_records.pop(action.offer_id, None)
                leg = self._legs.pop(action.offer_id, None)
                customer = self._customers.get(action.caller_id)
                if customer is not None:
                    customer.answered = True
                self._spawn(self._bridge, action.caller_id, customer, leg)
            elif isinstance(action, Reject):
                customer = self._customers.get(action.caller_id)
                if customer is None:
                    continue
                self._outcome(customer, CallPhase.REJECTED, action.reason.value)
                if customer.deciding:
                    customer.refused = action  # route() refuses it with the status
                else:  # refused by the queue it overflowed into: it was answered
                    self._spawn(self._leave, customer.call, None)
            elif isinstance(action, Overflow):
                customer = self._customers.get(action.caller_id)
                if customer is None:
                    continue
                self._outcome(customer, CallPhase.OVERFLOWED, format_target(action.target))
                if isinstance(action.target, ToQueue):  # it waits there now
                    self._spawn(self._announce, customer, None)
                else:
                    self._spawn(self._leave, customer.call, action.target)
            elif isinstance(action, PlayAnnouncement):
                customer = self._customers.get(action.caller_id)
                if customer is not None:
                    self._spawn(self._announce, customer, action)
            elif isinstance(action, AgentStateChanged):
                self._store(AgentStateChange(action.agent_id, action.new.value,
                                             self._wall(action.at), action.reason))
            elif isinstance(action, AgentPauseChanged):
                if action.paused and action.reason is not None:
                    self._pauses[action.agent_id] = action.reason
                else:
                    self._pauses.pop(action.agent_id, None)
                self._store(_KeepPause(action.agent_id))
            elif isinstance(action, CallerStateChanged):
                self._caller_changed(action)
            elif isinstance(action, WrapUpEnded):
                record = self._wrap_ups.pop((action.caller_id, action.queue_id), None)
                if record is not None:
                    self._store(CallEvent(record, CallPhase.WRAPUP_ENDED, self._wall(action.at)))
        self._wake.set()
        if self.on_change is not None:
            self.on_change()

    def _caller_changed(self, change: CallerStateChanged) -> None:
        customer = self._customers.get(change.caller_id)
        if customer is None:
            return
        at = self._wall(change.at)
        if change.old is None:
            customer.record = f"{change.caller_id}#{next(self._records)}"
            party = customer.call.remote_party
            self._store(CallEvent(customer.record, CallPhase.ARRIVED, self._wall(change.joined_at),
                                  session_id=customer.call.id, queue_id=change.queue_id,
                                  caller=str(party.uri)))
        record = customer.record
        assert record is not None
        new = change.new
        # REJECTED and OVERFLOWED: stored from the Reject / Overflow that follows (its reason)
        if new is CallerState.BRIDGED:
            assert change.agent_id is not None
            self._store(CallEvent(record, CallPhase.ANSWERED, at, agent_id=change.agent_id))
        elif new is CallerState.COMPLETED:
            self._store(CallEvent(record, CallPhase.ENDED, at))
            if change.wrap_up > 0:  # else the agent is free at once: no WrapUpEnded comes
                self._wrap_ups[(change.caller_id, change.queue_id)] = record
        elif new is CallerState.ABANDONED:
            self._store(CallEvent(record, CallPhase.ABANDONED, at))

    def _outcome(self, customer: _Customer, phase: CallPhase, detail: str) -> None:
        if customer.record is not None:
            self._store(CallEvent(customer.record, phase, self._wall(), detail=detail))

    # -- the store --

    def _wall(self, at: float | None = None) -> float:
        return self._epoch + (self.clock() if at is None else at)

    def _store(self, item: CallEvent | AgentStateChange | _KeepPause) -> None:
        if self.store is not None:
            self._to_store.send_nowait(item)
            self._sent += 1

    async def _write_store(self, store: Store) -> None:
        async for item in self._store_queue:
            try:
                if isinstance(item, CallEvent):
                    await store.record_call_event(item)
                elif isinstance(item, _KeepPause):
                    await self._write_pause(store, item.agent_id)
                else:
                    await store.record_agent_state(item)
            except TrioVoipError as exc:
                logger.warning("store refused %r: %s", item, exc)
            self._written += 1
            self._wrote.set()
            self._wrote = trio.Event()

    async def _write_pause(self, store: Store, agent_id: AgentId) -> None:
        async with self._admin:  # not between an admin change's engine and store steps
            record = await store.get_agent(agent_id)
            if record is not None:
                updated = self._with_pause(record)
                if updated != record:
                    await store.update_agent(updated)

    async def flush_store(self) -> None:
        """Wait until everything sent to the store so far is written (or refused)."""
        target = self._sent
        while self._written < target:
            await self._wrote.wait()

    # -- the supervisor's view --

    def agents_state(self) -> list[dict[str, Any]]:
        """Every agent for the supervisor page: ``id``, ``name``, ``sip_user``, ``queues``,
        ``state`` (the engine's) and ``since`` (seconds in it; None before any), ``logged_in``,
        ``paused`` (the reason, or None; also a pause put back at its next log-in), ``calls``
        (how many now), and since the engine started ``answered`` and ``occupancy``."""
        agents = []
        now = self.clock()
        for agent in self.engine.agents():
            status = self.engine.agent_status(agent.agent_id)
            stats = self.engine.agent_stats(agent.agent_id, now)
            paused = status.pause_reason if status.paused else self._pauses.get(agent.agent_id)
            agents.append({
                "id": agent.agent_id, "name": agent.name, "sip_user": agent.sip_user,
                "queues": sorted(agent.queues), "state": status.state.value,
                "since": (round(now - stats.state_since, 1)
                          if stats.state_since is not None else None),
                "logged_in": status.logged_in, "paused": paused, "calls": len(status.calls),
                "answered": stats.answered, "occupancy": stats.occupancy,
            })
        return agents

    def queue_state(self, queue: QueueConfig, presence: Presence) -> dict[str, Any]:
        """The softswitch's ``QueueRouter.queue_state`` from the engine."""
        queue_id = queue.number
        now = self.clock()
        waiting = []
        for caller in self.engine.waiting(queue_id):
            customer = self._customers.get(caller.caller.caller_id)
            waiting.append({
                "call": caller.caller.session_id,
                "from": str(customer.call.remote_party.uri) if customer is not None else "",
                "wait": round(now - caller.joined_at, 1),
                "position": caller.position,
                "state": caller.state.value,
            })
        agents = []
        for agent in self.engine.agents():
            if queue_id in agent.queues:
                status = self.engine.agent_status(agent.agent_id)
                agents.append({"name": agent.sip_user, "state": status.state.value,
                               "paused": status.pause_reason if status.paused else None})
        stats = self.engine.queue_stats(queue_id, now)
        metrics = attrs.asdict(stats)
        del metrics["queue_id"]
        return {"waiting": waiting, "agents": agents, "metrics": metrics}

