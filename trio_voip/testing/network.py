"""An in-memory SIP network for tests: transports that deliver parsed messages to each other.

:class:`MemoryNetwork` hands out :class:`MemoryTransport` objects with the methods of
:class:`~trio_voip.sip.transport.TransportLayer` that a SIP endpoint uses (``run``,
``inbound``, ``send_request``, ``send_response``, ``local_addresses``), so a
:class:`~trio_voip.sip.stack.SipEndpoint` runs on it unchanged -- deterministically, and with
``trio.testing.MockClock`` in virtual time.

Every message is serialised and parsed again on delivery (the receiver never shares objects
with the sender) and logged in :attr:`MemoryNetwork.log`. UDP datagrams may be lost: at random
(``loss``, from a seeded generator) or when the ``drop`` predicate says so. TCP is never lossy.
A UDP datagram to an address nobody listens on is lost silently, like on a real network; a TCP
send to such an address raises :class:`~trio_voip.errors.TransportError` (connection refused).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import trio

from trio_voip.errors import SipParseError, TransportError
from trio_voip.sip.message import Request, Response, parse_message
from trio_voip.sip.transport import Inbound, LocalAddress, Source

__all__ = ["Packet", "MemoryNetwork", "MemoryTransport"]

_TRANSPORTS = ("UDP", "TCP")


@attrs.frozen
class Packet:
    """One message handed to the network (``delivered`` False: lost or nobody listening)."""

    time: float
    transport: str
    source: tuple[str, int]
    destination: tuple[str, int]
    data: bytes
    delivered: bool

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


class MemoryNetwork:
    """A set of in-memory transports addressed by (host, port); see the module docstring."""

    def __init__(
        self,
        *,
        loss: float = 0.0,
        seed: int = 0,
        drop: Callable[[Packet], bool] | None = None,
    ) -> None:
        self.loss = loss
        self.drop = drop
        self.log: list[Packet] = []
        self._random = random.Random(seed)
        self._listening: dict[tuple[str, int], MemoryTransport] = {}
        # Addresses cut off the network (their transports still run): as if the host died.
        self.unreachable: set[tuple[str, int]] = set()

    def transport(self, host: str = "127.0.0.1", port: int = 5060) -> MemoryTransport:
        """A transport that will listen on host:port (UDP and TCP) once running."""
        return MemoryTransport(self, host, port)

    def sent(self, first_line_prefix: str = "") -> list[Packet]:
        """Logged packets whose first line starts with the prefix (e.g. ``"INVITE"``)."""
        return [p for p in self.log if p.first_line.startswith(first_line_prefix)]

    def _deliver(
        self,
        transport: str,
        sender: MemoryTransport,
        destination: tuple[str, int],
        message: Request | Response,
    ) -> None:
        data = bytes(message)
        receiver = None if destination in self.unreachable else self._listening.get(destination)
        lost = transport == "UDP" and (
            (self.loss > 0 and self._random.random() < self.loss)
            or (
                self.drop is not None
                and self.drop(
                    Packet(trio.current_time(), transport, sender.address, destination, data, False)
                )
            )
        )
        delivered = receiver is not None and not lost and receiver._accept(transport, sender, data)
        self.log.append(
            Packet(trio.current_time(), transport, sender.address, destination, data, delivered)
        )
        if receiver is None and transport == "TCP":
            raise TransportError(f"connection refused by {destination[0]}:{destination[1]}")


class MemoryTransport:
    """One endpoint's transport on a :class:`MemoryNetwork`."""

    def __init__(
        self, network: MemoryNetwork, host: str, port: int, *, inbound_capacity: int = 1000
    ) -> None:
        self.network = network
        self.host = host
        self.port = port
        self.dropped = 0  # unparseable or inbound channel full
        self._inbound_send, self.inbound = trio.open_memory_channel[Inbound](inbound_capacity)
        self._running = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def local_addresses(self) -> list[LocalAddress]:
        return [LocalAddress(t, self.host, self.port) for t in _TRANSPORTS]

    async def run(
        self, *, task_status: trio.TaskStatus[list[LocalAddress]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.address in self.network._listening:
            raise TransportError(f"{self.host}:{self.port} is already in use")
        self.network._listening[self.address] = self
        self._running = True
        try:
            task_status.started(self.local_addresses)
            await trio.sleep_forever()
        finally:
            self._running = False
            del self.network._listening[self.address]
            self._inbound_send.close()

    async def send_request(
        self, request: Request, host: str, port: int, transport: str = "UDP"
    ) -> Source:
        """Send to host:port; like the real transport, stamps our sent-by on the top Via."""
        transport = self._check(transport)
        try:
            via = request.top_via
        except SipParseError as exc:
            raise TransportError(f"request has no usable Via: {exc}") from exc
        vias = request.headers.get_all("Via")
        stamped = attrs.evolve(via, transport=transport, host=self.host, port=self.port)
        request.headers.set("Via", ", ".join([str(stamped), *vias[1:]]))
        await trio.lowlevel.checkpoint()
        self.network._deliver(transport, self, (host, port), request)
        return Source(transport, host, port, self.host, self.port)

    async def send_response(self, response: Response, source: Source | None = None) -> None:
        """Back to ``source``, else to the top Via (received/rport, else sent-by, port 5060)."""
        if source is not None:
            transport = self._check(source.transport)
            destination = (source.host, source.port)
        else:
            try:
                via = response.top_via
            except SipParseError as exc:
                raise TransportError(f"response has no usable Via: {exc}") from exc
            transport = self._check(via.transport)
            destination = (via.received or via.host, via.rport or via.port or 5060)
        await trio.lowlevel.checkpoint()
        self.network._deliver(transport, self, destination, response)

    def _check(self, transport: str) -> str:
        if not self._running:
            raise TransportError("transport is not running")
        transport = transport.upper()
        if transport not in _TRANSPORTS:
            raise TransportError(f"unsupported transport {transport!r}")
        return transport

    def _accept(self, transport: str, sender: MemoryTransport, data: bytes) -> bool:
        try:
            message = parse_message(data)
        except SipParseError:
            self.dropped += 1
            return False
        if isinstance(message, Request):
            via = message.top_via
            if via.has_rport and via.rport is None:
                # RFC 3581, as the real transport does it
                stamped = via.with_param("rport", str(sender.port))
                stamped = stamped.with_param("received", sender.host)
                vias = message.headers.get_all("Via")
                message.headers.set("Via", ", ".join([str(stamped), *vias[1:]]))
        source = Source(transport, sender.host, sender.port, self.host, self.port)
        try:
            self._inbound_send.send_nowait(Inbound(message, source))
        except (trio.WouldBlock, trio.BrokenResourceError):
            self.dropped += 1
            return False
        return True
