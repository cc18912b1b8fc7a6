"""Calls for applications: the :class:`SessionCoordinator` and what it hands out.

A coordinator answers and places SIP calls over its own UDP/TCP sockets, asks a
:class:`CallHandler` what to do with incoming calls, keeps a registrar for its users, and
reports everything as frozen session events on Trio channels::

    import trio
    from trio_voip import CallDecision, CallHandler, CallState, SessionManagerBuilder

    class Answer(CallHandler):
        async def on_incoming_call(self, call):
            return CallDecision.accept()          # or reject(486), defer(), forward("sip:..")

    async def main():
        builder = SessionManagerBuilder().listen("127.0.0.1", 5060).handler(Answer())
        async with builder.build() as coordinator:
            events = coordinator.subscribe_to_session_events()
            call = await coordinator.make_call("sip:bob@127.0.0.1:5070", from_user="alice")
            await call.wait_state(CallState.ACTIVE)
            await call.send_dtmf("123")
            await call.hold(); await call.resume()
            await call.hangup()
            print(call.end_reason, coordinator.stats())

    trio.run(main)

Leaving ``async with`` hangs up every live call (BYE/CANCEL, bounded by the shutdown
timeout) and closes every socket. Leave it normally (e.g. wait on a ``trio.Event`` that a signal
handler sets): cancelling a scope around it cancels the coordinator's sockets too, so calls are
then dropped without a goodbye.
"""

from trio_voip.session.bridges import BridgeManager
from trio_voip.session.builder import CoordinatorConfig, SessionManagerBuilder, TransportFactory
from trio_voip.session.call import CallSession, first_to_end, hangup_quietly
from trio_voip.session.coordinator import CoordinatorStats, SessionCoordinator
from trio_voip.session.events import (
    CallEnded,
    CallStateChanged,
    DtmfReceived,
    RegistrationChanged,
    SessionEvent,
    TransferProgress,
)
from trio_voip.session.handler import CallDecision, CallHandler, DecisionKind
from trio_voip.session.media import CallMedia
from trio_voip.session.recording import Recording
from trio_voip.session.state import TRANSITIONS, CallDirection, CallState, EndKind, EndReason

__all__ = [
    "BridgeManager",
    "CoordinatorConfig",
    "SessionManagerBuilder",
    "TransportFactory",
    "CallSession",
    "first_to_end",
    "hangup_quietly",
    "CoordinatorStats",
    "SessionCoordinator",
    "CallEnded",
    "CallStateChanged",
    "DtmfReceived",
    "SessionEvent",
    "TransferProgress",
    "RegistrationChanged",
    "CallDecision",
    "CallHandler",
    "DecisionKind",
    "Recording",
    "CallMedia",
    "TRANSITIONS",
    "CallDirection",
    "CallState",
    "EndKind",
    "EndReason",
]
