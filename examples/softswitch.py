"""The softswitch of ``trio-voip serve``, put together in code instead of TOML, with a call log.

    python examples/softswitch.py [--sip-port 5060] [--http-port 8080] [--store FILE]

Two users (alice/wonderland, bob/builder) register and call each other by name; dialing 600
queues the caller (music on hold) for the call engine, which offers it to the agent of the two
idle longest (5 s of wrap-up after each call). The supervisor page is on
http://127.0.0.1:8080/. Every session and bridge event is printed as it happens. Ctrl-C ends
the live calls with BYE. Agents, queues and call records are kept in ``callcenter.sqlite``
(``--store ""``: nowhere).
"""

from __future__ import annotations

import argparse
import signal

import trio

from trio_voip.softswitch import (
    HttpConfig,
    QueueConfig,
    RtpConfig,
    SipConfig,
    Softswitch,
    SoftswitchConfig,
    SupervisorServer,
    UserConfig,
)
from trio_voip.softswitch.config import CallCenterConfig

__all__ = ["make_config", "log_events", "main"]


def make_config(sip_port: int, http_port: int, store: str | None) -> SoftswitchConfig:
    return SoftswitchConfig(
        sip=SipConfig(host="127.0.0.1", port=sip_port),
        rtp=RtpConfig(start=20000, end=20999, relay=True),
        http=HttpConfig(port=http_port),
        callcenter=CallCenterConfig(store=store),
        users=(UserConfig("alice", "wonderland", "Alice"), UserConfig("bob", "builder", "Bob")),
        queues=(QueueConfig("600", "everyone", strategy="longest-idle", wrap_up_time=5.0,
                            members=("alice", "bob")),),
    )


async def log_events(events: trio.MemoryReceiveChannel[object]) -> None:
    async with events:
        async for event in events:
            print(f"{trio.current_time():10.3f}  {event}", flush=True)


async def run(config: SoftswitchConfig) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            switch: Softswitch = await nursery.start(Softswitch(config).run)
            coordinator = switch.coordinator
            nursery.start_soon(log_events, coordinator.subscribe_to_session_events())
            nursery.start_soon(log_events, coordinator.subscribe_to_bridge_events())
            port = await nursery.start(
                SupervisorServer(switch).run, config.http.host, config.http.port
            )
            for address in coordinator.addresses:
                print(f"SIP on {address.transport} {address.host}:{address.port}", flush=True)
            print(f"supervisor page on http://{config.http.host}:{port}/", flush=True)
            async for _ in signals:
                print(f"stopping: {len(coordinator.calls)} live call(s) get a BYE", flush=True)
                nursery.cancel_scope.cancel()
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sip-port", type=int, default=5060)
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--store", default="callcenter.sqlite")
    args = parser.parse_args()
    trio.run(run, make_config(args.sip_port, args.http_port, args.store))


if __name__ == "__main__":
    main()
