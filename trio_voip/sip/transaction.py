"""SIP transactions (RFC 3261 section 17, with the RFC 6026 corrections), sans-IO.

Four state machines -- INVITE client, non-INVITE client, INVITE server, non-INVITE server --
and a :class:`TransactionLayer` that owns the live ones, matches incoming messages to them
(17.1.3, 17.2.3, with the RFC 2543 fallback) and tells the driver when to wake up.

Nothing here does I/O or reads a clock. The scheme, h11-style:

* Every input is a method call that takes the current time ``now`` (float seconds on any
  monotonic clock) and **returns the list of events it caused**, in order. Nothing is queued
  inside the object, so a caller that processes each returned list loses nothing.
* Events are frozen attrs classes. :class:`SendRequest` / :class:`SendResponse` are work for
  the driver (hand the message to the transport); :class:`RequestReceived`,
  :class:`ResponseReceived`, :class:`AckReceived`, :class:`StrayResponse`, :class:`StrayAck`
  are for the transaction user (TU); :class:`TimedOut` and :class:`TransportFailed` report a
  failed transaction; :class:`TransactionTerminated` says it is gone (the layer has dropped it).
* Time is an input, as in aioquic: ``next_deadline()`` is the earliest time at which
  ``on_timer(now)`` must be called (None: no timer armed). Timers that RFC 3261 sets to zero
  on reliable transports (D, I, J, K) fire within the call that arms them.
* The driver reports a failed send with ``transport_error(now)``.

Each machine's legal transitions are one table, ``(state, input) -> (next state, action)``,
read top to bottom like the RFC's figures 5-8 (RFC 6026 figures for INVITE). A TU action the
table does not allow (a 1xx after a final response, anything after Terminated) raises
:class:`~trio_voip.errors.TransactionError`. Network input a state does not expect is listed
explicitly as absorbed, so the tables are complete for every input the network can produce.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import secrets
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import attrs

from trio_voip.errors import SipParseError, TransactionError
from trio_voip.sip.headers import Headers, Via
from trio_voip.sip.message import Request, Response, make_response

__all__ = [
    "MAGIC_COOKIE",
    "TimerConfig",
    "TransactionState",
    "Timer",
    "Input",
    "Role",
    "TransactionKey",
    "SendRequest",
    "SendResponse",
    "RequestReceived",
    "ResponseReceived",
    "AckReceived",
    "StrayResponse",
    "StrayAck",
    "TimedOut",
    "TransportFailed",
    "TransactionTerminated",
    "MessageDiscarded",
    "Event",
    "InviteClientTransaction",
    "NonInviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteServerTransaction",
    "ClientTransaction",
    "ServerTransaction",
    "Transaction",
    "TransactionLayer",
    "client_key",
    "server_key",
    "new_branch",
    "make_ack",
    "make_cancel",
]

MAGIC_COOKIE = "z9hG4bK"
"""Branch prefix of RFC 3261 transaction identifiers (section 8.1.1.7)."""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise TransactionError(f"{attribute.name} must be positive, not {value!r}")


@attrs.frozen
class TimerConfig:
    """RFC 3261 timer values (table 4). Every other timer derives from T1, T2 and T4.

    ``trying_delay`` is how long an INVITE server transaction waits for the TU's first
    response before sending 100 (Trying) itself (17.2.1: "200 ms").

    ``timer_c`` bounds an INVITE client transaction in Proceeding, restarted by every
    provisional response (the proxy Timer C of 16.6, "> 3 min"). RFC 3261 gives a UAC no such
    limit, so it is off by default; without it a transaction whose final response never
    arrives stays until the TU gives up (and with ``timer_c``, it reports TimedOut(C)). A
    SessionCoordinator runs this limit itself, so that it can CANCEL the INVITE: it takes
    ``timer_c`` as its ``answer_timeout`` and keeps it out of its transactions.
    """

    t1: float = attrs.field(default=0.5, validator=_positive)
    t2: float = attrs.field(default=4.0, validator=_positive)
    t4: float = attrs.field(default=5.0, validator=_positive)
    timer_d_unreliable: float = attrs.field(default=32.0, validator=_positive)
    trying_delay: float = attrs.field(default=0.2, validator=_positive)
    timer_c: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )

    def __attrs_post_init__(self) -> None:
        if self.t2 < self.t1:
            raise TransactionError(f"T2 ({self.t2}) must not be below T1 ({self.t1})")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (unreliable), L and M."""
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timer_d_unreliable

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timeout

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4


class TransactionState(enum.Enum):
    IDLE = "Idle"  # created, not started yet
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"  # RFC 6026
    TERMINATED = "Terminated"


class Timer(enum.Enum):
    A = "A"  # INVITE request retransmit (unreliable)
    B = "B"  # INVITE transaction timeout
    C = "C"  # optional: INVITE transaction timeout in Proceeding
    D = "D"  # wait time for response retransmits
    E = "E"  # non-INVITE request retransmit (unreliable)
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # INVITE final response retransmit (unreliable)
    H = "H"  # wait time for ACK receipt
    I = "I"  # noqa: E741 -- the RFC's name; wait time for ACK retransmits
    J = "J"  # wait time for non-INVITE request retransmits
    K = "K"  # wait time for non-INVITE response retransmits
    L = "L"  # RFC 6026: wait time for INVITE retransmits after a 2xx
    M = "M"  # RFC 6026: wait time for 2xx retransmits
    TRYING = "100"  # send 100 (Trying) if the TU has not answered


