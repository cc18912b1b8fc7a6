"""The four RFC 3261 / RFC 6026 transaction state machines, driven with explicit times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import TransactionError
from trio_voip.sip import Request, Response, make_response, parse_message
from trio_voip.sip.transaction import (
    AckReceived,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestReceived,
    ResponseReceived,
    SendRequest,
    SendResponse,
    TimedOut,
    Timer,
    TimerConfig,
    TransactionKey,
    TransactionState,
    TransactionTerminated,
    TransportFailed,
    client_key,
    make_ack,
    make_cancel,
    server_key,
)

S = TransactionState
T1, T2, T4 = 0.5, 4.0, 5.0
DEST = ("198.51.100.7", 5060)
SOURCE = ("192.0.2.1", 5060)


def make_request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK-abc",
    transport: str = "UDP",
    extra: str = "",
) -> Request:
    params = f";branch={branch}" if branch is not None else ""
    text = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} client.example.com:5060{params}\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@example.com>\r\n"
        "From: Alice <sip:alice@example.com>;tag=from1\r\n"
        "Call-ID: call-1@client.example.com\r\n"
        f"CSeq: 7 {method}\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    )
    message = parse_message(text.encode())
    assert isinstance(message, Request)
    return message


def reply(request: Request, status: int, to_tag: str = "to1") -> Response:
    return make_response(request, status, to_tag=None if status == 100 else to_tag)


def sent(events: list) -> list:
    """The messages in SendRequest / SendResponse events."""
    return [
        e.request if isinstance(e, SendRequest) else e.response
        for e in events
        if isinstance(e, SendRequest | SendResponse)
    ]


def run_timers(txn, until: float) -> list[tuple[float, object]]:
    """Fire txn's timers at their deadlines up to ``until``: [(time, event), ...]."""
    log = []
    while (deadline := txn.next_deadline()) is not None and deadline <= until:
        log += [(deadline, e) for e in txn.on_timer(deadline)]
    return log


def invite_client(reliable: bool = False, now: float = 0.0, **kw):
    request = make_request("INVITE", **kw)
    txn = InviteClientTransaction(
        request=request, destination=DEST, reliable=reliable, key=client_key(request)
    )
    return txn, txn.start(now)


def non_invite_client(reliable: bool = False, now: float = 0.0, method: str = "OPTIONS"):
    request = make_request(method)
    txn = NonInviteClientTransaction(
        request=request, destination=DEST, reliable=reliable, key=client_key(request)
    )
    return txn, txn.start(now)


def invite_server(reliable: bool = False, now: float = 0.0):
    request = make_request("INVITE")
    txn = InviteServerTransaction(
        request=request, source=SOURCE, reliable=reliable, key=server_key(request)
    )
    return txn, txn.start(now)


def non_invite_server(reliable: bool = False, now: float = 0.0, method: str = "OPTIONS"):
    request = make_request(method)
    txn = NonInviteServerTransaction(
        request=request, source=SOURCE, reliable=reliable, key=server_key(request)
    )
    return txn, txn.start(now)


# --- config ------------------------------------------------------------------------------------


def test_timer_config_derives_from_t1_t2_t4() -> None:
    config = TimerConfig(t1=0.1, t2=2.0, t4=3.0)
    assert config.timeout == pytest.approx(6.4)
    assert (config.timer_d(False), config.timer_d(True)) == (32.0, 0.0)
    assert (config.timer_i(False), config.timer_i(True)) == (3.0, 0.0)
    assert (config.timer_j(False), config.timer_j(True)) == (pytest.approx(6.4), 0.0)
    assert (config.timer_k(False), config.timer_k(True)) == (3.0, 0.0)


@pytest.mark.parametrize("kwargs", [{"t1": 0}, {"t2": -1}, {"t1": 5.0, "t2": 4.0}])
def test_timer_config_rejects_nonsense(kwargs: dict) -> None:
    with pytest.raises(TransactionError):
        TimerConfig(**kwargs)


