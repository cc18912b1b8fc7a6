"""The Dialog object: creation (12.1), in-dialog requests (12.2), states and transitions."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from test_dialog_support import ALICE_TAG, CALL_ID, answer, in_dialog, invite, wire
from trio_voip.errors import DialogError, TrioVoipError
from trio_voip.sip.dialog import (
    TRANSITIONS,
    Dialog,
    DialogId,
    DialogState,
    build_cancel,
)
from trio_voip.sip.headers import NameAddr
from trio_voip.sip.message import Request
from trio_voip.sip.uri import parse_uri

RR = ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def uac_dialog(status: int = 200, record_route: list[str] = RR, **kw: object) -> Dialog:
    return Dialog.create_uac(invite(**kw), answer(invite(**kw), status, "bobtag",
                                                  record_route=record_route))


def uas_dialog(record_route: list[str] = RR, method: str = "INVITE") -> Dialog:
    return Dialog.create_uas(
        invite(record_route=record_route, method=method), "bobtag", parse_uri("sip:bob@192.0.2.4")
    )


# --- creation ----------------------------------------------------------------------------------


def test_create_uac_from_provisional_is_early() -> None:
    d = uac_dialog(180)
    assert d.state is DialogState.EARLY
    assert d.id == DialogId(CALL_ID, ALICE_TAG, "bobtag")
    assert d.is_uac
    assert d.local_seq == 314159 and d.remote_seq is None
    assert str(d.remote_target) == "sip:bob@192.0.2.4"
    # UAC: the route set is the Record-Route of the response, reversed (12.1.2)
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert d.local_uri.tag == ALICE_TAG and d.remote_uri.tag == "bobtag"
    assert not d.secure
    assert d.invite_out == 314159  # the INVITE still waits for its final response
    assert str(d.local_contact.uri) == "sip:alice@pc33.atlanta.example.com"


def test_create_uac_from_2xx_is_confirmed() -> None:
    d = uac_dialog(200)
    assert d.state is DialogState.CONFIRMED
    assert d.invite_out is None and d.last_invite_seq == 314159


def test_create_uac_secure_for_sips_request_uri() -> None:
    d = uac_dialog(200, uri="sips:bob@biloxi.example.com")
    assert d.secure


def test_create_uac_provisional_without_contact_targets_request_uri() -> None:
    req = invite()
    d = Dialog.create_uac(req, answer(req, 183, "bobtag", contact=None))
    assert str(d.remote_target) == "sip:bob@biloxi.example.com"


@pytest.mark.parametrize(
    ("status", "to_tag", "contact", "method"),
    [
        (100, "bobtag", "<sip:b@h>", "INVITE"),  # 100 never creates a dialog
        (180, None, "<sip:b@h>", "INVITE"),  # no To tag
        (200, "bobtag", None, "INVITE"),  # 2xx without Contact
        (486, "bobtag", "<sip:b@h>", "INVITE"),
        (180, "bobtag", "<sip:b@h>", "SUBSCRIBE"),  # only INVITE has early dialogs
        (200, "bobtag", "<sip:b@h>", "OPTIONS"),  # OPTIONS creates nothing
    ],
)
def test_create_uac_rejects(status: int, to_tag: str | None, contact: str | None,
                            method: str) -> None:
    req = invite(method=method)
    with pytest.raises(DialogError):
        Dialog.create_uac(req, answer(req, status, to_tag, contact=contact))


def test_create_uac_needs_from_tag() -> None:
    req = invite(from_tag=None)
    with pytest.raises(DialogError):
        Dialog.create_uac(req, answer(req, 200, "bobtag"))


def test_create_uas() -> None:
    d = uas_dialog()
    assert d.state is DialogState.EARLY
    assert d.id == DialogId(CALL_ID, "bobtag", ALICE_TAG)
    assert not d.is_uac
    assert d.remote_seq == 314159 and d.local_seq is None
    # UAS: the route set is the request's Record-Route as is (12.1.1)
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert str(d.remote_target) == "sip:alice@pc33.atlanta.example.com"
    assert d.local_uri.tag == "bobtag" and d.remote_uri.tag == ALICE_TAG
    assert d.invite_in == 314159
    assert str(d.local_contact) == "<sip:bob@192.0.2.4>"


def test_create_uas_subscribe_is_confirmed_and_rfc2543_remote_tag_empty() -> None:
    d = Dialog.create_uas(invite(method="SUBSCRIBE", from_tag=None), "t",
                          NameAddr(parse_uri("sip:b@h")))
    assert d.state is DialogState.CONFIRMED
    assert d.id.remote_tag == ""
    assert d.invite_in is None


def test_create_uas_rejects() -> None:
    contact = parse_uri("sip:b@h")
    with pytest.raises(DialogError):
        Dialog.create_uas(invite(contact=None), "t", contact)
    with pytest.raises(DialogError):
        Dialog.create_uas(invite(method="OPTIONS"), "t", contact)
    with pytest.raises(DialogError):
        Dialog.create_uas(in_dialog("INVITE", 5), "t", contact)


# --- state machine -----------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), list(itertools.product(DialogState, DialogState)))
def test_transition_table(old: DialogState, new: DialogState) -> None:
    d = uas_dialog()
    d.state = old
    if (old, new) in TRANSITIONS:
        d.transition_to(new)
        assert d.state is new
    else:
        with pytest.raises(DialogError):
            d.transition_to(new)
        assert d.state is old


def test_transition_table_is_the_rfc_one() -> None:
    E, C, T = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED
    assert TRANSITIONS == {(E, C), (E, T), (C, T)}


def test_dialog_error_is_project_error() -> None:
    assert issubclass(DialogError, TrioVoipError)


def test_terminate_is_idempotent() -> None:
    d = uac_dialog()
    d.terminate()
    d.terminate()
    assert d.state is DialogState.TERMINATED
    with pytest.raises(DialogError):
        d.new_request("INFO")
    with pytest.raises(DialogError):
        d.receive_request(in_dialog("INFO", 1, local_tag=ALICE_TAG, remote_tag="bobtag"))


# --- building requests (12.2.1.1) -----------------------------------------------------------------


def test_new_request_loose_routing() -> None:
    d = uac_dialog()
    req = wire(d.new_request("INFO", b"hi", "text/plain"))
    assert isinstance(req, Request)
    assert str(req.uri) == "sip:bob@192.0.2.4"
    assert [str(r.uri) for r in req.routes] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert req.cseq.seq == 314160 and req.cseq.method == "INFO"
    assert req.from_.tag == ALICE_TAG and req.to.tag == "bobtag"
    assert req.call_id == CALL_ID
    assert req.max_forwards == 70
    assert req.top_via.branch.startswith("z9hG4bK") and len(req.top_via.branch) > 7
    assert req.body == b"hi" and req.content_type == "text/plain"
    assert req.contacts == []  # INFO is no target refresh


def test_new_request_without_routes() -> None:
    d = uac_dialog(record_route=[])
    req = d.new_request("OPTIONS")
    assert str(req.uri) == "sip:bob@192.0.2.4"
    assert "Route" not in req.headers


def test_new_request_strict_routing() -> None:
    # p1 is a strict router (no lr): it goes in the Request-URI (without the method
    # parameter a Request-URI may not carry), the remote target becomes the last Route.
    d = uas_dialog(record_route=["<sip:p1.example.com;method=INVITE>", "<sip:p2.example.com;lr>"])
    d.transition_to(DialogState.CONFIRMED)
    req = wire(d.new_request("BYE"))
    assert str(req.uri) == "sip:p1.example.com"
    assert [str(r.uri) for r in req.routes] == [
        "sip:p2.example.com;lr",
        "sip:alice@pc33.atlanta.example.com",
    ]


def test_new_request_cseq_and_ack_reuse() -> None:
    d = uac_dialog()
    a = d.new_request("INVITE", b"v=0", "application/sdp")
    assert a.cseq.seq == 314160
    assert str(a.contacts[0].uri) == "sip:alice@pc33.atlanta.example.com"
    ack = d.new_request("ACK")
    assert ack.cseq.seq == 314160 and ack.cseq.method == "ACK"
    assert ack.top_via.branch != a.top_via.branch
    assert d.local_seq == 314160
    d.receive_response(answer(a, 200, "bobtag"))
    b = d.new_request("UPDATE")
    assert b.cseq.seq == 314161 and b.contacts
    with pytest.raises(DialogError):
        d.new_request("CANCEL")


def test_branches_are_unique() -> None:
    d = uac_dialog()
    branches = {d.new_request("INFO").top_via.branch for _ in range(50)}
    assert len(branches) == 50


def test_uas_local_seq_starts_random_below_2_31() -> None:
    d = uas_dialog()
    d.transition_to(DialogState.CONFIRMED)
    first = d.new_request("INFO").cseq.seq
    assert 1 < first <= 2**31
    assert d.new_request("INFO").cseq.seq == first + 1


def test_ack_needs_an_invite() -> None:
    with pytest.raises(DialogError):
        uas_dialog(method="SUBSCRIBE").new_request("ACK")


def test_ack_repeats_credentials_of_the_invite() -> None:
    req = invite(extra=['Proxy-Authorization: Digest username="a", realm="r", nonce="n", '
                        'uri="sip:bob@biloxi.example.com", response="0123"'])
    d = Dialog.create_uac(req, answer(req, 200, "bobtag"))
    ack = d.new_request("ACK")
    assert ack.headers.get("Proxy-Authorization").startswith("Digest username")
    assert "Proxy-Authorization" not in d.new_request("INFO").headers


def test_reinvite_rules() -> None:
    early = uac_dialog(180)
    with pytest.raises(DialogError, match="confirmed"):
        early.new_request("INVITE")
    d = uac_dialog()
    d.new_request("INVITE")
    with pytest.raises(DialogError, match="14.1"):
        d.new_request("INVITE")  # ours is pending
    d2 = uac_dialog()
    assert d2.receive_request(in_dialog("INVITE", 1, local_tag=ALICE_TAG,
                                        remote_tag="bobtag")) is None
    with pytest.raises(DialogError, match="14.1"):
        d2.new_request("INVITE")  # theirs is pending


def test_second_update_while_pending_is_refused() -> None:
    d = uac_dialog()
    d.new_request("UPDATE")
    with pytest.raises(DialogError):
        d.new_request("UPDATE")


def test_bye_rules() -> None:
    uas = uas_dialog()
    with pytest.raises(DialogError, match="early"):
        uas.new_request("BYE")  # callee, early dialog
    uac = uac_dialog(180)
    bye = uac.new_request("BYE")  # the caller may BYE an early dialog
    assert bye.method == "BYE"
    assert uac.state is DialogState.TERMINATED


# --- receiving requests (12.2.2) ---------------------------------------------------------------


def test_out_of_order_cseq_gets_500() -> None:
    d = uas_dialog()
    d.transition_to(DialogState.CONFIRMED)
    d.invite_in = None
    assert d.receive_request(in_dialog("INFO", 314170)) is None
    assert d.remote_seq == 314170
    resp = d.receive_request(in_dialog("INFO", 314160))
    assert resp is not None and resp.status == 500
    assert resp.cseq.seq == 314160 and resp.to.tag == "bobtag"
    assert d.remote_seq == 314170
    # equal is not lower (12.2.2): accepted
    assert d.receive_request(in_dialog("OPTIONS", 314170)) is None


def test_ack_and_cancel_do_not_move_remote_seq() -> None:
    d = uas_dialog()
    assert d.receive_request(in_dialog("ACK", 1)) is None
    assert d.receive_request(in_dialog("CANCEL", 1)) is None
    assert d.remote_seq == 314159


def test_uac_dialog_remote_seq_starts_empty() -> None:
    d = uac_dialog()
    assert d.receive_request(in_dialog("INFO", 7, local_tag=ALICE_TAG, remote_tag="bobtag")) is None
    assert d.remote_seq == 7


def test_target_refresh_on_reinvite_and_update_not_info() -> None:
    d = uas_dialog()
    d.transition_to(DialogState.CONFIRMED)
    d.invite_in = None
    d.receive_request(in_dialog("INFO", 314160, contact="<sip:alice@198.51.100.1>"))
    assert str(d.remote_target) == "sip:alice@pc33.atlanta.example.com"
    d.receive_request(in_dialog("UPDATE", 314161, contact="<sip:alice@198.51.100.2>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.2"
    d.receive_request(in_dialog("INVITE", 314162, contact="<sip:alice@198.51.100.3>"))
    assert str(d.remote_target) == "sip:alice@198.51.100.3"
    assert d.new_request("INFO").uri == parse_uri("sip:alice@198.51.100.3")


def test_incoming_bye_terminates() -> None:
    d = uas_dialog()
    d.transition_to(DialogState.CONFIRMED)
    assert d.receive_request(in_dialog("BYE", 314160)) is None
    assert d.state is DialogState.TERMINATED


def test_glare_491_and_overlap_500() -> None:
    d = uac_dialog()
    d.new_request("INVITE")
    resp = d.receive_request(in_dialog("INVITE", 10, local_tag=ALICE_TAG, remote_tag="bobtag"))
    assert resp is not None and resp.status == 491
    assert d.invite_in is None  # the rejected INVITE is not pending

    d2 = uas_dialog()  # their initial INVITE is still unanswered
    resp = d2.receive_request(in_dialog("INVITE", 314160))
    assert resp is not None and resp.status == 500
    assert 0 <= int(resp.headers.get("Retry-After")) <= 10


def test_update_with_offer_glare() -> None:
    d = uac_dialog()
    d.new_request("UPDATE", b"v=0", "application/sdp")
    resp = d.receive_request(in_dialog("UPDATE", 3, local_tag=ALICE_TAG, remote_tag="bobtag",
                                       body=b"v=0"))
    assert resp is not None and resp.status == 491
    # an UPDATE without an offer is no glare
    assert d.receive_request(in_dialog("UPDATE", 4, local_tag=ALICE_TAG,
                                       remote_tag="bobtag")) is None


# --- receiving responses (12.2.1.2) ---------------------------------------------------------------


@pytest.mark.parametrize("status", [481, 408])
def test_481_408_terminate(status: int) -> None:
    d = uac_dialog()
    info = d.new_request("INFO")
    d.receive_response(answer(info, status, None, contact=None))
    assert d.state is DialogState.TERMINATED


def test_other_failures_keep_the_dialog() -> None:
    d = uac_dialog()
    reinvite = d.new_request("INVITE")
    d.receive_response(answer(reinvite, 488, None, contact=None))
    assert d.state is DialogState.CONFIRMED
    assert d.invite_out is None  # the next re-INVITE is allowed again
    d.new_request("INVITE")


def test_2xx_to_reinvite_refreshes_target() -> None:
    d = uac_dialog()
    reinvite = d.new_request("INVITE")
    d.receive_response(answer(reinvite, 200, None, contact="<sip:bob@203.0.113.9>"))
    assert str(d.remote_target) == "sip:bob@203.0.113.9"


def test_make_response_for_dialog_creating_request() -> None:
    d = uas_dialog()
    req = invite(record_route=RR)
    ringing = wire(d.make_response(req, 180))
    assert ringing.to.tag == "bobtag"
    assert [str(r) for r in ringing.record_routes] == RR
    assert str(ringing.contacts[0].uri) == "sip:bob@192.0.2.4"
    trying = d.make_response(req, 100)
    assert trying.to.tag is None and not trying.contacts
    busy = d.make_response(req, 486)
    assert not busy.contacts and not busy.record_routes


# --- CANCEL (9.1) ---------------------------------------------------------------------------------


def test_build_cancel() -> None:
    inv = invite(extra=["Route: <sip:p1.example.com;lr>"])
    cancel = wire(build_cancel(inv))
    assert cancel.method == "CANCEL"
    assert cancel.uri == inv.uri
    assert cancel.cseq.seq == inv.cseq.seq and cancel.cseq.method == "CANCEL"
    assert cancel.vias == [inv.top_via]
    assert cancel.from_ == inv.from_ and cancel.to == inv.to and cancel.call_id == inv.call_id
    assert [str(r) for r in cancel.routes] == ["<sip:p1.example.com;lr>"]
    with pytest.raises(DialogError):
        build_cancel(invite(method="SUBSCRIBE"))


# --- property: CSeq bookkeeping never corrupts --------------------------------------------------

_METHODS = ["INFO", "OPTIONS", "UPDATE", "NOTIFY", "MESSAGE", "ACK", "CANCEL", "REFER"]


@given(hs.lists(hs.tuples(hs.sampled_from(_METHODS), hs.integers(-5, 5)), max_size=40))
def test_remote_cseq_bookkeeping(steps: list[tuple[str, int]]) -> None:
    d = uas_dialog(method="SUBSCRIBE")  # confirmed, nothing pending
    highest = d.remote_seq
    seq = highest
    for method, delta in steps:
        seq = max(1, seq + delta)
        resp = d.receive_request(in_dialog(method, seq))
        if method in ("ACK", "CANCEL"):
            assert resp is None
        elif seq < highest:
            assert resp is not None and resp.status == 500
        else:
            assert resp is None or resp.status == 500 and "Retry-After" in resp.headers
            highest = seq
        assert d.remote_seq == highest
        d.update_in = None  # the application answered the UPDATE


@given(hs.lists(hs.sampled_from(["INFO", "OPTIONS", "INVITE", "ACK", "MESSAGE", "NOTIFY"]),
                max_size=30))
def test_local_cseq_bookkeeping(methods: list[str]) -> None:
    d = uac_dialog()
    expected = d.local_seq
    last_invite = d.last_invite_seq
    for method in methods:
        if method == "INVITE" and d.invite_out is not None:
            with pytest.raises(DialogError):
                d.new_request(method)
            continue
        req = d.new_request(method)
        if method == "ACK":
            assert req.cseq.seq == last_invite
        else:
            expected += 1
            assert req.cseq.seq == expected
        if method == "INVITE":
            last_invite = expected
            d.receive_response(answer(req, 200, None))
        assert d.local_seq == expected
