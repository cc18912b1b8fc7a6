"""RFC 3261 dialogs (sections 12-15) as plain objects: messages and ``now`` in, events out.

A ``Dialog`` is the state of one dialog: ids, sequence numbers, route set, remote target and
the early/confirmed/terminated state machine (``TRANSITIONS``). It builds in-dialog requests
and responses and judges incoming ones, and never looks at a clock.

A ``DialogLayer`` keeps the dialogs of a user agent and the timers around them: the UAS core's
2xx retransmission until the ACK (13.3.1.4), the UAC core's ACKs and the hang-up of extra
forked answers (13.2.2.4), the re-INVITE glare back-off (14.1) and RFC 4028 session timers.
It follows the aioquic pattern: ``next_deadline()`` says when it wants to be woken,
``on_timer(now)`` is that wake-up, and every input returns a list of ``DialogEvent``s telling
the driver what to send or report. It never sends anything itself.

Who sends what: ``SendResponse`` goes through the server transaction of the request it
answers; ``SendAck`` and ``Retransmit`` (2xx-related) go straight to the transport, there is
no transaction for them; ``SendBye`` starts a new client transaction.

Driver wiring with ``trio_voip.sip.transaction``: its ``RequestReceived``, ``AckReceived``
and ``StrayAck`` requests go to ``on_request``; ``ResponseReceived`` and ``StrayResponse``
(2xx retransmissions, other forks) go to ``on_response``; ``TimedOut`` / ``TransportFailed``
of a client transaction go to ``on_request_timeout`` with its request. Our answers go out through ``respond`` (it keeps the
dialog state, the 2xx retransmission and the session timer right); our requests come from
``start_uac`` (dialog-creating) or ``new_request`` (in-dialog). Requests built here carry a
top Via ``SIP/2.0/<transport> 0.0.0.0;branch=<fresh>``: the transport fills in sent-by.

Not here: reliable provisionals (RFC 3262 PRACK/RSeq; PRACK passes as a plain in-dialog
request), event-package state (a REFER or SUBSCRIBE dialog is routed like any other, its
NOTIFYs included; the application calls ``terminate`` when the subscription ends, since the
implicit subscription of REFER lives as long as its NOTIFYs say), and the offer/answer state
beyond "did this INVITE/UPDATE carry a body" (used for glare and for ACK-carried answers).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import random
import secrets
from collections.abc import Hashable, Iterable, Iterator

import attrs

from trio_voip.errors import DialogError
from trio_voip.sip import session_timer as st
from trio_voip.sip.headers import Headers, NameAddr
from trio_voip.sip.message import Request, Response, make_response
from trio_voip.sip.transaction import make_cancel, new_branch
from trio_voip.sip.uri import SipUri, Uri

__all__ = [
    "T1",
    "T2",
    "DIALOG_CREATING",
    "TARGET_REFRESH",
    "DialogState",
    "TRANSITIONS",
    "DialogId",
    "Dialog",
    "DialogLayer",
    "DialogEvent",
    "OutOfDialog",
    "RequestReceived",
    "SendResponse",
    "EarlyDialog",
    "DialogConfirmed",
    "DialogTerminated",
    "SendAck",
    "AckRequired",
    "SendBye",
    "Retransmit",
    "AckTimeout",
    "RetryReinvite",
    "RefreshSession",
    "SessionExpired",
    "build_cancel",
]

T1 = 0.5
"""RTT estimate (RFC 3261 17.1.1.1), seconds."""
T2 = 4.0
"""Longest retransmit interval for non-INVITE requests and INVITE 2xx responses, seconds."""

DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER"})
"""Methods whose 2xx (or, for INVITE, 101-199 with a To tag) creates a dialog."""
TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY"})
"""Methods whose Contact replaces the remote target (RFC 3261 12.2, 3311, 6665)."""
# Requests that carry our Contact (target refreshes, and REFER, which may create a dialog).
_WITH_CONTACT = TARGET_REFRESH | {"REFER"}
# uri-parameters RFC 3261 19.1.1 does not allow in a Request-URI.
_NOT_IN_REQUEST_URI = ("method",)
_AUTH_HEADERS = ("Authorization", "Proxy-Authorization")


def _initial_seq() -> int:
    # RFC 3261 8.1.1.5: any value below 2**31; stay low so increments never overflow 2**32.
    return secrets.randbelow(2**30) + 1


# --- state machine ---------------------------------------------------------------------------


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


TRANSITIONS: frozenset[tuple[DialogState, DialogState]] = frozenset(
    {
        # 2xx to the INVITE (received by the UAC, sent by the UAS)
        (DialogState.EARLY, DialogState.CONFIRMED),
        # non-2xx final to the INVITE, CANCEL, BYE from the caller, 481/408, fork clean-up
        (DialogState.EARLY, DialogState.TERMINATED),
        # BYE either way, 481/408 to an in-dialog request, ACK or session timeout
        (DialogState.CONFIRMED, DialogState.TERMINATED),
    }
)
"""The legal state changes of a dialog; anything else raises ``DialogError``."""


@attrs.frozen
class DialogId:
    """RFC 3261 12: Call-ID plus both tags, seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str


# --- events ----------------------------------------------------------------------------------


def _is_ack(_inst: object, _attr: object, value: Request) -> None:
    if value.method != "ACK":
        raise DialogError(f"SendAck needs an ACK, not {value.method}")


def _is_bye(_inst: object, _attr: object, value: Request) -> None:
    if value.method != "BYE":
        raise DialogError(f"SendBye needs a BYE, not {value.method}")


