"""The call state table and the values around it."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_voip import CallDecision, CallStateError, TrioVoipError
from trio_voip.session.call import CallSession
from trio_voip.session.events import DtmfReceived, TransferProgress
from trio_voip.session.handler import DecisionKind
from trio_voip.session.state import TRANSITIONS, CallDirection, CallState, EndKind, EndReason
from trio_voip.sip.headers import NameAddr
from trio_voip.sip.uri import SipUri


def make_call() -> CallSession:
    party = NameAddr(SipUri(user="a", host="h"))
    return CallSession(
        id="c1",
        direction=CallDirection.INCOMING,
        call_id="x@h",
        local_party=party,
        remote_party=party,
        coordinator=None,  # type: ignore[arg-type]
    )


async def test_table_shape() -> None:
    # Everything can end; nothing leaves TERMINATED; TERMINATING only ends.
    for state in CallState:
        if state is not CallState.TERMINATED:
            assert (state, CallState.TERMINATED) in TRANSITIONS
        assert (CallState.TERMINATED, state) not in TRANSITIONS
    assert {new for old, new in TRANSITIONS if old is CallState.TERMINATING} == {
        CallState.TERMINATED
    }


@given(st.lists(st.sampled_from(list(CallState)), max_size=8))
def test_transitions_follow_the_table(path: list[CallState]) -> None:
    async def main() -> None:
        call = make_call()
        for new in path:
            old = call.state
            if (old, new) in TRANSITIONS:
                event = call._transition(new, "why")
                assert (event.old, event.new, event.reason) == (old, new, "why")
                assert call.state is new
            else:
                with pytest.raises(CallStateError):
                    call._transition(new)
                assert call.state is old

    trio.run(main)


async def test_duration_and_wait_state() -> None:
    call = make_call()
    assert call.duration == 0.0
    call._transition(CallState.ACTIVE)
    await trio.sleep(0.01)
    call._transition(CallState.TERMINATED)
    assert call.duration > 0
    assert await call.wait_state(CallState.ACTIVE) is CallState.TERMINATED


async def test_wait_state_times_out() -> None:
    with pytest.raises(CallStateError):
        await make_call().wait_state(CallState.ACTIVE, timeout=0.01)


def test_end_reason_text() -> None:
    assert str(EndReason(EndKind.REJECTED, 486, "busy")) == "rejected (486): busy"
    assert str(EndReason(EndKind.LOCAL_HANGUP)) == "local hangup"


def test_decisions() -> None:
    assert CallDecision.accept().kind is DecisionKind.ACCEPT
    assert CallDecision.reject().status == 486
    forward = CallDecision.forward("sip:carol@example.com")
    assert isinstance(forward.target, SipUri) and forward.target.user == "carol"
    for bad in (100, 200, 700):
        with pytest.raises(TrioVoipError):
            CallDecision.reject(bad)
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\n"
    )
    assert CallDecision.accept(sdp).sdp is not None


def test_event_values() -> None:
    assert DtmfReceived("c", "#").digit == "#"
    with pytest.raises(TrioVoipError):
        DtmfReceived("c", "12")
    assert TransferProgress("c", 200).final and not TransferProgress("c", 180).final
