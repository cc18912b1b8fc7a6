"""An in-memory SIP network for tests: transports that deliver parsed messages to each other.

:class:`MemoryNetwork` hands out :class:`MemoryTransport` objects with the methods of
:class:`~trio_voip.sip.transport.TransportLayer` that a SIP endpoint uses (``run``,
``inbound``, ``send_request``, ``send_response``, ``local_addresses``), so a
:class:`~trio_voip.sip.stack.SipEndpoint` runs on it unchanged -- deterministically, and with
``trio.testing.MockClock`` in virtual time.

Every message is serialised and parsed again on delivery (the receiver never shares objects
with the sender) and logged in :attr:`MemoryNetwork.log`, in the order it was sent.

The network can be impaired (:class:`Impairments`: ``loss``, ``duplicate``, ``reorder``,
``delay`` + ``jitter``), for the whole network or per link (``network.links[(source,
destination)]``). Every random choice comes from one generator seeded with ``seed`` (see
below for what that reproduces). UDP datagrams may also be lost when the ``drop`` predicate
says so. TCP only ever gets delayed: it is never lost, duplicated or reordered.

A message that is not delivered at once waits in one heap run by :meth:`MemoryNetwork.run`
(a single task per network, sleeping until the next arrival, so ``MockClock(autojump_threshold=0)``
gets through any delay instantly); start it with ``await nursery.start(network.run)``. Without
impairments that delay anything, delivery is immediate and ``run`` is not needed::

    network = MemoryNetwork(loss=0.1, duplicate=0.05, reorder=0.05, delay=0.02, jitter=0.06)
    network.links[(alice, bob)] = Impairments(loss=0.5)  # one direction of one pair only
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        ...  # endpoints on network.transport(host, port); network.stats counts what happened

A seed and a configuration reproduce the network's choices exactly for a given sequence of
sends. Trio runs tasks that
are ready at the same instant in a shuffled order, and SIP endpoints pick random tags and
branches, so whole runs of several endpoints vary from run to run even with one seed: tests
over them assert what must hold for every such run.

A UDP datagram to an address nobody listens on (at arrival) is lost silently, like on a real
network; a TCP send to such an address raises :class:`~trio_voip.errors.TransportError`
(connection refused).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable

import attrs
import trio

from trio_voip.errors import SipParseError, TransportError, TrioVoipError
from trio_voip.sip.message import Request, Response, parse_message
from trio_voip.sip.transport import Inbound, LocalAddress, Source

__all__ = ["Impairments", "NetworkStats", "Packet", "MemoryNetwork", "MemoryTransport"]

_TRANSPORTS = ("UDP", "TCP")

Address = tuple[str, int]


@attrs.frozen
class Packet:
    """One message handed to the network, logged when sent (``time``).

    ``delivered`` is False while the message is in flight and stays False when it was lost or
    nobody took it; ``arrived`` is when its first copy was delivered.
    """

    time: float
    transport: str
    source: Address
    destination: Address
    data: bytes
    delivered: bool
    arrived: float | None = None

    @property
    def first_line(self) -> str:
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


@attrs.frozen
class Impairments:
    """What a link does to the datagrams on it (TCP only gets ``delay`` and ``jitter``).

    ``loss``, ``duplicate`` and ``reorder`` are probabilities per datagram. Every datagram takes
    ``delay`` plus a uniform share of ``jitter`` seconds, but never overtakes an earlier one on
    its link -- except the ``reorder`` ones, which are held back ``reorder_hold`` seconds more
    and so are overtaken by whatever follows them in that time.
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    reorder_hold: float = 0.05

    def __attrs_post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise TrioVoipError(f"{name} must be a probability in [0, 1], not {value!r}")
        for name in ("delay", "jitter", "reorder_hold"):
            value = getattr(self, name)
            if not 0.0 <= value < math.inf:
                raise TrioVoipError(f"{name} must be finite seconds >= 0, not {value!r}")


@attrs.define
class NetworkStats:
    """Counters since the network was made.

    ``sent`` counts messages handed to the network, ``delivered`` the copies receivers took
    (duplicates included), ``lost`` the UDP datagrams dropped by ``loss`` or ``drop``,
    ``duplicated`` the extra copies made and ``reordered`` the datagrams held back.
    """

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0


@attrs.define
class _Lane:
    """The in-order traffic on one (transport, source, destination): nothing overtakes ``tail``."""

    tail: float
    pending: int = 0


@attrs.define
class _InFlight:
    transport: str
    sender: MemoryTransport
    destination: Address
    data: bytes
    log_index: int
    lane: tuple[str, Address, Address] | None  # None: a held-back datagram, outside the order