@attrs.frozen
class OutOfDialog:
    """A request without a To tag: not ours to route; it may create a dialog (``create_uas``)."""

    request: Request


@attrs.frozen
class RequestReceived:
    """An in-dialog request passed the dialog checks; the application answers it (not ACK)."""

    dialog_id: DialogId
    request: Request


@attrs.frozen
class SendResponse:
    """Answer the request with this (481, 500, 491, 422): the application never sees it."""

    response: Response


@attrs.frozen
class EarlyDialog:
    """A 101-199 with a To tag created an early dialog (one per fork)."""

    dialog_id: DialogId
    response: Response


@attrs.frozen
class DialogConfirmed:
    """The first 2xx to our dialog-creating request confirmed this dialog."""

    dialog_id: DialogId
    response: Response


@attrs.frozen
class DialogTerminated:
    """The layer (or the peer) ended the dialog; it is gone from the layer."""

    dialog_id: DialogId
    reason: str


@attrs.frozen
class SendAck:
    """Send this ACK for a 2xx straight to the transport (no transaction)."""

    request: Request = attrs.field(validator=_is_ack)


@attrs.frozen
class AckRequired:
    """The 2xx carries an offer (our INVITE had none): the answer must go in the ACK, so the
    application builds it with ``DialogLayer.ack``."""

    dialog_id: DialogId
    response: Response


@attrs.frozen
class SendBye:
    """Send this BYE in a new client transaction; the dialog is already gone."""

    request: Request = attrs.field(validator=_is_bye)


@attrs.frozen
class Retransmit:
    """Send this 2xx again, straight to the transport (RFC 3261 13.3.1.4)."""

    response: Response


@attrs.frozen
class AckTimeout:
    """No ACK came for our 2xx within 64*T1; a ``SendBye`` follows (RFC 3261 13.3.1.4)."""

    dialog_id: DialogId


@attrs.frozen
class RetryReinvite:
    """The 491 back-off is over: the application may send its re-INVITE/UPDATE again."""

    dialog_id: DialogId
    method: str


@attrs.frozen
class RefreshSession:
    """We are the refresher and half the session interval has passed: send ``method``."""

    dialog_id: DialogId
    method: str


@attrs.frozen
class SessionExpired:
    """No session refresh in time (RFC 4028 10); a ``SendBye`` follows (once the ACK of our
    2xx comes, if one is awaited: RFC 3261 15)."""

    dialog_id: DialogId


DialogEvent = (
    OutOfDialog
    | RequestReceived
    | SendResponse
    | EarlyDialog
    | DialogConfirmed
    | DialogTerminated
    | SendAck
    | AckRequired
    | SendBye
    | Retransmit
    | AckTimeout
    | RetryReinvite
    | RefreshSession
    | SessionExpired
)


# --- one dialog ------------------------------------------------------------------------------


def _as_name_addr(contact: NameAddr | Uri) -> NameAddr:
    return contact if isinstance(contact, NameAddr) else NameAddr(contact)


def _is_secure(uri: Uri) -> bool:
    return isinstance(uri, SipUri) and uri.secure


def _first_contact(message: Request | Response) -> Uri | None:
    contacts = message.contacts
    if not contacts or contacts[0].star:
        return None
    return contacts[0].uri