# --- INVITE client -----------------------------------------------------------------------------


def test_invite_client_timer_a_doubles_until_timer_b() -> None:
    txn, events = invite_client()
    assert events == [SendRequest(txn.request, DEST, txn.key)]
    assert txn.state is S.CALLING
    assert txn.timer_deadline(Timer.A) == T1
    assert txn.timer_deadline(Timer.B) == 64 * T1
    log = run_timers(txn, 100.0)
    resends = [t for t, e in log if isinstance(e, SendRequest)]
    # intervals T1, 2T1, 4T1, ... from the first send at 0
    assert resends == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [e for t, e in log if not isinstance(e, SendRequest)] == [
        TimedOut(txn.key, Timer.B),
        TransactionTerminated(txn.key),
    ]
    assert log[-1][0] == 32.0
    assert txn.state is S.TERMINATED
    assert txn.next_deadline() is None


def test_invite_client_reliable_has_no_timer_a() -> None:
    txn, events = invite_client(reliable=True, now=10.0)
    assert txn.timer_deadline(Timer.A) is None
    assert txn.next_deadline() == 10.0 + 64 * T1
    log = run_timers(txn, 100.0)
    assert [e for _, e in log] == [TimedOut(txn.key, Timer.B), TransactionTerminated(txn.key)]


def test_invite_client_provisional_stops_retransmissions() -> None:
    txn, _ = invite_client()
    txn.on_timer(0.5)
    ringing = reply(txn.request, 180)
    assert txn.receive(ringing, 0.7) == [ResponseReceived(ringing, txn.key)]
    assert txn.state is S.PROCEEDING
    # No Timer A and no Timer B in Proceeding: the TU decides (CANCEL, Timer C).
    assert txn.next_deadline() is None
    again = reply(txn.request, 183)
    assert txn.receive(again, 9.0) == [ResponseReceived(again, txn.key)]


@pytest.mark.parametrize("provisional_first", [False, True])
def test_invite_client_2xx_moves_to_accepted(provisional_first: bool) -> None:
    txn, _ = invite_client()
    if provisional_first:
        txn.receive(reply(txn.request, 100), 0.1)
    ok = reply(txn.request, 200)
    assert txn.receive(ok, 1.0) == [ResponseReceived(ok, txn.key)]
    assert txn.state is S.ACCEPTED
    assert txn.next_deadline() == 1.0 + 64 * T1  # Timer M
    # RFC 6026: every further 2xx (retransmission or another fork) goes to the TU.
    fork = reply(txn.request, 200, to_tag="fork2")
    assert txn.receive(fork, 2.0) == [ResponseReceived(fork, txn.key)]
    assert txn.receive(reply(txn.request, 180), 2.0) == []
    assert txn.receive(reply(txn.request, 486), 2.0) == []
    assert txn.transport_error(2.0) == []
    assert txn.on_timer(32.9) == []
    assert txn.on_timer(33.0) == [TransactionTerminated(txn.key)]