class MemoryNetwork:
    """A set of in-memory transports addressed by (host, port); see the module docstring."""

    def __init__(
        self,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        delay: float = 0.0,
        jitter: float = 0.0,
        reorder_hold: float = 0.05,
        seed: int = 0,
        drop: Callable[[Packet], bool] | None = None,
    ) -> None:
        self.impairments = Impairments(
            loss=loss,
            duplicate=duplicate,
            reorder=reorder,
            delay=delay,
            jitter=jitter,
            reorder_hold=reorder_hold,
        )
        # Per-link impairments, used instead of ``impairments`` for (source, destination).
        self.links: dict[tuple[Address, Address], Impairments] = {}
        self.drop = drop
        self.log: list[Packet] = []
        self.stats = NetworkStats()
        self._random = random.Random(seed)
        self._listening: dict[Address, MemoryTransport] = {}
        # Addresses cut off the network (their transports still run): as if the host died.
        self.unreachable: set[Address] = set()
        self._heap: list[tuple[float, int, _InFlight]] = []
        self._seq = itertools.count()
        self._lanes: dict[tuple[str, Address, Address], _Lane] = {}
        self._running = False
        self._wakeup = trio.Event()

    @property
    def loss(self) -> float:
        return self.impairments.loss

    @loss.setter
    def loss(self, value: float) -> None:
        self.impairments = attrs.evolve(self.impairments, loss=value)

    @property
    def in_flight(self) -> int:
        """Copies sent and not yet arrived."""
        return len(self._heap)

    def transport(self, host: str = "127.0.0.1", port: int = 5060) -> MemoryTransport:
        """A transport that will listen on host:port (UDP and TCP) once running."""
        return MemoryTransport(self, host, port)

    def sent(self, first_line_prefix: str = "") -> list[Packet]:
        """Logged packets whose first line starts with the prefix (e.g. ``"INVITE"``)."""
        return [p for p in self.log if p.first_line.startswith(first_line_prefix)]

    def impairments_for(self, source: Address, destination: Address) -> Impairments:
        return self.links.get((source, destination), self.impairments)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver delayed messages when they are due; the network's one scheduler task.

        Messages still in flight when it stops are dropped.
        """
        if self._running:
            raise TrioVoipError("the network scheduler is already running")
        self._running = True
        try:
            task_status.started()
            while True:
                now = trio.current_time()
                while self._heap and self._heap[0][0] <= now:
                    self._arrive(heapq.heappop(self._heap)[2], now)
                self._wakeup = trio.Event()
                with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                    await self._wakeup.wait()
        finally:
            self._running = False
            self._heap.clear()
            self._lanes.clear()

    def _deliver(
        self,
        transport: str,
        sender: MemoryTransport,
        destination: Address,
        message: Request | Response,
    ) -> None:
        data = bytes(message)
        now = trio.current_time()
        impairments = self.impairments_for(sender.address, destination)
        self.stats.sent += 1
        if transport == "TCP":
            if self._receiver(destination) is None:
                self.log.append(Packet(now, transport, sender.address, destination, data, False))
                raise TransportError(f"connection refused by {destination[0]}:{destination[1]}")
            copies, held = 1, False
        else:
            # Draw only for the impairments in use: a loss-only network keeps the exact
            # sequence of earlier versions, so seeds in existing tests mean the same thing.
            if (impairments.loss > 0 and self._random.random() < impairments.loss) or (
                self.drop is not None
                and self.drop(Packet(now, transport, sender.address, destination, data, False))
            ):
                self.stats.lost += 1
                self.log.append(Packet(now, transport, sender.address, destination, data, False))
                return
            copies = 1
            if impairments.duplicate > 0 and self._random.random() < impairments.duplicate:
                copies = 2
                self.stats.duplicated += 1
            held = impairments.reorder > 0 and self._random.random() < impairments.reorder
            if held:
                self.stats.reordered += 1
        latency = impairments.delay
        if impairments.jitter > 0:
            latency += self._random.uniform(0.0, impairments.jitter)
        lane_key = None if held else (transport, sender.address, destination)
        lane = None if lane_key is None else self._lanes.get(lane_key)
        due = now + latency + (impairments.reorder_hold if held else 0.0)
        if lane is not None:
            due = max(due, lane.tail)
        log_index = len(self.log)
        if due <= now and lane is None and not held:
            self.log.append(Packet(now, transport, sender.address, destination, data, False))
            for _ in range(copies):
                self._arrive(_InFlight(transport, sender, destination, data, log_index, None), now)
            return
        if not self._running:
            raise TrioVoipError(
                "a delayed message needs the network's scheduler: nursery.start(network.run)"
            )
        self.log.append(Packet(now, transport, sender.address, destination, data, False))
        if lane_key is not None:
            if lane is None:
                lane = self._lanes[lane_key] = _Lane(due)
            lane.tail = due
            lane.pending += copies
        for _ in range(copies):
            item = _InFlight(transport, sender, destination, data, log_index, lane_key)
            entry = (due, next(self._seq), item)
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._wakeup.set()

    def _receiver(self, destination: Address) -> MemoryTransport | None:
        return None if destination in self.unreachable else self._listening.get(destination)

    def _arrive(self, item: _InFlight, now: float) -> None:
        if item.lane is not None:
            lane = self._lanes[item.lane]
            lane.pending -= 1
            if lane.pending == 0:
                del self._lanes[item.lane]
        receiver = self._receiver(item.destination)
        if receiver is None or not receiver._accept(item.transport, item.sender, item.data):
            return
        self.stats.delivered += 1
        packet = self.log[item.log_index]
        if not packet.delivered:
            self.log[item.log_index] = attrs.evolve(packet, delivered=True, arrived=now)


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
