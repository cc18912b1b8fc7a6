"""DialogLayer: routing, UAS 2xx reliability, UAC ACK and forking, glare back-off."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from test_dialog_support import ALICE_TAG, CALL_ID, answer, in_dialog, invite, reply
from trio_voip.errors import DialogError
from trio_voip.sip.dialog import (
    AckRequired,
    AckTimeout,
    DialogConfirmed,
    DialogId,
    DialogLayer,
    DialogState,
    DialogTerminated,
    EarlyDialog,
    OutOfDialog,
    RequestReceived,
    Retransmit,
    RetryReinvite,
    SendAck,
    SendBye,
    SendResponse,
)
from trio_voip.sip.message import Request
from trio_voip.sip.uri import parse_uri

BOB = parse_uri("sip:bob@192.0.2.4")


def kinds(events: list[object]) -> list[type]:
    return [type(e) for e in events]


def uas_call(layer: DialogLayer, now: float = 0.0) -> tuple[DialogId, Request]:
    """An incoming INVITE answered 180 then 200 at ``now``."""
    inv = invite(record_route=["<sip:p1.example.com;lr>"])
    assert kinds(layer.on_request(inv, now)) == [OutOfDialog]
    dialog = layer.create_uas(inv, "bobtag", BOB)
    layer.respond(inv, 180, now=now, dialog_id=dialog.id)
    ok = layer.respond(inv, 200, now=now, dialog_id=dialog.id, body=b"v=0",
                       content_type="application/sdp")
    assert ok.to.tag == "bobtag" and ok.contacts and ok.record_routes
    assert dialog.state is DialogState.CONFIRMED
    return dialog.id, inv


# --- routing ------------------------------------------------------------------------------------


def test_no_to_tag_is_out_of_dialog() -> None:
    layer = DialogLayer()
    inv = invite()
    assert layer.on_request(inv, 0) == [OutOfDialog(inv)]


def test_unknown_dialog_gets_481_and_ack_is_dropped() -> None:
    layer = DialogLayer()
    [event] = layer.on_request(in_dialog("BYE", 5), 0)
    assert isinstance(event, SendResponse)
    assert event.response.status == 481
    assert event.response.cseq.seq == 5 and event.response.call_id == CALL_ID
    assert layer.on_request(in_dialog("ACK", 5), 0) == []


def test_in_dialog_request_is_delivered() -> None:
    layer = DialogLayer()
    did, _ = uas_call(layer)
    layer.on_request(in_dialog("ACK", 314159), 0.1)
    info = in_dialog("INFO", 314160)
    assert layer.on_request(info, 1) == [RequestReceived(did, info)]
    [event] = layer.on_request(in_dialog("INFO", 314150), 2)
    assert isinstance(event, SendResponse) and event.response.status == 500


def test_incoming_bye_ends_the_dialog() -> None:
    layer = DialogLayer()
    did, _ = uas_call(layer)
    layer.on_request(in_dialog("ACK", 314159), 0.1)
    bye = in_dialog("BYE", 314160)
    assert layer.on_request(bye, 1) == [RequestReceived(did, bye),
                                        DialogTerminated(did, "BYE received")]
    assert layer.count == 0
    assert layer.get(did) is None
    # the 200 to the BYE is a plain response now
    ok = layer.respond(bye, 200, now=1)
    assert ok.status == 200 and ok.to.tag == "bobtag"
    assert layer.next_deadline() is None


# --- UAS: 2xx retransmission until ACK (13.3.1.4) --------------------------------------------


def test_2xx_retransmit_schedule_then_bye_at_64_t1() -> None:
    layer = DialogLayer()
    did, _ = uas_call(layer, now=100.0)
    times = []
    while (deadline := layer.next_deadline()) is not None:
        events = layer.on_timer(deadline)
        if kinds(events) == [Retransmit]:
            assert events[0].response.status == 200
            times.append(deadline - 100.0)
            continue
        assert kinds(events) == [AckTimeout, SendBye, DialogTerminated]
        assert deadline - 100.0 == pytest.approx(64 * 0.5)
        bye = events[1].request
        assert bye.method == "BYE" and bye.to.tag == ALICE_TAG and bye.from_.tag == "bobtag"
        assert str(bye.uri) == "sip:alice@pc33.atlanta.example.com"
        assert [str(r) for r in bye.routes] == ["<sip:p1.example.com;lr>"]
        break
    # T1, then doubling to T2 (0.5, 1, 2, 4, 4, ...), until 64*T1
    assert times == pytest.approx([0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])
    assert layer.count == 0
    assert layer.next_deadline() is None


def test_early_wakeup_does_nothing() -> None:
    layer = DialogLayer()
    uas_call(layer)
    assert layer.on_timer(0.4) == []
    assert layer.next_deadline() == 0.5


def test_late_wakeup_retransmits_once_and_reschedules_from_now() -> None:
    layer = DialogLayer()
    uas_call(layer)
    assert kinds(layer.on_timer(2.0)) == [Retransmit]
    assert layer.next_deadline() == pytest.approx(3.0)


@given(t1=hs.sampled_from([0.1, 0.25, 0.5, 1.0]), t2=hs.sampled_from([1.0, 2.0, 4.0, 8.0]))
def test_2xx_retransmit_intervals(t1: float, t2: float) -> None:
    layer = DialogLayer(t1=t1, t2=t2)
    uas_call(layer)
    last = 0.0
    gaps = []
    while (deadline := layer.next_deadline()) is not None:
        events = layer.on_timer(deadline)
        gaps.append(deadline - last)
        last = deadline
        if AckTimeout in kinds(events):
            break
    assert last == pytest.approx(64 * t1)
    *retransmits, final = gaps
    for i, gap in enumerate(retransmits):
        assert gap == pytest.approx(min(t1 * 2**i, t2)) or i == len(retransmits) - 1
    assert final <= t2 + 1e-9


def test_ack_stops_retransmission_and_allows_bye() -> None:
    layer = DialogLayer()
    did, _ = uas_call(layer)
    assert kinds(layer.on_timer(0.5)) == [Retransmit]
    with pytest.raises(DialogError, match="ACK"):
        layer.new_request(did, "BYE")  # RFC 3261 15: not before the ACK
    ack = in_dialog("ACK", 314159)
    assert layer.on_request(ack, 0.7) == [RequestReceived(did, ack)]
    assert layer.next_deadline() is None
    bye = layer.new_request(did, "BYE")
    assert bye.method == "BYE"
    assert layer.count == 0


def test_ack_with_other_cseq_does_not_stop_retransmission() -> None:
    layer = DialogLayer()
    uas_call(layer)
    layer.on_request(in_dialog("ACK", 1), 0.2)
    assert layer.next_deadline() == 0.5


def test_reinvite_2xx_is_retransmitted_too() -> None:
    layer = DialogLayer()
    did, _ = uas_call(layer)
    layer.on_request(in_dialog("ACK", 314159), 0.1)
    reinvite = in_dialog("INVITE", 314160, contact="<sip:alice@198.51.100.7>")
    assert kinds(layer.on_request(reinvite, 10)) == [RequestReceived]
    ok = layer.respond(reinvite, 200, now=10)
    assert ok.to.tag == "bobtag" and ok.contacts
    assert layer.next_deadline() == 10.5
    assert str(layer.get(did).remote_target) == "sip:alice@198.51.100.7"
    layer.on_request(in_dialog("ACK", 314160), 10.2)
    assert layer.next_deadline() is None


def test_failed_initial_invite_ends_the_early_dialog() -> None:
    layer = DialogLayer()
    inv = invite()
    dialog = layer.create_uas(inv, "bobtag", BOB)
    layer.respond(inv, 180, now=0, dialog_id=dialog.id)
    busy = layer.respond(inv, 486, now=1, dialog_id=dialog.id)
    assert busy.to.tag == "bobtag" and not busy.contacts
    assert layer.count == 0 and dialog.state is DialogState.TERMINATED


def test_answer_cancel() -> None:
    layer = DialogLayer()
    inv = invite()
    dialog = layer.create_uas(inv, "bobtag", BOB)
    layer.respond(inv, 180, now=0, dialog_id=dialog.id)
    cancel = in_dialog("CANCEL", 314159, local_tag="x")  # shape only
    cancel.headers.set("To", "Bob <sip:bob@biloxi.example.com>")
    ok, terminated = layer.answer_cancel(cancel, inv, now=1, dialog_id=dialog.id)
    assert ok.status == 200 and ok.cseq.method == "CANCEL" and ok.to.tag == "bobtag"
    assert terminated.status == 487 and terminated.cseq.method == "INVITE"
    assert terminated.to.tag == "bobtag"
    assert layer.count == 0


def test_create_uas_twice_is_an_error() -> None:
    layer = DialogLayer()
    inv = invite()
    layer.create_uas(inv, "bobtag", BOB)
    with pytest.raises(DialogError):
        layer.create_uas(inv, "bobtag", BOB)


# --- UAC: ACK for 2xx, forking (13.2.2.4) ----------------------------------------------------


def test_uac_call_ack_and_retransmitted_2xx() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite(body=b"v=0"))
    assert layer.on_response(answer(inv, 100, None, contact=None), 0) == []
    [early] = layer.on_response(answer(inv, 180, "a"), 0.1)
    assert isinstance(early, EarlyDialog)
    did = early.dialog_id
    assert did == DialogId(CALL_ID, ALICE_TAG, "a")
    ok = answer(inv, 200, "a", contact="<sip:bob@203.0.113.1>",
                record_route=["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"])
    events = layer.on_response(ok, 0.2)
    assert kinds(events) == [DialogConfirmed, SendAck]
    ack = events[1].request
    assert ack.cseq.seq == inv.cseq.seq and ack.cseq.method == "ACK"
    assert str(ack.uri) == "sip:bob@203.0.113.1"  # the 2xx's Contact
    assert [str(r.uri) for r in ack.routes] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert ack.top_via.branch != inv.top_via.branch
    assert ack.body == b""
    # the retransmitted 2xx gets the very same ACK
    assert layer.on_response(ok, 0.7) == [SendAck(ack)]
    # after 64*T1 the INVITE is forgotten, the dialog still answers retransmissions
    assert layer.next_deadline() == pytest.approx(0.2 + 32)
    assert layer.on_timer(32.2) == []
    assert layer.on_response(ok, 40) == [SendAck(ack)]
    assert layer.count == 1
    bye = layer.new_request(did, "BYE")
    assert bye.cseq.seq == inv.cseq.seq + 1
    assert layer.count == 0
    # the 200 to our BYE belongs to nothing any more
    assert layer.on_response(reply(bye, 200), 41) == []


def test_forking() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite(body=b"v=0"))
    for tag in ("a", "b", "c"):
        assert kinds(layer.on_response(answer(inv, 180, tag), 0)) == [EarlyDialog]
    assert layer.count == 3
    events = layer.on_response(answer(inv, 200, "a"), 1)
    assert kinds(events) == [DialogConfirmed, SendAck]
    # a second fork answers: ACK it, then hang it up
    late = answer(inv, 200, "b", contact="<sip:bob@203.0.113.2>")
    events = layer.on_response(late, 2)
    assert kinds(events) == [SendAck, SendBye, DialogTerminated]
    ack_b, bye_b = events[0].request, events[1].request
    assert ack_b.to.tag == "b" and bye_b.to.tag == "b"
    assert str(bye_b.uri) == "sip:bob@203.0.113.2"
    assert bye_b.cseq.seq == inv.cseq.seq + 1
    assert events[2].dialog_id.remote_tag == "b"
    # its retransmission gets the same ACK and no second BYE
    assert layer.on_response(late, 2.5) == [SendAck(ack_b)]
    # a fork answering without a preceding 1xx is handled the same way
    events = layer.on_response(answer(inv, 200, "d"), 3)
    assert kinds(events) == [SendAck, SendBye, DialogTerminated]
    assert layer.count == 2  # a (confirmed) and c (early)
    # 64*T1 after the first 2xx the still-early fork is given up
    [ended] = layer.on_timer(1 + 32)
    assert ended == DialogTerminated(DialogId(CALL_ID, ALICE_TAG, "c"), "another fork answered")
    assert layer.count == 1
    assert layer.get(DialogId(CALL_ID, ALICE_TAG, "a")).state is DialogState.CONFIRMED


def test_final_failure_ends_all_early_dialogs() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite())
    layer.on_response(answer(inv, 180, "a"), 0)
    layer.on_response(answer(inv, 183, "b"), 0)
    events = layer.on_response(answer(inv, 486, "b", contact=None), 1)
    assert sorted(e.dialog_id.remote_tag for e in events) == ["a", "b"]
    assert all(isinstance(e, DialogTerminated) for e in events)
    assert layer.count == 0
    assert layer.next_deadline() is None


def test_invite_timeout_ends_early_dialogs() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite())
    layer.on_response(answer(inv, 180, "a"), 0)
    assert kinds(layer.on_request_timeout(inv, 32)) == [DialogTerminated]
    assert layer.count == 0


def test_provisional_updates_early_target_and_2xx_confirms_with_its_route_set() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite())
    layer.on_response(answer(inv, 180, "a", contact="<sip:bob@10.0.0.1>"), 0)
    layer.on_response(answer(inv, 183, "a", contact="<sip:bob@10.0.0.2>"), 0)
    did = DialogId(CALL_ID, ALICE_TAG, "a")
    assert str(layer.get(did).remote_target) == "sip:bob@10.0.0.2"
    layer.on_response(answer(inv, 200, "a", contact="<sip:bob@10.0.0.3>",
                             record_route=["<sip:p9.example.com;lr>"]), 1)
    dialog = layer.get(did)
    assert dialog.state is DialogState.CONFIRMED
    assert str(dialog.remote_target) == "sip:bob@10.0.0.3"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:p9.example.com;lr"]
    assert dialog.invite_out is None


def test_offer_in_2xx_needs_the_application_to_ack() -> None:
    layer = DialogLayer()
    inv = layer.start_uac(invite())  # delayed offer: no SDP in the INVITE
    ok = answer(inv, 200, "a", body=b"v=0 offer")
    events = layer.on_response(ok, 0)
    assert kinds(events) == [DialogConfirmed, AckRequired]
    did = events[0].dialog_id
    assert layer.on_response(ok, 0.5) == []  # not yet ACKed: nothing to resend
    ack = layer.ack(did, b"v=0 answer", "application/sdp")
    assert ack.body == b"v=0 answer" and ack.cseq.seq == inv.cseq.seq
    assert ack.content_type == "application/sdp"
    assert layer.on_response(ok, 1.0) == [SendAck(ack)]


def test_uac_subscribe_dialog_is_confirmed_without_ack() -> None:
    layer = DialogLayer()
    sub = layer.start_uac(invite(method="SUBSCRIBE", extra=["Event: presence"]))
    events = layer.on_response(answer(sub, 200, "s"), 0)
    assert kinds(events) == [DialogConfirmed]
    did = events[0].dialog_id
    notify = in_dialog("NOTIFY", 1, local_tag=ALICE_TAG, remote_tag="s",
                       extra=["Event: presence", "Subscription-State: active"])
    assert kinds(layer.on_request(notify, 1)) == [RequestReceived]
    layer.terminate(did)
    assert layer.count == 0


def test_start_uac_rejects() -> None:
    layer = DialogLayer()
    with pytest.raises(DialogError):
        layer.start_uac(invite(method="OPTIONS"))
    with pytest.raises(DialogError):
        layer.start_uac(invite(from_tag=None))
    with pytest.raises(DialogError):
        layer.start_uac(in_dialog("INVITE", 3))


def confirmed_uac(layer: DialogLayer) -> DialogId:
    inv = layer.start_uac(invite(body=b"v=0"))
    [confirmed, _] = layer.on_response(answer(inv, 200, "a"), 0)
    return confirmed.dialog_id


@pytest.mark.parametrize("status", [481, 408])
def test_481_408_to_in_dialog_request_end_the_dialog(status: int) -> None:
    layer = DialogLayer()
    did = confirmed_uac(layer)
    info = layer.new_request(did, "INFO")
    events = layer.on_response(reply(info, status), 1)
    assert kinds(events) == [DialogTerminated]
    assert layer.count == 0


def test_in_dialog_timeout_ends_the_dialog() -> None:
    layer = DialogLayer()
    did = confirmed_uac(layer)
    info = layer.new_request(did, "INFO")
    assert layer.on_request_timeout(info, 32) == [DialogTerminated(did, "request timed out")]
    assert layer.count == 0


def test_reinvite_2xx_ack_and_retransmission() -> None:
    layer = DialogLayer()
    did = confirmed_uac(layer)
    reinvite = layer.new_request(did, "INVITE", b"v=0 hold", "application/sdp")
    ok = reply(reinvite, 200, contact="<sip:bob@203.0.113.50>", body=b"v=0")
    [send] = layer.on_response(ok, 5)
    assert isinstance(send, SendAck)
    assert send.request.cseq.seq == reinvite.cseq.seq
    assert str(send.request.uri) == "sip:bob@203.0.113.50"
    assert layer.on_response(ok, 5.5) == [SendAck(send.request)]


# --- glare (14.1) -------------------------------------------------------------------------------


class _Edge(random.Random):
    """randint that always picks one end of its range."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def randint(self, a: int, b: int) -> int:
        return b if self.high else a