def test_invite_client_failure_builds_ack_and_waits_timer_d() -> None:
    request = make_request(
        "INVITE",
        extra=(
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
            "Contact: <sip:alice@client.example.com>\r\n"
        ),
    )
    request.headers.add("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bK-lower")
    txn = InviteClientTransaction(
        request=request, destination=DEST, reliable=False, key=client_key(request)
    )
    txn.start(0.0)
    busy = reply(request, 486, to_tag="busy-tag")
    events = txn.receive(busy, 2.0)
    ack = txn.ack
    assert ack is not None
    assert events == [SendRequest(ack, DEST, txn.key), ResponseReceived(busy, txn.key)]
    assert txn.state is S.COMPLETED
    # 17.1.1.3: Request-URI, Call-ID, From, CSeq number of the request; To of the response;
    # only the top Via; the request's Route headers.
    assert ack.method == "ACK"
    assert ack.uri == request.uri
    assert ack.headers.get_all("Via") == ["SIP/2.0/UDP client.example.com:5060;branch=z9hG4bK-abc"]
    assert ack.headers.get_all("Route") == request.headers.get_all("Route")
    assert ack.call_id == request.call_id
    assert ack.from_ == request.from_
    assert ack.to.tag == "busy-tag"
    assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.max_forwards == 70
    assert "Contact" not in ack.headers
    assert txn.next_deadline() == 2.0 + 32.0  # Timer D
    # A retransmitted final response is answered with the same ACK, not passed up.
    assert txn.receive(busy, 3.0) == [SendRequest(ack, DEST, txn.key)]
    assert txn.receive(reply(request, 200), 3.0) == []
    assert txn.receive(reply(request, 180), 3.0) == []
    assert txn.on_timer(34.0) == [TransactionTerminated(txn.key)]


def test_invite_client_failure_on_reliable_terminates_at_once() -> None:
    txn, _ = invite_client(reliable=True)
    busy = reply(txn.request, 603)
    events = txn.receive(busy, 1.0)
    assert events == [
        SendRequest(txn.ack, DEST, txn.key),
        ResponseReceived(busy, txn.key),
        TransactionTerminated(txn.key),
    ]
    assert txn.state is S.TERMINATED


@pytest.mark.parametrize("state", ["calling", "proceeding", "completed"])
def test_invite_client_transport_error_terminates(state: str) -> None:
    txn, _ = invite_client()
    if state == "proceeding":
        txn.receive(reply(txn.request, 180), 0.1)
    elif state == "completed":
        txn.receive(reply(txn.request, 404), 0.1)
    assert txn.transport_error(0.2) == [TransportFailed(txn.key), TransactionTerminated(txn.key)]
    assert txn.state is S.TERMINATED


def test_invite_client_rejects_inputs_after_termination() -> None:
    txn, _ = invite_client(reliable=True)
    txn.receive(reply(txn.request, 404), 0.0)
    with pytest.raises(TransactionError, match="Terminated"):
        txn.receive(reply(txn.request, 404), 0.0)
    with pytest.raises(TransactionError):
        txn.start(0.0)


def test_machines_check_the_method() -> None:
    with pytest.raises(TransactionError):
        InviteClientTransaction(
            request=make_request("BYE"), destination=DEST, reliable=False, key=None
        )
    with pytest.raises(TransactionError):
        NonInviteClientTransaction(
            request=make_request("INVITE"), destination=DEST, reliable=False, key=None
        )
    with pytest.raises(TransactionError):
        InviteServerTransaction(
            request=make_request("ACK"), source=SOURCE, reliable=False, key=None
        )
    with pytest.raises(TransactionError):
        NonInviteServerTransaction(
            request=make_request("ACK"), source=SOURCE, reliable=False, key=None
        )


def test_client_rejects_status_out_of_range() -> None:
    txn, _ = invite_client()
    bogus = reply(txn.request, 200)
    bogus.status = 700
    with pytest.raises(TransactionError, match="out of range"):
        txn.receive(bogus, 0.1)


# --- non-INVITE client -------------------------------------------------------------------------


def test_non_invite_client_timer_e_caps_at_t2() -> None:
    txn, events = non_invite_client()
    assert events == [SendRequest(txn.request, DEST, txn.key)]
    assert txn.state is S.TRYING
    log = run_timers(txn, 100.0)
    resends = [t for t, e in log if isinstance(e, SendRequest)]
    # T1, 2T1, 4T1, then T2 (4 s) each time
    assert resends == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(t, e) for t, e in log if not isinstance(e, SendRequest)] == [
        (32.0, TimedOut(txn.key, Timer.F)),
        (32.0, TransactionTerminated(txn.key)),
    ]


