"""TransactionLayer: matching (17.1.3, 17.2.3, RFC 2543 fallback), CANCEL, limits, timers."""

from __future__ import annotations

import itertools

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_transaction import make_request, reply

from trio_voip.errors import TransactionError
from trio_voip.sip import Request, Response, make_response, parse_message
from trio_voip.sip.transaction import (
    AckReceived,
    InviteServerTransaction,
    MessageDiscarded,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    StrayAck,
    StrayResponse,
    TimedOut,
    Timer,
    TimerConfig,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    TransportFailed,
    make_ack,
    make_cancel,
)

S = TransactionState
SOURCE = ("192.0.2.1", 5060)
OTHER_SOURCE = ("192.0.2.2", 5060)

INV_2543 = (
    b"INVITE sip:UserB@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP iftgw.example.com\r\n"
    b"From: <sip:+13035551111@ift.client.example.net;user=phone>\r\n"
    b"Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>\r\n"
    b"To: sip:+16505552222@ss1.example.net;user=phone\r\n"
    b"Call-ID: inv2543.1717@ift.client.example.com\r\n"
    b"CSeq: 56 INVITE\r\n"
    b"Content-Type: application/sdp\r\n"
    b"\r\n"
    b"v=0\r\n"
)  # RFC 4475 3.4.1 (no branch, no From tag)

BAD_BRANCH = (
    b"OPTIONS sip:user@example.com SIP/2.0\r\n"
    b"To: sip:user@example.com\r\n"
    b"From: sip:caller@example.org;tag=33242\r\n"
    b"Max-Forwards: 3\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK\r\n"
    b"Accept: application/sdp\r\n"
    b"Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n\r\n"
    b"CSeq: 8 OPTIONS\r\n"
    b"l: 0\r\n"
    b"\r\n"
)  # RFC 4475 3.2.1: a bare magic cookie


def copy(message: Request | Response) -> Request | Response:
    """What the far end sees: the bytes, parsed again."""
    return parse_message(bytes(message))


