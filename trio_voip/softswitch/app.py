"""The softswitch: a :class:`SessionCoordinator` with users, extension calling and queues.

Every call comes in to the coordinator and goes out again as a new call (a back-to-back user
agent), and the two are joined with ``bridge_sessions`` so their media flows through our RTP
relay:

* dialing a user's extension (``1002``) calls where that user registered from; the caller
  hears 180 when the callee rings and is answered when the callee answers. A user who is
  not registered: 480; an unknown number: 404; a callee's refusal maps back (486 stays 486,
  5xx becomes 502; see :func:`failure_status`); no answer within ``calls.ring_timeout``: 480.
* dialing a queue's number (``6000``) hands the call to ``softswitch.router`` (a
  :class:`QueueRouter`): the call engine's
  :class:`~trio_voip.callcenter.driver.CallCenterDriver` (queues and agents from
  :func:`make_call_center`), started with the coordinator, unless another router was set
  before. Calls a user is on outside the queues (extension calls, calls to a queue) count
  as calls of that agent: it is offered no queue call beyond its ``max_concurrent``.
  With ``callcenter.store`` (by default ``callcenter.sqlite``) the engine starts from the
  store (``CallCenterDriver.restore``): a configured agent or queue that is new or edited in
  the configuration since the store last saw it is written to the store; otherwise the
  store's record wins, so runtime admin changes (removals too) survive a restart; those
  added at runtime come back from the store. :meth:`Softswitch.add_queue` (and
  ``update_queue``, ``remove_queue``) change the engine's queues at runtime, numbers included.
* either side hanging up hangs up the other.

The relay does not transcode: a callee that picks a codec the caller did not offer gets the
caller refused with 488 (both are offered our codecs, PCMU first, so phones rarely differ).

:meth:`Softswitch.state` is a JSON-ready snapshot for the supervisor page (users and their
registrations, live calls, bridges, queues with waiting callers and agent states), and
:meth:`Softswitch.wait_changed` says when it changed (any session or bridge event, a
registration coming, going or expiring among them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import attrs
import trio

from trio_voip.callcenter import Agent, CallCenter, queue_from_settings
from trio_voip.callcenter.driver import CallCenterDriver
from trio_voip.callcenter.store import QueueRecord, SqliteStore
from trio_voip.errors import BridgeError, CallCenterError, SoftswitchError, TrioVoipError
from trio_voip.offer_answer import offers_codec
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.playback import FrameListSource
from trio_voip.rtp.tones import tone_frames
from trio_voip.session import (
    first_to_end,
    hangup_quietly,
    CallDecision,
    CallDirection,
    CallHandler,
    CallSession,
    CallEnded,
    CallState,
    CallStateChanged,
    EndKind,
    EndReason,
    SessionCoordinator,
    SessionManagerBuilder,
)
from trio_voip.session.builder import TransportFactory
from trio_voip.softswitch.config import QueueConfig, SoftswitchConfig
from trio_voip.sip.registrar import Binding
from trio_voip.sip.uri import SipUri

__all__ = [
    "STATE_VERSION", "Presence", "QueueRouter", "Softswitch",
    "failure_status", "make_builder", "make_call_center",
]

logger = logging.getLogger(__name__)

#: Bumped when the layout of :meth:`Softswitch.state` changes incompatibly.
STATE_VERSION = 1

# What an agent hears after dialing a feature code: two short high beeps when it was done,
# the busy tone (two cycles) when it was refused.
_CONFIRM = ((880.0,), ((0.1, 0.1), (0.1, 0.3)))
_REFUSE = ((480.0, 620.0), ((0.5, 0.5), (0.5, 0.5)))



def failure_status(reason: EndReason | None) -> int:
    """The status to refuse a caller with when the leg to its callee ended unanswered for
    ``reason``: 4xx and 6xx as they are, except 401/407 (the challenge was for us) -> 403;
    3xx -> 480 (we do not follow redirects); 5xx -> 502 (the fault is downstream, and a
    callee's 503 must not read as our overload); no response or no status -> 480."""
    status = reason.status if reason is not None else None
    if status is None or 300 <= status < 400:
        return 480
    if status in (401, 407):
        return 403
    if 500 <= status < 600:
        return 502
    return status if 400 <= status < 700 else 480


def make_builder(
    config: SoftswitchConfig, transport_factory: TransportFactory | None = None
) -> SessionManagerBuilder:
    """The coordinator of ``config``: its users registering with Digest auth (and calling in
    with it when ``sip.auth_invite``), media relayed when ``rtp.relay``."""
    sip = config.sip
    builder = (
        SessionManagerBuilder()
        .listen(sip.host, sip.port, transports=sip.transports)
        .rtp_ports(config.rtp.start, config.rtp.end)
        .media_relay(config.rtp.relay)
        .users({user.name: user.password for user in config.users})
        .require_auth(invite=sip.auth_invite, register=True)
        .digest_algorithms(*sip.digest_algorithms)
        .limits(
            max_calls=config.calls.max_calls,
            # the caller's INVITE stays open while we ring for it: our timeout is the one
            ring_timeout=config.calls.ring_timeout + 5,
            shutdown_timeout=config.calls.shutdown_timeout,
        )
    )
    if sip.domain is not None:
        builder.domain(sip.domain)
    if sip.advertise is not None:
        builder.advertise(sip.advertise)
    if transport_factory is not None:
        builder.transport_factory(transport_factory)
    return builder


def make_call_center(config: SoftswitchConfig, seed: int | None = None) -> CallCenter:
    """The call engine of ``config``: each queue under its number, and as agents the users
    that are members of a queue (their order in a queue's ``members`` is their rank for
    linear routing; a user in several queues takes its best rank)."""
    engine = CallCenter(seed=seed)
    ranks: dict[str, int] = {}
    queues_of: dict[str, set[str]] = {}
    for queue in config.queues:
        engine.add_queue(
            queue_from_settings(queue.number, queue.strategy, queue.engine_settings())
        )
        for rank, member in enumerate(queue.members):
            ranks[member] = min(rank, ranks.get(member, rank))
            queues_of.setdefault(member, set()).add(queue.number)
    for user in config.users:
        if user.name in queues_of:
            engine.add_agent(Agent(
                user.name, user.display_name or user.name, user.name,
                queues=queues_of[user.name], order=ranks[user.name], skills=user.skills,
                max_concurrent=user.max_concurrent, tier=user.tier, weight=user.weight,
            ))
    return engine


def _user_of(uri: object) -> str | None:
    return uri.user if isinstance(uri, SipUri) else None


def _aor_user(aor: str) -> str:
    """The user part of a canonical AOR (``sip:1001@host``)."""
    return aor.partition(":")[2].rpartition("@")[0]


def _codec_offered(caller: CallSession, callee: CallSession) -> bool:
    """Whether the codec the callee chose is one the caller offered (we do not transcode)."""
    media = callee.media
    return media is not None and offers_codec(caller.remote_sdp, media.codec)


@attrs.frozen
class Presence:
    """Who is registered and who is on a call, at one moment: ``bindings`` are the live
    registrations of each user, ``calls`` the live legs each user is the far end of."""

    bindings: Mapping[str, list[Binding]]
    calls: Mapping[str, list[CallSession]]

    def agent_state(self, user: str) -> str:
        """offline, available, ringing or on-call (the call engine adds paused, wrap-up)."""
        calls = self.calls.get(user, ())
        # A user placing a call is busy with it; one we call rings until it answers.
        if any(c.direction is CallDirection.INCOMING or c.established_at is not None
               for c in calls):
            return "on-call"
        if calls:
            return "ringing"
        return "available" if self.bindings.get(user) else "offline"


class QueueRouter(Protocol):
    """What takes the calls to queue numbers; set ``softswitch.router`` before it runs.
    ``route`` decides about a caller (it may take its time: ring agents, answer and play
    music); ``queue_state`` is the queue's part of :meth:`Softswitch.state`: ``waiting``
    (``call``, ``from``, ``wait``), ``agents`` (``name``, ``state``) and ``metrics``."""

    name: str

    async def route(self, call: CallSession, queue: QueueConfig) -> CallDecision: ...

    def queue_state(self, queue: QueueConfig, presence: Presence) -> dict[str, Any]: ...


class Softswitch(CallHandler):
    """The softswitch of ``config``; ``await nursery.start(softswitch.run)`` starts it (SIP,
    RTP, and nothing else: the supervisor page is :mod:`trio_voip.softswitch.web`) and
    reports the running softswitch; cancelling it ends the live calls (BYE) first."""

    def __init__(
        self,
        config: SoftswitchConfig,
        *,
        engine: CallCenter | None = None,
        driver_options: Mapping[str, Any] | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.config = config
        # the call engine to run (default: make_call_center(config)) and extra keyword
        # arguments of its CallCenterDriver
        self._engine = engine
        self._driver_options = dict(driver_options or {})
        self._builder = make_builder(config, transport_factory)
        self._users = {user.name: user for user in config.users}
        self._queues = {queue.number: queue for queue in config.queues}
        self._coordinator: SessionCoordinator | None = None
        self._nursery: trio.Nursery | None = None
        #: what takes queue calls: the call engine's driver while it runs, unless set before
        self.router: QueueRouter | None = None
        #: the call engine's driver while it runs (``callcenter.engine``)
        self.driver: CallCenterDriver | None = None
        # the user each leg we placed rings, by call id
        self._callee_of: dict[str, str] = {}
        # callers answered, to be bridged with their callee's leg once their ACK is in
        self._pending: dict[str, CallSession] = {}
        # each user's live calls (call ids), and the user of each, from session events
        self._user_calls: dict[str, set[str]] = {}
        self._party_of: dict[str, str] = {}
        self._version = 0
        self._changed = trio.Event()

    @property
    def coordinator(self) -> SessionCoordinator:
        if self._coordinator is None:
            raise TrioVoipError("the softswitch is not running")
        return self._coordinator

    async def run(
        self, *, task_status: trio.TaskStatus[Softswitch] = trio.TASK_STATUS_IGNORED
    ) -> None:
        # Cancelling a scope around ``async with coordinator`` would cancel its transport
        # too, before its shutdown sends the BYEs. So the coordinator runs shielded and is
        # left the ordinary way once we are cancelled (bounded by its shutdown timeout).
        stop = trio.Event()
        done = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._serve, stop, done)
            task_status.started(self)
            try:
                await trio.sleep_forever()
            finally:
                stop.set()
                with trio.CancelScope(shield=True):
                    await done.wait()

    async def _serve(
        self, stop: trio.Event, done: trio.Event, *, task_status: trio.TaskStatus[None]
    ) -> None:
        try:
            with trio.CancelScope(shield=True):
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    async with self._builder.handler(self).build() as coordinator:
                        self._coordinator = coordinator
                        nursery.start_soon(
                            self._follow, coordinator.subscribe_to_session_events()
                        )
                        nursery.start_soon(
                            self._follow_calls, coordinator.subscribe_to_session_events()
                        )
                        nursery.start_soon(
                            self._follow, coordinator.subscribe_to_bridge_events()
                        )
                        if self.config.queues and self.router is None:
                            await nursery.start(self._run_engine, coordinator)
                        task_status.started()
                        await stop.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._coordinator = None
            done.set()

    async def _run_engine(
        self, coordinator: SessionCoordinator, *, task_status: trio.TaskStatus[None]
    ) -> None:
        settings = self.config.callcenter
        async with contextlib.AsyncExitStack() as stack:
            store = None
            if settings.store is not None:
                store = await stack.enter_async_context(SqliteStore.open(settings.store))
            engine = self._engine if self._engine is not None else make_call_center(self.config)
            options: dict[str, Any] = {
                "store": store, "music_on_hold": settings.music_on_hold,
                "recordings": settings.recordings, "on_change": self.notify_changed,
                **self._driver_options,
            }
            driver = CallCenterDriver(coordinator, engine, **options)
            if driver.store is not None:
                # configuration and store reconciled (a queue removed at runtime stays out)
                names = {queue.number: queue.name for queue in self.config.queues}
                restored = await driver.restore(names)
                self._queues = {record.id: self._queue_config(record) for record in restored}
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(driver.run)
                    self.driver = driver
                    self.router = driver
                    task_status.started()
            finally:
                self.driver = None
                self.router = None

    # -- change notification --

    def notify_changed(self) -> None:
        """The state changed (e.g. the router's): the supervisor pages get it soon."""
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()

    @property
    def version(self) -> int:
        """Counts changes of :meth:`state` (see :meth:`wait_changed`)."""
        return self._version

    async def wait_changed(self, seen: int) -> int:
        """Wait until the state changed since version ``seen`` (-1: return at once); returns
        the version now."""
        while self._version == seen:
            await self._changed.wait()
        return self._version

    async def _follow(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        async with events:
            async for _ in events:
                self.notify_changed()

    async def _follow_calls(self, events: trio.MemoryReceiveChannel[Any]) -> None:
        """Count each user's calls as they come and go, for the call engine (its agents'
        calls outside the queues): constant work per event, whatever the number of calls."""
        async with events:
            async for event in events:
                if isinstance(event, CallEnded):
                    self._untrack(event.session_id)
                elif isinstance(event, CallStateChanged):
                    call = self.coordinator.get_call(event.session_id)
                    if call is not None:
                        self._track(call)

    def _track(self, call: CallSession) -> None:
        if call.id in self._party_of:
            return
        party = self._party(call)  # None for a leg we placed but have not named yet
        if party is not None:
            self._party_of[call.id] = party
            self._user_calls.setdefault(party, set()).add(call.id)
            self._tell_engine(party)

    def _untrack(self, call_id: str) -> None:
        party = self._party_of.pop(call_id, None)
        if party is not None:
            calls = self._user_calls[party]
            calls.discard(call_id)
            if not calls:
                del self._user_calls[party]
            self._tell_engine(party)

    def _tell_engine(self, user: str) -> None:
        if self.driver is not None:
            self.driver.calls_elsewhere(user, len(self._user_calls.get(user, ())))

    # -- who is where --

    def presence(self) -> Presence:
        """Who is registered and on which calls now (one pass over bindings and calls)."""
        location = self.coordinator.registrar.location
        now = trio.current_time()
        bindings: dict[str, list[Binding]] = {}
        for aor in location.aors():
            user = _aor_user(aor)
            if self._is_user(user):
                bindings.setdefault(user, []).extend(location.lookup(aor, now))
        calls: dict[str, list[CallSession]] = {}
        for call in self.coordinator.calls:
            party = self._party(call)
            if party is not None:
                calls.setdefault(party, []).append(call)
        return Presence(bindings, calls)

    def _party(self, call: CallSession) -> str | None:
        """Our user on the far end of ``call``: the caller of an incoming call, the callee
        of a leg we placed."""
        if call.direction is CallDirection.OUTGOING:
            return self._callee_of.get(call.id)
        user = _user_of(call.remote_party.uri)
        return user if user is not None and self._is_user(user) else None

    def _is_user(self, name: str) -> bool:
        """A configured user, or one added at runtime (an agent given a password)."""
        return name in self._users or self.coordinator.has_user(name)

    def _agent_name(self, user: str) -> str:
        driver = self.driver
        agents = driver.engine.agents() if driver is not None else []
        return next((a.name for a in agents if a.sip_user == user), "")

    # -- admin operations --

    async def hangup(self, call_id: str) -> None:
        """End a live call (BYE, CANCEL or 480, as its state calls for); its bridged partner
        is hung up with it. Raises SoftswitchError for an unknown call."""
        for call in self.coordinator.calls:
            if call.id == call_id:
                await call.hangup()
                return
        raise SoftswitchError(f"no live call {call_id!r}")

    def logout(self, user: str) -> int:
        """Drop every registration of ``user`` (the phone registers again when it refreshes);
        returns how many there were. Raises SoftswitchError for an unknown user."""
        if not self._is_user(user):
            raise SoftswitchError(f"no user {user!r}")
        return self.coordinator.drop_registrations(user)

    def admin_driver(self) -> CallCenterDriver:
        """The call engine's driver, for changing agents and queues; SoftswitchError (409)
        while it does not run."""
        if self.driver is None:
            raise SoftswitchError(
                "the call engine is not running: agents and queues cannot be changed", status=409
            )
        return self.driver

    async def add_queue(self, record: QueueRecord) -> None:
        """Add a queue to the call engine (and its store): its id is its number."""
        driver = self.admin_driver()
        if self._is_user(record.id):
            raise SoftswitchError(f"{record.id!r} is a user's extension", status=409)
        config = self._queue_config(record)  # ConfigError: not a dialable number
        await driver.add_queue(record)
        self._queues[record.id] = config
        self.notify_changed()

    async def update_queue(self, record: QueueRecord) -> None:
        await self.admin_driver().update_queue(record)
        self._queues[record.id] = self._queue_config(record)
        self.notify_changed()

    async def remove_queue(self, queue_id: str) -> None:
        await self.admin_driver().remove_queue(queue_id)
        self._queues.pop(queue_id, None)
        self.notify_changed()

    def _queue_config(self, record: QueueRecord) -> QueueConfig:
        """A queue of the engine as the rest of the softswitch sees it (number, name)."""
        configured = self._queues.get(record.id)
        if configured is None:
            return QueueConfig(record.id, record.name, record.strategy)
        return attrs.evolve(configured, name=record.name, strategy=record.strategy)

    # -- the call handler --

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        invite = call.invite
        dialed = _user_of(invite.uri) if invite is not None else None
        if invite is None or not invite.body:
            return CallDecision.reject(488, "Offer Required")
        if dialed is not None and self.driver is not None:
            feature = self._feature_code(call, dialed)
            if feature is not None:
                return feature
        if dialed is not None and self._is_user(dialed):
            if not self.presence().bindings.get(dialed):
                return CallDecision.reject(480, "Not Registered")
            return await self.connect(call, [dialed], self.config.calls.ring_timeout)
        queue = self._queues.get(dialed or "")
        if queue is not None:
            if self.router is None:  # stopping
                return CallDecision.reject(503)
            self._track(call)  # an agent calling the queue is not offered its own call
            return await self.router.route(call, queue)
        return CallDecision.reject(404)

    def _feature_code(self, call: CallSession, dialed: str) -> CallDecision | None:
        """An agent dialing the pause code (``*46``, or ``*46*<reason>``) or the resume code
        (``*47``) from its phone: done for each of its agents, the call answered to say so
        (two beeps: done; busy tone: refused, e.g. not logged in); None for other numbers."""
        driver = self.driver
        settings = self.config.callcenter
        assert driver is not None
        if dialed == settings.resume_code:
            reason = None
        elif dialed == settings.pause_code:
            reason = "phone"
        elif dialed.startswith(settings.pause_code + "*") and len(dialed) > len(
                settings.pause_code) + 1:
            reason = dialed[len(settings.pause_code) + 1:]
        else:
            return None
        user = _user_of(call.remote_party.uri)
        agents = [a.agent_id for a in driver.engine.agents() if a.sip_user == user]
        done = bool(agents)
        for agent_id in agents:
            try:
                if reason is None:
                    driver.resume(agent_id)
                else:
                    driver.pause(agent_id, reason)
            except CallCenterError as exc:
                logger.info("feature code %s from %s refused: %s", dialed, user, exc)
                done = False
        self._spawn(self._confirm, call, done)
        return CallDecision.accept()

    async def _confirm(self, call: CallSession, done: bool) -> None:
        try:
            if await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE:
                media = self.coordinator.media
                law = media.law(call.id) if media is not None else G711Law.PCMU
                tone, cadence = _CONFIRM if done else _REFUSE
                await call.play(FrameListSource(tone_frames(tone, cadence=cadence, law=law), law))
        except TrioVoipError as exc:  # hung up meanwhile, or no relayed media
            logger.info("no confirmation tone for %s: %s", call.id, exc)
        finally:
            await hangup_quietly(call)

    async def connect(self, call: CallSession, users: list[str], timeout: float) -> CallDecision:
        """Call ``users`` (registered ones) for the incoming ``call``: the caller hears 180
        once one rings; the first to answer within ``timeout`` s is bridged with it (the
        others are hung up) and the decision is to answer; none: the refusal to give."""
        caller = _user_of(call.remote_party.uri) or "anonymous"
        display = call.remote_party.display_name
        legs: list[CallSession] = []
        refusal: EndReason | None = None
        winner: CallSession | None = None
        try:
            for user in users:
                try:
                    leg = await self.coordinator.make_call(
                        user, from_user=caller, display_name=display
                    )
                except TrioVoipError as exc:  # e.g. gone since: the others may still answer
                    logger.info("cannot call %s for %s: %s", user, call.id, exc)
                    refusal = EndReason(EndKind.FAILED, getattr(exc, "status", None))
                    continue
                self._callee_of[leg.id] = user
                legs.append(leg)
            winner = await self._first_answer(call, legs, timeout)
        finally:
            # Also when a CANCEL from the caller cancelled us: hang up from our own nursery.
            for leg in legs:
                if leg is not winner:
                    self._spawn(hangup_quietly, leg)
            if winner is not None:
                self._spawn(self._tie, call, winner)
        if winner is None:
            if len(legs) == 1:
                refusal = legs[0].end_reason
            return CallDecision.reject(480 if refusal is None else failure_status(refusal))
        if not _codec_offered(call, winner):
            return CallDecision.reject(488, "Codec Mismatch")  # _tie hangs the winner up
        self._pending[call.id] = winner
        return CallDecision.accept()

    async def _first_answer(
        self, call: CallSession, legs: list[CallSession], timeout: float
    ) -> CallSession | None:
        """The first of ``legs`` to answer within ``timeout`` (None: none did); the caller
        hears 180 as soon as one rings."""
        winner: CallSession | None = None
        rang = False
        async with trio.open_nursery() as nursery:
            nursery.cancel_scope.deadline = trio.current_time() + timeout

            async def watch(leg: CallSession) -> None:
                nonlocal winner, rang
                state = await leg.wait_state(
                    CallState.RINGING, CallState.ACTIVE, CallState.ON_HOLD
                )
                if state is CallState.RINGING:
                    if not rang:
                        rang = True
                        try:
                            await call.ring()
                        except TrioVoipError as exc:  # the caller went away meanwhile
                            logger.info("cannot ring %s: %s", call.id, exc)
                    state = await leg.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
                if state.established and winner is None:
                    winner = leg
                    nursery.cancel_scope.cancel()

            for leg in legs:
                nursery.start_soon(watch, leg)
        return winner

    async def on_call_established(self, call: CallSession) -> None:
        """A caller's ACK is in (its callee answered before we did): bridge the two, which
        connects their relay endpoints."""
        callee = self._pending.pop(call.id, None)
        if callee is None:
            return
        try:
            self.coordinator.bridge_sessions(call.id, callee.id)
        except BridgeError as exc:  # a leg ended meanwhile: _tie ends the other
            logger.info("cannot bridge %s and %s: %s", call.id, callee.id, exc)

    async def _tie(self, caller: CallSession, callee: CallSession) -> None:
        """Whichever leg ends first, end the other."""
        try:
            first = await first_to_end(caller, callee)
            other = callee if first is caller else caller
            await hangup_quietly(other)
        finally:
            self._pending.pop(caller.id, None)

    async def on_call_ended(self, call: CallSession, reason: EndReason) -> None:
        self._callee_of.pop(call.id, None)

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    # -- the supervisor's view --

    def state(self) -> dict[str, Any]:
        """A JSON-ready snapshot: ``users`` (registrations and agent state), ``calls``,
        ``bridges``, ``queues`` (the router's ``waiting``, ``agents``, ``metrics``),
        ``router`` (its name), ``stats`` (the coordinator's counters). Ages and waits are
        seconds; ``version`` counts changes."""
        coordinator = self.coordinator
        now = trio.current_time()
        presence = self.presence()
        bridge_of = {}
        bridges = []
        for info in coordinator.list_bridges():
            bridges.append({
                "id": info.bridge_id,
                "participants": list(info.participants),
                "age": round(now - info.created_at, 1),
            })
            for session in info.participants:
                bridge_of[session] = info.bridge_id
        queues = []
        queue_of = {}
        for queue in self._queues.values():
            part = (self.router.queue_state(queue, presence) if self.router is not None
                    else {"waiting": [], "agents": [], "metrics": None})
            queues.append({"number": queue.number, "name": queue.name,
                           "strategy": queue.strategy, **part})
            for waiting in part["waiting"]:
                queue_of[waiting["call"]] = queue.number
        calls = []
        for call in coordinator.calls:
            incoming = call.direction is CallDirection.INCOMING
            calls.append({
                "id": call.id,
                "direction": call.direction.value,
                "state": call.state.value,
                "from": str(call.remote_party.uri if incoming else call.local_party.uri),
                "to": str(call.local_party.uri if incoming else call.remote_party.uri),
                "user": self._party(call),
                "age": round(now - call.created_at, 1),
                "talk": round(call.duration, 1),
                "bridge": bridge_of.get(call.id),
                "queue": queue_of.get(call.id),
            })
        users = []
        names = [(user.name, user.display_name) for user in self._users.values()]
        names += [(name, self._agent_name(name))  # agents added at runtime
                  for name in coordinator.user_names() if name not in self._users]
        for name, display_name in names:
            contacts = [
                {
                    "uri": str(b.uri),
                    "source": (f"{b.source.transport.lower()}:{b.source.host}:{b.source.port}"
                               if b.source is not None else None),
                    "expires_in": b.expires_in(now),
                    "user_agent": b.user_agent,
                }
                for b in presence.bindings.get(name, ())
            ]
            users.append({
                "name": name,
                "display_name": display_name,
                "online": bool(contacts),
                "state": presence.agent_state(name),
                "contacts": contacts,
            })
        return {
            "type": "state",
            "format": STATE_VERSION,
            "version": self._version,
            "router": self.router.name if self.router is not None else None,
            "sip": [f"{a.transport.lower()}:{a.host}:{a.port}" for a in coordinator.addresses],
            "users": users,
            "calls": calls,
            "bridges": bridges,
            "queues": queues,
            "stats": attrs.asdict(coordinator.stats()),
        }