@pytest.mark.parametrize(("owner", "high", "delay"),
                         [(True, False, 2.1), (True, True, 4.0), (False, False, 0.0),
                          (False, True, 2.0)])
def test_491_retry_window(owner: bool, high: bool, delay: float) -> None:
    layer = DialogLayer(rng=_Edge(high))
    if owner:
        did = confirmed_uac(layer)
    else:
        did, _ = uas_call(layer)
        layer.on_request(in_dialog("ACK", 314159), 0.1)
    layer.on_timer(40)  # the INVITE is over (64*T1)
    reinvite = layer.new_request(did, "INVITE")
    assert layer.on_response(reply(reinvite, 491), 50) == []
    assert layer.next_deadline() == pytest.approx(50 + delay)
    assert layer.on_timer(50 + delay) == [RetryReinvite(did, "INVITE")]
    assert layer.next_deadline() is None
    layer.new_request(did, "INVITE")  # the retry is allowed


@given(seed=hs.integers(0, 2**32), owner=hs.booleans())
def test_491_retry_delay_in_10ms_units(seed: int, owner: bool) -> None:
    layer = DialogLayer(rng=random.Random(seed))
    if owner:
        did = confirmed_uac(layer)
    else:
        did, _ = uas_call(layer)
        layer.on_request(in_dialog("ACK", 314159), 0.1)
    update = layer.new_request(did, "UPDATE")
    layer.on_response(reply(update, 491), 0)
    delay = layer.next_deadline()
    low, high = (2.1, 4.0) if owner else (0.0, 2.0)
    assert low - 1e-9 <= delay <= high + 1e-9
    assert abs(delay * 100 - round(delay * 100)) < 1e-6
    assert layer.on_timer(delay) == [RetryReinvite(did, "UPDATE")]


