"""Start `examples/uas.py`'s MinimalUas in-process on ephemeral loopback ports."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from trio_voip.sip.stack import SipEndpoint
from trio_voip.sip.transaction import TimerConfig
from trio_voip.sip.transport import TransportLayer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from uas import MinimalUas  # noqa: E402


async def start_uas(nursery: trio.Nursery, config: TimerConfig = TimerConfig()):
    """Returns (uas, {"UDP": port, "TCP": port}); UDP and TCP share one port number."""
    for _ in range(20):  # the ephemeral UDP port may be taken on TCP: try another
        transport = TransportLayer([("UDP", "127.0.0.1", 0)])
        probe = SipEndpoint(transport)
        async with trio.open_nursery() as inner:
            addresses = await inner.start(probe.run)
            port = addresses[0].port
            inner.cancel_scope.cancel()
        try:
            transport = TransportLayer([("UDP", "127.0.0.1", port), ("TCP", "127.0.0.1", port)])
            endpoint = SipEndpoint(transport, config=config)
            await nursery.start(endpoint.run)
            break
        except OSError:
            continue
    uas = MinimalUas(endpoint, "127.0.0.1")
    await nursery.start(uas.run)
    return uas, port