def only(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def drain(layer: TransactionLayer, until: float) -> list:
    events = []
    while (deadline := layer.next_deadline()) is not None and deadline <= until:
        events += layer.on_timer(deadline)
    return events


# --- client side -------------------------------------------------------------------------------


def test_send_request_adds_branch_and_matches_responses() -> None:
    branches = itertools.count()
    layer = TransactionLayer(branch_factory=lambda: f"z9hG4bKgen{next(branches)}")
    request = make_request("OPTIONS", branch=None)
    key, events = layer.send_request(request, "dest", 0.0, reliable=False)
    assert request.top_via.branch == "z9hG4bKgen0"
    assert key.branch == "z9hG4bKgen0" and key.method == "OPTIONS"
    assert events == [SendRequest(request, "dest", key)]
    assert len(layer) == layer.count == 1 and key in layer

    ok = copy(make_response(request, 200, to_tag="x"))
    assert layer.receive(ok, SOURCE, 1.0) == [ResponseReceived(ok, key)]
    # a response with the same branch but another CSeq method is not ours (17.1.3)
    other = copy(ok)
    other.headers.set("CSeq", "7 CANCEL")
    assert layer.receive(other, SOURCE, 1.0) == [StrayResponse(other, SOURCE)]
    # Timer K, then gone
    assert layer.next_deadline() == 1.0 + 5.0
    assert layer.on_timer(6.0) == [TransactionTerminated(key)]
    assert len(layer) == 0
    assert layer.next_deadline() is None


def test_send_request_keeps_other_vias() -> None:
    layer = TransactionLayer(branch_factory=lambda: "z9hG4bKnew")
    request = make_request("OPTIONS", branch=None)
    request.headers.add("Via", "SIP/2.0/UDP down.example.com;branch=z9hG4bKdown")
    layer.send_request(request, "dest", 0.0, reliable=True)
    assert [v.branch for v in request.vias] == ["z9hG4bKnew", "z9hG4bKdown"]


def test_send_request_refusals() -> None:
    layer = TransactionLayer(max_transactions=1)
    with pytest.raises(TransactionError, match="ACK"):
        layer.send_request(make_request("ACK"), "d", 0.0, reliable=False)
    bad = make_request("OPTIONS")
    bad.method = "INFO"
    with pytest.raises(TransactionError, match="CSeq"):
        layer.send_request(bad, "d", 0.0, reliable=False)
    layer.send_request(make_request("OPTIONS"), "d", 0.0, reliable=False)
    with pytest.raises(TransactionError, match="exists|limit"):
        layer.send_request(make_request("OPTIONS"), "d", 0.0, reliable=False)
    layer.max_transactions = 10
    with pytest.raises(TransactionError, match="exists"):
        layer.send_request(make_request("OPTIONS"), "d", 0.0, reliable=False)
    with pytest.raises(TransactionError, match="limit"):
        TransactionLayer(max_transactions=0).send_request(
            make_request("BYE"), "d", 0.0, reliable=False
        )


def test_discarded_responses() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS")
    key, _ = layer.send_request(request, "d", 0.0, reliable=False)
    weird = make_response(request, 200)
    weird.status = 700
    [event] = layer.receive(weird, SOURCE, 0.1)
    assert isinstance(event, MessageDiscarded) and "out of range" in event.reason
    no_branch = make_response(request, 200)
    no_branch.headers.set("Via", "SIP/2.0/UDP client.example.com")
    [event] = layer.receive(no_branch, SOURCE, 0.1)
    assert isinstance(event, MessageDiscarded)
    assert layer.get(key).state is S.TRYING


def test_client_transport_error_through_layer() -> None:
    layer = TransactionLayer()
    key, _ = layer.send_request(make_request("INVITE"), "d", 0.0, reliable=False)
    assert layer.transport_error(key, 0.1) == [TransportFailed(key), TransactionTerminated(key)]
    assert len(layer) == 0
    assert layer.transport_error(key, 0.2) == []  # already gone: ignored
    assert layer.transport_error(None, 0.2) == []
    assert layer.next_deadline() is None  # its timers went with it


# --- server side -------------------------------------------------------------------------------


def test_server_matching_by_branch_sent_by_and_method() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    [received] = layer.receive(invite, SOURCE, 0.0)
    assert isinstance(received, RequestReceived) and received.cancels is None
    key = received.key
    # retransmission: same transaction, no second RequestReceived (100 goes out at once)
    [resend] = layer.receive(copy(invite), SOURCE, 0.1)
    assert isinstance(resend, SendResponse) and resend.response.status == 100
    assert len(layer) == 1
    # same branch from another sent-by is another transaction (17.2.3)
    other = copy(invite)
    other.headers.set("Via", "SIP/2.0/UDP elsewhere.example.com:5060;branch=z9hG4bK-abc")
    [new] = layer.receive(other, OTHER_SOURCE, 0.1)
    assert isinstance(new, RequestReceived) and new.key != key
    # same branch, other method: another transaction
    [bye] = layer.receive(make_request("BYE"), SOURCE, 0.1)
    assert isinstance(bye, RequestReceived) and bye.key.method == "BYE"
    assert len(layer) == 3


def test_ack_matches_invite_transaction_for_non_2xx() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    [received] = layer.receive(invite, SOURCE, 0.0)
    busy = make_response(invite, 486, to_tag="srv")
    [send] = layer.send_response(received.key, busy, 0.1)
    assert send == SendResponse(busy, SOURCE, received.key)
    ack = copy(make_ack(invite, busy))
    assert layer.receive(ack, SOURCE, 0.2) == []
    assert layer.get(received.key).state is S.CONFIRMED
    assert drain(layer, 100.0) == [TransactionTerminated(received.key)]
    assert len(layer) == 0


def test_ack_for_2xx_is_a_stray_for_the_dialog_layer() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    [received] = layer.receive(invite, SOURCE, 0.0)
    ok = make_response(invite, 200, to_tag="srv")
    layer.send_response(received.key, ok, 0.1)
    ack = copy(make_ack(invite, ok))
    ack.headers.set("Via", "SIP/2.0/UDP client.example.com:5060;branch=z9hG4bK-ack2xx")
    assert layer.receive(ack, SOURCE, 0.2) == [StrayAck(ack, SOURCE)]
    # an ACK that reuses the INVITE's branch reaches the TU through the transaction (6026)
    same = copy(make_ack(invite, ok))
    assert layer.receive(same, SOURCE, 0.3) == [AckReceived(same, received.key)]
    assert layer.receive(copy(invite), SOURCE, 0.4) == []  # absorbed in Accepted
    assert drain(layer, 100.0) == [TransactionTerminated(received.key)]


def test_unknown_ack_never_creates_a_transaction() -> None:
    layer = TransactionLayer()
    ack = make_request("ACK")
    assert layer.receive(ack, SOURCE, 0.0) == [StrayAck(ack, SOURCE)]
    assert len(layer) == 0


def test_send_response_needs_a_live_server_transaction() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS")
    key, _ = layer.send_request(request, "d", 0.0, reliable=False)
    with pytest.raises(TransactionError):
        layer.send_response(key, reply(request, 200), 0.0)
    [received] = layer.receive(make_request("OPTIONS"), SOURCE, 0.0)
    layer.send_response(received.key, reply(request, 200), 0.0)
    layer.on_timer(100.0)
    with pytest.raises(TransactionError):
        layer.send_response(received.key, reply(request, 200), 100.0)


def test_cancel_finds_its_invite() -> None:
    layer = TransactionLayer()
    invite = make_request("INVITE")
    [received] = layer.receive(invite, SOURCE, 0.0)
    cancel = copy(make_cancel(invite))
    [cancel_received] = layer.receive(cancel, SOURCE, 1.0)
    assert isinstance(cancel_received, RequestReceived)
    assert cancel_received.cancels == received.key
    assert cancel_received.key != received.key  # CANCEL has its own transaction
    assert layer.cancel_target(cancel) == received.key
    assert len(layer) == 2
    # a retransmitted CANCEL is its own transaction's retransmission
    assert layer.receive(copy(cancel), SOURCE, 1.1) == []
    # no INVITE for this CANCEL: the TU answers 481
    lost = make_cancel(make_request("INVITE", branch="z9hG4bK-gone"))
    [orphan] = layer.receive(lost, SOURCE, 1.2)
    assert orphan.cancels is None
    assert layer.cancel_target(lost) is None


def test_rfc2543_fallback_matching() -> None:
    layer = TransactionLayer()
    invite = parse_message(INV_2543)
    [received] = layer.receive(invite, SOURCE, 0.0)
    key = received.key
    assert key.branch == "" and key.legacy
    [resend] = layer.receive(copy(invite), SOURCE, 0.1)  # matched without a branch
    assert resend.response.status == 100
    # CANCEL with the INVITE's Request-URI, tags, Call-ID, CSeq number and Via finds it
    cancel = copy(make_cancel(invite))
    [cancel_received] = layer.receive(cancel, SOURCE, 0.2)
    assert cancel_received.cancels == key
    # a legacy ACK carries the To tag of the response: it still matches (17.2.3)
    busy = make_response(invite, 486, to_tag="tag486")
    layer.send_response(key, busy, 0.3)
    ack = copy(make_ack(invite, busy))
    assert ack.top_via.branch is None
    assert layer.receive(ack, SOURCE, 0.4) == []
    assert layer.get(key).state is S.CONFIRMED
    # a different Call-ID does not match
    stray = copy(ack)
    stray.headers.set("Call-ID", "other@example.com")
    assert layer.receive(stray, SOURCE, 0.5) == [StrayAck(stray, SOURCE)]
    layer.send_response(cancel_received.key, make_response(cancel, 200), 0.6)
    drain(layer, 100.0)
    assert len(layer) == 0
    assert not layer._aliases  # the ACK key went with its transaction


def test_bare_magic_cookie_falls_back_to_2543() -> None:
    layer = TransactionLayer()
    options = parse_message(BAD_BRANCH)
    [received] = layer.receive(options, SOURCE, 0.0)
    assert received.key.legacy and received.key.branch == ""
    assert layer.receive(copy(options), SOURCE, 0.1) == []  # retransmission, Trying
    changed = copy(options)
    changed.headers.set("CSeq", "9 OPTIONS")
    assert isinstance(layer.receive(changed, SOURCE, 0.2)[0], RequestReceived)


def test_limit_answers_503_without_a_transaction() -> None:
    layer = TransactionLayer(max_transactions=1)
    layer.receive(make_request("INVITE"), SOURCE, 0.0)
    options = make_request("OPTIONS", branch="z9hG4bK-2")
    [refused] = layer.receive(options, SOURCE, 0.0)
    assert isinstance(refused, SendResponse)
    assert refused.key is None and refused.source == SOURCE
    assert refused.response.status == 503
    assert refused.response.top_via.branch == "z9hG4bK-2"
    assert len(layer) == 1
    # an ACK is never answered
    ack = make_request("ACK", branch="z9hG4bK-3")
    assert layer.receive(ack, SOURCE, 0.0) == [StrayAck(ack, SOURCE)]


def test_request_without_usable_via() -> None:
    layer = TransactionLayer()
    request = make_request("OPTIONS")
    request.headers.remove("Via")
    [event] = layer.receive(request, SOURCE, 0.0)
    assert isinstance(event, MessageDiscarded)
    assert len(layer) == 0


def test_reliable_flag_defaults_to_the_via_transport() -> None:
    layer = TransactionLayer()
    [tcp] = layer.receive(make_request("OPTIONS", transport="TCP"), SOURCE, 0.0)
    [udp] = layer.receive(make_request("OPTIONS", branch="z9hG4bK-u"), SOURCE, 0.0)
    [forced] = layer.receive(
        make_request("OPTIONS", branch="z9hG4bK-f"), SOURCE, 0.0, reliable=True
    )
    assert layer.get(tcp.key).reliable and not layer.get(udp.key).reliable
    assert layer.get(forced.key).reliable


def test_many_transactions_timers_in_order() -> None:
    layer = TransactionLayer()
    keys = []
    for i in range(50):
        key, _ = layer.send_request(
            make_request("OPTIONS", branch=f"z9hG4bK{i}"), i, i * 0.01, reliable=False
        )
        keys.append(key)
    assert layer.next_deadline() == pytest.approx(0.5)
    timeouts = [e for e in drain(layer, 100.0) if isinstance(e, TimedOut)]
    assert [e.key for e in timeouts] == keys  # F fires in creation order
    assert len(layer) == 0
    assert len(layer._heap) == 0


def test_heap_stays_small_under_rescheduling() -> None:
    # every provisional moves Timer C later, leaving a stale heap entry behind
    layer = TransactionLayer(TimerConfig(timer_c=180.0))
    invite = make_request("INVITE")
    key, _ = layer.send_request(invite, "d", 0.0, reliable=True)
    ringing = copy(make_response(invite, 180, to_tag="t"))
    for i in range(1, 5000):
        layer.receive(ringing, SOURCE, i * 0.01)
    assert len(layer._heap) <= 2 * len(layer) + 64
    assert layer.next_deadline() == pytest.approx(49.99 + 180.0)
    assert layer.on_timer(229.0) == []
    assert layer.on_timer(230.0) == [TimedOut(key, Timer.C), TransactionTerminated(key)]
    assert layer._heap == [] or layer.next_deadline() is None


# --- two layers over a lossy wire ----------------------------------------------------------------

WIRE_CONFIG = TimerConfig(timer_c=60.0)


@attrs.define
class Wire:
    """A client layer and a server layer with minimal TUs; each datagram may be lost (UDP).

    The server TU answers ``tu_delay`` after the request and, for a 2xx to INVITE, retransmits
    it until the ACK arrives (13.3.1.4, T1 doubling to T2, for 64*T1). The client TU ACKs every
    2xx it sees, with a fresh branch (13.2.2.4).
    """

    losses: list[bool]
    tu_status: int
    tu_provisional: bool
    tu_delay: float
    client: TransactionLayer = attrs.Factory(lambda: TransactionLayer(WIRE_CONFIG))
    server: TransactionLayer = attrs.Factory(lambda: TransactionLayer(WIRE_CONFIG))
    now: float = 0.0
    finals: list[int] = attrs.Factory(list)
    failures: list[object] = attrs.Factory(list)
    stray_acks: int = 0
    # (time, action): "answer" the request, or "resend" the 2xx (TU-level timers)
    pending_tu: list[tuple[float, str, object, Request, float]] = attrs.Factory(list)
    any_loss: bool = False
    acked: bool = False

    def lost(self) -> bool:
        loss = self.losses.pop(0) if self.losses else False
        self.any_loss |= loss
        return loss

    def to_server(self, events: list) -> None:
        for e in events:
            if isinstance(e, SendRequest) and not self.lost():
                self.from_server(self.server.receive(copy(e.request), "client", self.now))
            elif isinstance(e, ResponseReceived | StrayResponse) and e.response.status >= 200:
                if isinstance(e, ResponseReceived):
                    self.finals.append(e.response.status)
                if e.response.status < 300 and e.response.cseq.method == "INVITE":
                    self.send_2xx_ack(e.response)
            elif isinstance(e, TimedOut | TransportFailed):
                self.failures.append(e)

    def send_2xx_ack(self, ok: Response) -> None:
        ack = make_ack(make_request("INVITE"), ok)
        ack.headers.set("Via", "SIP/2.0/UDP client.example.com;branch=z9hG4bKack")
        if not self.lost():
            self.from_server(self.server.receive(copy(ack), "client", self.now))

    def from_server(self, events: list) -> None:
        for e in events:
            if isinstance(e, SendResponse) and not self.lost():
                self.to_server(self.client.receive(copy(e.response), "server", self.now))
            elif isinstance(e, RequestReceived):
                self.pending_tu.append((self.now + self.tu_delay, "answer", e.key, e.request, 0))
            elif isinstance(e, StrayAck):
                self.stray_acks += 1
                self.acked = True

    def tu_action(self, action: str, key: object, req: Request, interval: float) -> None:
        if action == "answer":
            if self.tu_provisional:
                self.from_server(self.server.send_response(key, reply(req, 180), self.now))
            final = reply(req, self.tu_status)
            self.from_server(self.server.send_response(key, final, self.now))
            if self.tu_status < 300 and req.method == "INVITE":
                self.pending_tu.append((self.now + 0.5, "resend", key, req, 0.5))
        elif not self.acked and key in self.server and interval < 32:
            self.from_server(self.server.send_response(key, reply(req, self.tu_status), self.now))
            nxt = min(2 * interval, 4.0)
            self.pending_tu.append((self.now + nxt, "resend", key, req, interval + nxt))

    def run(self, request: Request) -> None:
        self.to_server(self.client.send_request(request, "server", 0.0, reliable=False)[1])
        while True:
            times = [p[0] for p in self.pending_tu]
            times += [d for d in (self.client.next_deadline(), self.server.next_deadline()) if d]
            if not times:
                return
            self.now = min(times)
            for item in [p for p in self.pending_tu if p[0] <= self.now]:
                self.pending_tu.remove(item)
                self.tu_action(*item[1:])
            self.to_server(self.client.on_timer(self.now))
            self.from_server(self.server.on_timer(self.now))


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    tu_status=st.sampled_from([200, 486]),
    tu_provisional=st.booleans(),
    tu_delay=st.sampled_from([0.0, 0.1, 0.3, 2.0, 31.0, 40.0]),
    losses=st.lists(st.booleans(), max_size=40),
)
def test_lossy_wire_always_drains(
    method: str, tu_status: int, tu_provisional: bool, tu_delay: float, losses: list[bool]
) -> None:
    wire = Wire(list(losses), tu_status, tu_provisional, tu_delay)
    wire.run(make_request(method))
    # whatever was lost, both sides end with no transaction and nothing scheduled
    assert len(wire.client) == 0 and len(wire.server) == 0
    assert wire.client.next_deadline() is None and wire.server.next_deadline() is None
    assert wire.now <= tu_delay + 64 * 0.5 + 60.0 + 1.0
    # the TU hears exactly one outcome: the first final response or a failure
    assert len(wire.finals[:1]) + len(wire.failures) == 1
    assert all(status == tu_status for status in wire.finals)
    if not wire.any_loss and (method == "INVITE" or tu_delay < 32):
        assert wire.finals == [tu_status] and not wire.failures
        if method == "INVITE" and tu_status == 200:
            assert wire.stray_acks == 1  # the 2xx ACK went to the server's TU