def test_non_invite_client_proceeding_retransmits_every_t2() -> None:
    txn, _ = non_invite_client()
    assert len(txn.on_timer(0.5)) == 1  # E: next at 1.5
    trying = reply(txn.request, 100)
    assert txn.receive(trying, 0.6) == [ResponseReceived(trying, txn.key)]
    assert txn.state is S.PROCEEDING
    assert txn.timer_deadline(Timer.E) == 1.5  # the running Timer E is not reset
    log = run_timers(txn, 100.0)
    resends = [t for t, e in log if isinstance(e, SendRequest)]
    assert resends == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert log[-2:] == [(32.0, TimedOut(txn.key, Timer.F)), (32.0, TransactionTerminated(txn.key))]


@pytest.mark.parametrize("status", [200, 404])
def test_non_invite_client_final_then_timer_k(status: int) -> None:
    txn, _ = non_invite_client()
    final = reply(txn.request, status)
    assert txn.receive(final, 1.0) == [ResponseReceived(final, txn.key)]
    assert txn.state is S.COMPLETED
    assert txn.next_deadline() == 1.0 + T4  # Timer K
    assert txn.receive(final, 2.0) == []  # retransmission absorbed
    assert txn.receive(reply(txn.request, 100), 2.0) == []
    assert txn.transport_error(2.0) == []
    assert txn.on_timer(6.0) == [TransactionTerminated(txn.key)]


def test_non_invite_client_reliable() -> None:
    txn, _ = non_invite_client(reliable=True)
    assert txn.timer_deadline(Timer.E) is None
    assert txn.timer_deadline(Timer.F) == 32.0
    final = reply(txn.request, 200)
    assert txn.receive(final, 1.0) == [
        ResponseReceived(final, txn.key),
        TransactionTerminated(txn.key),
    ]


@pytest.mark.parametrize("proceeding", [False, True])
def test_non_invite_client_transport_error(proceeding: bool) -> None:
    txn, _ = non_invite_client()
    if proceeding:
        txn.receive(reply(txn.request, 100), 0.1)
    assert txn.transport_error(0.2) == [TransportFailed(txn.key), TransactionTerminated(txn.key)]


# --- INVITE server -----------------------------------------------------------------------------


def test_invite_server_sends_100_after_200ms() -> None:
    txn, events = invite_server(now=1.0)
    assert events == [RequestReceived(txn.request, SOURCE, txn.key)]
    assert txn.state is S.PROCEEDING
    assert txn.next_deadline() == pytest.approx(1.2)
    assert txn.on_timer(1.19) == []
    [event] = txn.on_timer(1.2)
    assert isinstance(event, SendResponse)
    assert event.source == SOURCE
    assert event.response.status == 100
    assert event.response.to.tag is None
    assert txn.next_deadline() is None
    # a retransmitted INVITE gets the last provisional again
    assert txn.receive(txn.request, 1.5) == [SendResponse(event.response, SOURCE, txn.key)]


def test_invite_server_tu_answer_within_200ms_suppresses_100() -> None:
    txn, _ = invite_server()
    ringing = reply(txn.request, 180)
    assert txn.send_response(ringing, 0.1) == [SendResponse(ringing, SOURCE, txn.key)]
    assert txn.next_deadline() is None
    assert txn.receive(txn.request, 0.5) == [SendResponse(ringing, SOURCE, txn.key)]
    progress = reply(txn.request, 183)
    assert txn.send_response(progress, 0.6) == [SendResponse(progress, SOURCE, txn.key)]
    assert txn.receive(txn.request, 0.7) == [SendResponse(progress, SOURCE, txn.key)]


def test_invite_server_retransmission_before_any_response_gets_100_at_once() -> None:
    txn, _ = invite_server()
    [event] = txn.receive(txn.request, 0.1)
    assert event.response.status == 100
    assert txn.next_deadline() is None  # the 200 ms timer is spent