# When two timers fall due together, the one ending the transaction wins, so nothing is
# retransmitted by a transaction in its last instant.
_RETRANSMIT_TIMERS = frozenset({Timer.A, Timer.E, Timer.G, Timer.TRYING})


class Input(enum.Enum):
    """Inputs of the transition tables (timers are inputs too, as :class:`Timer` members).

    ``R1XX`` / ``R2XX`` / ``R3XX_6XX`` are responses *received* in a client transaction and
    responses *sent by the TU* in a server transaction.
    """

    START = "start"
    REQUEST = "request retransmission"
    ACK = "ACK"
    R1XX = "1xx"
    R2XX = "2xx"
    R3XX_6XX = "300-699"
    TRANSPORT_ERROR = "transport error"
    ABANDON = "abandoned by the TU"


def _response_input(status: int) -> Input:
    if 100 <= status <= 199:
        return Input.R1XX
    if 200 <= status <= 299:
        return Input.R2XX
    if 300 <= status <= 699:
        return Input.R3XX_6XX
    raise TransactionError(f"status code {status} out of range 100-699")


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


@attrs.frozen
class TransactionKey:
    """What identifies a transaction (RFC 3261 17.1.3 and 17.2.3).

    ``method`` is the CSeq method of the request that created the transaction; an ACK is keyed
    as INVITE because it belongs to the INVITE's transaction. ``branch`` is the top Via branch;
    it is empty for a request without an RFC 3261 branch, which is then identified by
    ``legacy`` instead (RFC 2543: Request-URI, To tag, From tag, Call-ID, CSeq number, top Via).
    ``sent_by`` is the top Via sent-by of a server transaction's request.
    """

    role: Role
    method: str
    branch: str
    sent_by: str = ""
    legacy: tuple[str, ...] = ()


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 80 random bits."""
    return MAGIC_COOKIE + secrets.token_hex(10)


def _is_rfc3261_branch(branch: str | None) -> bool:
    # A bare cookie identifies nothing (RFC 4475 3.2.1): fall back to RFC 2543 matching.
    return branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > 7


def client_key(message: Request | Response) -> TransactionKey:
    """The client transaction a request creates, or a response belongs to (17.1.3)."""
    branch = message.top_via.branch
    if branch is None:
        raise TransactionError("top Via has no branch")
    return TransactionKey(Role.CLIENT, message.cseq.method, branch)


def server_key(request: Request, *, method: str | None = None) -> TransactionKey:
    """The server transaction ``request`` belongs to (17.2.3), ACK mapped to INVITE.

    ``method`` overrides the method matched on: a CANCEL looks for its INVITE with
    ``method="INVITE"`` (section 9.2).
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if _is_rfc3261_branch(branch):
        assert branch is not None
        return TransactionKey(Role.SERVER, method, branch, via.sent_by.lower())
    return TransactionKey(Role.SERVER, method, "", legacy=_legacy_id(request, request.to.tag))


def _legacy_id(request: Request, to_tag: str | None) -> tuple[str, ...]:
    return (
        str(request.uri),
        to_tag or "",
        request.from_.tag or "",
        request.call_id,
        str(request.cseq.seq),
        str(request.top_via),
    )


