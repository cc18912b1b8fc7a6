"""The whole softswitch in one task: :func:`serve` runs SIP/RTP (:class:`Softswitch`) and the
supervisor page (:class:`SupervisorServer`), and prints where everything listens."""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs
import trio

from trio_voip.session.builder import TransportFactory
from trio_voip.softswitch.app import Softswitch
from trio_voip.softswitch.config import SoftswitchConfig
from trio_voip.softswitch.web import SupervisorServer

__all__ = ["Running", "serve", "describe"]


@attrs.frozen
class Running:
    """A started softswitch: its handler (and coordinator) and the supervisor page's URL
    (None with ``http.enabled = false``)."""

    softswitch: Softswitch
    http_url: str | None


def describe(running: Running) -> list[str]:
    """Where everything listens and where the call engine's store is, one line each (real
    ports, also when configured as 0)."""
    config = running.softswitch.config
    coordinator = running.softswitch.coordinator
    sip = ", ".join(f"{a.transport} {a.host}:{a.port}" for a in coordinator.addresses)
    relay = "relayed" if config.rtp.relay else "not relayed"
    lines = [
        f"SIP      {sip} (domain {coordinator.config.domain})",
        f"RTP      ports {config.rtp.start}-{config.rtp.end} on {config.sip.host} (media {relay})",
        f"HTTP     {running.http_url} (supervisor page; /api/state, WebSocket /ws)"
        if running.http_url else "HTTP     off",
    ]
    for user in config.users:
        password = f", password {user.password}" if config.demo_users else ""
        name = f" ({user.display_name})" if user.display_name else ""
        lines.append(f"user     {user.name}{name}{password}")
    for queue in config.queues:
        members = ", ".join(queue.members) or "no members"
        lines.append(f"queue    {queue.number} {queue.name}: {queue.strategy}, agents {members}")
    store = config.callcenter.store
    lines.append(f"store    {os.path.abspath(store)} (agents, queues, call records)" if store
                 else "store    none (agents and queues as configured at each start)")
    if config.demo_users and not _loopback(config.sip.host):
        lines.append(
            "warning  the demo users' passwords are published: listen on 127.0.0.1 "
            "or configure [[users]]"
        )
    return lines


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost")


async def serve(
    config: SoftswitchConfig,
    *,
    transport_factory: TransportFactory | None = None,
    echo: Callable[[str], None] = print,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the softswitch of ``config`` until cancelled (live calls end with BYE first);
    ``echo`` gets the :func:`describe` lines once everything listens."""
    async with trio.open_nursery() as nursery:
        softswitch: Softswitch = await nursery.start(
            Softswitch(config, transport_factory=transport_factory).run
        )
        url = None
        http = config.http
        if http.enabled:
            port = await nursery.start(SupervisorServer(softswitch).run, http.host, http.port)
            host = f"[{http.host}]" if ":" in http.host else http.host
            url = f"http://{host}:{port}/"
        running = Running(softswitch, url)
        for line in describe(running):
            echo(line)
        task_status.started(running)