def test_invite_server_2xx_moves_to_accepted() -> None:
    txn, _ = invite_server()
    ok = reply(txn.request, 200)
    assert txn.send_response(ok, 1.0) == [SendResponse(ok, SOURCE, txn.key)]
    assert txn.state is S.ACCEPTED
    assert txn.next_deadline() == 1.0 + 64 * T1  # Timer L
    assert txn.receive(txn.request, 2.0) == []  # INVITE retransmission absorbed
    ack = make_ack(txn.request, ok)
    assert txn.receive(ack, 2.0) == [AckReceived(ack, txn.key)]
    # the TU core retransmits its 2xx through the transaction
    assert txn.send_response(ok, 3.0) == [SendResponse(ok, SOURCE, txn.key)]
    with pytest.raises(TransactionError, match="1xx is not allowed in state Accepted"):
        txn.send_response(reply(txn.request, 180), 3.0)
    with pytest.raises(TransactionError):
        txn.send_response(reply(txn.request, 486), 3.0)
    assert txn.transport_error(4.0) == [TransportFailed(txn.key)]
    assert txn.state is S.ACCEPTED
    assert txn.on_timer(33.0) == [TransactionTerminated(txn.key)]


def test_invite_server_failure_retransmits_with_timer_g_until_h() -> None:
    txn, _ = invite_server()
    busy = reply(txn.request, 486)
    assert txn.send_response(busy, 0.1) == [SendResponse(busy, SOURCE, txn.key)]
    assert txn.state is S.COMPLETED
    log = run_timers(txn, 100.0)
    resends = [round(t, 6) for t, e in log if isinstance(e, SendResponse)]
    assert resends == [0.6, 1.6, 3.6, 7.6, 11.6, 15.6, 19.6, 23.6, 27.6, 31.6]
    assert log[-2:] == [
        (pytest.approx(32.1), TimedOut(txn.key, Timer.H)),
        (pytest.approx(32.1), TransactionTerminated(txn.key)),
    ]


def test_invite_server_ack_confirms_then_timer_i() -> None:
    txn, _ = invite_server()
    busy = reply(txn.request, 486)
    txn.send_response(busy, 0.0)
    assert txn.receive(txn.request, 0.3) == [SendResponse(busy, SOURCE, txn.key)]
    ack = make_ack(txn.request, busy)
    assert txn.receive(ack, 1.0) == []
    assert txn.state is S.CONFIRMED
    assert txn.next_deadline() == 1.0 + T4  # Timer I; G and H are gone
    assert txn.receive(ack, 2.0) == []
    assert txn.receive(txn.request, 2.0) == []
    assert txn.transport_error(2.0) == []
    with pytest.raises(TransactionError):
        txn.send_response(reply(txn.request, 500), 2.0)
    assert txn.on_timer(6.0) == [TransactionTerminated(txn.key)]


def test_invite_server_reliable_no_timer_g_and_immediate_i() -> None:
    txn, _ = invite_server(reliable=True)
    busy = reply(txn.request, 486)
    txn.send_response(busy, 0.0)
    assert txn.timer_deadline(Timer.G) is None
    assert txn.timer_deadline(Timer.H) == 32.0
    assert txn.receive(make_ack(txn.request, busy), 1.0) == [TransactionTerminated(txn.key)]


@pytest.mark.parametrize("state", ["proceeding", "completed"])
def test_invite_server_transport_error_terminates(state: str) -> None:
    txn, _ = invite_server()
    if state == "completed":
        txn.send_response(reply(txn.request, 486), 0.0)
    assert txn.transport_error(0.1) == [TransportFailed(txn.key), TransactionTerminated(txn.key)]
    with pytest.raises(TransactionError):
        txn.send_response(reply(txn.request, 486), 0.2)


