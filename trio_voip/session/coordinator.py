"""The call engine: :class:`SessionCoordinator` drives SIP calls for an application.

It owns a :class:`~trio_voip.sip.stack.SipEndpoint` (transport + transactions), a sans-IO
:class:`~trio_voip.sip.dialog.DialogLayer`, a registrar, an RTP port pool and the calls. Three
tasks feed the sans-IO layers: new server transactions (``endpoint.incoming``), strays (ACKs
and 2xx retransmissions) and the dialog timers; each incoming call gets a task for its
handler decision, each outgoing call one for its INVITE transaction. Everything runs in the
coordinator's own nursery: leaving ``async with`` hangs up the live calls (bounded by
``shutdown_timeout``) and closes every socket.

Requests we send go to the top Route of the request (loose routing), else to its
Request-URI's host, port (5060) and ``transport`` parameter (the call's transport by
default). No RFC 3263 DNS lookup is done.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import attrs
import trio

from trio_voip.errors import (
    CallError,
    CallStateError,
    DialogError,
    OfferAnswerError,
    RecordingError,
    RtpError,
    SdpError,
    TransactionError,
    TransactionTimeout,
    TransportError,
    TrioVoipError,
    UnknownBridge,
)
from trio_voip.bridge import BridgeEvent, BridgeId, BridgeInfo, SessionId
from trio_voip.events import EventBus
from trio_voip.offer_answer import (
    LocalCapabilities,
    answer_offer,
    NegotiatedMedia,
    build_offer,
    hold_offer,
    is_hold,
    negotiated,
    resume_offer,
)
from trio_voip.rtp.ports import PortAllocator
from trio_voip.rtp.relay import EndpointStats, MediaEndpoint, RtpRelay
from trio_voip.sdp import Direction, SessionDescription, parse_sdp
from trio_voip.session.bridges import BridgeManager
from trio_voip.session.dtmf import DtmfService
from trio_voip.session.media import CallMedia
from trio_voip.session.recording import Recording, Sources
from trio_voip.session.builder import CoordinatorConfig
from trio_voip.session.call import CallSession
from trio_voip.session.events import (
    CallEnded,
    DtmfReceived,
    RegistrationChanged,
    SessionEvent,
    TransferProgress,
)
from trio_voip.session.handler import CallDecision, CallHandler, DecisionKind
from trio_voip.session.state import CallDirection, CallState, EndKind, EndReason
from trio_voip.sip import registrar as reg
from trio_voip.sip.dialog import (
    AckRequired,
    AckTimeout,
    DialogConfirmed,
    DialogEvent,
    DialogId,
    DialogLayer,
    DialogTerminated,
    EarlyDialog,
    RefreshSession,
    RequestReceived,
    Retransmit,
    RetryReinvite,
    SendAck,
    SendBye,
    SendResponse,
    SessionExpired,
)
from trio_voip.sip.digest import AuthOutcome, DigestAuthenticator, DigestClient, PrecomputedHA1
from trio_voip.sip.headers import Headers, NameAddr, parse_name_addr
from trio_voip.sip.message import Request, Response, make_response
from trio_voip.sip.stack import ClientTransactionHandle, ServerTransactionHandle, SipEndpoint
from trio_voip.sip.transaction import (
    AckReceived,
    ResponseReceived,
    StrayAck,
    StrayResponse,
    TransactionState,
    new_branch,
)
from trio_voip.sip.transport import LocalAddress, Source, TransportLayer
from trio_voip.sip.uas import UasPolicy, inspect_request
from trio_voip.sip.uri import SipUri, Uri, parse_uri

__all__ = ["CoordinatorStats", "SessionCoordinator"]

logger = logging.getLogger(__name__)

SDP = "application/sdp"
DTMF_RELAY = "application/dtmf-relay"
_DTMF_DIGITS = frozenset("0123456789*#ABCD")
_ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY, REGISTER"
_SUPPORTED = "timer, replaces, norefersub"
_POLICY = UasPolicy(
    allowed_methods=frozenset(
        {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "REFER", "NOTIFY"}
        | {"PRACK", "REGISTER"}
    ),
    accepted_content_types=frozenset(
        {SDP, DTMF_RELAY, "application/dtmf", "message/sipfrag"}
    ),
)
# Who answers what without a dialog: everything else out of dialog is 481.
_OUT_OF_DIALOG_OK = frozenset({"OPTIONS"})


@attrs.frozen
class CoordinatorStats:
    """What the coordinator holds right now; all return to zero once calls are over (and
    transactions have run out their timers)."""

    calls: int
    dialogs: int
    transactions: int
    rtp_ports: int
    registrations: int
    #: session and bridge events lost by subscribers that did not keep up
    events_dropped: int
    #: live bridges; a room made by create_bridge() stays until destroy_bridge()
    bridges: int = 0


@attrs.define(eq=False)
class _CallLegs:
    """The protocol state of one call the application never sees."""

    transport: str = "UDP"
    dialog_id: DialogId | None = None
    early: set[DialogId] = attrs.Factory(set)
    # incoming
    request: Request | None = None
    server: ServerTransactionHandle | None = None
    source: Source | None = None
    final_sent: bool = False
    final_event: trio.Event = attrs.Factory(trio.Event)
    # set (and replaced) by each ACK, for a BYE waiting for the ACK of a 2xx of ours
    ack_wait: trio.Event = attrs.Factory(trio.Event)
    decision_scope: trio.CancelScope | None = None
    # outgoing
    invite: Request | None = None
    client: ClientTransactionHandle | None = None
    destination: tuple[str, int, str] | None = None
    cancel_requested: bool = False
    # how the call ends once cancelled, when not by our user's hang-up (no answer in time)
    cancel_reason: EndReason | None = None
    cancelled_at: float | None = None
    # the wait for the INVITE's final response (see _bound_invite)
    invite_deadline: float = math.inf
    invite_wait: trio.CancelScope | None = None
    send_error: Exception | None = None
    confirmed: bool = False
    # in-dialog
    reinvite_busy: bool = False
    glare_over: trio.Event = attrs.Factory(trio.Event)
    end_hint: EndReason | None = None
    session_id: int = attrs.Factory(lambda: secrets.randbelow(2**31))


def _uri_target(uri: Uri, transport: str) -> tuple[str, int, str]:
    if not isinstance(uri, SipUri):
        raise CallError(f"cannot send to a non-SIP URI {uri}")
    uri_transport = uri.param("transport")
    transport = uri_transport.upper() if uri_transport else transport
    return uri.maddr or uri.host, uri.port or 5060, transport


def _next_hop(request: Request, transport: str) -> tuple[str, int, str]:
    """Where to send ``request``: its first Route (loose routing), else its Request-URI."""
    routes = request.routes
    return _uri_target(routes[0].uri if routes else request.uri, transport)


def _is_number(text: str) -> bool:
    # str.isdigit alone accepts digits int() refuses ("²").
    return text.isascii() and text.isdigit()


def _parse_dtmf(request: Request) -> tuple[str, int] | None:
    """(digit, duration ms) from an INFO body, or None if it carries no DTMF."""
    content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    text = request.body.decode("utf-8", "replace")
    if content_type == "application/dtmf":
        digit = text.strip().upper()
        return (digit, 160) if digit in _DTMF_DIGITS and len(digit) == 1 else None
    if content_type != DTMF_RELAY:
        return None
    digit, duration = None, 160
    for line in text.splitlines():
        name, _, value = line.partition("=")
        name, value = name.strip().lower(), value.strip()
        if name == "signal" and len(value) == 1 and value.upper() in _DTMF_DIGITS:
            digit = value.upper()
        elif name == "duration" and _is_number(value) and len(value) < 7:
            duration = int(value)
    return None if digit is None else (digit, duration)


def _sipfrag_status(body: bytes) -> tuple[int, str] | None:
    """The status of a message/sipfrag body's status line (``SIP/2.0 200 OK``)."""
    line = body.split(b"\r\n", 1)[0].split(b"\n", 1)[0].decode("utf-8", "replace")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].upper().startswith("SIP/") or not _is_number(parts[1]):
        return None
    status = int(parts[1])
    return (status, parts[2] if len(parts) > 2 else "") if 100 <= status <= 699 else None


def _reason_for(status: int, cancelled: bool) -> EndReason:
    if cancelled:
        return EndReason(EndKind.CANCELLED, status)
    if 300 <= status < 400:
        return EndReason(EndKind.REDIRECTED, status)
    if status in (408, 480):
        return EndReason(EndKind.NO_ANSWER, status)
    return EndReason(EndKind.REJECTED, status)


_TERMINATION_KINDS = {
    "BYE received": EndKind.REMOTE_HANGUP,
    "no ACK for 2xx": EndKind.NO_ACK,
    "session expired": EndKind.SESSION_EXPIRED,
}


