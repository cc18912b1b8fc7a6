"""RFC 4028 session timers: header parsing, negotiation, refresh and expiry timers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from test_dialog_support import ALICE_TAG, answer, in_dialog, invite, reply
from trio_voip.errors import DialogError, SipParseError
from trio_voip.sip import session_timer as st
from trio_voip.sip.dialog import (
    DialogConfirmed,
    DialogLayer,
    DialogTerminated,
    OutOfDialog,
    RefreshSession,
    RequestReceived,
    SendAck,
    SendBye,
    SendResponse,
    SessionExpired,
)
from trio_voip.sip.uri import parse_uri

BOB = parse_uri("sip:bob@192.0.2.4")


def kinds(events: list[object]) -> list[type]:
    return [type(e) for e in events]


# --- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "interval", "refresher"),
    [
        ("1800", 1800, None),
        ("4000;refresher=uac", 4000, "uac"),
        ("90 ; refresher=UAS", 90, "uas"),
        ("600;foo=bar;refresher=uas", 600, "uas"),
    ],
)
def test_parse_session_expires(text: str, interval: int, refresher: str | None) -> None:
    se = st.parse_session_expires(text)
    assert se == st.SessionExpires(interval, refresher)
    assert st.parse_session_expires(str(se)) == se


@pytest.mark.parametrize("text", ["", "abc", "-5", "1800;refresher=me", "1800;refresher",
                                  "99999999999", "1.5", "１２"])
def test_parse_session_expires_rejects(text: str) -> None:
    with pytest.raises(SipParseError):
        st.parse_session_expires(text)


def test_parse_min_se() -> None:
    assert st.parse_min_se("90") == 90
    assert st.parse_min_se(" 120;x=y") == 120
    with pytest.raises(SipParseError):
        st.parse_min_se("ninety")


@given(hs.text(max_size=30))
def test_parse_never_raises_foreign_errors(text: str) -> None:
    for parse in (st.parse_session_expires, st.parse_min_se):
        try:
            parse(text)
        except SipParseError:
            pass


def test_config_validation() -> None:
    with pytest.raises(DialogError):
        st.SessionTimerConfig(min_se=60)
    with pytest.raises(DialogError):
        st.SessionTimerConfig(min_se=600, session_expires=300)
    with pytest.raises(DialogError):
        st.SessionTimerConfig(refresh_method="OPTIONS")
    with pytest.raises(DialogError):
        st.SessionTimerConfig(refresher="both")


def test_delays() -> None:
    assert st.refresh_delay(1800) == 900
    assert st.expiry_delay(1800) == 1800 - 32
    assert st.expiry_delay(90) == 60  # 90 - 90/3


# --- negotiation (UAS, RFC 4028 9) -----------------------------------------------------------


def _negotiate(extra: list[str], config: st.SessionTimerConfig | None = None) -> st.UasNegotiation:
    return st.negotiate_uas(invite(extra=extra), config or st.SessionTimerConfig())


@pytest.mark.parametrize(
    ("extra", "refresher", "require"),
    [
        (["Session-Expires: 600"], "uas", False),  # UAC lacks support: we refresh
        (["Supported: timer", "Session-Expires: 600"], "uac", True),  # config picks
        (["Supported: timer", "Session-Expires: 600;refresher=uac"], "uac", True),
        (["Supported: timer", "Session-Expires: 600;refresher=uas"], "uas", True),
        (["Supported: 100rel, timer"], "uac", True),  # no SE: we ask for one
        ([], "uas", False),
    ],
)
def test_refresher_table(extra: list[str], refresher: str, require: bool) -> None:
    n = _negotiate(extra)
    assert n.session_expires.refresher == refresher
    assert n.require is require
    assert ("Require", "timer") in n.headers() if require else len(n.headers()) == 1
    assert n.we_refresh is (refresher == "uas")


def test_configured_refresher_choice() -> None:
    n = _negotiate(["Supported: timer", "Session-Expires: 600"],
                   st.SessionTimerConfig(refresher="uas"))
    assert n.session_expires.refresher == "uas"


def test_interval_may_shrink_but_not_below_min_se_nor_grow() -> None:
    config = st.SessionTimerConfig(session_expires=300)
    assert _negotiate(["Session-Expires: 3600"], config).session_expires.interval == 300
    assert _negotiate(["Session-Expires: 200"], config).session_expires.interval == 200
    # the request's Min-SE bounds our reduction
    assert _negotiate(["Session-Expires: 3600", "Min-SE: 1000"],
                      config).session_expires.interval == 1000
    # no Session-Expires: ours, at least their Min-SE
    assert _negotiate(["Min-SE: 500"], config).session_expires.interval == 500


@given(se=hs.integers(90, 100_000), min_se=hs.one_of(hs.none(), hs.integers(90, 100_000)),
       ours=hs.integers(90, 100_000))
def test_negotiated_interval_bounds(se: int, min_se: int | None, ours: int) -> None:
    extra = [f"Session-Expires: {se}"] + ([] if min_se is None else [f"Min-SE: {min_se}"])
    n = _negotiate(extra, st.SessionTimerConfig(session_expires=ours))
    interval = n.session_expires.interval
    assert interval <= se  # never increased
    assert interval >= min(se, min_se or 90)  # never below their Min-SE
    assert interval >= 90


def test_check_min_se() -> None:
    config = st.SessionTimerConfig(min_se=300)
    resp = st.check_min_se(invite(extra=["Session-Expires: 120"]), config)
    assert resp is not None and resp.status == 422 and resp.headers.get("Min-SE") == "300"
    assert st.check_min_se(invite(extra=["Session-Expires: 300"]), config) is None
    assert st.check_min_se(invite(), config) is None


def test_negotiate_uac() -> None:
    inv = invite()
    assert st.negotiate_uac(answer(inv, 200, "a")) is None
    se = st.negotiate_uac(answer(inv, 200, "a", extra=["Session-Expires: 900;refresher=uas"]))
    assert se == st.SessionExpires(900, "uas")
    # a 2xx without refresher leaves the refreshing to us
    se = st.negotiate_uac(answer(inv, 200, "a", extra=["Session-Expires: 900"]))
    assert se is not None and se.refresher == "uac"


# --- the layer ------------------------------------------------------------------------------------

CONFIG = st.SessionTimerConfig(min_se=90, session_expires=1800)


def uas_call(extra: list[str], now: float = 0.0) -> tuple[DialogLayer, object, object]:
    layer = DialogLayer(session_timers=CONFIG)
    inv = invite(extra=extra)
    assert kinds(layer.on_request(inv, now)) == [OutOfDialog]
    dialog = layer.create_uas(inv, "bobtag", BOB)
    ok = layer.respond(inv, 200, now=now, dialog_id=dialog.id)
    layer.on_request(in_dialog("ACK", 314159), now + 0.1)
    return layer, dialog.id, ok


def test_uas_422_for_small_session_expires() -> None:
    layer = DialogLayer(session_timers=st.SessionTimerConfig(min_se=600))
    [event] = layer.on_request(invite(extra=["Supported: timer", "Session-Expires: 300"]), 0)
    assert isinstance(event, SendResponse)
    assert event.response.status == 422 and event.response.headers.get("Min-SE") == "600"


def test_uas_refresher_uas_refreshes_at_half() -> None:
    layer, did, ok = uas_call(["Supported: timer", "Session-Expires: 600;refresher=uas"])
    assert ok.headers.get("Session-Expires") == "600;refresher=uas"
    assert ok.headers.get("Require") == "timer"
    assert layer.next_deadline() == 300
    assert layer.on_timer(300) == [RefreshSession(did, "UPDATE")]
    update = layer.new_request(did, "UPDATE")
    # our refresh keeps us the refresher: refresher=uac from this request's point of view
    assert update.headers.get("Session-Expires") == "600;refresher=uac"
    assert "timer" in update.headers.get_all("Supported")
    assert layer.on_response(reply(update, 200, extra=["Session-Expires: 600;refresher=uac"]),
                             301) == []
    assert layer.next_deadline() == 301 + 300


def test_uas_refresher_uac_expiry_sends_bye() -> None:
    layer, did, ok = uas_call(["Supported: timer", "Session-Expires: 600;refresher=uac"])
    assert ok.headers.get("Session-Expires") == "600;refresher=uac"
    expiry = 600 - 32
    assert layer.next_deadline() == expiry
    events = layer.on_timer(expiry)
    assert kinds(events) == [SessionExpired, SendBye, DialogTerminated]
    assert events[1].request.to.tag == ALICE_TAG
    assert layer.count == 0
    assert layer.next_deadline() is None


def test_refresh_received_resets_expiry() -> None:
    layer, did, _ = uas_call(["Supported: timer", "Session-Expires: 90;refresher=uac"])
    assert layer.next_deadline() == 60  # 90 - 90/3
    update = in_dialog("UPDATE", 314160, extra=["Supported: timer",
                                               "Session-Expires: 90;refresher=uac"])
    assert kinds(layer.on_request(update, 50)) == [RequestReceived]
    ok = layer.respond(update, 200, now=50)
    assert ok.headers.get("Session-Expires") == "90;refresher=uac"
    assert layer.next_deadline() == 110
    assert layer.on_timer(100) == []
    assert kinds(layer.on_timer(110)) == [SessionExpired, SendBye, DialogTerminated]


def test_reinvite_with_too_small_interval_gets_422() -> None:
    layer, did, _ = uas_call(["Supported: timer", "Session-Expires: 600"])
    [event] = layer.on_request(in_dialog("INVITE", 314160, extra=["Session-Expires: 60"]), 10)
    assert isinstance(event, SendResponse) and event.response.status == 422
    # the rejected re-INVITE is not pending: ours may go
    layer.new_request(did, "INVITE")


def test_no_session_timers_configured() -> None:
    layer = DialogLayer()
    inv = invite(extra=["Supported: timer", "Session-Expires: 30"])
    assert kinds(layer.on_request(inv, 0)) == [OutOfDialog]  # no 422: we ignore RFC 4028
    dialog = layer.create_uas(inv, "bobtag", BOB)
    ok = layer.respond(inv, 200, now=0, dialog_id=dialog.id)
    assert "Session-Expires" not in ok.headers


def test_uac_session() -> None:
    layer = DialogLayer(session_timers=CONFIG)
    inv = layer.start_uac(invite(body=b"v=0"))
    assert inv.headers.get("Session-Expires") == "1800"
    assert inv.headers.get("Min-SE") == "90"
    assert "timer" in inv.headers.get_all("Supported")
    ok = answer(inv, 200, "a", extra=["Session-Expires: 1200;refresher=uac", "Require: timer"])
    events = layer.on_response(ok, 10)
    did = events[0].dialog_id
    assert kinds(events)[-1] is SendAck
    layer.on_timer(10 + 32)  # INVITE tracking ends
    assert layer.next_deadline() == 10 + 600
    assert layer.on_timer(610) == [RefreshSession(did, "UPDATE")]
    update = layer.new_request(did, "UPDATE")
    # the peer's 2xx without Session-Expires turns the timer off
    layer.on_response(reply(update, 200), 611)
    assert layer.next_deadline() is None


def test_uac_not_refresher_and_reinvite_refresh_method() -> None:
    config = st.SessionTimerConfig(refresh_method="INVITE")
    layer = DialogLayer(session_timers=config)
    inv = layer.start_uac(invite(body=b"v=0"))
    events = layer.on_response(answer(inv, 200, "a", extra=["Session-Expires: 300;refresher=uas"]),
                               0)
    did = events[0].dialog_id
    layer.on_timer(32)
    assert layer.next_deadline() == 300 - 32
    # our own re-INVITE states the peer stays the refresher
    reinvite = layer.new_request(did, "INVITE", b"v=0", "application/sdp")
    assert reinvite.headers.get("Session-Expires") == "300;refresher=uas"
    layer.on_response(reply(reinvite, 200, body=b"v=0",
                            extra=["Session-Expires: 300;refresher=uac"]), 100)
    assert layer.next_deadline() == 100 + 150  # now we refresh
    assert layer.on_timer(250) == [RefreshSession(did, "INVITE")]


def test_retry_after_422() -> None:
    layer = DialogLayer(session_timers=CONFIG)
    inv = layer.start_uac(invite(body=b"v=0"))
    too_small = answer(inv, 422, None, contact=None, extra=["Min-SE: 3600"])
    assert layer.on_response(too_small, 0) == []
    again = st.retry_after_422(inv, too_small)
    assert again.headers.get("Session-Expires") == "3600"
    assert again.headers.get("Min-SE") == "3600"
    assert again.cseq.seq == inv.cseq.seq + 1 and again.cseq.method == "INVITE"
    assert again.top_via.branch != inv.top_via.branch
    assert again.body == inv.body and again.from_ == inv.from_
    assert inv.headers.get("Session-Expires") == "1800"  # the original is untouched
    layer.start_uac(again)
    assert "Session-Expires" in again.headers
    ok = answer(again, 200, "a", extra=["Session-Expires: 3600;refresher=uac"])
    events = layer.on_response(ok, 1)
    assert kinds(events) == [DialogConfirmed, SendAck]
    with pytest.raises(DialogError):
        st.retry_after_422(inv, answer(inv, 486, None))
    with pytest.raises(DialogError):
        st.retry_after_422(inv, answer(inv, 422, None))


def test_failed_subscribe_dialog_is_removed() -> None:
    layer = DialogLayer()
    sub = invite(method="SUBSCRIBE", extra=["Event: presence"])
    dialog = layer.create_uas(sub, "bobtag", BOB)
    assert layer.count == 1
    resp = layer.respond(sub, 489, now=0, dialog_id=dialog.id)
    assert resp.to.tag == "bobtag"
    assert layer.count == 0