def test_server_rejects_foreign_method_and_bad_status() -> None:
    txn, _ = invite_server()
    with pytest.raises(TransactionError):
        txn.receive(make_request("BYE"), 0.0)
    bogus = reply(txn.request, 200)
    bogus.status = 99
    with pytest.raises(TransactionError, match="out of range"):
        txn.send_response(bogus, 0.0)


# --- non-INVITE server -------------------------------------------------------------------------


def test_non_invite_server_full_cycle() -> None:
    txn, events = non_invite_server(now=0.0)
    assert events == [RequestReceived(txn.request, SOURCE, txn.key)]
    assert txn.state is S.TRYING
    assert txn.next_deadline() is None  # no automatic 100 for non-INVITE
    assert txn.receive(txn.request, 0.5) == []  # absorbed in Trying
    trying = reply(txn.request, 100)
    assert txn.send_response(trying, 0.6) == [SendResponse(trying, SOURCE, txn.key)]
    assert txn.state is S.PROCEEDING
    assert txn.receive(txn.request, 1.5) == [SendResponse(trying, SOURCE, txn.key)]
    ok = reply(txn.request, 200)
    assert txn.send_response(ok, 2.0) == [SendResponse(ok, SOURCE, txn.key)]
    assert txn.state is S.COMPLETED
    assert txn.next_deadline() == 2.0 + 64 * T1  # Timer J
    assert txn.receive(txn.request, 3.5) == [SendResponse(ok, SOURCE, txn.key)]
    with pytest.raises(TransactionError):
        txn.send_response(reply(txn.request, 180), 4.0)
    with pytest.raises(TransactionError):
        txn.send_response(ok, 4.0)
    assert txn.on_timer(34.0) == [TransactionTerminated(txn.key)]


def test_non_invite_server_reliable_terminates_on_final() -> None:
    txn, _ = non_invite_server(reliable=True)
    ok = reply(txn.request, 200)
    assert txn.send_response(ok, 0.0) == [
        SendResponse(ok, SOURCE, txn.key),
        TransactionTerminated(txn.key),
    ]


def test_non_invite_server_transport_errors() -> None:
    txn, _ = non_invite_server()
    assert txn.transport_error(0.0) == []  # Trying: nothing was sent
    txn.send_response(reply(txn.request, 100), 0.1)
    assert txn.transport_error(0.2) == [TransportFailed(txn.key), TransactionTerminated(txn.key)]
    txn, _ = non_invite_server()
    txn.send_response(reply(txn.request, 200), 0.1)
    assert txn.transport_error(0.2) == [TransportFailed(txn.key), TransactionTerminated(txn.key)]


def test_non_invite_server_rejects_ack() -> None:
    txn, _ = non_invite_server()
    with pytest.raises(TransactionError):
        txn.receive(make_request("ACK"), 0.0)


# --- keys and helper messages --------------------------------------------------------------------


def test_keys() -> None:
    invite = make_request("INVITE")
    assert client_key(invite) == TransactionKey(client_key(invite).role, "INVITE", "z9hG4bK-abc")
    skey = server_key(invite)
    assert (skey.method, skey.branch, skey.sent_by) == (
        "INVITE",
        "z9hG4bK-abc",
        "client.example.com:5060",
    )
    assert server_key(make_request("ACK")) == skey
    assert server_key(make_request("CANCEL")) != skey
    assert server_key(make_request("CANCEL"), method="INVITE") == skey
    # RFC 4475 3.2.1: a bare magic cookie identifies nothing: RFC 2543 matching
    assert server_key(make_request("OPTIONS", branch="z9hG4bK")).legacy
    assert server_key(make_request("OPTIONS", branch=None)).legacy
    with pytest.raises(TransactionError):
        client_key(make_request("OPTIONS", branch=None))


