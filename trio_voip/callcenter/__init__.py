"""The call engine: agents, queues and routing as a sans-IO state machine (:class:`CallCenter`).

The engine takes inputs (agents logging in, callers arriving, offers answered, the time) and
returns :data:`Action` lists for a driver to perform on the session coordinator; it never does
I/O itself. See :mod:`.engine` for the routing rules, :mod:`.model` for the state tables,
:mod:`.strategies` for the routing strategies, :mod:`.metrics` for the numbers and
:mod:`.settings` for queue definitions as plain data (TOML, store rows).
"""

from .actions import (
    Action,
    AgentPauseChanged,
    AgentStateChanged,
    BridgeCallerToAgent,
    CallerStateChanged,
    CancelOffer,
    CancelReason,
    LeaveReason,
    OfferCall,
    OfferFailure,
    Overflow,
    PlayAnnouncement,
    QueueMetricsChanged,
    QueueStats,
    Reject,
    WrapUpEnded,
)
from .engine import AgentStatus, CallCenter, LiveCall, WaitingCaller
from .metrics import AgentStats, MetricsFold, interval_stats, stored_reports
from .model import (
    AGENT_TRANSITIONS,
    AUTO_PAUSE_NO_ANSWER,
    CALLER_TRANSITIONS,
    Agent,
    AgentState,
    AnnounceAndHangup,
    Busy,
    Caller,
    CallerState,
    EmptyRule,
    OverflowTarget,
    Queue,
    Strategy,
    ToQueue,
    ToRecording,
)
from .settings import format_target, parse_target, queue_from_settings, queue_settings
from .strategies import STRATEGIES, RoutingContext, RoutingStats

__all__ = [
    "CallCenter",
    "AgentStatus",
    "WaitingCaller",
    "LiveCall",
    "Agent",
    "Queue",
    "Caller",
    "AgentState",
    "CallerState",
    "AGENT_TRANSITIONS",
    "CALLER_TRANSITIONS",
    "AUTO_PAUSE_NO_ANSWER",
    "Strategy",
    "EmptyRule",
    "ToQueue",
    "ToRecording",
    "AnnounceAndHangup",
    "Busy",
    "OverflowTarget",
    "Action",
    "OfferCall",
    "CancelOffer",
    "CancelReason",
    "BridgeCallerToAgent",
    "Overflow",
    "Reject",
    "LeaveReason",
    "OfferFailure",
    "PlayAnnouncement",
    "AgentStateChanged",
    "AgentPauseChanged",
    "CallerStateChanged",
    "WrapUpEnded",
    "QueueMetricsChanged",
    "QueueStats",
    "AgentStats",
    "MetricsFold",
    "interval_stats",
    "stored_reports",
    "queue_from_settings",
    "queue_settings",
    "parse_target",
    "format_target",
    "STRATEGIES",
    "RoutingContext",
    "RoutingStats",
]
