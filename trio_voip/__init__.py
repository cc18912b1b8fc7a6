"""trio-voip: a VoIP framework on Trio with a hand-written sans-IO SIP stack.

The application-level API is the call engine (see :mod:`trio_voip.session` for an example);
the layers under it live in :mod:`trio_voip.sip`, :mod:`trio_voip.sdp`,
:mod:`trio_voip.offer_answer` and :mod:`trio_voip.rtp`.
"""

from trio_voip.bridge import (
    BridgeCreated,
    BridgeDestroyed,
    BridgeEvent,
    BridgeId,
    BridgeInfo,
    BridgeMode,
    ParticipantAdded,
    ParticipantRemoved,
    RemovalReason,
)
from trio_voip.errors import (
    BridgeError,
    CallError,
    CallStateError,
    SessionAlreadyBridged,
    SessionNotActive,
    TrioVoipError,
    UnknownBridge,
    UnknownSession,
)
from trio_voip.events import EventBus
from trio_voip.session import (
    CallDecision,
    CallDirection,
    CallEnded,
    CallHandler,
    CallSession,
    CallState,
    CallStateChanged,
    CoordinatorConfig,
    CoordinatorStats,
    DtmfReceived,
    EndKind,
    EndReason,
    SessionCoordinator,
    SessionEvent,
    SessionManagerBuilder,
    TransferProgress,
)

__all__ = [
    "BridgeCreated",
    "BridgeDestroyed",
    "BridgeEvent",
    "BridgeId",
    "BridgeInfo",
    "BridgeMode",
    "ParticipantAdded",
    "ParticipantRemoved",
    "RemovalReason",
    "BridgeError",
    "SessionAlreadyBridged",
    "SessionNotActive",
    "UnknownBridge",
    "UnknownSession",
    "CallError",
    "CallStateError",
    "TrioVoipError",
    "EventBus",
    "CallDecision",
    "CallDirection",
    "CallEnded",
    "CallHandler",
    "CallSession",
    "CallState",
    "CallStateChanged",
    "CoordinatorConfig",
    "CoordinatorStats",
    "DtmfReceived",
    "EndKind",
    "EndReason",
    "SessionCoordinator",
    "SessionEvent",
    "SessionManagerBuilder",
    "TransferProgress",
]