def test_incoming_reinvite_during_ours_gets_491() -> None:
    layer = DialogLayer()
    did = confirmed_uac(layer)
    layer.new_request(did, "INVITE")
    [event] = layer.on_request(in_dialog("INVITE", 9, local_tag=ALICE_TAG, remote_tag="a"), 1)
    assert isinstance(event, SendResponse) and event.response.status == 491


def test_outgoing_reinvite_during_theirs_is_refused() -> None:
    layer = DialogLayer()
    did = confirmed_uac(layer)
    reinvite = in_dialog("INVITE", 9, local_tag=ALICE_TAG, remote_tag="a")
    assert kinds(layer.on_request(reinvite, 1)) == [RequestReceived]
    with pytest.raises(DialogError):
        layer.new_request(did, "INVITE")
    layer.respond(reinvite, 200, now=2)
    layer.on_request(in_dialog("ACK", 9, local_tag=ALICE_TAG, remote_tag="a"), 2.1)
    layer.new_request(did, "INVITE")


def test_dialog_ending_cancels_its_timers() -> None:
    layer = DialogLayer(rng=_Edge(True))
    did = confirmed_uac(layer)
    layer.on_timer(40)  # INVITE tracking gone
    reinvite = layer.new_request(did, "INVITE")
    layer.on_response(reply(reinvite, 491), 41)
    assert layer.next_deadline() is not None
    layer.new_request(did, "BYE")
    assert layer.next_deadline() is None
    assert layer.count == 0


