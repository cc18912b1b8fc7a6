"""The runnable softswitch: ``trio-voip serve [--config FILE]``.

A :class:`~trio_voip.session.SessionCoordinator` with users who register (Digest auth) and
call each other by extension, queues at dialable numbers, media relayed and bridged, and a
supervisor web page with live state over a WebSocket. Configured from TOML
(:mod:`.config`); with no file it runs the demo defaults. In code::

    from trio_voip.softswitch import SoftswitchConfig, serve

    async with trio.open_nursery() as nursery:
        running = await nursery.start(serve, SoftswitchConfig())
        print(running.http_url, running.softswitch.state())
"""

from trio_voip.softswitch.app import (
    STATE_VERSION,
    Presence,
    QueueRouter,
    Softswitch,
    failure_status,
    make_builder,
)
from trio_voip.softswitch.config import (
    DEMO_QUEUES,
    DEMO_USERS,
    EXAMPLE_CONFIG,
    STRATEGIES,
    CallCenterConfig,
    CallsConfig,
    HttpConfig,
    QueueConfig,
    RtpConfig,
    SipConfig,
    SoftswitchConfig,
    UserConfig,
    load_config,
    parse_config,
)
from trio_voip.softswitch.server import Running, describe, serve
from trio_voip.softswitch.web import SupervisorServer

__all__ = [
    "STATE_VERSION",
    "Presence",
    "QueueRouter",
    "Softswitch",
    "failure_status",
    "make_builder",
    "DEMO_QUEUES",
    "DEMO_USERS",
    "EXAMPLE_CONFIG",
    "STRATEGIES",
    "CallCenterConfig",
    "CallsConfig",
    "HttpConfig",
    "QueueConfig",
    "RtpConfig",
    "SipConfig",
    "SoftswitchConfig",
    "UserConfig",
    "load_config",
    "parse_config",
    "Running",
    "describe",
    "serve",
    "SupervisorServer",
]