def test_lossy_wire_example_timer_b() -> None:
    wire = Wire([True] * 7, 486, False, 0.0)  # INVITE and all six retransmissions lost
    wire.run(make_request("INVITE"))
    assert [type(f) for f in wire.failures] == [TimedOut]
    assert wire.now == 32.0


def test_lossy_wire_example_lost_2xx_is_retransmitted_by_the_tu() -> None:
    # INVITE ok, 180 ok, 200 lost twice: the TU's third 2xx gets through, ACK stops it
    wire = Wire([False, False, True, True], 200, True, 0.0)
    wire.run(make_request("INVITE"))
    assert wire.finals == [200] and wire.stray_acks == 1


def test_config_reaches_transactions() -> None:
    layer = TransactionLayer(TimerConfig(t1=0.1, t2=0.4))
    key, _ = layer.send_request(make_request("OPTIONS"), "d", 0.0, reliable=False)
    assert layer.next_deadline() == pytest.approx(0.1)
    events = drain(layer, 100.0)
    assert events[-2:] == [TimedOut(key, Timer.F), TransactionTerminated(key)]
    sends = [e for e in events if isinstance(e, SendRequest)]
    assert len(sends) == 17  # retransmissions at 0.1, 0.3, 0.7, then every 0.4 s to 6.3 s
    assert layer.get(key) is None
    [received] = layer.receive(make_request("INVITE"), SOURCE, 0.0)
    server = layer.get(received.key)
    assert isinstance(server, InviteServerTransaction)
    assert server.config.t1 == 0.1