def test_new_request_on_unknown_dialog() -> None:
    with pytest.raises(DialogError):
        DialogLayer().new_request(DialogId("x", "y", "z"), "INFO")


# --- property: any call history ends clean ---------------------------------------------------

_ACTIONS = hs.lists(
    hs.one_of(
        hs.tuples(hs.just("wait"), hs.floats(0, 40)),
        hs.tuples(hs.just("ack"), hs.integers(-1, 1)),
        hs.tuples(hs.just("in"), hs.sampled_from(["INFO", "UPDATE", "INVITE", "OPTIONS"]),
                  hs.integers(-2, 3)),
        hs.tuples(hs.just("out"), hs.sampled_from(["INFO", "UPDATE", "INVITE"]),
                  hs.sampled_from([200, 491, 500, None])),
    ),
    max_size=25,
)


@given(actions=_ACTIONS, session=hs.booleans(), peer_hangs_up=hs.booleans())
def test_any_history_ends_with_no_dialog_and_no_timer(
    actions: list[tuple], session: bool, peer_hangs_up: bool
) -> None:
    from trio_voip.sip.session_timer import SessionTimerConfig

    layer = DialogLayer(rng=random.Random(1),
                        session_timers=SessionTimerConfig(min_se=90) if session else None)
    did, _ = uas_call(layer)
    now = 0.0
    seq = 314159
    pending_in: list[Request] = []
    for action in actions:
        if layer.get(did) is None:
            break
        kind = action[0]
        if kind == "wait":
            now += action[1]
            for event in layer.on_timer(now):
                assert not isinstance(event, SendResponse)
        elif kind == "ack":
            layer.on_request(in_dialog("ACK", 314159 + action[1]), now)
        elif kind == "in":
            seq = max(1, seq + action[2])
            request = in_dialog(action[1], seq, extra=["Session-Expires: 1800"])
            events = layer.on_request(request, now)
            if kinds(events) == [RequestReceived] and action[1] in ("INVITE", "UPDATE"):
                pending_in.append(request)
            while pending_in:  # the application answers at once
                layer.respond(pending_in.pop(), 200, now=now)
                layer.on_request(in_dialog("ACK", seq), now)
        else:
            _, method, status = action
            try:
                request = layer.new_request(did, method)
            except DialogError:
                continue  # the state forbids it (e.g. an INVITE pending either way)
            if status is not None:
                layer.on_response(reply(request, status), now)
        dialog = layer.get(did)
        if dialog is not None:
            assert dialog.state is DialogState.CONFIRMED
            assert dialog.remote_seq is not None and dialog.remote_seq >= 314159
    if layer.get(did) is not None:
        if peer_hangs_up:
            events = layer.on_request(in_dialog("BYE", layer.get(did).remote_seq + 1), now)
            assert DialogTerminated in kinds(events)
        else:
            layer.on_request(in_dialog("ACK", 314159), now)  # so that we may BYE
            try:
                layer.new_request(did, "BYE")
            except DialogError:
                layer.terminate(did)  # an unanswered 2xx to a re-INVITE is still pending
    assert layer.count == 0
    assert layer.next_deadline() is None