def make_ack(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 response to ``request`` (17.1.1.3)."""
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    _copy(request.headers, headers, "From")
    _copy(response.headers, headers, "To")
    _copy(request.headers, headers, "Call-ID")
    headers.add("CSeq", f"{request.cseq.seq} ACK")
    return Request("ACK", request.uri, headers)


def make_cancel(request: Request) -> Request:
    """The CANCEL for a pending ``request`` (section 9.1): same branch, same CSeq number."""
    if request.method == "ACK":
        raise TransactionError("an ACK cannot be cancelled")
    headers = Headers()
    headers.add("Via", request.headers.get_all("Via")[0])
    for route in request.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    _copy(request.headers, headers, "From")
    _copy(request.headers, headers, "To")
    _copy(request.headers, headers, "Call-ID")
    headers.add("CSeq", f"{request.cseq.seq} CANCEL")
    return Request("CANCEL", request.uri, headers)


def _copy(source: Headers, target: Headers, name: str) -> None:
    value = source.get(name)
    if value is None:
        raise SipParseError(f"missing {name} header")
    target.add(name, value)


# --- events --------------------------------------------------------------------------------------


@attrs.frozen
class SendRequest:
    """Hand ``request`` to the transport for ``destination`` (the driver's opaque object)."""

    request: Request
    destination: object
    key: TransactionKey


@attrs.frozen
class SendResponse:
    """Hand ``response`` to the transport, back to ``source`` (where the request came from).

    ``key`` is None for a response the layer sends without a transaction (400, 503).
    """

    response: Response
    source: object
    key: TransactionKey | None


@attrs.frozen
class RequestReceived:
    """A new request for the TU; answer it through the server transaction ``key``.

    For a CANCEL, ``cancels`` is the INVITE server transaction it targets (None: 481).
    """

    request: Request
    source: object
    key: TransactionKey
    cancels: TransactionKey | None = None


@attrs.frozen
class ResponseReceived:
    """A response for the TU of client transaction ``key``.

    After the first 2xx to an INVITE, further 2xx (retransmissions, other forks) come here
    too (RFC 6026 Accepted state): the TU core ACKs each one.
    """

    response: Response
    key: TransactionKey


@attrs.frozen
class AckReceived:
    """An ACK matched an INVITE server transaction that sent a 2xx (RFC 6026 Accepted)."""

    request: Request
    key: TransactionKey


@attrs.frozen
class StrayResponse:
    """A response no client transaction owns: a 2xx retransmission for the UAC core."""

    response: Response
    source: object


@attrs.frozen
class StrayAck:
    """An ACK no server transaction owns: the ACK for a 2xx, for the dialog layer."""

    request: Request
    source: object


@attrs.frozen
class TimedOut:
    """Transaction ``key`` failed: ``timer`` (B, C, F or H) fired."""

    key: TransactionKey
    timer: Timer


@attrs.frozen
class TransportFailed:
    """The transport could not send a message of transaction ``key``."""

    key: TransactionKey


@attrs.frozen
class TransactionTerminated:
    key: TransactionKey


@attrs.frozen
class MessageDiscarded:
    """A message the layer could not use (no usable Via or CSeq, status out of range)."""

    message: Request | Response
    source: object
    reason: str


Event = (
    SendRequest
    | SendResponse
    | RequestReceived
    | ResponseReceived
    | AckReceived
    | StrayResponse
    | StrayAck
    | TimedOut
    | TransportFailed
    | TransactionTerminated
    | MessageDiscarded
)

# --- the machines --------------------------------------------------------------------------------

S = TransactionState
_Message = Request | Response | None
# Actions are the machines' own methods, so their first parameter is the subclass.
_Action = Callable[[Any, float, _Message, list[Event]], None]
_Table = Mapping[tuple[TransactionState, Input | Timer], tuple[TransactionState, _Action]]


@attrs.define(eq=False, kw_only=True)
class _Transaction:
    """The table-driven engine shared by the four machines."""

    _TABLE: ClassVar[_Table]
    # Timers that may run in each state; entering a state cancels every other one.
    _STATE_TIMERS: ClassVar[Mapping[TransactionState, frozenset[Timer]]]

    request: Request
    reliable: bool
    config: TimerConfig = TimerConfig()
    key: TransactionKey
    state: TransactionState = attrs.field(init=False, default=S.IDLE)
    _timers: dict[Timer, float] = attrs.field(init=False, factory=dict)
    _immediate: list[Timer] = attrs.field(init=False, factory=list)

    def next_deadline(self) -> float | None:
        return min(self._timers.values(), default=None)

    def timer_deadline(self, timer: Timer) -> float | None:
        """When ``timer`` fires (None: not running)."""
        return self._timers.get(timer)

    def on_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``, earliest first."""
        events: list[Event] = []
        timers = self._timers
        while timers:
            timer = min(timers, key=lambda t: (timers[t], t in _RETRANSMIT_TIMERS))
            if timers[timer] > now:
                break
            del timers[timer]
            events += self._input(timer, now, None)
        return events

    def transport_error(self, now: float) -> list[Event]:
        """The transport failed to send one of this transaction's messages."""
        return self._input(Input.TRANSPORT_ERROR, now, None)

    def _input(self, what: Input | Timer, now: float, message: _Message) -> list[Event]:
        events = self._step(what, now, message)
        while self._immediate:
            timer = self._immediate.pop(0)
            if self._timers.pop(timer, None) is not None:
                events += self._step(timer, now, None)
        return events

    def _step(self, what: Input | Timer, now: float, message: _Message) -> list[Event]:
        entry = self._TABLE.get((self.state, what))
        if entry is None:
            raise TransactionError(
                f"{type(self).__name__}: {what.value} is not allowed in state {self.state.value}"
            )
        target, action = entry
        self.state = target
        allowed = self._STATE_TIMERS[target]
        for timer in [t for t in self._timers if t not in allowed]:
            del self._timers[timer]
        events: list[Event] = []
        action(self, now, message, events)
        if target is S.TERMINATED:
            self._timers.clear()
            self._immediate.clear()
            events.append(TransactionTerminated(self.key))
        return events

    def _arm(self, timer: Timer, delay: float, now: float) -> None:
        self._timers[timer] = now + delay
        if delay <= 0:
            self._immediate.append(timer)

    def _absorb(self, now: float, message: _Message, events: list[Event]) -> None:
        pass

    def _transport_failed(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(TransportFailed(self.key))


@attrs.define(eq=False, kw_only=True)
class _ClientTransaction(_Transaction):
    destination: object
    _interval: float = attrs.field(init=False, default=0.0)

    def start(self, now: float) -> list[Event]:
        """Send the request (the "request from TU" edge of figures 5 and 6)."""
        return self._input(Input.START, now, None)

    def receive(self, response: Response, now: float) -> list[Event]:
        """A response matched to this transaction arrived."""
        return self._input(_response_input(response.status), now, response)

    def _send(self, events: list[Event]) -> None:
        events.append(SendRequest(self.request, self.destination, self.key))

    def _to_tu(self, now: float, message: _Message, events: list[Event]) -> None:
        assert isinstance(message, Response)
        events.append(ResponseReceived(message, self.key))


@attrs.define(eq=False, kw_only=True)
class InviteClientTransaction(_ClientTransaction):
    """RFC 3261 17.1.1 with the RFC 6026 Accepted state (figure 5 of RFC 6026)."""

    ack: Request | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.request.method != "INVITE":
            raise TransactionError(f"not an INVITE: {self.request.method}")

    def _send_first(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(events)
        if not self.reliable:
            self._interval = self.config.t1
            self._arm(Timer.A, self._interval, now)
        self._arm(Timer.B, self.config.timeout, now)

    def _retransmit(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(events)
        self._interval *= 2
        self._arm(Timer.A, self._interval, now)

    def _timed_out(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(TimedOut(self.key, Timer.B))

    def _provisional(self, now: float, message: _Message, events: list[Event]) -> None:
        self._to_tu(now, message, events)
        if self.config.timer_c is not None:
            self._arm(Timer.C, self.config.timer_c, now)

    def _timed_out_c(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(TimedOut(self.key, Timer.C))

    def abandon(self, now: float) -> list[Event]:
        """The TU gives up waiting for a final response (RFC 3261 9.1: none came 64*T1
        after its CANCEL): the transaction ends at once. Raises TransactionError once a
        final response is in (Completed and Accepted end by their own timers)."""
        return self._input(Input.ABANDON, now, None)

    def _accept(self, now: float, message: _Message, events: list[Event]) -> None:
        self._to_tu(now, message, events)
        self._arm(Timer.M, self.config.timeout, now)

    def _reject(self, now: float, message: _Message, events: list[Event]) -> None:
        assert isinstance(message, Response)
        self.ack = make_ack(self.request, message)
        events.append(SendRequest(self.ack, self.destination, self.key))
        self._to_tu(now, message, events)
        self._arm(Timer.D, self.config.timer_d(self.reliable), now)

    def _resend_ack(self, now: float, message: _Message, events: list[Event]) -> None:
        assert self.ack is not None
        events.append(SendRequest(self.ack, self.destination, self.key))

    _STATE_TIMERS = {
        S.IDLE: frozenset(),
        S.CALLING: frozenset({Timer.A, Timer.B}),
        S.PROCEEDING: frozenset({Timer.C}),
        S.COMPLETED: frozenset({Timer.D}),
        S.ACCEPTED: frozenset({Timer.M}),
        S.TERMINATED: frozenset(),
    }
    _TABLE: ClassVar[_Table] = {
        (S.IDLE, Input.START): (S.CALLING, _send_first),
        (S.CALLING, Timer.A): (S.CALLING, _retransmit),
        (S.CALLING, Timer.B): (S.TERMINATED, _timed_out),
        (S.CALLING, Input.R1XX): (S.PROCEEDING, _provisional),
        (S.CALLING, Input.R2XX): (S.ACCEPTED, _accept),
        (S.CALLING, Input.R3XX_6XX): (S.COMPLETED, _reject),
        (S.CALLING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.CALLING, Input.ABANDON): (S.TERMINATED, _Transaction._absorb),
        (S.PROCEEDING, Input.R1XX): (S.PROCEEDING, _provisional),
        (S.PROCEEDING, Timer.C): (S.TERMINATED, _timed_out_c),
        (S.PROCEEDING, Input.R2XX): (S.ACCEPTED, _accept),
        (S.PROCEEDING, Input.R3XX_6XX): (S.COMPLETED, _reject),
        (S.PROCEEDING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.PROCEEDING, Input.ABANDON): (S.TERMINATED, _Transaction._absorb),
        (S.COMPLETED, Input.R1XX): (S.COMPLETED, _Transaction._absorb),
        (S.COMPLETED, Input.R2XX): (S.COMPLETED, _Transaction._absorb),
        (S.COMPLETED, Input.R3XX_6XX): (S.COMPLETED, _resend_ack),
        (S.COMPLETED, Timer.D): (S.TERMINATED, _Transaction._absorb),
        (S.COMPLETED, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.ACCEPTED, Input.R1XX): (S.ACCEPTED, _Transaction._absorb),
        (S.ACCEPTED, Input.R2XX): (S.ACCEPTED, _ClientTransaction._to_tu),
        (S.ACCEPTED, Input.R3XX_6XX): (S.ACCEPTED, _Transaction._absorb),
        (S.ACCEPTED, Timer.M): (S.TERMINATED, _Transaction._absorb),
        # The transaction sends nothing in Accepted; a late error belongs to an earlier send.
        (S.ACCEPTED, Input.TRANSPORT_ERROR): (S.ACCEPTED, _Transaction._absorb),
    }


@attrs.define(eq=False, kw_only=True)
class NonInviteClientTransaction(_ClientTransaction):
    """RFC 3261 17.1.2 (figure 6)."""

    def __attrs_post_init__(self) -> None:
        if self.request.method in ("INVITE", "ACK"):
            raise TransactionError(f"not a non-INVITE request: {self.request.method}")

    def _send_first(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(events)
        if not self.reliable:
            self._interval = self.config.t1
            self._arm(Timer.E, self._interval, now)
        self._arm(Timer.F, self.config.timeout, now)

    def _retransmit_trying(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(events)
        self._interval = min(2 * self._interval, self.config.t2)
        self._arm(Timer.E, self._interval, now)

    def _retransmit_proceeding(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(events)
        self._interval = self.config.t2
        self._arm(Timer.E, self._interval, now)

    def _timed_out(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(TimedOut(self.key, Timer.F))

    def _complete(self, now: float, message: _Message, events: list[Event]) -> None:
        self._to_tu(now, message, events)
        self._arm(Timer.K, self.config.timer_k(self.reliable), now)

    _STATE_TIMERS = {
        S.IDLE: frozenset(),
        S.TRYING: frozenset({Timer.E, Timer.F}),
        S.PROCEEDING: frozenset({Timer.E, Timer.F}),
        S.COMPLETED: frozenset({Timer.K}),
        S.TERMINATED: frozenset(),
    }
    _TABLE: ClassVar[_Table] = {
        (S.IDLE, Input.START): (S.TRYING, _send_first),
        (S.TRYING, Timer.E): (S.TRYING, _retransmit_trying),
        (S.TRYING, Timer.F): (S.TERMINATED, _timed_out),
        (S.TRYING, Input.R1XX): (S.PROCEEDING, _ClientTransaction._to_tu),
        (S.TRYING, Input.R2XX): (S.COMPLETED, _complete),
        (S.TRYING, Input.R3XX_6XX): (S.COMPLETED, _complete),
        (S.TRYING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.PROCEEDING, Timer.E): (S.PROCEEDING, _retransmit_proceeding),
        (S.PROCEEDING, Timer.F): (S.TERMINATED, _timed_out),
        (S.PROCEEDING, Input.R1XX): (S.PROCEEDING, _ClientTransaction._to_tu),
        (S.PROCEEDING, Input.R2XX): (S.COMPLETED, _complete),
        (S.PROCEEDING, Input.R3XX_6XX): (S.COMPLETED, _complete),
        (S.PROCEEDING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.COMPLETED, Input.R1XX): (S.COMPLETED, _Transaction._absorb),
        (S.COMPLETED, Input.R2XX): (S.COMPLETED, _Transaction._absorb),
        (S.COMPLETED, Input.R3XX_6XX): (S.COMPLETED, _Transaction._absorb),
        (S.COMPLETED, Timer.K): (S.TERMINATED, _Transaction._absorb),
        # Completed sends nothing; a late error belongs to a retransmission already answered.
        (S.COMPLETED, Input.TRANSPORT_ERROR): (S.COMPLETED, _Transaction._absorb),
    }


@attrs.define(eq=False, kw_only=True)
class _ServerTransaction(_Transaction):
    source: object
    last_response: Response | None = attrs.field(init=False, default=None)
    _interval: float = attrs.field(init=False, default=0.0)

    def start(self, now: float) -> list[Event]:
        """Pass the request that created the transaction to the TU."""
        return self._input(Input.START, now, None)

    def receive(self, request: Request, now: float) -> list[Event]:
        """A request matched to this transaction arrived (retransmission, or ACK)."""
        if request.method == "ACK":
            what = Input.ACK
        elif request.method == self.request.method:
            what = Input.REQUEST
        else:
            raise TransactionError(f"{request.method} does not belong to a {self.request.method}")
        return self._input(what, now, request)

    def send_response(self, response: Response, now: float) -> list[Event]:
        """The TU answers the request; raises TransactionError if the state forbids it."""
        return self._input(_response_input(response.status), now, response)

    def _to_tu(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(RequestReceived(self.request, self.source, self.key))

    def _send(self, now: float, message: _Message, events: list[Event]) -> None:
        assert isinstance(message, Response)
        self.last_response = message
        events.append(SendResponse(message, self.source, self.key))

    def _resend(self, now: float, message: _Message, events: list[Event]) -> None:
        assert self.last_response is not None
        events.append(SendResponse(self.last_response, self.source, self.key))


@attrs.define(eq=False, kw_only=True)
class InviteServerTransaction(_ServerTransaction):
    """RFC 3261 17.2.1 with the RFC 6026 Accepted state (figure 7 of RFC 6026)."""

    def __attrs_post_init__(self) -> None:
        if self.request.method != "INVITE":
            raise TransactionError(f"not an INVITE: {self.request.method}")

    def _begin(self, now: float, message: _Message, events: list[Event]) -> None:
        self._to_tu(now, message, events)
        self._arm(Timer.TRYING, self.config.trying_delay, now)

    def _send_trying(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(now, make_response(self.request, 100), events)

    def _resend_provisional(self, now: float, message: _Message, events: list[Event]) -> None:
        # With nothing sent yet, the retransmission shows the client is waiting: answer now.
        if self.last_response is None:
            self._timers.pop(Timer.TRYING, None)
            self._send_trying(now, message, events)
        else:
            self._resend(now, message, events)

    def _send_provisional(self, now: float, message: _Message, events: list[Event]) -> None:
        self._timers.pop(Timer.TRYING, None)
        self._send(now, message, events)

    def _send_2xx(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(now, message, events)
        self._arm(Timer.L, self.config.timeout, now)

    def _send_final(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(now, message, events)
        if not self.reliable:
            self._interval = self.config.t1
            self._arm(Timer.G, self._interval, now)
        self._arm(Timer.H, self.config.timeout, now)

    def _retransmit_final(self, now: float, message: _Message, events: list[Event]) -> None:
        self._resend(now, message, events)
        self._interval = min(2 * self._interval, self.config.t2)
        self._arm(Timer.G, self._interval, now)

    def _timed_out(self, now: float, message: _Message, events: list[Event]) -> None:
        events.append(TimedOut(self.key, Timer.H))

    def _confirm(self, now: float, message: _Message, events: list[Event]) -> None:
        self._arm(Timer.I, self.config.timer_i(self.reliable), now)

    def _ack_to_tu(self, now: float, message: _Message, events: list[Event]) -> None:
        assert isinstance(message, Request)
        events.append(AckReceived(message, self.key))

    _STATE_TIMERS = {
        S.IDLE: frozenset(),
        S.PROCEEDING: frozenset({Timer.TRYING}),
        S.COMPLETED: frozenset({Timer.G, Timer.H}),
        S.CONFIRMED: frozenset({Timer.I}),
        S.ACCEPTED: frozenset({Timer.L}),
        S.TERMINATED: frozenset(),
    }
    _TABLE: ClassVar[_Table] = {
        (S.IDLE, Input.START): (S.PROCEEDING, _begin),
        (S.PROCEEDING, Timer.TRYING): (S.PROCEEDING, _send_trying),
        (S.PROCEEDING, Input.REQUEST): (S.PROCEEDING, _resend_provisional),
        (S.PROCEEDING, Input.ACK): (S.PROCEEDING, _Transaction._absorb),  # no final sent: bogus
        (S.PROCEEDING, Input.R1XX): (S.PROCEEDING, _send_provisional),
        (S.PROCEEDING, Input.R2XX): (S.ACCEPTED, _send_2xx),
        (S.PROCEEDING, Input.R3XX_6XX): (S.COMPLETED, _send_final),
        (S.PROCEEDING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.COMPLETED, Input.REQUEST): (S.COMPLETED, _ServerTransaction._resend),
        (S.COMPLETED, Timer.G): (S.COMPLETED, _retransmit_final),
        (S.COMPLETED, Timer.H): (S.TERMINATED, _timed_out),
        (S.COMPLETED, Input.ACK): (S.CONFIRMED, _confirm),
        (S.COMPLETED, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.CONFIRMED, Input.REQUEST): (S.CONFIRMED, _Transaction._absorb),
        (S.CONFIRMED, Input.ACK): (S.CONFIRMED, _Transaction._absorb),
        (S.CONFIRMED, Timer.I): (S.TERMINATED, _Transaction._absorb),
        (S.CONFIRMED, Input.TRANSPORT_ERROR): (S.CONFIRMED, _Transaction._absorb),
        (S.ACCEPTED, Input.REQUEST): (S.ACCEPTED, _Transaction._absorb),
        (S.ACCEPTED, Input.ACK): (S.ACCEPTED, _ack_to_tu),
        (S.ACCEPTED, Input.R2XX): (S.ACCEPTED, _ServerTransaction._send),
        (S.ACCEPTED, Timer.L): (S.TERMINATED, _Transaction._absorb),
        # RFC 6026: inform the TU (it stops retransmitting the 2xx) and stay, to absorb INVITEs.
        (S.ACCEPTED, Input.TRANSPORT_ERROR): (S.ACCEPTED, _Transaction._transport_failed),
    }


@attrs.define(eq=False, kw_only=True)
class NonInviteServerTransaction(_ServerTransaction):
    """RFC 3261 17.2.2 (figure 8)."""

    def __attrs_post_init__(self) -> None:
        if self.request.method in ("INVITE", "ACK"):
            raise TransactionError(f"not a non-INVITE request: {self.request.method}")

    def _complete(self, now: float, message: _Message, events: list[Event]) -> None:
        self._send(now, message, events)
        self._arm(Timer.J, self.config.timer_j(self.reliable), now)

    _STATE_TIMERS = {
        S.IDLE: frozenset(),
        S.TRYING: frozenset(),
        S.PROCEEDING: frozenset(),
        S.COMPLETED: frozenset({Timer.J}),
        S.TERMINATED: frozenset(),
    }
    _TABLE: ClassVar[_Table] = {
        (S.IDLE, Input.START): (S.TRYING, _ServerTransaction._to_tu),
        (S.TRYING, Input.REQUEST): (S.TRYING, _Transaction._absorb),
        (S.TRYING, Input.R1XX): (S.PROCEEDING, _ServerTransaction._send),
        (S.TRYING, Input.R2XX): (S.COMPLETED, _complete),
        (S.TRYING, Input.R3XX_6XX): (S.COMPLETED, _complete),
        (S.TRYING, Input.TRANSPORT_ERROR): (S.TRYING, _Transaction._absorb),  # nothing sent yet
        (S.PROCEEDING, Input.REQUEST): (S.PROCEEDING, _ServerTransaction._resend),
        (S.PROCEEDING, Input.R1XX): (S.PROCEEDING, _ServerTransaction._send),
        (S.PROCEEDING, Input.R2XX): (S.COMPLETED, _complete),
        (S.PROCEEDING, Input.R3XX_6XX): (S.COMPLETED, _complete),
        (S.PROCEEDING, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
        (S.COMPLETED, Input.REQUEST): (S.COMPLETED, _ServerTransaction._resend),
        (S.COMPLETED, Timer.J): (S.TERMINATED, _Transaction._absorb),
        (S.COMPLETED, Input.TRANSPORT_ERROR): (S.TERMINATED, _Transaction._transport_failed),
    }


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction
Transaction = ClientTransaction | ServerTransaction


# --- the layer -----------------------------------------------------------------------------------


class TransactionLayer:
    """Every live transaction of one SIP element, and the matching of messages to them.

    Sans-IO like the machines: each method returns the events it caused. The driver sends
    what :class:`SendRequest` / :class:`SendResponse` ask, reports failed sends with
    :meth:`transport_error`, hands the rest to the TU, and calls :meth:`on_timer` at
    :meth:`next_deadline`. A transaction is dropped the moment it terminates, so ``len(layer)``
    is the number of live ones.

    At ``max_transactions`` a new server transaction is refused with a 503 sent without a
    transaction (its ACK then reaches the TU as a :class:`StrayAck`), and
    :meth:`send_request` raises :class:`TransactionError`.
    """

    def __init__(
        self,
        config: TimerConfig = TimerConfig(),
        *,
        max_transactions: int = 10_000,
        branch_factory: Callable[[], str] = new_branch,
    ) -> None:
        self.config = config
        self.max_transactions = max_transactions
        self._branch_factory = branch_factory
        self._transactions: dict[TransactionKey, Transaction] = {}
        # RFC 2543 ACKs carry the To tag of the final response: their key differs from the
        # INVITE's, so a legacy INVITE server transaction also answers to that second key.
        self._aliases: dict[TransactionKey, TransactionKey] = {}
        self._alias_of: dict[TransactionKey, TransactionKey] = {}
        # Timer wheel: a heap of (deadline, seq, key); an entry is live while
        # _scheduled[key] holds its seq, so rescheduling never searches the heap.
        self._heap: list[tuple[float, int, TransactionKey]] = []
        self._scheduled: dict[TransactionKey, tuple[float, int]] = {}
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._transactions)

    @property
    def count(self) -> int:
        """Live transactions (the same as ``len(layer)``)."""
        return len(self._transactions)

    def __contains__(self, key: object) -> bool:
        return key in self._transactions

    def get(self, key: TransactionKey) -> Transaction | None:
        return self._transactions.get(key)

    # --- from the TU ---

    def send_request(
        self, request: Request, destination: object, now: float, *, reliable: bool
    ) -> tuple[TransactionKey, list[Event]]:
        """Start a client transaction for ``request``; give its top Via a branch if it has none.

        ``destination`` is opaque here: it comes back in every :class:`SendRequest`.
        """
        if request.method == "ACK":
            raise TransactionError("an ACK is sent without a client transaction (17.1.1.3)")
        if request.cseq.method != request.method:
            raise TransactionError(
                f"CSeq method {request.cseq.method} does not match {request.method}"
            )
        if len(self._transactions) >= self.max_transactions:
            raise TransactionError(f"transaction limit ({self.max_transactions}) reached")
        via = request.top_via
        if via.branch is None:
            _replace_top_via(request.headers, via.with_param("branch", self._branch_factory()))
        key = client_key(request)
        if key in self._transactions:
            raise TransactionError(f"a client transaction with branch {key.branch} exists")
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        txn = cls(
            request=request,
            destination=destination,
            reliable=reliable,
            config=self.config,
            key=key,
        )
        self._transactions[key] = txn
        events = txn.start(now)
        self._settle(txn)
        return key, events

    def send_response(self, key: TransactionKey, response: Response, now: float) -> list[Event]:
        """The TU answers through server transaction ``key``."""
        txn = self._transactions.get(key)
        if not isinstance(txn, _ServerTransaction):
            raise TransactionError(f"no live server transaction {key}")
        events = txn.send_response(response, now)
        if key.legacy and isinstance(txn, InviteServerTransaction) and response.status >= 200:
            self._alias_ack(txn, response)
        self._settle(txn)
        return events

    def abandon(self, key: TransactionKey, now: float) -> list[Event]:
        """Destroy INVITE client transaction ``key`` still waiting for its final response
        (see :meth:`InviteClientTransaction.abandon`); raises TransactionError for any other
        transaction or state."""
        txn = self._transactions.get(key)
        if not isinstance(txn, InviteClientTransaction):
            raise TransactionError(f"no live INVITE client transaction {key}")
        events = txn.abandon(now)
        self._settle(txn)
        return events

    def cancel_target(self, cancel: Request) -> TransactionKey | None:
        """The live INVITE server transaction a CANCEL targets (section 9.2), if any."""
        try:
            key = server_key(cancel, method="INVITE")
        except SipParseError:
            return None
        key = self._aliases.get(key, key)
        return key if isinstance(self._transactions.get(key), InviteServerTransaction) else None

    # --- from the network and the driver ---

    def receive(
        self,
        message: Request | Response,
        source: object,
        now: float,
        *,
        reliable: bool | None = None,
    ) -> list[Event]:
        """A message from the transport; ``source`` is opaque and comes back in SendResponse.

        ``reliable`` is the transport a new server transaction runs over (default: from the
        top Via's transport).
        """
        if isinstance(message, Response):
            return self._receive_response(message, source, now)
        return self._receive_request(message, source, now, reliable)

    def transport_error(self, key: TransactionKey | None, now: float) -> list[Event]:
        """A send for transaction ``key`` failed (unknown or finished keys are ignored)."""
        txn = self._transactions.get(key) if key is not None else None
        if txn is None:
            return []
        events = txn.transport_error(now)
        self._settle(txn)
        return events

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, seq, key = heap[0]
            entry = self._scheduled.get(key)
            if entry is not None and entry[1] == seq:
                return deadline
            heapq.heappop(heap)
        return None

    def on_timer(self, now: float) -> list[Event]:
        """Fire every timer due at ``now``."""
        events: list[Event] = []
        # self._heap, not a local: _settle may rebuild it.
        while self._heap and self._heap[0][0] <= now:
            _, seq, key = heapq.heappop(self._heap)
            entry = self._scheduled.get(key)
            if entry is None or entry[1] != seq:
                continue
            del self._scheduled[key]
            txn = self._transactions[key]
            events += txn.on_timer(now)
            self._settle(txn)
        return events

    # --- internals ---

    def _receive_response(self, response: Response, source: object, now: float) -> list[Event]:
        try:
            key = client_key(response)
            _response_input(response.status)
        except (SipParseError, TransactionError) as exc:
            return [MessageDiscarded(response, source, str(exc))]
        txn = self._transactions.get(key)
        if txn is None:
            return [StrayResponse(response, source)]
        assert isinstance(txn, _ClientTransaction)
        events = txn.receive(response, now)
        self._settle(txn)
        return events

    def _receive_request(
        self, request: Request, source: object, now: float, reliable: bool | None
    ) -> list[Event]:
        try:
            key = server_key(request)
        except SipParseError as exc:
            return self._reject(request, source, exc.status, exc.reason)
        key = self._aliases.get(key, key)
        txn = self._transactions.get(key)
        if txn is not None:
            assert isinstance(txn, _ServerTransaction)
            events = txn.receive(request, now)
            self._settle(txn)
            return events
        if request.method == "ACK":
            return [StrayAck(request, source)]
        if len(self._transactions) >= self.max_transactions:
            return self._reject(request, source, 503)
        if reliable is None:
            reliable = request.top_via.transport != "UDP"
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        new = cls(request=request, source=source, reliable=reliable, config=self.config, key=key)
        self._transactions[key] = new
        events = new.start(now)
        if request.method == "CANCEL":
            target = self.cancel_target(request)
            events = [
                attrs.evolve(e, cancels=target) if isinstance(e, RequestReceived) else e
                for e in events
            ]
        self._settle(new)
        return events

    def _reject(
        self, request: Request, source: object, status: int, reason: str | None = None
    ) -> list[Event]:
        """Answer statelessly (no transaction to keep), or drop what cannot be answered."""
        if request.method == "ACK" or "Via" not in request.headers:
            return [MessageDiscarded(request, source, f"cannot answer {status}")]
        return [SendResponse(make_response(request, status, reason), source, None)]

    def _alias_ack(self, txn: InviteServerTransaction, response: Response) -> None:
        try:
            alias = attrs.evolve(txn.key, legacy=_legacy_id(txn.request, response.to.tag))
        except SipParseError:
            return
        if alias != txn.key and alias not in self._transactions:
            self._aliases[alias] = txn.key
            self._alias_of[txn.key] = alias

    def _settle(self, txn: Transaction) -> None:
        """Drop a terminated transaction, or (re)schedule its next timer."""
        key = txn.key
        if txn.state is S.TERMINATED:
            del self._transactions[key]
            self._scheduled.pop(key, None)
            alias = self._alias_of.pop(key, None)
            if alias is not None:
                del self._aliases[alias]
            return
        deadline = txn.next_deadline()
        entry = self._scheduled.get(key)
        if deadline is None:
            if entry is not None:
                del self._scheduled[key]
            return
        if entry is not None and entry[0] == deadline:
            return
        seq = next(self._seq)
        self._scheduled[key] = (deadline, seq)
        heapq.heappush(self._heap, (deadline, seq, key))
        if len(self._heap) > 2 * len(self._scheduled) + 64:
            # Stale entries of rescheduled timers pile up under heavy load: rebuild.
            self._heap = [(d, s, k) for k, (d, s) in self._scheduled.items()]
            heapq.heapify(self._heap)


def _replace_top_via(headers: Headers, via: Via) -> None:
    rest = headers.get_all("Via")[1:]
    headers.set("Via", str(via))
    for value in rest:
        headers.add("Via", value)