@attrs.define(eq=False)
class Dialog:
    """The state of one dialog (RFC 3261 12). Build one with ``create_uac`` / ``create_uas``.

    ``is_uac`` is True when we sent the dialog-creating request (and so own the Call-ID, which
    matters for the glare back-off). ``local_seq`` / ``remote_seq`` are None while empty.
    """

    id: DialogId
    state: DialogState
    is_uac: bool
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: Uri
    route_set: tuple[NameAddr, ...] = ()
    local_seq: int | None = None
    remote_seq: int | None = None
    secure: bool = False
    local_contact: NameAddr | None = None
    # CSeq numbers of INVITE/UPDATE transactions still waiting for their final response.
    invite_out: int | None = None
    invite_in: int | None = None
    update_out: int | None = None
    update_in: int | None = None
    # The INVITE we sent last: its CSeq number (ACK reuses it), whether it carried an offer,
    # and its credentials (the ACK repeats them, RFC 3261 13.2.2.4).
    last_invite_seq: int | None = None
    last_invite_had_body: bool = False
    last_invite_auth: tuple[tuple[str, str], ...] = ()
    # The ACK for the last 2xx we acknowledged, re-sent when that 2xx is retransmitted.
    last_ack: Request | None = None

    # -- construction --

    @classmethod
    def create_uac(cls, request: Request, response: Response) -> Dialog:
        """The dialog a 101-299 response (with To tag) to our ``request`` creates (12.1.2)."""
        if request.method not in DIALOG_CREATING:
            raise DialogError(f"{request.method} does not create dialogs")
        status = response.status
        if not 101 <= status <= 299 or (status < 200 and request.method != "INVITE"):
            raise DialogError(f"a {status} response does not create a {request.method} dialog")
        local_tag = request.from_.tag
        remote_tag = response.to.tag
        if local_tag is None or remote_tag is None:
            raise DialogError("a dialog needs both a From tag and a To tag")
        target = _first_contact(response)
        if target is None:
            if status >= 200:
                raise DialogError(f"a {status} that creates a dialog must carry a Contact")
            target = request.uri  # the 2xx will bring the real target
        contacts = request.contacts
        dialog = cls(
            id=DialogId(response.call_id, local_tag, remote_tag),
            state=DialogState.EARLY if status < 200 else DialogState.CONFIRMED,
            is_uac=True,
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=target,
            route_set=tuple(reversed(response.record_routes)),
            local_seq=request.cseq.seq,
            secure=_is_secure(request.uri),
            local_contact=contacts[0] if contacts and not contacts[0].star else None,
        )
        if request.method == "INVITE":
            dialog._invite_sent(request)
            if status < 200:
                dialog.invite_out = request.cseq.seq
        return dialog

    @classmethod
    def create_uas(cls, request: Request, local_tag: str, contact: NameAddr | Uri) -> Dialog:
        """The dialog we create by answering ``request`` with a To tag (12.1.1).

        An INVITE dialog starts early (the 2xx confirms it); SUBSCRIBE/REFER ones start
        confirmed since only their 2xx creates them. ``contact`` is our Contact.
        """
        if request.method not in DIALOG_CREATING:
            raise DialogError(f"{request.method} does not create dialogs")
        if request.to.tag is not None:
            raise DialogError("the request already belongs to a dialog (its To has a tag)")
        target = _first_contact(request)
        if target is None:
            raise DialogError(f"a dialog-creating {request.method} must carry a Contact")
        local_uri = request.to.with_tag(local_tag)
        is_invite = request.method == "INVITE"
        return cls(
            # RFC 2543 peers send no From tag: the remote tag is then empty (12.1.1).
            id=DialogId(request.call_id, local_tag, request.from_.tag or ""),
            state=DialogState.EARLY if is_invite else DialogState.CONFIRMED,
            is_uac=False,
            local_uri=local_uri,
            remote_uri=request.from_,
            remote_target=target,
            route_set=tuple(request.record_routes),
            remote_seq=request.cseq.seq,
            secure=_is_secure(request.uri),
            local_contact=_as_name_addr(contact),
            invite_in=request.cseq.seq if is_invite else None,
        )

    # -- state --

    def transition_to(self, new: DialogState) -> None:
        """Move to ``new``; raises ``DialogError`` unless ``TRANSITIONS`` allows it."""
        if (self.state, new) not in TRANSITIONS:
            raise DialogError(f"dialog {self.id}: {self.state.name} -> {new.name} is not allowed")
        self.state = new

    def _invite_sent(self, request: Request) -> None:
        self.last_invite_seq = request.cseq.seq
        self.last_invite_had_body = bool(request.body)
        self.last_invite_auth = tuple(
            (name, value) for name in _AUTH_HEADERS for value in request.headers.get_all(name)
        )

    def confirm(self, response: Response) -> None:
        """A 2xx to the INVITE confirmed this early UAC dialog: the route set and target are
        recomputed from it (RFC 3261 13.2.2.4)."""
        target = _first_contact(response)
        if target is None:
            raise DialogError("a 2xx to INVITE must carry a Contact")
        self.transition_to(DialogState.CONFIRMED)
        self.route_set = tuple(reversed(response.record_routes))
        self.remote_target = target
        if self.invite_out == response.cseq.seq:
            self.invite_out = None

    def terminate(self) -> None:
        """End the dialog (idempotent: ending an ended dialog is a no-op)."""
        if self.state is not DialogState.TERMINATED:
            self.transition_to(DialogState.TERMINATED)

    # -- requests we send --

    def _request_target(self) -> tuple[Uri, list[NameAddr]]:
        """Request-URI and Route set for a new request (RFC 3261 12.2.1.1)."""
        if not self.route_set:
            return self.remote_target, []
        first = self.route_set[0]
        if isinstance(first.uri, SipUri) and first.uri.lr:
            return self.remote_target, list(self.route_set)
        # A strict router wants the next hop in the Request-URI; the remote target travels
        # as the last Route so the last strict router can restore it.
        uri = first.uri
        if isinstance(uri, SipUri):
            for name in _NOT_IN_REQUEST_URI:
                uri = uri.without_param(name)
            if uri.headers:
                uri = attrs.evolve(uri, headers=())
        return uri, [*self.route_set[1:], NameAddr(self.remote_target)]

    def _build(
        self,
        method: str,
        seq: int,
        body: bytes,
        content_type: str | None,
        headers: Iterable[tuple[str, str]],
        transport: str,
    ) -> Request:
        uri, routes = self._request_target()
        h = Headers()
        # The transport fills in sent-by; the branch is fresh: every request we build here is
        # a new transaction (ACK for 2xx included, RFC 3261 17.1.1.3).
        h.add("Via", f"SIP/2.0/{transport} 0.0.0.0;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        for route in routes:
            h.add("Route", str(route))
        h.add("From", str(self.local_uri))
        h.add("To", str(self.remote_uri))
        h.add("Call-ID", self.id.call_id)
        h.add("CSeq", f"{seq} {method}")
        if method in _WITH_CONTACT and self.local_contact is not None:
            h.add("Contact", str(self.local_contact))
        for name, value in headers:
            h.add(name, value)
        if content_type is not None:
            h.add("Content-Type", content_type)
        return Request(method, uri, h, body)

    def new_request(
        self,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        transport: str = "UDP",
    ) -> Request:
        """A request inside this dialog (RFC 3261 12.2.1.1) with the next local CSeq.

        ACK reuses the CSeq number of our last INVITE; CANCEL is built from the request it
        cancels (``build_cancel``). Raises ``DialogError`` when the state forbids the method:
        re-INVITE outside a confirmed dialog or while another INVITE is pending either way
        (14.1), a second pending UPDATE, BYE from the callee on an early dialog (15).
        Building a BYE ends the dialog.
        """
        if self.state is DialogState.TERMINATED:
            raise DialogError(f"dialog {self.id} is terminated")
        if method == "CANCEL":
            raise DialogError("a CANCEL is built from the request it cancels: build_cancel()")
        if method == "ACK":
            if self.last_invite_seq is None:
                raise DialogError("no INVITE to acknowledge")
            return self.build_ack(self.last_invite_seq, body, content_type, headers)
        if method == "INVITE":
            if self.state is not DialogState.CONFIRMED:
                raise DialogError("a re-INVITE needs a confirmed dialog")
            if self.invite_out is not None or self.invite_in is not None:
                raise DialogError("an INVITE transaction is already in progress (RFC 3261 14.1)")
        elif method == "UPDATE" and self.update_out is not None:
            raise DialogError("an UPDATE is already pending")
        elif method == "BYE" and self.state is DialogState.EARLY and not self.is_uac:
            raise DialogError("the callee must not send BYE on an early dialog (RFC 3261 15)")
        seq = (self.local_seq if self.local_seq is not None else _initial_seq()) + 1
        request = self._build(method, seq, body, content_type, headers, transport)
        self.local_seq = seq
        if method == "INVITE":
            self.invite_out = seq
            self._invite_sent(request)
        elif method == "UPDATE":
            self.update_out = seq
        elif method == "BYE":
            self.terminate()
        return request

    def build_ack(
        self,
        seq: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        transport: str = "UDP",
    ) -> Request:
        """The ACK for a 2xx to our INVITE number ``seq`` (RFC 3261 13.2.2.4); remembered so a
        retransmitted 2xx gets the same ACK."""
        extra = [*self.last_invite_auth, *headers] if seq == self.last_invite_seq else headers
        ack = self._build("ACK", seq, body, content_type, extra, transport)
        self.last_ack = ack
        return ack

    # -- responses we send --

    def make_response(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """A response to ``request`` from inside this dialog: our To tag, our Contact on
        1xx/2xx to target refreshes and dialog-creating requests, and the Record-Route of a
        dialog-creating request copied back (RFC 3261 12.1.1). Pure: see ``response_sent``."""
        tag = None if status == 100 else self.id.local_tag
        response = make_response(
            request, status, reason, to_tag=tag, body=body, content_type=content_type
        )
        if 101 <= status <= 299:
            if request.to.tag is None:
                for rr in request.headers.get_all("Record-Route"):
                    response.headers.add("Record-Route", rr)
            if request.method in _WITH_CONTACT and self.local_contact is not None:
                response.headers.add("Contact", str(self.local_contact))
        for name, value in headers:
            response.headers.add(name, value)
        return response

    def response_sent(self, response: Response) -> None:
        """Account for a final response we sent to an incoming INVITE/UPDATE."""
        status = response.status
        if status < 200:
            return
        cseq = response.cseq
        if cseq.method == "INVITE" and cseq.seq == self.invite_in:
            self.invite_in = None
            if self.state is DialogState.EARLY:
                self.transition_to(
                    DialogState.CONFIRMED if status < 300 else DialogState.TERMINATED
                )
        elif cseq.method == "UPDATE" and cseq.seq == self.update_in:
            self.update_in = None

    # -- what we receive --

    def receive_request(self, request: Request) -> Response | None:
        """Judge an in-dialog request (RFC 3261 12.2.2, 14.2); a Response means "answer this
        and stop", None means the request is for the application.

        Out-of-order CSeq -> 500; an INVITE while ours is pending -> 491 (glare), while
        theirs is pending -> 500 with Retry-After; likewise UPDATE with a body. Accepted
        target refreshes replace the remote target; BYE ends the dialog.
        """
        if self.state is DialogState.TERMINATED:
            raise DialogError(f"dialog {self.id} is terminated")
        method = request.method
        if method == "ACK" or method == "CANCEL":
            # Same CSeq number as the request they belong to; they never advance remote_seq.
            return None
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return make_response(request, 500, "Out Of Order CSeq")
        self.remote_seq = seq
        if method == "INVITE":
            if self.invite_out is not None:
                return make_response(request, 491)
            if self.invite_in is not None:
                return _retry_later(request)
            self.invite_in = seq
        elif method == "UPDATE" and request.body:
            # RFC 3311 5.2: an offer while our own offer is unanswered.
            if self.update_out is not None or (
                self.invite_out is not None and self.last_invite_had_body
            ):
                return make_response(request, 491)
            if self.update_in is not None:
                return _retry_later(request)
        if method == "UPDATE":
            self.update_in = seq
        if method in TARGET_REFRESH:
            target = _first_contact(request)
            if target is not None:
                self.remote_target = target
        if method == "BYE":
            self.terminate()
        return None

    def receive_response(self, response: Response) -> None:
        """Account for a response to a request we sent in this dialog (RFC 3261 12.2.1.2):
        481 or 408 ends the dialog; a 2xx to a target refresh takes the new Contact."""
        status = response.status
        cseq = response.cseq
        method = cseq.method
        if status < 200:
            if self.state is DialogState.EARLY:
                target = _first_contact(response)
                if target is not None:
                    self.remote_target = target
            return
        if method == "INVITE" and cseq.seq == self.invite_out:
            self.invite_out = None
        elif method == "UPDATE" and cseq.seq == self.update_out:
            self.update_out = None
        if status == 481 or status == 408:
            self.terminate()
            return
        if status < 300 and method in TARGET_REFRESH:
            target = _first_contact(response)
            if target is not None:
                self.remote_target = target


def _retry_later(request: Request) -> Response:
    # RFC 3261 14.2: a second INVITE while the first is unanswered: 500 with Retry-After 0-10 s.
    response = make_response(request, 500, "Overlapping Requests")
    response.headers.add("Retry-After", str(random.randint(0, 10)))
    return response


def build_cancel(invite: Request) -> Request:
    """The CANCEL for a pending INVITE (RFC 3261 9.1): same Request-URI, Call-ID, From, To,
    CSeq number and top Via (branch included, so it matches the INVITE's transaction), and
    the same Route headers. Only send it once a provisional response has arrived."""
    if invite.method != "INVITE":
        # RFC 3261 9.1: non-INVITE requests answer at once; cancelling them is pointless.
        raise DialogError(f"only an INVITE is cancelled, not {invite.method}")
    return make_cancel(invite)


# --- the layer ---------------------------------------------------------------------------------


class _Timers:
    """Named deadlines; re-setting or cancelling a name replaces its deadline (lazy heap)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, tuple[float, int]] = {}
        self._counter = itertools.count()

    def set(self, key: Hashable, deadline: float) -> None:
        n = next(self._counter)
        self._live[key] = (deadline, n)
        heapq.heappush(self._heap, (deadline, n, key))

    def cancel(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def _prune(self) -> None:
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)

    def next_deadline(self) -> float | None:
        self._prune()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Hashable | None:
        """The key of the earliest timer due at ``now`` (removed), or None."""
        self._prune()
        if not self._heap or self._heap[0][0] > now:
            return None
        key = heapq.heappop(self._heap)[2]
        del self._live[key]
        return key


@attrs.define
class _Unacked:
    """A 2xx to INVITE we sent and keep sending until its ACK (RFC 3261 13.3.1.4)."""

    response: Response
    seq: int
    interval: float
    give_up: float


@attrs.define
class _UacRequest:
    """A dialog-creating request we sent, kept so every fork's answer can be handled."""

    request: Request
    early: set[DialogId] = attrs.Factory(set)
    confirmed: DialogId | None = None
    # ACK per answered fork: a retransmitted 2xx gets the very same ACK again.
    acks: dict[DialogId, Request] = attrs.Factory(dict)


@attrs.define
class _Session:
    """A running RFC 4028 session timer."""

    interval: int
    we_refresh: bool


_UacKey = tuple[str, str, int]


@attrs.define(eq=False)
class DialogLayer:
    """All dialogs of one user agent, sans-IO (see the module docstring).

    ``session_timers`` turns RFC 4028 on (None: we neither ask for nor honour session
    timers). ``rng`` draws the glare back-off (14.1); pass a seeded one for repeatable tests.
    """

    t1: float = T1
    t2: float = T2
    session_timers: st.SessionTimerConfig | None = None
    rng: random.Random = attrs.Factory(random.Random)
    _dialogs: dict[DialogId, Dialog] = attrs.field(init=False, factory=dict)
    _uac: dict[_UacKey, _UacRequest] = attrs.field(init=False, factory=dict)
    _unacked: dict[DialogId, _Unacked] = attrs.field(init=False, factory=dict)
    _sessions: dict[DialogId, _Session] = attrs.field(init=False, factory=dict)
    _timers: _Timers = attrs.field(init=False, factory=_Timers)
    # method of the 491-rejected request per dialog, for RetryReinvite
    _glare_method: dict[DialogId, str] = attrs.field(init=False, factory=dict)
    # sessions that expired while a 2xx of ours awaited its ACK: BYE once it comes
    _expired: set[DialogId] = attrs.field(init=False, factory=set)

    # -- lookup --

    @property
    def count(self) -> int:
        """Live dialogs (early and confirmed)."""
        return len(self._dialogs)

    def get(self, dialog_id: DialogId) -> Dialog | None:
        return self._dialogs.get(dialog_id)

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def awaiting_ack(self, dialog_id: DialogId) -> bool:
        """Whether a 2xx of ours to an INVITE (initial or re-INVITE) of this dialog still
        awaits its ACK: no BYE until it comes or ``AckTimeout`` (RFC 3261 15)."""
        return dialog_id in self._unacked

    def _require(self, dialog_id: DialogId) -> Dialog:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            raise DialogError(f"no dialog {dialog_id}")
        return dialog

    def _remove(self, dialog_id: DialogId) -> None:
        dialog = self._dialogs.pop(dialog_id, None)
        if dialog is not None:
            dialog.terminate()
        self._unacked.pop(dialog_id, None)
        self._sessions.pop(dialog_id, None)
        self._glare_method.pop(dialog_id, None)
        self._expired.discard(dialog_id)
        for kind in ("2xx", "glare", "refresh", "expire"):
            self._timers.cancel((kind, dialog_id))

    def terminate(self, dialog_id: DialogId) -> None:
        """Forget a dialog without sending anything (e.g. a subscription-only dialog whose
        subscription ended). Unknown ids are ignored."""
        self._remove(dialog_id)

    # -- timers --

    def next_deadline(self) -> float | None:
        """When ``on_timer`` should next be called (None: nothing pending)."""
        return self._timers.next_deadline()

    def on_timer(self, now: float) -> list[DialogEvent]:
        """Fire every timer due at ``now``, in deadline order."""
        events: list[DialogEvent] = []
        while (due := self._timers.pop_due(now)) is not None:
            kind, key = due  # type: ignore[misc]
            if kind == "2xx":
                self._on_2xx_timer(key, now, events)
            elif kind == "uac":
                self._on_uac_expired(key, events)
            elif kind == "glare":
                events.append(RetryReinvite(key, self._glare_method.pop(key, "INVITE")))
            elif kind == "refresh":
                config = self.session_timers or st.SessionTimerConfig()
                events.append(RefreshSession(key, config.refresh_method))
            elif kind == "expire":
                events.append(SessionExpired(key))
                if key in self._unacked:
                    self._expired.add(key)  # RFC 3261 15: the BYE waits for the ACK
                else:
                    self._hang_up(key, "session expired", events)
        return events

    def _on_2xx_timer(self, dialog_id: DialogId, now: float, events: list[DialogEvent]) -> None:
        pending = self._unacked.get(dialog_id)
        if pending is None:
            return
        if now >= pending.give_up:
            del self._unacked[dialog_id]
            events.append(AckTimeout(dialog_id))
            self._hang_up(dialog_id, "no ACK for 2xx", events)
            return
        events.append(Retransmit(pending.response))
        pending.interval = min(pending.interval * 2, self.t2)
        self._timers.set(("2xx", dialog_id), min(now + pending.interval, pending.give_up))

    def _hang_up(self, dialog_id: DialogId, reason: str, events: list[DialogEvent]) -> None:
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            return
        if dialog.state is DialogState.CONFIRMED:
            events.append(SendBye(dialog.new_request("BYE")))
        self._remove(dialog_id)
        events.append(DialogTerminated(dialog_id, reason))

    def _on_uac_expired(self, key: _UacKey, events: list[DialogEvent]) -> None:
        # 64*T1 after the first 2xx the INVITE is over: forks still early never answered.
        tracked = self._uac.pop(key, None)
        if tracked is not None:
            self._end_early(tracked, "another fork answered", events)

    # -- UAS side --

    def create_uas(self, request: Request, local_tag: str, contact: NameAddr | Uri) -> Dialog:
        """Create (and keep) the dialog we form by answering ``request``; answer it with
        ``respond(..., dialog_id=dialog.id)``."""
        dialog = Dialog.create_uas(request, local_tag, contact)
        if dialog.id in self._dialogs:
            raise DialogError(f"dialog {dialog.id} exists already")
        self._dialogs[dialog.id] = dialog
        return dialog

    def respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        now: float,
        dialog_id: DialogId | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Response:
        """Build our response to ``request`` and account for it.

        The dialog is ``dialog_id`` or the one the request's tags name. Without a live dialog
        this is a plain ``make_response`` (with ``dialog_id``'s tag if given). A 2xx to INVITE
        confirms the dialog and starts its retransmission until the ACK (13.3.1.4); a
        3xx-6xx to the dialog-creating request ends the dialog. With session timers on,
        a 2xx to INVITE/UPDATE carries the negotiated Session-Expires (RFC 4028 9).
        """
        if dialog_id is None and request.to.tag is not None:
            dialog_id = DialogId(request.call_id, request.to.tag, request.from_.tag or "")
        dialog = self._dialogs.get(dialog_id) if dialog_id is not None else None
        if dialog is None:
            response = make_response(
                request,
                status,
                reason,
                to_tag=dialog_id.local_tag if dialog_id is not None and status != 100 else None,
                body=body,
                content_type=content_type,
            )
            for name, value in headers:
                response.headers.add(name, value)
            return response
        assert dialog_id is not None
        extra = list(headers)
        negotiated = None
        method = request.method
        if (
            self.session_timers is not None
            and 200 <= status < 300
            and method in ("INVITE", "UPDATE")
            and (method == "INVITE" or dialog.state is DialogState.CONFIRMED)
        ):
            negotiated = st.negotiate_uas(request, self.session_timers)
            extra.extend(negotiated.headers())
        response = dialog.make_response(
            request, status, reason, body=body, content_type=content_type, headers=extra
        )
        dialog.response_sent(response)
        # A failed dialog-creating request (the INVITE above, or SUBSCRIBE/REFER) ends it.
        if dialog.state is DialogState.TERMINATED or (status >= 300 and request.to.tag is None):
            self._remove(dialog_id)
            return response
        if method == "INVITE" and 200 <= status < 300:
            self._unacked[dialog_id] = _Unacked(
                response, request.cseq.seq, self.t1, now + 64 * self.t1
            )
            self._timers.set(("2xx", dialog_id), now + self.t1)
        if negotiated is not None:
            self._start_session(
                dialog_id, negotiated.session_expires.interval, negotiated.we_refresh, now
            )
        return response

    def answer_cancel(
        self, cancel: Request, invite: Request, *, now: float, dialog_id: DialogId | None = None
    ) -> tuple[Response, Response]:
        """The 200 for a CANCEL and the 487 for the INVITE it cancels (RFC 3261 9.2), for an
        INVITE still without a final response. Both carry the dialog's To tag; the 487 ends
        the early dialog."""
        tag = dialog_id.local_tag if dialog_id is not None else None
        ok = make_response(cancel, 200, to_tag=tag)
        return ok, self.respond(invite, 487, now=now, dialog_id=dialog_id)

    def on_request(self, request: Request, now: float) -> list[DialogEvent]:
        """Route an incoming request (after its server transaction accepted it).

        No To tag -> ``OutOfDialog``. A To tag naming no dialog -> 481 (ACK: dropped). An
        in-dialog request either gets a ``SendResponse`` (500 out of order, 491 glare, 422
        session too short) or a ``RequestReceived``; an ACK also stops the 2xx
        retransmissions, a BYE also ends the dialog (``DialogTerminated``).
        """
        method = request.method
        config = self.session_timers
        to_tag = request.to.tag
        if to_tag is None:
            if config is not None and method == "INVITE":
                too_small = st.check_min_se(request, config)
                if too_small is not None:
                    return [SendResponse(too_small)]
            return [OutOfDialog(request)]
        dialog_id = DialogId(request.call_id, to_tag, request.from_.tag or "")
        dialog = self._dialogs.get(dialog_id)
        if dialog is None:
            if method == "ACK":
                return []
            return [SendResponse(make_response(request, 481))]
        if method == "ACK":
            pending = self._unacked.get(dialog_id)
            acked: list[DialogEvent] = [RequestReceived(dialog_id, request)]
            if pending is not None and pending.seq == request.cseq.seq:
                del self._unacked[dialog_id]
                self._timers.cancel(("2xx", dialog_id))
                if dialog_id in self._expired:
                    self._hang_up(dialog_id, "session expired", acked)
            return acked
        if config is not None and method in ("INVITE", "UPDATE"):
            too_small = st.check_min_se(request, config)
            if too_small is not None:
                return [SendResponse(too_small)]
        reject = dialog.receive_request(request)
        if reject is not None:
            return [SendResponse(reject)]
        events: list[DialogEvent] = [RequestReceived(dialog_id, request)]
        if method == "BYE":
            self._remove(dialog_id)
            events.append(DialogTerminated(dialog_id, "BYE received"))
        return events

    # -- UAC side --

    def start_uac(self, request: Request) -> Request:
        """Remember a dialog-creating request we are about to send, so that its responses
        (from every fork) create dialogs. With session timers on, an INVITE without
        Session-Expires gets Supported: timer, Session-Expires and Min-SE added.
        Returns the request (changed in place)."""
        if request.method not in DIALOG_CREATING:
            raise DialogError(f"{request.method} does not create dialogs")
        if request.to.tag is not None:
            raise DialogError("the request is already inside a dialog (its To has a tag)")
        local_tag = request.from_.tag
        if local_tag is None:
            raise DialogError("a dialog-creating request needs a From tag")
        if (
            self.session_timers is not None
            and request.method == "INVITE"
            and "Session-Expires" not in request.headers
        ):
            for name, value in st.request_headers(self.session_timers):
                request.headers.add(name, value)
        self._uac[(request.call_id, local_tag, request.cseq.seq)] = _UacRequest(request)
        return request

    def new_request(
        self,
        dialog_id: DialogId,
        method: str,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        *,
        transport: str = "UDP",
    ) -> Request:
        """``Dialog.new_request`` plus the layer's rules: no BYE from the callee before the
        ACK of its 2xx (RFC 3261 15), session-timer headers on refreshes, and a BYE removes
        the dialog (its response needs no dialog)."""
        dialog = self._require(dialog_id)
        if method == "BYE" and dialog_id in self._unacked:
            raise DialogError("wait for the ACK of our 2xx (or its timeout) before BYE")
        extra = list(headers)
        session = self._sessions.get(dialog_id)
        if (
            session is not None
            and self.session_timers is not None
            and method in ("INVITE", "UPDATE")
            and not any(name.lower() == "session-expires" for name, _ in extra)
        ):
            current = st.SessionExpires(session.interval)
            extra.extend(
                st.request_headers(self.session_timers, current, we_refresh=session.we_refresh)
            )
        request = dialog.new_request(method, body, content_type, extra, transport=transport)
        if method in ("INVITE", "UPDATE"):
            self._timers.cancel(("glare", dialog_id))
        if dialog.state is DialogState.TERMINATED:
            self._remove(dialog_id)
        return request

    def ack(
        self,
        dialog_id: DialogId,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Request:
        """The ACK (with the answer in ``body``) after ``AckRequired``; send it straight to the
        transport. A retransmitted 2xx is then answered with this same ACK."""
        dialog = self._require(dialog_id)
        ack = dialog.new_request("ACK", body, content_type, headers)
        if dialog.last_invite_seq is not None:
            key = (dialog_id.call_id, dialog_id.local_tag, dialog.last_invite_seq)
            tracked = self._uac.get(key)
            if tracked is not None:
                tracked.acks[dialog_id] = ack
        return ack

    def on_response(self, response: Response, now: float) -> list[DialogEvent]:
        """Account for a response to a request we sent: to a dialog-creating request (every
        fork, retransmitted 2xx included) or inside a dialog. Responses that belong to
        nothing (e.g. to the BYE of a dialog already gone) give no events."""
        cseq = response.cseq
        local_tag = response.from_.tag
        if local_tag is None:
            return []
        key = (response.call_id, local_tag, cseq.seq)
        tracked = self._uac.get(key)
        remote_tag = response.to.tag
        dialog_id = (
            None if remote_tag is None else DialogId(response.call_id, local_tag, remote_tag)
        )
        if tracked is not None and tracked.request.method == cseq.method:
            return self._on_creating_response(key, tracked, dialog_id, response, now)
        dialog = self._dialogs.get(dialog_id) if dialog_id is not None else None
        if dialog is None:
            return []
        return self._on_dialog_response(dialog, response, now)

    def _on_creating_response(
        self,
        key: _UacKey,
        tracked: _UacRequest,
        dialog_id: DialogId | None,
        response: Response,
        now: float,
    ) -> list[DialogEvent]:
        status = response.status
        request = tracked.request
        if status >= 300:
            return self._end_uac_request(key, f"{status} {response.reason}")
        if dialog_id is None:
            if status < 200:
                return []  # 100 Trying, or a 1xx without a tag: no dialog yet
            raise DialogError(f"a {status} to {request.method} has no To tag")
        dialog = self._dialogs.get(dialog_id)
        if status < 200:
            if request.method != "INVITE" or status == 100:
                return []
            if dialog is None:
                dialog = Dialog.create_uac(request, response)
                self._dialogs[dialog_id] = dialog
                tracked.early.add(dialog_id)
                return [EarlyDialog(dialog_id, response)]
            dialog.receive_response(response)
            return []
        # 2xx
        if dialog_id in tracked.acks:
            return [SendAck(tracked.acks[dialog_id])]
        if dialog_id == tracked.confirmed:
            return []  # answered by AckRequired; the application has not built the ACK yet
        if dialog is None:
            dialog = Dialog.create_uac(request, response)
            self._dialogs[dialog_id] = dialog
        else:
            dialog.confirm(response)
        tracked.early.discard(dialog_id)
        if request.method != "INVITE":
            # Non-INVITE: the transaction is over with this final response, no ACK.
            del self._uac[key]
            return [DialogConfirmed(dialog_id, response)]
        events: list[DialogEvent] = []
        if tracked.confirmed is None:
            tracked.confirmed = dialog_id
            # The INVITE is over 64*T1 after its first 2xx (13.2.2.4); until then we wait
            # for more forks' answers.
            self._timers.set(("uac", key), now + 64 * self.t1)
            events.append(DialogConfirmed(dialog_id, response))
            if not request.body and response.body:
                events.append(AckRequired(dialog_id, response))
            else:
                ack = dialog.build_ack(response.cseq.seq)
                tracked.acks[dialog_id] = ack
                events.append(SendAck(ack))
            self._session_from_response(dialog_id, response, now)
            return events
        # Another fork answered after the call was set up: acknowledge it, then hang it up.
        ack = dialog.build_ack(response.cseq.seq)
        tracked.acks[dialog_id] = ack
        events.append(SendAck(ack))
        events.append(SendBye(dialog.new_request("BYE")))
        self._remove(dialog_id)
        events.append(DialogTerminated(dialog_id, "another fork answered first"))
        return events

    def _end_early(self, tracked: _UacRequest, reason: str, events: list[DialogEvent]) -> None:
        for dialog_id in tracked.early:
            if dialog_id in self._dialogs:
                self._remove(dialog_id)
                events.append(DialogTerminated(dialog_id, reason))
        tracked.early.clear()

    def _end_uac_request(self, key: _UacKey, reason: str) -> list[DialogEvent]:
        tracked = self._uac.pop(key, None)
        self._timers.cancel(("uac", key))
        events: list[DialogEvent] = []
        if tracked is not None:
            self._end_early(tracked, reason, events)
        return events

    def _on_dialog_response(
        self, dialog: Dialog, response: Response, now: float
    ) -> list[DialogEvent]:
        dialog_id = dialog.id
        status = response.status
        cseq = response.cseq
        method = cseq.method
        ok = 200 <= status < 300
        last_ack = dialog.last_ack
        if ok and method == "INVITE" and last_ack is not None and last_ack.cseq.seq == cseq.seq:
            return [SendAck(last_ack)]  # a retransmitted 2xx
        dialog.receive_response(response)
        if dialog.state is DialogState.TERMINATED:
            self._remove(dialog_id)
            return [DialogTerminated(dialog_id, f"{status} {response.reason}")]
        events: list[DialogEvent] = []
        if ok and method == "INVITE":
            if not dialog.last_invite_had_body and response.body:
                events.append(AckRequired(dialog_id, response))
            else:
                events.append(SendAck(dialog.build_ack(cseq.seq)))
        if ok and method in ("INVITE", "UPDATE"):
            self._session_from_response(dialog_id, response, now)
        if status == 491 and method in ("INVITE", "UPDATE"):
            # RFC 3261 14.1: the Call-ID owner waits 2.1-4 s, the other side 0-2 s (10 ms units).
            low, high = (210, 400) if dialog.is_uac else (0, 200)
            self._glare_method[dialog_id] = method
            self._timers.set(("glare", dialog_id), now + self.rng.randint(low, high) / 100)
        return events

    def on_request_timeout(self, request: Request, now: float) -> list[DialogEvent]:
        """The client transaction of ``request`` timed out (or failed at the transport):
        an in-dialog request's dialog ends (12.2.1.2), a dialog-creating one's early
        dialogs end."""
        local_tag = request.from_.tag
        if local_tag is None:
            return []
        to_tag = request.to.tag
        if to_tag is None:
            return self._end_uac_request(
                (request.call_id, local_tag, request.cseq.seq), "request timed out"
            )
        dialog_id = DialogId(request.call_id, local_tag, to_tag)
        if dialog_id not in self._dialogs:
            return []
        self._remove(dialog_id)
        return [DialogTerminated(dialog_id, "request timed out")]

    # -- session timers --

    def _session_from_response(self, dialog_id: DialogId, response: Response, now: float) -> None:
        if self.session_timers is None:
            return
        se = st.negotiate_uac(response)
        if se is None:
            # No Session-Expires in the 2xx: no session timer (any running one stops).
            self._sessions.pop(dialog_id, None)
            self._timers.cancel(("refresh", dialog_id))
            self._timers.cancel(("expire", dialog_id))
            return
        self._start_session(dialog_id, se.interval, se.refresher == "uac", now)

    def _start_session(
        self, dialog_id: DialogId, interval: int, we_refresh: bool, now: float
    ) -> None:
        self._sessions[dialog_id] = _Session(interval, we_refresh)
        if we_refresh:
            self._timers.set(("refresh", dialog_id), now + st.refresh_delay(interval))
        else:
            self._timers.cancel(("refresh", dialog_id))
        self._timers.set(("expire", dialog_id), now + st.expiry_delay(interval))
