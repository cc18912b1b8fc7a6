"""The Trio driver of the transaction layer: :class:`SipEndpoint`.

A SipEndpoint owns a transport (a :class:`~trio_voip.sip.transport.TransportLayer`, or any
object with its ``run`` / ``inbound`` / ``send_request`` / ``send_response``, such as
:class:`~trio_voip.testing.network.MemoryTransport`) and a sans-IO
:class:`~trio_voip.sip.transaction.TransactionLayer`. It runs two tasks: one reads the
transport's inbound channel into the layer, one sleeps until the layer's next deadline (woken
early when an earlier one appears) and fires its timers. There is no task per transaction or
per timer.

Events are acted on in the task that caused them: the TU's ``request`` / ``respond`` calls
send in the TU's task (so a slow TCP connect or a send error lands on the caller), network
input in the reader task, retransmissions in the timer task.

TU API:

* ``handle = await endpoint.request(request, host, port, transport)``: a
  :class:`ClientTransactionHandle`; ``async for response in handle`` yields the provisional
  responses and ends with the final one, or raises
  :class:`~trio_voip.errors.TransactionTimeout` / :class:`~trio_voip.errors.TransportError`.
* ``endpoint.incoming``: a channel of :class:`ServerTransactionHandle`, one per new request;
  answer with ``await handle.respond(response)``. When the channel is full the endpoint
  answers 503 itself.
* ``endpoint.stray``: what belongs to no pending handle, for the UA core / dialog layer:
  :class:`~trio_voip.sip.transaction.StrayAck` (the ACK for a 2xx),
  :class:`~trio_voip.sip.transaction.ResponseReceived` (a further 2xx to an INVITE whose
  handle already has its final response -- retransmissions and forks, which the RFC 6026
  Accepted state keeps matching for 64*T1) and :class:`~trio_voip.sip.transaction.AckReceived`.
  When it is full, new items are dropped and counted (``endpoint.stats.stray_dropped``).
  Responses that match no transaction at all are discarded and counted, as RFC 6026 (8.9)
  requires of every element but a stateless proxy; ``stray_responses=True`` passes them on
  as :class:`~trio_voip.sip.transaction.StrayResponse` instead.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import attrs
import trio

from trio_voip.errors import TransactionError, TransactionTimeout, TransportError
from trio_voip.sip.message import Request, Response, make_response
from trio_voip.sip.transaction import (
    AckReceived,
    Event,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StrayAck,
    StrayResponse,
    TimedOut,
    TimerConfig,
    TransactionKey,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    TransportFailed,
    make_cancel,
    new_branch,
)
from trio_voip.sip.transport import Inbound, Source

__all__ = [
    "Destination",
    "SipTransport",
    "StrayMessage",
    "EndpointStats",
    "ClientTransactionHandle",
    "ServerTransactionHandle",
    "SipEndpoint",
]

logger = logging.getLogger(__name__)

StrayMessage = StrayResponse | StrayAck | ResponseReceived | AckReceived


@attrs.frozen
class Destination:
    """Where a client transaction sends (the layer's opaque ``destination``)."""

    host: str
    port: int
    transport: str = "UDP"


class SipTransport(Protocol):
    """What a SipEndpoint needs of its transport (TransportLayer has it)."""

    inbound: trio.abc.ReceiveChannel[Inbound]

    async def run(self, *, task_status: Any = ...) -> None: ...

    async def send_request(
        self, request: Request, host: str, port: int, transport: str = "UDP"
    ) -> object: ...

    async def send_response(self, response: Response, source: Source | None = None) -> None: ...


@attrs.define
class EndpointStats:
    send_errors: int = 0
    busy_rejections: int = 0  # 503s because the TU's incoming channel was full
    stray_dropped: int = 0
    stray_responses: int = 0  # responses matching no transaction
    provisionals_dropped: int = 0
    discarded: int = 0  # messages the transaction layer could not use


class ClientTransactionHandle:
    """The TU's view of a client transaction: iterate it for responses.

    ``async for response in handle`` yields provisional responses and then the final response,
    and stops. Unread provisionals wait in a small buffer; while it is full, newer ones are
    dropped and counted, but the final response is never lost. If the transaction fails first,
    iteration raises TransactionTimeout or TransportError.
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        key: TransactionKey,
        request: Request,
        destination: Destination,
        capacity: int,
    ) -> None:
        self.key = key
        self.request = request
        self.destination = destination
        self.final: Response | None = None
        self._endpoint = endpoint
        self._send, self._receive = trio.open_memory_channel[Response](capacity)
        self._error: TransactionError | TransportError | None = None
        self._final_taken = False
        self._provisional_seen = False
        self._cancel_pending = False
        self._cancelled = False

    def __aiter__(self) -> ClientTransactionHandle:
        return self

    async def __anext__(self) -> Response:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            pass
        if self.final is not None:
            if not self._final_taken:
                self._final_taken = True
                return self.final
            raise StopAsyncIteration
        assert self._error is not None
        raise self._error

    async def final_response(self) -> Response:
        """Wait for the final response (skipping provisionals); raise if the transaction fails."""
        async for response in self:
            if response.status >= 200:
                return response
        assert self.final is not None
        return self.final

    async def cancel(self) -> None:
        """CANCEL this INVITE (section 9.1).

        Sent now if a provisional response has arrived, else as soon as one does (9.1 forbids
        it before). Does nothing once the final response is in, or if already cancelled. The
        INVITE then normally ends with 487, through this handle as usual.
        """
        if self.request.method != "INVITE":
            raise TransactionError(f"only an INVITE can be cancelled, not {self.request.method}")
        if self._cancelled or self._cancel_pending or self.final is not None or self._error:
            return
        if self._provisional_seen:
            await self._endpoint._send_cancel(self)
        else:
            self._cancel_pending = True

    @property
    def cancel_sent(self) -> bool:
        """Whether our CANCEL of this INVITE has gone out (9.1 holds it until a provisional
        response arrives)."""
        return self._cancelled

    async def abandon(self) -> None:
        """Give up this INVITE without a final response and destroy its transaction (9.1:
        none came 64*T1 after its CANCEL); iteration then raises TransactionError. Does
        nothing once the final response is in or the transaction has failed."""
        if self.request.method != "INVITE":
            raise TransactionError(f"only an INVITE can be abandoned, not {self.request.method}")
        if self.final is not None or self._error is not None:
            return
        self._fail(TransactionError("the INVITE was abandoned without a final response"))
        layer = self._endpoint.layer
        await self._endpoint._process(layer.abandon(self.key, trio.current_time()))

    def _deliver(self, response: Response) -> bool:
        """Take a response; False if this handle is done with them (it goes to ``stray``)."""
        if self.final is not None or self._error is not None:
            return False
        if response.status >= 200:
            self.final = response
            self._send.close()
            return True
        self._provisional_seen = True
        try:
            self._send.send_nowait(response)
        except trio.WouldBlock:
            self._endpoint.stats.provisionals_dropped += 1
        return True

    def _fail(self, error: TransactionError | TransportError) -> None:
        if self.final is None and self._error is None:
            self._error = error
            self._send.close()


class ServerTransactionHandle:
    """The TU's view of a server transaction: the request, and ``respond``.

    As an async context manager it guarantees an answer: leaving the block (normally or by an
    exception) without a final response sends 500, so no transaction is left waiting forever.
    """

    def __init__(self, endpoint: SipEndpoint, event: RequestReceived) -> None:
        self.key = event.key
        self.request = event.request
        self.source = event.source
        self.cancels = event.cancels
        self.terminated = trio.Event()
        self.failure: TimedOut | TransportFailed | None = None
        self._endpoint = endpoint

    @property
    def state(self) -> TransactionState:
        txn = self._endpoint.layer.get(self.key)
        return txn.state if txn is not None else TransactionState.TERMINATED

    @property
    def cancel_target(self) -> ServerTransactionHandle | None:
        """For a CANCEL: the handle of the INVITE it cancels, if that is still live."""
        if self.cancels is None:
            return None
        return self._endpoint.server_transaction(self.cancels)

    async def respond(self, response: Response) -> None:
        """Send ``response``; raises TransactionError if the transaction's state forbids it."""
        events = self._endpoint.layer.send_response(self.key, response, trio.current_time())
        await self._endpoint._process(events)

    async def __aenter__(self) -> ServerTransactionHandle:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self.state in (TransactionState.TRYING, TransactionState.PROCEEDING):
            with trio.CancelScope(shield=True):
                await self.respond(make_response(self.request, 500))


class SipEndpoint:
    """A transport plus a transaction layer, driven by Trio (see the module docstring).

    Start with ``addresses = await nursery.start(endpoint.run)`` (it starts the transport and
    reports its local addresses); cancel it or call :meth:`aclose` to stop. Pending client
    handles then fail with TransactionError.

    Sizing: a finished transaction lingers for up to 64*T1 (Timers J, L, M: 32 s) to absorb
    retransmissions, so a steady N calls/s keeps about 64*N transactions alive; the default
    ``max_transactions`` leaves room for ~1500 calls/s. ``incoming_capacity`` absorbs bursts
    while the TU is busy (a request that finds it full is answered 503).
    """

    def __init__(
        self,
        transport: SipTransport,
        *,
        config: TimerConfig | None = None,
        max_transactions: int = 100_000,
        incoming_capacity: int = 1000,
        stray_capacity: int = 100,
        provisional_capacity: int = 8,
        stray_responses: bool = False,
    ) -> None:
        self.transport = transport
        self.layer = TransactionLayer(config or TimerConfig(), max_transactions=max_transactions)
        self.stats = EndpointStats()
        self._incoming_send, self.incoming = trio.open_memory_channel[ServerTransactionHandle](
            incoming_capacity
        )
        self._stray_send, self.stray = trio.open_memory_channel[StrayMessage](stray_capacity)
        self._provisional_capacity = provisional_capacity
        self._pass_stray_responses = stray_responses
        self._clients: dict[TransactionKey, ClientTransactionHandle] = {}
        self._servers: dict[TransactionKey, ServerTransactionHandle] = {}
        self._wakeup = trio.Event()
        self._sleeping_until = math.inf
        self._cancel_scope: trio.CancelScope | None = None
        self._started = False

    async def run(self, *, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        if self._started:
            raise TransactionError("a SipEndpoint runs once")
        self._started = True
        try:
            async with trio.open_nursery() as nursery:
                self._cancel_scope = nursery.cancel_scope
                addresses = await nursery.start(self.transport.run)
                nursery.start_soon(self._read_loop, nursery.cancel_scope)
                nursery.start_soon(self._timer_loop)
                task_status.started(addresses)
        finally:
            self._cancel_scope = None
            self._incoming_send.close()
            self._stray_send.close()
            for handle in self._clients.values():
                handle._fail(TransactionError("the SIP endpoint stopped"))
            for server in self._servers.values():
                server.terminated.set()

    async def aclose(self) -> None:
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        await trio.lowlevel.checkpoint()

    async def request(
        self, request: Request, host: str, port: int, transport: str = "UDP"
    ) -> ClientTransactionHandle:
        """Start a client transaction (a branch is added to the top Via if it has none)."""
        if self._cancel_scope is None:
            raise TransactionError("the SIP endpoint is not running")
        destination = Destination(host, port, transport.upper())
        key, events = self.layer.send_request(
            request, destination, trio.current_time(), reliable=destination.transport != "UDP"
        )
        handle = ClientTransactionHandle(
            self, key, request, destination, self._provisional_capacity
        )
        self._clients[key] = handle
        await self._process(events)
        return handle

    async def send_ack(self, ack: Request, host: str, port: int, transport: str = "UDP") -> None:
        """Send the ACK for a 2xx (no transaction: 13.2.2.4); gives it a branch if it has none."""
        if ack.method != "ACK":
            raise TransactionError(f"send_ack sends ACKs, not {ack.method}")
        via = ack.top_via
        if via.branch is None:
            vias = ack.headers.get_all("Via")
            fresh = via.with_param("branch", new_branch())
            ack.headers.set("Via", ", ".join([str(fresh), *vias[1:]]))
        await self.transport.send_request(ack, host, port, transport)

    def server_transaction(self, key: TransactionKey) -> ServerTransactionHandle | None:
        return self._servers.get(key)

    # --- internals ---

    async def _read_loop(self, scope: trio.CancelScope) -> None:
        async for inbound in self.transport.inbound:
            source = inbound.source
            events = self.layer.receive(
                inbound.message,
                source,
                trio.current_time(),
                reliable=source.transport.upper() != "UDP",
            )
            await self._process(events)
        scope.cancel()  # the transport has stopped: so do we

    async def _timer_loop(self) -> None:
        while True:
            self._wakeup = trio.Event()
            deadline = self.layer.next_deadline()
            self._sleeping_until = math.inf if deadline is None else deadline
            with trio.move_on_at(self._sleeping_until):
                await self._wakeup.wait()
            now = trio.current_time()
            self._sleeping_until = now
            await self._process(self.layer.on_timer(now))

    def _kick(self) -> None:
        deadline = self.layer.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wakeup.set()

    async def _process(self, events: list[Event]) -> None:
        self._kick()
        for event in events:
            await self._act(event)

    async def _act(self, event: Event) -> None:
        if isinstance(event, SendRequest):
            dest = event.destination
            assert isinstance(dest, Destination)
            try:
                await self.transport.send_request(
                    event.request, dest.host, dest.port, dest.transport
                )
            except TransportError as exc:
                await self._send_failed(event.key, exc)
        elif isinstance(event, SendResponse):
            assert isinstance(event.source, Source)
            try:
                await self.transport.send_response(event.response, event.source)
            except TransportError as exc:
                await self._send_failed(event.key, exc)
        elif isinstance(event, ResponseReceived):
            client = self._clients.get(event.key)
            if client is None or not client._deliver(event.response):
                self._put_stray(event)
            elif client._cancel_pending and event.response.status < 200:
                await self._send_cancel(client)
        elif isinstance(event, RequestReceived):
            await self._new_request(event)
        elif isinstance(event, StrayResponse):
            self.stats.stray_responses += 1
            if self._pass_stray_responses:
                self._put_stray(event)
        elif isinstance(event, StrayAck | AckReceived):
            self._put_stray(event)
        elif isinstance(event, TimedOut | TransportFailed):
            self._failed(event)
        elif isinstance(event, TransactionTerminated):
            # a client handle already has its final response or its failure by now
            self._clients.pop(event.key, None)
            server = self._servers.pop(event.key, None)
            if server is not None:
                server.terminated.set()
        else:
            assert isinstance(event, MessageDiscarded)
            self.stats.discarded += 1
            logger.debug("discarded %r from %r: %s", event.message, event.source, event.reason)

    async def _send_failed(self, key: TransactionKey | None, exc: TransportError) -> None:
        self.stats.send_errors += 1
        logger.info("send failed (%s): %s", key, exc)
        await self._process(self.layer.transport_error(key, trio.current_time()))

    def _failed(self, event: TimedOut | TransportFailed) -> None:
        client = self._clients.get(event.key)
        server = self._servers.get(event.key)
        if isinstance(event, TimedOut):
            error: TransactionError | TransportError = TransactionTimeout(
                f"{event.key.method} transaction timed out (Timer {event.timer.value})"
            )
        else:
            error = TransportError(f"could not send the {event.key.method}")
        if client is not None:
            client._fail(error)
        if server is not None:
            server.failure = event

    async def _new_request(self, event: RequestReceived) -> None:
        handle = ServerTransactionHandle(self, event)
        self._servers[event.key] = handle
        try:
            self._incoming_send.send_nowait(handle)
        except (trio.WouldBlock, trio.BrokenResourceError):
            self.stats.busy_rejections += 1
            busy = make_response(event.request, 503)
            await self._process(self.layer.send_response(event.key, busy, trio.current_time()))

    def _put_stray(self, event: StrayMessage) -> None:
        try:
            self._stray_send.send_nowait(event)
        except (trio.WouldBlock, trio.BrokenResourceError):
            self.stats.stray_dropped += 1

    async def _send_cancel(self, handle: ClientTransactionHandle) -> None:
        handle._cancel_pending = False
        handle._cancelled = True
        dest = handle.destination
        try:
            await self.request(make_cancel(handle.request), dest.host, dest.port, dest.transport)
        except TransactionError as exc:
            # e.g. the transaction limit: the INVITE still ends, by its final response or timer
            logger.warning("could not send CANCEL for %s: %s", handle.key, exc)