class SessionCoordinator:
    """Runs calls; build with :class:`SessionManagerBuilder`, use as ``async with``.

    ``subscribe_to_session_events()`` gives a channel of every call's events;
    ``make_call`` places a call; incoming calls go to the handler. ``stats()`` counts what is
    held, for "nothing left behind" checks.
    """

    def __init__(self, config: CoordinatorConfig, handler: CallHandler) -> None:
        self.config = config
        self.handler = handler
        factory = config.transport_factory
        transport = (
            factory(config.host, config.port)
            if factory is not None
            else TransportLayer([(t, config.host, config.port) for t in config.transports])
        )
        # Timer C of our INVITEs is ours (_bound_invite: it CANCELs), not the transactions'.
        self.endpoint = SipEndpoint(transport, config=attrs.evolve(config.timers, timer_c=None))
        self._answer_timeout = (
            config.timers.timer_c if config.timers.timer_c is not None else config.answer_timeout
        )
        self.dialogs = DialogLayer(
            t1=config.timers.t1, t2=config.timers.t2, session_timers=config.session_timers
        )
        self.ports = PortAllocator(config.rtp_start, config.rtp_end)
        self._bus: EventBus[SessionEvent] = EventBus()
        self.relay = (
            RtpRelay(self.ports, host=config.host or "0.0.0.0") if config.media_relay else None
        )
        # relay endpoints of the live calls that have one, by call id
        self._endpoints: dict[str, MediaEndpoint] = {}
        # RFC 4733 on those endpoints; its timeouts run on _timer_loop
        self.dtmf = DtmfService(
            self._publish_dtmf,
            self._kick,
            self.relay.ticker.stream if self.relay is not None else None,
        )
        self._recordings: set[Recording] = set()
        # mixes, prompts, tones and music on hold from the relay's media ticker
        self.media = (
            CallMedia(
                self.relay.ticker,
                self._bridge_media,
                self._negotiated_media,
                music_on_hold=config.music_on_hold,
            )
            if self.relay is not None
            else None
        )
        self.bridge_manager = BridgeManager(
            self._is_active,
            media=self._bridge_media if self.relay is not None else None,
            mix=self.media.follow_bridge if self.media is not None else None,
        )
        realm = config.realm or config.domain
        # the Digest users: set_user / remove_user change them while we run
        self._users: dict[str, str | PrecomputedHA1] = dict(config.users)
        self.authenticator = (
            DigestAuthenticator(realm, self._users.get, algorithms=config.digest_algorithms)
            if config.users
            else None
        )
        self.registrar = reg.Registrar(
            domains=[config.domain, *config.domains, config.public_host],
            authenticator=self.authenticator if config.auth_register else None,
            users=self._is_user if config.users else None,
        )
        self._calls: dict[str, CallSession] = {}
        self._legs: dict[str, _CallLegs] = {}
        self._by_dialog: dict[DialogId, CallSession] = {}
        self._by_invite: dict[object, CallSession] = {}
        self._addresses: list[LocalAddress] = []
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._wakeup = trio.Event()
        self._next_id = 0
        self._callbacks_running = 0
        self._callbacks_idle = trio.Event()

    def _is_active(self, session_id: SessionId) -> bool:
        call = self._calls.get(session_id)
        return call is not None and call.state in (CallState.ACTIVE, CallState.ON_HOLD)

    def _bridge_media(self, session_id: SessionId) -> MediaEndpoint | None:
        """The call's relay endpoint, aimed at its negotiated remote media the first time."""
        endpoint = self._endpoints.get(session_id)
        call = self._calls.get(session_id)
        if endpoint is not None and call is not None and endpoint.remote is None and call.media:
            media = call.media
            endpoint.set_remote(
                media.remote_address,
                media.remote_port,
                rtcp_port=media.remote_rtcp_port,
                payload_types=[
                    pt for pt in (media.payload_type, media.telephone_event_pt) if pt is not None
                ],
            )
        return endpoint

    def _negotiated_media(self, session_id: SessionId) -> NegotiatedMedia | None:
        call = self._calls.get(session_id)
        return None if call is None else call.media

    def _allocate_media(self, call: CallSession) -> int:
        """A local RTP port for our own SDP: a relay endpoint's when media is relayed."""
        if self.relay is None:
            return self.ports.allocate()
        endpoint = self._endpoints[call.id] = self.relay.open_endpoint()
        self.dtmf.attach(call.id, endpoint, lambda: call.media)
        return endpoint.local_port

    def _aim_media(self, call: CallSession) -> None:
        """Aim the call's relay endpoint at its negotiated media, so what the phone sends is
        accepted (DTMF, recordings) even when it starts after the latch window."""
        try:
            self._bridge_media(call.id)
        except RtpError as exc:
            logger.info("cannot aim the media of %s: %s", call.id, exc)

    def _is_user(self, aor: str) -> bool:
        """Whether a canonical AOR (``sip:user@domain``) names one of our users."""
        user = aor.partition(":")[2].partition("@")[0]
        return user in self._users

    def set_user(self, name: str, secret: str | PrecomputedHA1) -> None:
        """Add a Digest user, or change its credentials (a password, or its HA1 values for
        our realm), while running: it authenticates with them from the next request on.
        Only a coordinator built with users authenticates anybody, so one built without
        refuses (TrioVoipError), as it does a name or secret that is empty or not text."""
        if self.authenticator is None:
            raise TrioVoipError("this coordinator has no users (built without builder.user)")
        if not isinstance(name, str) or not name or "@" in name or ":" in name:
            raise TrioVoipError(f"a user name must be a SIP user part, not {name!r}")
        if not isinstance(secret, PrecomputedHA1) and (not isinstance(secret, str) or not secret):
            raise TrioVoipError(f"user {name!r}: a password must be a non-empty string")
        self._users[name] = secret

    def has_user(self, name: str) -> bool:
        """Whether ``name`` is one of our Digest users (configured or :meth:`set_user`)."""
        return name in self._users

    def user_names(self) -> list[str]:
        """Our Digest users' names, configured ones first, then in the order they were set."""
        return list(self._users)

    def remove_user(self, name: str) -> None:
        """Forget a user: its registrations are dropped and it can no longer authenticate
        (calls it has go on). Raises TrioVoipError for a user we do not have."""
        if self._users.pop(name, None) is None:
            raise TrioVoipError(f"no user {name!r}")
        self.drop_registrations(name)

    # -- lifecycle --

    async def __aenter__(self) -> SessionCoordinator:
        if self._stack is not None:
            raise TrioVoipError("a SessionCoordinator runs once")
        stack = contextlib.AsyncExitStack()
        self._stack = stack
        nursery = await stack.enter_async_context(trio.open_nursery())
        self._nursery = nursery
        try:
            self._addresses = await nursery.start(self.endpoint.run)
            if self.relay is not None:
                await nursery.start(self.relay.run)
        except BaseException:
            nursery.cancel_scope.cancel()
            await stack.aclose()
            raise
        nursery.start_soon(self._incoming_loop)
        nursery.start_soon(self._stray_loop)
        nursery.start_soon(self._timer_loop)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._stack is not None and self._nursery is not None
        with trio.CancelScope(shield=True):
            await self._shutdown()
        self._nursery.cancel_scope.cancel()
        try:
            return await self._stack.__aexit__(exc_type, exc, tb)
        finally:
            self._nursery = None

    async def _shutdown(self) -> None:
        live = [call for call in self._calls.values() if call.state.live]
        with trio.move_on_after(self.config.shutdown_timeout):
            async with trio.open_nursery() as nursery:
                for call in live:
                    nursery.start_soon(self._quiet_hangup, call)
        for call in list(self._calls.values()):
            self._end(call, EndReason(EndKind.LOCAL_HANGUP, detail="coordinator shut down"))
        # Recordings of calls stop with them; a bridge room outlives its calls: stop them all,
        # so every file is finalised.
        with trio.move_on_after(self.config.shutdown_timeout):
            for recording in list(self._recordings):
                with contextlib.suppress(RecordingError):
                    await recording.stop()
        # Let the handler hear about the calls just ended (on_call_ended) before we stop.
        with trio.move_on_after(self.config.shutdown_timeout):
            while self._callbacks_running:
                await self._callbacks_idle.wait()
        self._bus.close()
        self.bridge_manager.close()

    async def _quiet_hangup(self, call: CallSession) -> None:
        try:
            await self._hangup(call)
        except TrioVoipError as exc:
            logger.info("hang-up of %s at shutdown failed: %s", call.id, exc)

    # -- public API --

    @property
    def addresses(self) -> list[LocalAddress]:
        """The bound SIP sockets (real ports, also when configured with port 0)."""
        return list(self._addresses)

    def port(self, transport: str = "UDP") -> int:
        """Our SIP port for ``transport``."""
        for address in self._addresses:
            if address.transport == transport.upper():
                return address.port
        raise TrioVoipError(f"not listening on {transport}")

    @property
    def calls(self) -> list[CallSession]:
        """The live calls."""
        return list(self._calls.values())

    def get_call(self, session_id: str) -> CallSession | None:
        """The live call ``session_id`` (None once it has ended)."""
        return self._calls.get(session_id)

    def media_stats(self, session_id: str) -> EndpointStats | None:
        """A copy of the counters of call ``session_id``'s relay endpoint (packets and bytes
        each way, malformed and foreign packets dropped...; see
        :class:`~trio_voip.rtp.relay.EndpointStats`); None when its media is not relayed or
        the call has ended."""
        endpoint = self._endpoints.get(session_id)
        return attrs.evolve(endpoint.stats) if endpoint is not None else None

    def subscribe_to_session_events(
        self, buffer: int | None = None
    ) -> trio.MemoryReceiveChannel[SessionEvent]:
        """Every call's events from now on. A subscriber that falls ``buffer`` events behind
        loses the newest ones (counted in ``stats().events_dropped``); calls never wait."""
        return self._bus.subscribe(buffer or self.config.event_buffer)

    def drop_registrations(self, user: str) -> int:
        """Drop every binding of the AORs whose user part is ``user`` (its phone registers
        again when it refreshes), publishing :class:`RegistrationChanged`; returns how many
        were dropped."""
        location = self.registrar.location
        now = trio.current_time()
        dropped = 0
        for aor in location.aors():
            if aor.partition(":")[2].rpartition("@")[0] == user:
                dropped += len(location.bindings(aor))
                location.replace(aor, (), now)
                self._registration_changed(aor, now)
        return dropped

    def stats(self) -> CoordinatorStats:
        return CoordinatorStats(
            calls=len(self._calls),
            dialogs=self.dialogs.count,
            transactions=len(self.endpoint.layer),
            rtp_ports=self.ports.allocations,
            registrations=self.registrar.location.count,
            events_dropped=self._bus.dropped + self.bridge_manager.dropped,
            bridges=self.bridge_manager.count,
        )

    # -- recordings (see trio_voip.session.recording) --

    @property
    def recordings(self) -> list[Recording]:
        """The recordings in progress."""
        return list(self._recordings)

    async def record_bridge(self, bridge_id: BridgeId, path: str | os.PathLike[str]) -> Recording:
        """Record bridge ``bridge_id`` to a WAV file at ``path`` (8 kHz mono 16-bit): every
        participant mixed, following them as they join and leave, until ``await
        recording.stop()`` or the bridge is destroyed. Needs relayed media
        (``builder.media_relay()``). Raises UnknownBridge, or RecordingError if the file
        cannot be created."""
        self._check_running()
        if self.relay is None:
            raise CallError("recording needs relayed media (builder.media_relay())")
        self.bridge_manager.table.participants(bridge_id)

        def sources() -> list[MediaEndpoint] | None:
            try:
                participants = self.bridge_manager.table.participants(bridge_id)
            except UnknownBridge:
                return None
            endpoints = (self._endpoints.get(session_id) for session_id in participants)
            return [endpoint for endpoint in endpoints if endpoint is not None]

        return await self._start_recording(path, sources)

    async def _record_call(
        self, call: CallSession, path: str | os.PathLike[str]
    ) -> Recording:
        self._check_running()
        endpoint = self._endpoints.get(call.id)
        if not call.state.live:
            raise CallStateError(f"call {call.id} is {call.state.name}: nothing to record")
        if endpoint is None:
            raise CallError("recording needs relayed media (builder.media_relay())")
        self._aim_media(call)

        def sources() -> set[MediaEndpoint] | None:
            if endpoint.closed:
                return None
            # What our phone hears: the leg it is relayed to, or the rest of its bridge.
            heard = {endpoint} if endpoint.peer is None else {endpoint, endpoint.peer}
            bridge_id = self.bridge_manager.get_session_bridge(call.id)
            if bridge_id is not None:
                for session_id in self.bridge_manager.table.participants(bridge_id):
                    other = self._endpoints.get(session_id)
                    if other is not None:
                        heard.add(other)
            return heard

        return await self._start_recording(path, sources)

    async def _start_recording(self, path: str | os.PathLike[str], sources: Sources) -> Recording:
        recording = await Recording.open(path, sources)
        self._recordings.add(recording)
        self._spawn(self._run_recording, recording)
        return recording

    def _refresh_recordings(self) -> None:
        """A call or bridge changed: recordings tap what they should now, or stop."""
        for recording in self._recordings:
            recording.refresh()

    async def _run_recording(self, recording: Recording) -> None:
        try:
            await recording.run()
        finally:
            self._recordings.discard(recording)
        if recording.error is not None:
            logger.warning("%s", recording.error)

    # -- bridges (see trio_voip.bridge for the rules; ids are call ids) --

    def create_bridge(self) -> BridgeId:
        """A new empty bridge (a conference room): it lives until :meth:`destroy_bridge`."""
        return self.bridge_manager.create_bridge()

    def bridge_sessions(self, first: SessionId, second: SessionId) -> BridgeId:
        """A new bridge joining two active (ACTIVE or ON_HOLD), unbridged calls; it is
        destroyed when either leaves. Raises SessionNotActive / SessionAlreadyBridged /
        BridgeError (same call twice), changing nothing."""
        bridge_id = self.bridge_manager.bridge_sessions(first, second)
        self._refresh_recordings()
        return bridge_id

    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self.bridge_manager.add_session_to_bridge(bridge_id, session_id)
        self._refresh_recordings()

    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self.bridge_manager.remove_session_from_bridge(bridge_id, session_id)
        self._refresh_recordings()

    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        self.bridge_manager.destroy_bridge(bridge_id)
        self._refresh_recordings()

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None:
        return self.bridge_manager.get_session_bridge(session_id)

    def list_bridges(self) -> list[BridgeInfo]:
        return self.bridge_manager.list_bridges()

    def subscribe_to_bridge_events(
        self, buffer: int | None = None
    ) -> trio.MemoryReceiveChannel[BridgeEvent]:
        """Every bridge event from now on. A subscriber that falls ``buffer`` events behind
        loses the newest ones (counted in ``stats().events_dropped``); bridge
        operations and calls never wait for it."""
        return self.bridge_manager.subscribe(buffer or self.config.event_buffer)

    async def make_call(
        self,
        target: str | Uri,
        *,
        from_user: str = "trio",
        display_name: str | None = None,
        sdp: SessionDescription | bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        destination: tuple[str, int, str] | None = None,
        transport: str = "UDP",
        credentials: tuple[str, str] | None = None,
    ) -> CallSession:
        """Call ``target``: a SIP URI, or the name of a user registered here (sent to the
        address the registration came from). Returns once the INVITE is sent; follow the
        call through its state and events. ``sdp`` is the offer (default: ours, on a fresh
        RTP port); ``destination`` = (host, port, transport) overrides where it is sent;
        ``credentials`` (default: the configured ones) answer a 401/407. ``sdp`` as bytes
        is sent as is (``b""``: no offer; the peer offers in its 2xx, we answer in the ACK).

        If no final response comes within ``answer_timeout`` (builder ``.limits()``) of the
        INVITE or of its latest provisional response, the INVITE is CANCELled and the call
        ends NO_ANSWER (408). Cancelled while the INVITE goes out, ``make_call`` raises and
        the call is hung up in the background (CANCEL, or BYE if answered)."""
        self._check_running()
        if len(self._calls) >= self.config.max_calls:
            raise CallError("too many calls", status=503)
        uri, where = self._resolve(target, transport)
        if destination is not None:
            where = (destination[0], destination[1], destination[2].upper())
        config = self.config
        call_id = f"{secrets.token_hex(10)}@{config.public_host}"
        local = NameAddr(
            SipUri(user=from_user, host=config.domain), display_name=display_name
        ).with_tag(secrets.token_hex(6))
        remote = NameAddr(uri)
        legs = _CallLegs(transport=where[2], destination=where)
        call = self._new_call(CallDirection.OUTGOING, call_id, local, remote, legs)
        try:
            if sdp is None or sdp == b"":
                call.rtp_port = self._allocate_media(call)
            if sdp is None:
                sdp = build_offer(
                    address=self._media_host,
                    port=call.rtp_port,
                    codecs=config.codecs,
                    session_id=legs.session_id,
                )
            body = bytes(sdp)
            if isinstance(sdp, SessionDescription):
                call.local_sdp = sdp
            elif body:
                # Passed through as given; kept as our SDP only if we can read it.
                with contextlib.suppress(SdpError):
                    call.local_sdp = parse_sdp(body)
            h = Headers()
            h.add("Via", f"SIP/2.0/{where[2]} 0.0.0.0;branch={new_branch()}")
            h.add("Max-Forwards", "70")
            h.add("From", str(local))
            h.add("To", str(remote))
            h.add("Call-ID", call_id)
            h.add("CSeq", f"{secrets.randbelow(2**16) + 1} INVITE")
            h.add("Contact", str(self._contact(from_user, where[2])))
            h.add("Allow", _ALLOW)
            h.add("Supported", _SUPPORTED)
            h.add("User-Agent", config.user_agent)
            for name, value in headers:
                h.add(name, value)
            if body:
                h.add("Content-Type", SDP)
            invite = self.dialogs.start_uac(Request("INVITE", uri, h, body))
            legs.invite = call.invite = invite
            client = credentials or config.credentials
            auth = DigestClient(*client) if client is not None else None
        except BaseException:
            self._end(call, EndReason(EndKind.FAILED, detail="could not send the INVITE"))
            raise
        # The call's own task sends the INVITE and owns it from the start: if we are
        # cancelled while it goes out, the task still CANCELs it (or BYEs a 2xx), so no peer
        # is left ringing for a call nobody holds.
        sent = trio.Event()
        self._spawn(self._outgoing_call, call, auth, sent)
        try:
            await sent.wait()
        except BaseException:
            self._spawn(self._quiet_hangup, call)
            raise
        if legs.client is None:
            raise legs.send_error or CallError("the INVITE was not sent")
        return call

    # -- helpers --

    def _check_running(self) -> None:
        if self._nursery is None:
            raise TrioVoipError("the coordinator is not running (use `async with`)")

    def _spawn(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    @property
    def _media_host(self) -> str:
        return self.config.media_address or self.config.public_host

    def _contact(self, user: str | None, transport: str) -> SipUri:
        uri = SipUri(user=user, host=self.config.public_host, port=self.port(transport))
        return uri.with_param("transport", "tcp") if transport == "TCP" else uri

    def _capabilities(self, call: CallSession) -> LocalCapabilities:
        return LocalCapabilities(
            address=self._media_host,
            ports={"audio": call.rtp_port or 9},
            codecs=self.config.codecs,
            direction=Direction.SENDONLY if call.local_hold else Direction.SENDRECV,
        )

    def _resolve(self, target: str | Uri, transport: str) -> tuple[Uri, tuple[str, int, str]]:
        if isinstance(target, str) and ":" not in target:
            text = target if "@" in target else f"{target}@{self.config.domain}"
            uri = parse_uri(f"sip:{text}")
            now = trio.current_time()
            bindings = self.registrar.location.lookup(uri, now) if isinstance(uri, SipUri) else []
            if bindings:
                binding = bindings[0]
                source = binding.source
                if source is not None:
                    return binding.uri, (source.host, source.port, source.transport.upper())
                return binding.uri, _uri_target(binding.uri, transport.upper())
            if "@" not in target:
                raise CallError(f"user {target!r} is not registered", status=404)
            return uri, _uri_target(uri, transport.upper())
        uri = parse_uri(target) if isinstance(target, str) else target
        return uri, _uri_target(uri, transport.upper())

    def _new_call(
        self,
        direction: CallDirection,
        call_id: str,
        local: NameAddr,
        remote: NameAddr,
        legs: _CallLegs,
    ) -> CallSession:
        self._next_id += 1
        call = CallSession(
            id=f"{direction.value[:2]}-{self._next_id}-{secrets.token_hex(3)}",
            direction=direction,
            call_id=call_id,
            local_party=local,
            remote_party=remote,
            coordinator=self,
        )
        self._calls[call.id] = call
        self._legs[call.id] = legs
        return call

    def _publish(self, call: CallSession, event: SessionEvent) -> None:
        self._bus.publish(event)
        call._bus.publish(event)

    def _publish_dtmf(self, session_id: str, event: SessionEvent) -> None:
        call = self._calls.get(session_id)
        if call is not None:
            self._publish(call, event)

    def _set_state(self, call: CallSession, new: CallState, reason: str = "") -> None:
        if call.state is new:
            return
        self._publish(call, call._transition(new, reason))

    def _established(self, call: CallSession) -> None:
        """The call is answered and acknowledged: ACTIVE (ON_HOLD if media says so)."""
        if call.state not in (CallState.INITIATING, CallState.RINGING):
            return
        self._set_state(call, CallState.ACTIVE, "answered")
        self._aim_media(call)
        if call.local_hold or call.remote_hold:
            self._set_state(call, CallState.ON_HOLD, "answered on hold")
        self._spawn(self._callback, self.handler.on_call_established, call)

    def _update_hold(self, call: CallSession) -> None:
        if not call.state.established:
            return
        held = call.local_hold or call.remote_hold
        self._set_state(
            call,
            CallState.ON_HOLD if held else CallState.ACTIVE,
            "held" if held else "resumed",
        )

    def _end(self, call: CallSession, reason: EndReason) -> None:
        """Terminate ``call`` for ``reason`` and release all it holds (idempotent)."""
        if call.state is CallState.TERMINATED:
            return
        legs = self._legs.pop(call.id)
        self._calls.pop(call.id, None)
        call.end_reason = reason
        self._publish(call, call._transition(CallState.TERMINATED, str(reason)))
        self._publish(call, CallEnded(call.id, reason, call.duration))
        call._bus.close()
        self.bridge_manager.session_ended(call.id)
        endpoint = self._endpoints.pop(call.id, None)
        self.dtmf.detach(call.id)
        if self.media is not None:
            self.media.forget(call.id)
        if endpoint is not None:
            endpoint.close()  # gives its port back (and ends its playback)
            self._refresh_recordings()
        elif call.rtp_port is not None:
            self.ports.release(call.rtp_port)
        for dialog_id in {*legs.early, *([legs.dialog_id] if legs.dialog_id else [])}:
            self._by_dialog.pop(dialog_id, None)
            self.dialogs.terminate(dialog_id)
        if legs.server is not None:
            self._by_invite.pop(legs.server.key, None)
        if legs.decision_scope is not None:
            legs.decision_scope.cancel()
        legs.final_event.set()
        legs.ack_wait.set()
        self._kick()
        if self._nursery is not None:
            self._spawn(self._callback, self.handler.on_call_ended, call, reason)

    async def _callback(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._callbacks_running += 1
        try:
            await fn(*args)
        except Exception:
            logger.exception("call handler %s failed", getattr(fn, "__name__", fn))
        finally:
            self._callbacks_running -= 1
            if not self._callbacks_running:
                self._callbacks_idle.set()
                self._callbacks_idle = trio.Event()

    def _kick(self) -> None:
        self._wakeup.set()

    async def _send_request(self, request: Request, transport: str) -> ClientTransactionHandle:
        host, port, how = _next_hop(request, transport)
        return await self.endpoint.request(request, host, port, how)

    async def _send_ack(self, ack: Request, transport: str) -> None:
        host, port, how = _next_hop(ack, transport)
        try:
            await self.endpoint.send_ack(ack, host, port, how)
        except TransportError as exc:
            logger.info("could not send ACK: %s", exc)

    async def _send_bye(self, bye: Request, transport: str) -> None:
        try:
            await self._send_request(bye, transport)
        except TrioVoipError as exc:
            logger.info("could not send BYE: %s", exc)

    def _transport_of(self, dialog_id: DialogId) -> str:
        call = self._by_dialog.get(dialog_id)
        legs = self._legs.get(call.id) if call is not None else None
        return legs.transport if legs is not None else "UDP"

    async def _dialog_events(self, events: list[DialogEvent]) -> None:
        """Carry out what the dialog layer asks for (outside a particular exchange)."""
        self._kick()
        for event in events:
            if isinstance(event, SendAck):
                await self._send_ack(event.request, self._transport_of_request(event.request))
            elif isinstance(event, SendBye):
                await self._send_bye(event.request, self._transport_of_request(event.request))
            elif isinstance(event, Retransmit):
                await self._retransmit(event.response)
            elif isinstance(event, AckTimeout):
                self._hint(event.dialog_id, EndReason(EndKind.NO_ACK, detail="no ACK for our 2xx"))
            elif isinstance(event, SessionExpired):
                self._hint(event.dialog_id, EndReason(EndKind.SESSION_EXPIRED))
            elif isinstance(event, DialogTerminated):
                self._dialog_terminated(event)
            elif isinstance(event, RetryReinvite):
                call = self._by_dialog.get(event.dialog_id)
                if call is not None:
                    self._legs[call.id].glare_over.set()
            elif isinstance(event, RefreshSession):
                call = self._by_dialog.get(event.dialog_id)
                if call is not None:
                    self._spawn(self._refresh, call, event.method)
            elif isinstance(event, SendResponse):
                logger.warning("dialog response outside a request: %s", event.response.status)

    def _transport_of_request(self, request: Request) -> str:
        tag = request.to.tag
        local = request.from_.tag
        if tag is None or local is None:
            return "UDP"
        return self._transport_of(DialogId(request.call_id, local, tag))

    async def _retransmit(self, response: Response) -> None:
        tag = response.to.tag
        call = (
            self._by_dialog.get(DialogId(response.call_id, tag, response.from_.tag or ""))
            if tag is not None
            else None
        )
        legs = self._legs.get(call.id) if call is not None else None
        try:
            await self.endpoint.transport.send_response(
                response, legs.source if legs is not None else None
            )
        except TransportError as exc:
            logger.info("2xx retransmission failed: %s", exc)

    def _hint(self, dialog_id: DialogId, reason: EndReason) -> None:
        call = self._by_dialog.get(dialog_id)
        if call is not None:
            self._legs[call.id].end_hint = reason

    def _dialog_terminated(self, event: DialogTerminated) -> None:
        call = self._by_dialog.pop(event.dialog_id, None)
        if call is None or call.state is CallState.TERMINATED:
            return
        legs = self._legs[call.id]
        legs.early.discard(event.dialog_id)
        if event.dialog_id != legs.dialog_id:
            return  # another fork's early dialog: the call goes on
        if call.direction is CallDirection.OUTGOING and not legs.confirmed:
            return  # the INVITE's own final response ends the call
        reason = legs.end_hint
        if reason is None:
            kind = _TERMINATION_KINDS.get(event.reason, EndKind.FAILED)
            status_text = event.reason.split(" ", 1)[0]
            status = int(status_text) if _is_number(status_text) else None
            reason = EndReason(kind, status, event.reason)
        self._end(call, reason)

    # -- loops --

    async def _incoming_loop(self) -> None:
        async for handle in self.endpoint.incoming:
            try:
                await self._on_request(handle)
            except (TrioVoipError, trio.BrokenResourceError) as exc:
                logger.info("handling %s failed: %s", handle.request.method, exc)
                await self._answer_failure(handle)

    async def _answer_failure(self, handle: ServerTransactionHandle) -> None:
        """500 for a request whose handling failed before it was answered (an INVITE taken
        on by a call is that call's business)."""
        if handle.key in self._by_invite or handle.state not in (
            TransactionState.TRYING,
            TransactionState.PROCEEDING,
        ):
            return
        try:
            await handle.respond(make_response(handle.request, 500))
        except (TrioVoipError, trio.BrokenResourceError) as exc:
            logger.info("could not answer 500: %s", exc)

    async def _stray_loop(self) -> None:
        async for stray in self.endpoint.stray:
            now = trio.current_time()
            try:
                if isinstance(stray, StrayAck | AckReceived):
                    events = self.dialogs.on_request(stray.request, now)
                    await self._on_in_dialog(None, stray.request, events)
                elif isinstance(stray, StrayResponse | ResponseReceived):
                    await self._dialog_events(self.dialogs.on_response(stray.response, now))
            except TrioVoipError as exc:
                logger.info("stray message failed: %s", exc)

    async def _timer_loop(self) -> None:
        while True:
            self._wakeup = trio.Event()
            deadline = self.dialogs.next_deadline()
            location = self.registrar.location.next_deadline()
            if location is not None and (deadline is None or location < deadline):
                deadline = location
            dtmf = self.dtmf.next_deadline()
            if dtmf is not None and (deadline is None or dtmf < deadline):
                deadline = dtmf
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._wakeup.wait()
            now = trio.current_time()
            for aor in {e.binding.aor for e in self.registrar.location.on_timer(now)}:
                self._registration_changed(aor, now)
            self.dtmf.on_timer(now)
            try:
                await self._dialog_events(self.dialogs.on_timer(now))
            except TrioVoipError as exc:
                logger.warning("dialog timer handling failed: %s", exc)

    # -- incoming requests --

    async def _on_request(self, handle: ServerTransactionHandle) -> None:
        request = handle.request
        refusal = inspect_request(request, _POLICY)
        if refusal is not None:
            await handle.respond(refusal)
            return
        method = request.method
        now = trio.current_time()
        if method == "CANCEL":
            await self._on_cancel(handle)
        elif method == "REGISTER":
            await self._on_register(handle)
        elif request.to.tag is None:
            if method == "INVITE":
                events = self.dialogs.on_request(request, now)
                for event in events:
                    if isinstance(event, SendResponse):
                        await handle.respond(event.response)
                        return
                await self._on_invite(handle)
            elif method in _OUT_OF_DIALOG_OK:
                response = make_response(request, 200, to_tag=secrets.token_hex(6))
                response.headers.add("Allow", _ALLOW)
                response.headers.add("Accept", f"{SDP}, {DTMF_RELAY}")
                response.headers.add("Supported", _SUPPORTED)
                await handle.respond(response)
            else:
                await handle.respond(make_response(request, 481))
        else:
            await self._on_in_dialog(handle, request, self.dialogs.on_request(request, now))
        self._kick()

    async def _on_register(self, handle: ServerTransactionHandle) -> None:
        source = handle.source
        where = reg.Source(source.transport, source.host, source.port) if source else None
        now = trio.current_time()
        response = self.registrar.process(handle.request, now, where)
        await handle.respond(response)
        if 200 <= response.status < 300:  # a 2xx has a To the registrar could read
            self._registration_changed(reg.canonical_aor(handle.request.to.uri), now)
        self._kick()

    def _registration_changed(self, aor: str, now: float) -> None:
        self._bus.publish(RegistrationChanged(aor, len(self.registrar.location.lookup(aor, now))))

    def _check_auth(self, handle: ServerTransactionHandle) -> Response | None:
        """The 401/403 to answer an unauthenticated INVITE with, or None if it may go on."""
        request = handle.request
        authenticator = self.authenticator
        if not self.config.auth_invite or authenticator is None:
            return None
        now = trio.current_time()
        credentials = request.headers.get_all("Authorization")
        tag = secrets.token_hex(6)
        if credentials:
            source = handle.source
            result = authenticator.verify(
                request.method,
                credentials,
                now,
                source=(source.host, source.port) if source is not None else None,
                request_uri=str(request.uri),
            )
            if result.ok:
                return None
            if result.outcome is AuthOutcome.RATE_LIMITED:
                return make_response(request, 403, to_tag=tag)
            challenges = authenticator.rechallenge(result, now)
        else:
            challenges = authenticator.challenge(now)
        response = make_response(request, 401, to_tag=tag)
        for value in challenges:
            response.headers.add("WWW-Authenticate", value)
        return response

    async def _on_invite(self, handle: ServerTransactionHandle) -> None:
        request = handle.request
        denial = self._check_auth(handle)
        if denial is not None:
            await handle.respond(denial)
            return
        replaced = None
        replaces = request.headers.get("Replaces")
        if replaces is not None:
            replaced = self._replaced_call(replaces)
            if replaced is None:
                # RFC 3891 3: no such confirmed dialog (or not one we can replace).
                await handle.respond(make_response(request, 481, to_tag=secrets.token_hex(6)))
                return
        if len(self._calls) >= self.config.max_calls:
            await handle.respond(make_response(request, 503, to_tag=secrets.token_hex(6)))
            return
        offer = None
        if request.body:
            try:
                offer = parse_sdp(request.body)
            except SdpError:
                await handle.respond(
                    make_response(request, 400, "Malformed SDP", to_tag=secrets.token_hex(6))
                )
                return
        source = handle.source
        transport = source.transport.upper() if source is not None else "UDP"
        user = request.uri.user if isinstance(request.uri, SipUri) else None
        try:
            dialog = self.dialogs.create_uas(
                request, secrets.token_hex(6), self._contact(user, transport)
            )
        except DialogError:  # no Contact (the only way a fresh INVITE fails here)
            await handle.respond(make_response(request, 400, "Missing Contact"))
            return
        legs = _CallLegs(
            transport=transport,
            dialog_id=dialog.id,
            request=request,
            server=handle,
            source=source,
        )
        call = self._new_call(
            CallDirection.INCOMING, request.call_id, dialog.local_uri, request.from_, legs
        )
        call.remote_sdp = offer
        self._by_dialog[dialog.id] = call
        self._by_invite[handle.key] = call
        call.invite = request
        if replaced is not None:
            call.replaces = replaced.id
            self._spawn(self._replacing_call, call, replaced)
        else:
            self._spawn(self._incoming_call, call)

    def _replaced_call(self, value: str) -> CallSession | None:
        """The established call a Replaces value (``call-id;to-tag=..;from-tag=..``) names."""
        call_id, _, rest = value.partition(";")
        tags = {}
        for param in rest.split(";"):
            name, _, tag = param.partition("=")
            tags[name.strip().lower()] = tag.strip()
        to_tag, from_tag = tags.get("to-tag"), tags.get("from-tag")
        if not call_id.strip() or not to_tag or from_tag is None:
            return None
        call = self._by_dialog.get(DialogId(call_id.strip(), to_tag, from_tag))
        return call if call is not None and call.state.established else None

    async def _replacing_call(self, call: CallSession, replaced: CallSession) -> None:
        """An INVITE with Replaces (RFC 3891): it takes over an established call, so it is
        answered without asking the handler, and the old call ends (BYE) once it is up."""
        try:
            await self._answer(call, None)
        except TrioVoipError as exc:
            logger.info("replacing call %s failed: %s", call.id, exc)
            if self._legs.get(call.id) is not None and not self._legs[call.id].final_sent:
                await self._final(call, 500, None, EndReason(EndKind.FAILED, 500, str(exc)))
            return
        if await call.wait_state(CallState.ACTIVE, CallState.ON_HOLD) is CallState.TERMINATED:
            return
        done = EndReason(EndKind.TRANSFERRED, detail=f"replaced by {call.id}")
        await self._hangup_as(replaced, done)

    async def _incoming_call(self, call: CallSession) -> None:
        legs = self._legs[call.id]
        with trio.CancelScope() as scope:
            legs.decision_scope = scope
            try:
                decision = await self.handler.on_incoming_call(call)
            except Exception:
                logger.exception("on_incoming_call failed for %s", call.id)
                decision = CallDecision.reject(500)
        legs.decision_scope = None
        if scope.cancelled_caught or legs.final_sent or call.state is CallState.TERMINATED:
            return
        try:
            await self._apply(call, decision)
        except TrioVoipError as exc:
            logger.info("call %s: applying %s failed: %s", call.id, decision.kind.value, exc)
            failure = EndReason(EndKind.FAILED, 500, str(exc))
            if legs.final_sent or not call.state.live:
                self._end(call, failure)
            else:
                await self._final(call, 500, None, failure)

    async def _apply(self, call: CallSession, decision: CallDecision) -> None:
        legs = self._legs[call.id]
        if decision.kind is DecisionKind.ACCEPT:
            await self._answer(call, decision.sdp)
        elif decision.kind is DecisionKind.REJECT:
            assert decision.status is not None
            await self._reject(call, decision.status, decision.reason)
        elif decision.kind is DecisionKind.FORWARD:
            await self._final(
                call,
                302,
                None,
                EndReason(EndKind.REDIRECTED, 302, str(decision.target)),
                headers=[("Contact", f"<{decision.target}>")],
            )
        else:
            await self._ring(call, None)
            with trio.move_on_after(self.config.ring_timeout):
                await legs.final_event.wait()
            if not legs.final_sent and call.state.live:
                timeout = EndReason(EndKind.NO_ANSWER, 480, "ring timeout")
                await self._final(call, 480, None, timeout)

    async def _respond_invite(
        self,
        call: CallSession,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        legs = self._legs[call.id]
        assert legs.request is not None and legs.server is not None
        response = self.dialogs.respond(
            legs.request,
            status,
            reason,
            now=trio.current_time(),
            dialog_id=legs.dialog_id,
            body=body,
            content_type=SDP if body else None,
            headers=headers,
        )
        if status >= 200:
            legs.final_sent = True
            legs.final_event.set()
        self._kick()
        await legs.server.respond(response)

    async def _final(
        self,
        call: CallSession,
        status: int,
        reason: str | None,
        end: EndReason,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A final failure response to the incoming INVITE, ending the call."""
        try:
            await self._respond_invite(call, status, reason, headers=headers)
        finally:
            self._end(call, end)

    def _incoming_unanswered(self, call: CallSession) -> _CallLegs:
        legs = self._legs.get(call.id)
        if call.direction is not CallDirection.INCOMING or legs is None or legs.final_sent:
            raise CallStateError(f"call {call.id} is not an unanswered incoming call")
        return legs

    async def _answer(self, call: CallSession, sdp: SessionDescription | bytes | None) -> None:
        legs = self._incoming_unanswered(call)
        if sdp is None and call.rtp_port is None:
            # Our own SDP needs a port of ours (an SDP passed through does not).
            try:
                call.rtp_port = self._allocate_media(call)
            except TrioVoipError:
                await self._final(call, 503, None, EndReason(EndKind.FAILED, 503, "no RTP port"))
                return
        try:
            if sdp is not None:
                local = sdp if isinstance(sdp, SessionDescription) else parse_sdp(sdp)
            elif call.remote_sdp is not None:
                local = answer_offer(
                    call.remote_sdp, self._capabilities(call), session_id=legs.session_id
                )
            else:  # no offer in the INVITE: ours goes in the 200, the answer in the ACK
                local = build_offer(
                    address=self._media_host,
                    port=call.rtp_port or 9,
                    codecs=self.config.codecs,
                    session_id=legs.session_id,
                )
        except OfferAnswerError as exc:
            await self._final(call, 488, None, EndReason(EndKind.FAILED, 488, str(exc)))
            return
        call.local_sdp = local
        if call.remote_sdp is not None:
            call.remote_hold = is_hold(call.remote_sdp)
            call.media = self._negotiate(call.remote_sdp, local, we_offered=False)
        await self._respond_invite(call, 200, body=bytes(local))

    @staticmethod
    def _negotiate(
        offer: SessionDescription, answer: SessionDescription, *, we_offered: bool
    ) -> NegotiatedMedia | None:
        try:
            return negotiated(offer, answer, we_offered=we_offered)
        except OfferAnswerError as exc:
            logger.info("offer/answer did not produce usable media: %s", exc)
            return None

    async def _ring(self, call: CallSession, sdp: SessionDescription | bytes | None) -> None:
        self._incoming_unanswered(call)
        if sdp is None:
            await self._respond_invite(call, 180)
        else:
            body = bytes(sdp)
            if isinstance(sdp, SessionDescription):
                call.local_sdp = sdp
            await self._respond_invite(call, 183, body=body)
        if call.state is CallState.INITIATING:
            self._set_state(call, CallState.RINGING, "ringing")

    async def _reject(self, call: CallSession, status: int, reason: str | None) -> None:
        self._incoming_unanswered(call)
        if not 300 <= status <= 699:
            raise CallStateError(f"a rejection needs a 3xx-6xx status, not {status}")
        await self._final(call, status, reason, _reason_for(status, cancelled=False))

    async def _on_cancel(self, handle: ServerTransactionHandle) -> None:
        request = handle.request
        target = handle.cancel_target
        call = self._by_invite.get(target.key) if target is not None else None
        if (
            target is not None
            and target.state in (TransactionState.TRYING, TransactionState.PROCEEDING)
            and (call is None or not self._legs[call.id].final_sent)
        ):
            legs = self._legs[call.id] if call is not None else None
            ok, terminated = self.dialogs.answer_cancel(
                request,
                target.request,
                now=trio.current_time(),
                dialog_id=legs.dialog_id if legs is not None else None,
            )
            if legs is not None:
                legs.final_sent = True
                legs.final_event.set()
            await handle.respond(ok)
            try:
                await target.respond(terminated)
            finally:
                if call is not None:
                    self._end(call, EndReason(EndKind.CANCELLED, 487, "caller cancelled"))
        else:
            await handle.respond(make_response(request, 200 if target is not None else 481))

    # -- in-dialog requests --

    async def _on_in_dialog(
        self,
        handle: ServerTransactionHandle | None,
        request: Request,
        events: list[DialogEvent],
    ) -> None:
        for event in events:
            if isinstance(event, SendResponse):
                if handle is not None:
                    await handle.respond(event.response)
            elif isinstance(event, RequestReceived):
                call = self._by_dialog.get(event.dialog_id)
                if request.method == "ACK":
                    if call is not None:
                        self._on_ack(call, request)
                elif handle is not None:
                    await self._serve_in_dialog(handle, call, event.dialog_id, request)
            else:
                await self._dialog_events([event])
        self._kick()

    def _on_ack(self, call: CallSession, ack: Request) -> None:
        legs = self._legs[call.id]
        if ack.body and call.local_sdp is not None and call.remote_sdp is None:
            try:
                call.remote_sdp = parse_sdp(ack.body)
                call.media = self._negotiate(call.local_sdp, call.remote_sdp, we_offered=True)
            except SdpError as exc:
                logger.info("bad SDP answer in ACK for %s: %s", call.id, exc)
        legs.ack_wait.set()
        legs.ack_wait = trio.Event()
        if legs.final_sent and call.state in (CallState.INITIATING, CallState.RINGING):
            self._established(call)

    async def _serve_in_dialog(
        self,
        handle: ServerTransactionHandle,
        call: CallSession | None,
        dialog_id: DialogId,
        request: Request,
    ) -> None:
        method = request.method
        now = trio.current_time()

        async def reply(status: int, reason: str | None = None, body: bytes = b"") -> None:
            response = self.dialogs.respond(
                request,
                status,
                reason,
                now=now,
                dialog_id=dialog_id,
                body=body,
                content_type=SDP if body else None,
            )
            self._kick()
            await handle.respond(response)

        if call is None:
            await reply(200 if method == "BYE" else 481)
            return
        legs = self._legs[call.id]
        if method == "BYE":
            if legs.end_hint is None:  # a transfer may already have said why it ends
                legs.end_hint = EndReason(EndKind.REMOTE_HANGUP)
            await reply(200)
            if legs.server is not None and not legs.final_sent:
                # The caller hung up an early dialog: its INVITE ends with 487.
                await self._respond_invite(call, 487)
        elif method in ("INVITE", "UPDATE"):
            await self._on_reoffer(call, request, reply)
        elif method == "INFO":
            dtmf = _parse_dtmf(request)
            await reply(200)
            if dtmf is not None:
                self._publish(call, DtmfReceived(call.id, dtmf[0], dtmf[1]))
        elif method == "NOTIFY":
            await reply(200)
            self._on_notify(call, request)
        elif method == "REFER":
            await self._on_refer(call, request, reply)
        else:
            await reply(200)

    async def _on_reoffer(
        self, call: CallSession, request: Request, reply: Callable[..., Awaitable[None]]
    ) -> None:
        if not request.body:
            # A session refresh (or an offerless re-INVITE: our SDP again, answer in ACK).
            body = bytes(call.local_sdp) if request.method == "INVITE" and call.local_sdp else b""
            await reply(200, body=body)
            return
        try:
            offer = parse_sdp(request.body)
            answer = answer_offer(offer, self._capabilities(call), previous=call.local_sdp)
        except OfferAnswerError:
            await reply(488)
            return
        except SdpError:
            await reply(400, "Malformed SDP")
            return
        call.remote_sdp = offer
        call.local_sdp = answer
        call.remote_hold = is_hold(offer)
        call.media = self._negotiate(offer, answer, we_offered=False)
        await reply(200, body=bytes(answer))
        self._update_hold(call)

    def _on_notify(self, call: CallSession, request: Request) -> None:
        if (request.headers.get("Event") or "").split(";", 1)[0].strip().lower() != "refer":
            return
        progress = _sipfrag_status(request.body)
        if progress is None:
            return
        status, reason = progress
        self._publish(call, TransferProgress(call.id, status, reason))
        if 200 <= status < 300 and call.state.established:
            self._legs[call.id].end_hint = EndReason(EndKind.TRANSFERRED, status)
            self._spawn(self._hangup_as, call, EndReason(EndKind.TRANSFERRED, status))

    async def _on_refer(
        self, call: CallSession, request: Request, reply: Callable[..., Awaitable[None]]
    ) -> None:
        refer_to = request.headers.get("Refer-To")
        if refer_to is None:
            await reply(400, "Missing Refer-To")
            return
        try:
            target = parse_name_addr(refer_to).uri
        except TrioVoipError:
            await reply(400, "Bad Refer-To")
            return
        await reply(202)
        self._spawn(self._follow_refer, call, target)

    async def _follow_refer(self, call: CallSession, target: Uri) -> None:
        """Carry out a REFER we accepted: call ``target`` and report progress by NOTIFY
        (RFC 3515); the referrer hangs up once told the new call is answered."""
        await self._notify_refer(call, 100, "Trying", final=False)
        local = call.local_party.uri
        from_user = (local.user if isinstance(local, SipUri) else None) or "trio"
        headers: list[tuple[str, str]] = []
        if isinstance(target, SipUri) and target.headers:
            # Refer-To headers (Replaces, for an attended transfer) go into our INVITE.
            headers = [(n, v) for n, v in target.headers if n.lower() == "replaces"]
            target = attrs.evolve(target, headers=())
        try:
            new_call = await self.make_call(target, from_user=from_user, headers=headers)
            state = await new_call.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
        except TrioVoipError as exc:
            logger.info("transfer of %s failed: %s", call.id, exc)
            await self._notify_refer(call, 503, "Service Unavailable", final=True)
            return
        if state is CallState.TERMINATED:
            reason = new_call.end_reason
            status = reason.status if reason is not None and reason.status else 487
            await self._notify_refer(call, status, "Failed", final=True)
            return
        legs = self._legs.get(call.id)
        if legs is not None:
            # The transferor hangs up on our final NOTIFY (RFC 5589 6.1): its BYE ends this.
            legs.end_hint = EndReason(EndKind.TRANSFERRED, 200, str(target))
        await self._notify_refer(call, 200, "OK", final=True)

    async def _notify_refer(
        self, call: CallSession, status: int, reason: str, *, final: bool
    ) -> None:
        if not call.state.established:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        try:
            await self._in_dialog_request(
                call,
                "NOTIFY",
                f"SIP/2.0 {status} {reason}\r\n".encode(),
                "message/sipfrag;version=2.0",
                [("Event", "refer"), ("Subscription-State", state)],
            )
        except TrioVoipError as exc:
            logger.info("NOTIFY for %s failed: %s", call.id, exc)

    # -- outgoing calls --

    async def _outgoing_call(
        self, call: CallSession, auth: DigestClient | None, sent: trio.Event
    ) -> None:
        legs = self._legs[call.id]
        assert legs.invite is not None and legs.destination is not None
        host, port, transport = legs.destination
        try:
            legs.client = await self.endpoint.request(legs.invite, host, port, transport)
        except Exception as exc:
            legs.send_error = exc
        finally:
            sent.set()
            if legs.client is None:  # not sent: an error, or the coordinator is stopping
                self._end(call, EndReason(EndKind.FAILED, detail="could not send the INVITE"))
        if legs.client is None:
            return
        try:
            await self._run_invite(call, legs, auth)
        except Exception as exc:
            logger.exception("outgoing call %s failed", call.id)
            self._end(call, EndReason(EndKind.FAILED, detail=str(exc)))

    async def _run_invite(
        self, call: CallSession, legs: _CallLegs, auth: DigestClient | None
    ) -> None:
        challenged = False
        while True:
            client, invite = legs.client, legs.invite
            assert client is not None and invite is not None
            if legs.cancel_requested:  # hung up while this INVITE was on its way
                await client.cancel()
            self._bound_invite(legs)
            try:
                final = await self._invite_final(call, legs, client)
            except (TransactionError, TransportError) as exc:
                self._kick()
                await self._dialog_events(
                    self.dialogs.on_request_timeout(invite, trio.current_time())
                )
                if legs.cancel_requested:
                    cancelled = EndReason(EndKind.CANCELLED, 408, str(exc))
                    self._end(call, legs.cancel_reason or cancelled)
                elif isinstance(exc, TransactionTimeout):
                    self._end(call, EndReason(EndKind.NO_ANSWER, 408, str(exc)))
                else:  # could not be sent at all (no route, connection refused)
                    self._end(call, EndReason(EndKind.FAILED, 503, str(exc)))
                return
            if final is None:
                if not legs.cancel_requested:  # Timer C
                    no_answer = EndReason(EndKind.NO_ANSWER, 408, "no final response in time")
                    await self._cancel_invite(call, legs, no_answer)
                    continue
                # RFC 3261 9.1: no final response 64*T1 after our CANCEL; every 2xx
                # retransmission has had its chance too, so nothing can answer any more.
                await client.abandon()
                await self._dialog_events(
                    self.dialogs.on_request_timeout(invite, trio.current_time())
                )
                gone = EndReason(EndKind.CANCELLED, detail="no final response after CANCEL")
                self._end(call, legs.cancel_reason or gone)
                return
            if (
                final.status in (401, 407)
                and auth is not None
                and not challenged
                and not legs.cancel_requested
            ):
                challenged = True
                if await self._retry_with_auth(legs, auth, final):
                    continue
            if final.status >= 300:
                cancelled = legs.cancel_requested
                reason = legs.cancel_reason if cancelled else None
                self._end(call, reason or _reason_for(final.status, cancelled))
            return

    async def _invite_final(
        self, call: CallSession, legs: _CallLegs, client: ClientTransactionHandle
    ) -> Response | None:
        """Account for the responses to our INVITE until its final one (returned); None if
        ``legs.invite_deadline`` passes first."""
        while True:
            with trio.CancelScope(deadline=legs.invite_deadline) as scope:
                legs.invite_wait = scope
                try:
                    response = await anext(client)
                finally:
                    legs.invite_wait = None
            if scope.cancelled_caught:
                return None
            final = await self._invite_response(call, legs, response)
            if final is not None:
                return final
            self._bound_invite(legs)

    def _bound_invite(self, legs: _CallLegs) -> None:
        """(Re)set how long we wait for the INVITE's final response: Timer C (restarted by
        each provisional response) until we cancel, then 64*T1 from the CANCEL (9.1). A
        CANCEL held back for a provisional response sets no bound: Timer B ends an INVITE
        that never gets one."""
        now = trio.current_time()
        client = legs.client
        if not legs.cancel_requested:
            deadline = now + self._answer_timeout
        elif client is not None and client.cancel_sent:
            if legs.cancelled_at is None:
                legs.cancelled_at = now
            deadline = legs.cancelled_at + self.config.timers.timeout
        else:
            deadline = math.inf
        legs.invite_deadline = deadline
        if legs.invite_wait is not None:
            legs.invite_wait.deadline = deadline

    async def _cancel_invite(
        self, call: CallSession, legs: _CallLegs, reason: EndReason | None = None
    ) -> None:
        """CANCEL our INVITE (once it is out: _run_invite does it then); the call ends by the
        INVITE's final response, with ``reason`` if given."""
        if legs.cancel_requested:
            return
        legs.cancel_requested = True
        legs.cancel_reason = reason
        self._set_state(call, CallState.TERMINATING, "cancelling")
        if legs.client is not None:
            await legs.client.cancel()
            self._bound_invite(legs)

    async def _retry_with_auth(
        self, legs: _CallLegs, auth: DigestClient, response: Response
    ) -> bool:
        """Send the INVITE again with credentials for the challenge in ``response``."""
        old = legs.invite
        assert old is not None and legs.destination is not None
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
        try:
            credentials = auth.authorize("INVITE", str(old.uri), response.headers.get_all(header))
        except TrioVoipError as exc:
            logger.info("cannot answer the challenge: %s", exc)
            return False
        h = Headers()
        for name, value in old.headers:
            key = name.lower()
            if key in ("via", "content-length"):
                continue
            if key == "cseq":
                value = f"{old.cseq.seq + 1} INVITE"
            if key in ("authorization", "proxy-authorization"):
                continue
            h.add(name, value)
        h.prepend("Via", f"SIP/2.0/{legs.destination[2]} 0.0.0.0;branch={new_branch()}")
        h.add(answer, credentials)
        invite = self.dialogs.start_uac(Request("INVITE", old.uri, h, old.body))
        legs.invite = invite
        legs.client = await self.endpoint.request(invite, *legs.destination)
        return True

    async def _invite_response(
        self, call: CallSession, legs: _CallLegs, response: Response
    ) -> Response | None:
        """Account for one response to our INVITE; the final one is returned."""
        events = self.dialogs.on_response(response, trio.current_time())
        self._kick()
        confirmed = False
        # The ACK of a 2xx goes out once the call is ACTIVE: sending may let other tasks run,
        # and the callee's BYE (it may send one the moment our ACK is in) must find it so.
        acks: list[Request] = []
        for event in events:
            if isinstance(event, EarlyDialog):
                legs.early.add(event.dialog_id)
                self._by_dialog[event.dialog_id] = call
                if legs.dialog_id is None:
                    legs.dialog_id = event.dialog_id
            elif isinstance(event, DialogConfirmed):
                legs.early.discard(event.dialog_id)
                legs.dialog_id = event.dialog_id
                self._by_dialog[event.dialog_id] = call
                call.remote_party = event.response.to
                legs.confirmed = confirmed = True
                self._take_answer(call, legs, event.response)
            elif isinstance(event, AckRequired):
                await self._ack_with_answer(call, legs, event)
            elif isinstance(event, SendAck):
                acks.append(event.request)
            else:
                await self._dialog_events([event])
        status = response.status
        if confirmed and not legs.cancel_requested:
            self._established(call)
        for ack in acks:
            await self._send_ack(ack, legs.transport)
        if status < 200:
            if status > 100:
                self._take_answer(call, legs, response)  # early media (183)
                if call.state is CallState.INITIATING:
                    self._set_state(call, CallState.RINGING, f"{status} {response.reason}")
            return None
        if confirmed and legs.cancel_requested:
            # Our CANCEL crossed the 2xx: the call was answered; end it at once (15).
            crossed = EndReason(EndKind.CANCELLED, 200, "answered as we cancelled")
            await self._bye(call, legs, crossed)
        return response

    def _take_answer(self, call: CallSession, legs: _CallLegs, response: Response) -> None:
        """The SDP answer to our INVITE's offer, from a 18x (early media) or the 2xx; the
        2xx's answer wins (without PRACK a provisional answer is only a preview)."""
        if not response.body or call.local_sdp is None or legs.invite is None:
            return
        if not legs.invite.body:
            return  # an offer in the 2xx is answered in the ACK (AckRequired)
        try:
            answer = parse_sdp(response.body)
        except SdpError as exc:
            logger.info("bad SDP in a %s for %s: %s", response.status, call.id, exc)
            return
        call.remote_sdp = answer
        call.media = self._negotiate(call.local_sdp, answer, we_offered=True)
        call.remote_hold = is_hold(answer)

    async def _ack_with_answer(
        self, call: CallSession, legs: _CallLegs, event: AckRequired
    ) -> None:
        body = b""
        try:
            offer = parse_sdp(event.response.body)
            answer = answer_offer(offer, self._capabilities(call), session_id=legs.session_id)
            call.remote_sdp, call.local_sdp = offer, answer
            call.media = self._negotiate(offer, answer, we_offered=False)
            body = bytes(answer)
        except SdpError as exc:
            logger.info("cannot answer the offer in the 2xx for %s: %s", call.id, exc)
        ack = self.dialogs.ack(event.dialog_id, body, SDP if body else None)
        await self._send_ack(ack, legs.transport)

    # -- actions on calls --

    async def _hangup(self, call: CallSession) -> None:
        if call.state is CallState.TERMINATED:
            return
        legs = self._legs[call.id]
        if call.state is CallState.TERMINATING:
            await call.wait_ended()
            return
        if call.direction is CallDirection.INCOMING and not legs.final_sent:
            await self._final(call, 480, None, EndReason(EndKind.LOCAL_HANGUP, 480))
            return
        if call.direction is CallDirection.OUTGOING and not call.state.established:
            await self._cancel_invite(call, legs)
            await call.wait_ended()
            return
        await self._bye(call, legs, EndReason(EndKind.LOCAL_HANGUP))

    async def _hangup_as(self, call: CallSession, reason: EndReason) -> None:
        legs = self._legs.get(call.id)
        if legs is None or not call.state.established:
            return
        await self._bye(call, legs, reason)

    async def _bye(self, call: CallSession, legs: _CallLegs, reason: EndReason) -> None:
        await self._await_ack(call, legs)
        if call.state is CallState.TERMINATED:
            return
        dialog_id = legs.dialog_id
        if dialog_id is None or self.dialogs.get(dialog_id) is None:
            self._end(call, reason)
            return
        try:
            bye = self.dialogs.new_request(dialog_id, "BYE", transport=legs.transport)
        except DialogError as exc:
            logger.info("cannot send BYE for %s: %s", call.id, exc)
            self._end(call, reason)
            return
        self._by_dialog.pop(dialog_id, None)
        if call.state is not CallState.TERMINATING:
            self._set_state(call, CallState.TERMINATING, "hanging up")
        try:
            handle = await self._send_request(bye, legs.transport)
            await handle.final_response()
        except TrioVoipError as exc:
            logger.info("BYE for %s got no answer: %s", call.id, exc)
        finally:
            self._end(call, reason)

    async def _await_ack(self, call: CallSession, legs: _CallLegs) -> None:
        """RFC 3261 15: no BYE while a 2xx of ours (to the INVITE or a re-INVITE) awaits its
        ACK. The wait is bounded: 64*T1 after the 2xx the dialog layer gives up
        (AckTimeout), sends a BYE itself and the call ends NO_ACK."""
        while (
            call.state is not CallState.TERMINATED
            and legs.dialog_id is not None
            and self.dialogs.awaiting_ack(legs.dialog_id)
        ):
            self._set_state(call, CallState.TERMINATING, "waiting for ACK to hang up")
            await legs.ack_wait.wait()

    def _established_legs(self, call: CallSession) -> _CallLegs:
        legs = self._legs.get(call.id)
        if legs is None or not call.state.established or legs.dialog_id is None:
            raise CallStateError(f"call {call.id} is {call.state.name}, not established")
        return legs

    async def _in_dialog_request(
        self,
        call: CallSession,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Send ``method`` in the call's dialog and wait for its final response (ACKing a
        2xx to a re-INVITE). Raises CallError if no final response comes."""
        legs = self._established_legs(call)
        assert legs.dialog_id is not None
        try:
            request = self.dialogs.new_request(
                legs.dialog_id, method, body, content_type, headers, transport=legs.transport
            )
        except DialogError as exc:
            raise CallStateError(str(exc)) from exc
        try:
            handle = await self._send_request(request, legs.transport)
            final = None
            async for response in handle:
                await self._dialog_events(self.dialogs.on_response(response, trio.current_time()))
                if response.status >= 200:
                    final = response
            assert final is not None
            return final
        except (TransactionError, TransportError) as exc:
            await self._dialog_events(self.dialogs.on_request_timeout(request, trio.current_time()))
            raise CallError(f"{method} got no answer: {exc}", status=408) from exc

    async def _hold(self, call: CallSession, *, hold: bool) -> None:
        legs = self._established_legs(call)
        if call.local_sdp is None:
            raise CallStateError(f"call {call.id} has no SDP to re-offer")
        if legs.reinvite_busy:
            raise CallStateError(f"call {call.id} has a re-INVITE in progress")
        legs.reinvite_busy = True
        try:
            for attempt in (1, 2):
                local = call.local_sdp
                assert local is not None
                offer = hold_offer(local, call.remote_sdp) if hold else resume_offer(local)
                legs.glare_over = trio.Event()
                response = await self._in_dialog_request(call, "INVITE", bytes(offer), SDP)
                if response.status != 491 or attempt == 2:
                    break
                # Glare (RFC 3261 14.1): the dialog layer says when to try again.
                with trio.move_on_after(5):
                    await legs.glare_over.wait()
                self._established_legs(call)
        finally:
            legs.reinvite_busy = False
        if not 200 <= response.status < 300:
            raise CallError(
                f"re-INVITE answered {response.status} {response.reason}", status=response.status
            )
        call.local_sdp = offer
        call.local_hold = hold
        if response.body:
            try:
                answer = parse_sdp(response.body)
            except SdpError as exc:
                logger.info("bad SDP answer to our re-INVITE on %s: %s", call.id, exc)
            else:
                call.remote_sdp = answer
                call.media = self._negotiate(offer, answer, we_offered=True)
        self._update_hold(call)
        if self.media is not None:
            await self.media.local_hold(call.id, hold)

    async def _send_dtmf(
        self, call: CallSession, digits: str, duration: int, method: str | None
    ) -> None:
        bad = [d for d in digits.upper() if d not in _DTMF_DIGITS]
        if bad or not digits:
            raise CallError(f"not DTMF digits: {digits!r}")
        endpoint = self._endpoints.get(call.id)
        if method is None:
            events = call.media is not None and call.media.telephone_event_pt is not None
            method = "rfc4733" if endpoint is not None and events else "info"
        if method == "rfc4733":
            self._established_legs(call)
            if endpoint is None:
                raise CallError("RFC 4733 DTMF needs relayed media (builder.media_relay())")
            self._aim_media(call)
            await self.dtmf.send(call.id, endpoint, digits.upper(), duration)
            return
        if method != "info":
            raise CallError(f"unknown DTMF method {method!r}: 'info' or 'rfc4733'")
        for digit in digits.upper():
            body = f"Signal={digit}\r\nDuration={duration}\r\n".encode()
            response = await self._in_dialog_request(call, "INFO", body, DTMF_RELAY)
            if response.status >= 300:
                raise CallError(f"INFO answered {response.status}", status=response.status)

    async def _transfer(
        self, call: CallSession, target: str | Uri, replaces: CallSession | None
    ) -> None:
        uri = parse_uri(target) if isinstance(target, str) else target
        if replaces is not None:
            # RFC 3891: the Replaces the target will see names its dialog from its side:
            # to-tag is its (our remote) tag, from-tag ours.
            other = self._established_legs(replaces)
            assert other.dialog_id is not None
            if not isinstance(uri, SipUri):
                raise CallError(f"attended transfer needs a SIP target, not {uri}")
            value = (
                f"{other.dialog_id.call_id};to-tag={other.dialog_id.remote_tag}"
                f";from-tag={other.dialog_id.local_tag}"
            )
            uri = attrs.evolve(uri, headers=(("Replaces", value),))
            other.end_hint = EndReason(EndKind.TRANSFERRED, detail=f"replaced via {call.id}")
        response = await self._in_dialog_request(
            call,
            "REFER",
            headers=[("Refer-To", f"<{uri}>"), ("Referred-By", f"<{call.local_party.uri}>")],
        )
        if response.status >= 300:
            raise CallError(f"REFER answered {response.status}", status=response.status)

    async def _refresh(self, call: CallSession, method: str) -> None:
        body = bytes(call.local_sdp) if method == "INVITE" and call.local_sdp is not None else b""
        try:
            await self._in_dialog_request(call, method, body, SDP if body else None)
        except TrioVoipError as exc:
            logger.info("session refresh of %s failed: %s", call.id, exc)