def test_make_cancel() -> None:
    invite = make_request("INVITE", extra="Route: <sip:p1.example.com;lr>\r\n")
    cancel = make_cancel(invite)
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    assert cancel.top_via == invite.top_via
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.to == invite.to and cancel.from_ == invite.from_
    assert cancel.call_id == invite.call_id
    assert cancel.headers.get_all("Route") == ["<sip:p1.example.com;lr>"]
    # it parses back (it is a well-formed request) and matches the INVITE's server side
    parsed = parse_message(bytes(cancel))
    assert server_key(parsed, method="INVITE") == server_key(invite)
    with pytest.raises(TransactionError):
        make_cancel(make_request("ACK"))


def test_invite_client_optional_timer_c() -> None:
    request = make_request("INVITE")
    txn = InviteClientTransaction(
        request=request,
        destination=DEST,
        reliable=False,
        key=client_key(request),
        config=TimerConfig(timer_c=180.0),
    )
    txn.start(0.0)
    assert txn.timer_deadline(Timer.C) is None  # only in Proceeding
    txn.receive(reply(request, 100), 0.2)
    assert txn.next_deadline() == pytest.approx(180.2)
    txn.receive(reply(request, 180), 10.0)  # every provisional restarts it
    assert txn.next_deadline() == 190.0
    assert txn.on_timer(190.0) == [TimedOut(txn.key, Timer.C), TransactionTerminated(txn.key)]


# --- arbitrary interleavings ----------------------------------------------------------------------

BUILDERS = {
    "invite_client": invite_client,
    "non_invite_client": non_invite_client,
    "invite_server": invite_server,
    "non_invite_server": non_invite_server,
}
STEP = st.tuples(
    st.sampled_from(["100", "180", "200", "486", "retransmit", "ack", "transport_error"]),
    st.sampled_from([0.0, 0.1, 0.5, 1.0, 4.0, 20.0]),
)


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(sorted(BUILDERS)),
    reliable=st.booleans(),
    steps=st.lists(STEP, max_size=25),
    final=st.sampled_from([200, 404]),
)
def test_any_interleaving_ends_terminated(
    kind: str, reliable: bool, steps: list[tuple[str, float]], final: int
) -> None:
    """Network input never raises; TU actions raise only when the table forbids them (and then
    change nothing); once the final response is in, 64*T1 later the transaction is gone."""
    txn, events = BUILDERS[kind](reliable=reliable)
    server = kind.endswith("server")
    now = 0.0

    def act(what: str) -> list:
        if what == "transport_error":
            return txn.transport_error(now)
        if what == "retransmit":
            return txn.receive(txn.request, now) if server else []
        if what == "ack":
            if kind != "invite_server":
                return []
            return txn.receive(make_ack(txn.request, reply(txn.request, 486)), now)
        response = reply(txn.request, int(what))
        if not server:
            return txn.receive(response, now)
        before = (txn.state, dict(txn._timers))
        try:
            return txn.send_response(response, now)
        except TransactionError:
            assert (txn.state, txn._timers) == before
            return []

    for what, delay in steps:
        now += delay
        events += txn.on_timer(now)
        if txn.state is S.TERMINATED:
            break
        events += act(what)
        if txn.state is S.TERMINATED:
            break
    if txn.state is not S.TERMINATED:
        # the other side (or our TU) finally answers
        if server and txn.state in (S.TRYING, S.PROCEEDING):
            events += txn.send_response(reply(txn.request, final), now)
        elif kind == "invite_client" and txn.state is S.PROCEEDING:
            events += txn.receive(reply(txn.request, final), now)
    events += txn.on_timer(now)
    if txn.state is not S.TERMINATED:
        assert txn.next_deadline() is not None
        assert txn.next_deadline() <= now + 64 * T1
        events += [e for _, e in run_timers(txn, now + 64 * T1)]
    assert txn.state is S.TERMINATED and txn.next_deadline() is None
    assert [e for e in events if isinstance(e, TransactionTerminated)] == [
        TransactionTerminated(txn.key)
    ]
    assert events[-1] == TransactionTerminated(txn.key)
