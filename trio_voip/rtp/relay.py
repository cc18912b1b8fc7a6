"""An RTP/RTCP relay: media endpoints on local ports, bridged in pairs, with safe latching.

The relay is a Trio service started in a nursery its user owns::

    relay = RtpRelay(PortAllocator(20000, 20999))
    await nursery.start(relay.run)
    a = relay.open_endpoint(("192.0.2.1", 4000))   # address from the caller's SDP
    b = relay.open_endpoint(("192.0.2.2", 5000))   # address from the callee's SDP
    relay.connect(a, b)                            # a's packets go out of b to b's remote

Hot path. Every endpoint socket is registered in one level-triggered epoll set, and the
relay's own task is the only one waiting: it parks in ``trio.lowlevel.wait_readable`` on the
epoll fd, and each wake-up takes rounds of ``epoll.poll(0)``, one datagram per ready socket per
round (non-blocking ``recvfrom_into`` into one reused buffer), until nothing is ready or a
budget runs out. Each packet is forwarded with a non-blocking ``sendto`` of a memoryview slice.
No await, no copy and no task switch per packet, and under load one Trio wake-up serves
hundreds of calls (a task per socket paid one wake-up per packet: about 17 us against 6 us of
relay CPU per packet with every socket holding one packet, see bench/bench_relay.py --flood).
A socket holding more waits for the next round, so a flooded port cannot starve the others,
and no ``recvfrom`` is spent finding a socket empty. A send that would block is dropped and
counted, never waited for: late audio is worse than lost audio.

Latching policy (symmetric RTP, RFC 4961 behaviour for callers behind NAT, without "RTP bleed"):

* A *latch window* of ``latch_window`` seconds opens when the endpoint is opened and again on
  every :meth:`MediaEndpoint.set_remote` (a new offer/answer).
* Inside the window, the first packet that looks like media -- version 2 RTP header (or an RTCP
  header on an RTCP port), and a payload type from ``payload_types`` when the endpoint was
  given some -- latches its source: the relay sends to where packets really come from, whatever
  the SDP said. Only the first source latches; once latched the address is fixed.
* Outside the window, only the latched address (or, if nothing latched, the SDP address) is
  accepted. Packets from any other source are dropped and counted in
  ``stats.foreign_dropped``: never forwarded and never re-latched, so a third party that learns
  the port cannot hijack or eavesdrop on the stream after the call has settled.
* RTP and RTCP (on port + 1) latch independently; with rtcp-mux one address serves both.

Consumers that need to see the media (DTMF detection, recording, a mixer) add a *tap* with
:meth:`MediaEndpoint.add_tap`: a plain function called with a memoryview of each accepted packet
and whether it is RTCP, before the packet is forwarded. The view is only valid during the call
(the buffer is reused), so a tap copies what it keeps. A tap that raises is counted in
``stats.hook_errors`` and removed, so a broken consumer never stops the call's media. With no
taps the hot path pays one truth test of an empty tuple per packet.

Audio the relay generates itself -- conference mixes, tones, prompts, music on hold -- comes
from ``relay.ticker``, one :class:`~trio_voip.rtp.ticker.MediaTicker` task per relay on a
20 ms clock, sending from the endpoints' sockets with :meth:`MediaEndpoint.send_rtp`.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import select
import socket
import struct
from collections.abc import Callable, Collection
from typing import Any, TypeAlias

import attrs
import trio

from trio_voip.errors import RtpError, TransportError
from trio_voip.rtp.ports import PortAllocator
from trio_voip.rtp.stats import ReceiverStats
from trio_voip.rtp.ticker import MediaTicker

__all__ = ["Address", "EndpointStats", "MediaEndpoint", "PacketHook", "RtpRelay", "SourceLatch"]

Address: TypeAlias = tuple[Any, ...]
PacketHook: TypeAlias = Callable[[memoryview, bool], None]

# Datagrams taken per wake-up before yielding to other tasks (about 2-5 ms of work), and
# sockets served per round of epoll.poll.
_BUDGET = 1024
_ROUND = 256
_RECV_BUFFER = 65536
_RTP_HEADER = 12
_RTCP_HEADER = 8
_FIXED = struct.Struct("!BBHII")


@attrs.define
class EndpointStats:
    """Counters of one endpoint. ``*_in`` count accepted packets received on its sockets,
    ``*_out`` packets sent out of its sockets (forwarded from its peer, or ``generated`` by the
    relay's media ticker: mixes and playback). ``suppressed`` counts its peer's packets not
    forwarded to it because it was playing."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    malformed: int = 0
    foreign_dropped: int = 0
    no_peer: int = 0
    send_dropped: int = 0
    send_errors: int = 0
    recv_errors: int = 0
    hook_errors: int = 0
    generated: int = 0
    suppressed: int = 0


def _normalize(host: str, port: int, family: socket.AddressFamily) -> Address:
    """The address tuple ``recvfrom`` reports for this peer, so the hot path compares tuples."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise RtpError(f"media address {host!r} is not an IP literal") from exc
    if not 0 < port < 65536:
        raise RtpError(f"media port {port} out of range")
    if family == socket.AF_INET6:
        if ip.version == 4:
            return (f"::ffff:{ip}", port, 0, 0)
        return (ip.compressed, port, 0, 0)
    if ip.version != 4:
        raise RtpError(f"IPv6 media address {host!r} on an IPv4 relay")
    return (str(ip), port)


@attrs.define
class SourceLatch:
    """The latching policy of one media port (module docstring), as a pure state machine.

    ``address`` is where the peer is believed to be: from SDP, then the latched source.
    ``fixed`` says it can no longer change until :meth:`rearm`. Time is an input (seconds on
    any monotonic clock), so the policy is tested without sockets or sleeping.
    """

    window: float
    address: Address | None = None
    payload_types: frozenset[int] | None = None
    fixed: bool = False
    latches: int = 0
    _until: float = attrs.field(default=0.0, repr=False)

    def rearm(self, now: float, address: Address | None) -> None:
        """A new offer/answer: take the SDP address and open the window again."""
        self.address = address
        self.fixed = False
        self._until = now + self.window

    def accept(self, addr: Address, now: float, payload_type: int | None) -> bool:
        """Whether a packet from ``addr`` is the peer's; may latch (and fix) ``addr``.

        ``payload_type`` is None for RTCP (no payload type to check). The hot path only calls
        this when ``addr != address or not fixed``.
        """
        if self.fixed:
            return addr == self.address
        if now > self._until:
            # Window closed without a latch: the SDP address is fixed from now on.
            if addr != self.address:
                return False
        elif (
            payload_type is not None
            and self.payload_types is not None
            and payload_type not in self.payload_types
        ):
            return False
        if addr != self.address:
            self.latches += 1
            self.address = addr
        self.fixed = True
        return True


@attrs.define(eq=False)
class MediaEndpoint:
    """One side of a call's media: an RTP socket on an even port and RTCP on the next one.

    Made by :meth:`RtpRelay.open_endpoint`. ``remote`` / ``rtcp_remote`` are where packets for
    this side are sent: from the SDP at first, replaced by the latched source (see the module
    docstring). ``receiver_stats`` follows the current SSRC received on RTP when the relay
    tracks RFC 3550 statistics.
    """

    relay: RtpRelay
    local_port: int
    rtcp_mux: bool
    _rtp_sock: socket.socket = attrs.field(repr=False)
    _rtcp_sock: socket.socket | None = attrs.field(repr=False)
    _rtp_latch: SourceLatch = attrs.field(repr=False)
    # The same object as _rtp_latch with rtcp-mux: one address for both.
    _rtcp_latch: SourceLatch = attrs.field(repr=False)
    # A tuple, replaced (never mutated) by add_tap/remove_tap: a tap may remove itself or
    # another tap while the hot path iterates.
    _taps: tuple[PacketHook, ...] = attrs.field(default=(), repr=False)
    stats: EndpointStats = attrs.field(factory=EndpointStats)
    receiver_stats: ReceiverStats | None = None
    peer: MediaEndpoint | None = attrs.field(default=None, repr=False)
    # Set by the relay's media ticker while a source plays into this endpoint: the peer's
    # packets are then not forwarded here (see trio_voip.rtp.ticker).
    playing: bool = False
    closed: bool = False

    @property
    def rtcp_port(self) -> int:
        """The local RTCP port (the RTP port itself with rtcp-mux)."""
        return self.local_port if self.rtcp_mux else self.local_port + 1

    @property
    def remote(self) -> Address | None:
        """Where RTP for this side goes: the SDP address, or the latched source."""
        return self._rtp_latch.address

    @property
    def rtcp_remote(self) -> Address | None:
        return self._rtcp_latch.address

    @property
    def latched(self) -> bool:
        """Whether the RTP source is fixed (latched, or the window closed on the SDP address)."""
        return self._rtp_latch.fixed

    @property
    def payload_types(self) -> frozenset[int] | None:
        return self._rtp_latch.payload_types

    @property
    def latches(self) -> int:
        """How many times a source other than the SDP address was latched (RTP and RTCP)."""
        if self.rtcp_mux:
            return self._rtp_latch.latches
        return self._rtp_latch.latches + self._rtcp_latch.latches

    @property
    def socket_count(self) -> int:
        """Sockets this endpoint holds open (0 once closed)."""
        if self.closed:
            return 0
        return 1 if self._rtcp_sock is None else 2

    @property
    def taps(self) -> tuple[PacketHook, ...]:
        """The taps currently attached, in call order."""
        return self._taps

    def add_tap(self, tap: PacketHook) -> None:
        """Call ``tap(view, rtcp)`` for every accepted packet (see the module docstring).

        Taps run in the order they were added. Adding a tap already attached raises RtpError.
        """
        if tap in self._taps:
            raise RtpError("this tap is already attached to the endpoint")
        self._taps = (*self._taps, tap)

    def remove_tap(self, tap: PacketHook) -> None:
        """Detach ``tap``. No-op when it is not attached (e.g. removed after it raised)."""
        if tap in self._taps:
            self._taps = tuple(t for t in self._taps if t != tap)

    def set_remote(
        self,
        host: str,
        port: int,
        *,
        rtcp_port: int | None = None,
        payload_types: Collection[int] | None = None,
    ) -> None:
        """Take the peer's media address from SDP (and ``a=rtcp``), and re-open the latch window.

        ``payload_types``, when given, are the only ones allowed to latch (the negotiated ones).
        """
        family = self._rtp_sock.family
        remote = _normalize(host, port, family)
        rtcp_remote = None if self.rtcp_mux else _normalize(host, rtcp_port or port + 1, family)
        if payload_types is not None:
            self._rtp_latch.payload_types = frozenset(payload_types)
        self._rearm(remote, rtcp_remote)

    def _rearm(self, remote: Address | None, rtcp_remote: Address | None) -> None:
        now = trio.current_time()
        self._rtp_latch.rearm(now, remote)
        if not self.rtcp_mux:
            self._rtcp_latch.rearm(now, rtcp_remote)

    def send_rtp(self, packet: bytes) -> bool:
        """Send one RTP packet generated here (not relayed) to the remote, without blocking.

        Returns whether it went out; a full socket buffer drops it (``send_dropped``), no
        remote address or a socket error counts in ``send_errors``.
        """
        stats = self.stats
        dest = self._rtp_latch.address
        if self.closed or dest is None:
            stats.send_errors += 1
            return False
        try:
            self._rtp_sock.sendto(packet, dest)
        except BlockingIOError:
            stats.send_dropped += 1
            return False
        except OSError:
            stats.send_errors += 1
            return False
        stats.packets_out += 1
        stats.bytes_out += len(packet)
        stats.generated += 1
        return True

    def close(self) -> None:
        """Stop relaying, close the sockets and give the ports back. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.peer is not None:
            self.peer.peer = None
            self.peer = None
        self.relay._forget(self)
        for sock in (self._rtp_sock, self._rtcp_sock):
            if sock is not None:
                sock.close()

    def _receive(self, sock: socket.socket, rtcp_port: bool) -> None:
        """Take one datagram from ``sock`` and forward it (the relay's drain loop calls this
        for each socket epoll reports readable)."""
        relay = self.relay
        buf = relay._buffer
        stats = self.stats
        try:
            n, addr = sock.recvfrom_into(buf)
        except BlockingIOError:
            return
        except OSError:
            # e.g. an ICMP error queued on the socket by an earlier send
            stats.recv_errors += 1
            return
        # Cheap validation: version 2, and RTCP packet types 192-223 (RFC 5761 4).
        if n < _RTCP_HEADER or buf[0] & 0xC0 != 0x80:
            stats.malformed += 1
            return
        second = buf[1]
        rtcp = 192 <= second <= 223 if self.rtcp_mux else rtcp_port
        if rtcp:
            if not 192 <= second <= 223:
                stats.malformed += 1
                return
            latch = self._rtcp_latch
            if (addr != latch.address or not latch.fixed) and not latch.accept(
                addr, trio.current_time(), None
            ):
                stats.foreign_dropped += 1
                return
            stats.rtcp_in += 1
        else:
            if n < _RTP_HEADER:
                stats.malformed += 1
                return
            latch = self._rtp_latch
            if (addr != latch.address or not latch.fixed) and not latch.accept(
                addr, trio.current_time(), second & 0x7F
            ):
                stats.foreign_dropped += 1
                return
            if relay.track_receiver_stats:
                self._track(buf, n)
        stats.packets_in += 1
        stats.bytes_in += n
        if self._taps:
            packet = relay._view[:n]
            for tap in self._taps:
                try:
                    tap(packet, rtcp)
                except Exception:
                    # A broken consumer must not stop the call's media: detach it.
                    stats.hook_errors += 1
                    self.remove_tap(tap)
            if self.closed:
                return
        peer = self.peer
        if peer is None:
            stats.no_peer += 1
            return
        if rtcp:
            dest = peer._rtcp_latch.address
            out = peer._rtcp_sock or peer._rtp_sock
        else:
            dest = peer._rtp_latch.address
            out = peer._rtp_sock
        if dest is None:
            stats.no_peer += 1
            return
        pstats = peer.stats
        if peer.playing:
            pstats.suppressed += 1
            return
        try:
            out.sendto(relay._view[:n], dest)
        except BlockingIOError:
            pstats.send_dropped += 1
            return
        except OSError:
            pstats.send_errors += 1
            return
        pstats.packets_out += 1
        pstats.bytes_out += n
        if rtcp:
            pstats.rtcp_out += 1

    def _track(self, buf: bytearray, n: int) -> None:
        first, second, seq, timestamp, ssrc = _FIXED.unpack_from(buf)
        rs = self.receiver_stats
        if rs is None or rs.ssrc != ssrc:
            rs = self.receiver_stats = ReceiverStats(ssrc, self.relay.clock_rate)
        rs.update(seq, timestamp, trio.current_time(), n - _RTP_HEADER)


@attrs.define(eq=False)
class RtpRelay:
    """A set of media endpoints served by one Trio service (:meth:`run`).

    ``latch_window`` is in seconds (see the module docstring). ``track_receiver_stats`` keeps
    RFC 3550 receiver statistics for each endpoint's RTP source; it is off by default because it
    costs about 0.7 us per packet against 5-7 us for the whole relay path (measured, see
    bench/bench_relay.py --flood 1 --receiver-stats). ``clock_rate`` is the RTP clock they assume.
    """

    allocator: PortAllocator
    host: str = "127.0.0.1"
    latch_window: float = 2.0
    track_receiver_stats: bool = False
    clock_rate: int = 8000
    _endpoints: set[MediaEndpoint] = attrs.field(init=False, factory=set, repr=False)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None, repr=False)
    # Every endpoint socket, level-triggered; one task waits on it (see _serve).
    _epoll: select.epoll | None = attrs.field(init=False, default=None, repr=False)
    # fd -> how the drain loop serves it (its endpoint's _receive for that socket).
    _sockets: dict[int, Callable[[], None]] = attrs.field(
        init=False, factory=dict, repr=False
    )
    _buffer: bytearray = attrs.field(
        init=False, factory=lambda: bytearray(_RECV_BUFFER), repr=False
    )
    _view: memoryview = attrs.field(init=False, repr=False)
    _family: socket.AddressFamily = attrs.field(init=False, repr=False)
    #: Mixes and playback into this relay's endpoints (runs in the relay's nursery).
    ticker: MediaTicker = attrs.field(init=False, factory=MediaTicker)

    def __attrs_post_init__(self) -> None:
        self._view = memoryview(self._buffer)
        try:
            version = ipaddress.ip_address(self.host).version
        except ValueError as exc:
            raise RtpError(f"relay host {self.host!r} is not an IP literal") from exc
        self._family = socket.AF_INET6 if version == 6 else socket.AF_INET
        if self.latch_window < 0:
            raise RtpError(f"latch window must not be negative, got {self.latch_window}")

    @property
    def endpoint_count(self) -> int:
        return len(self._endpoints)

    @property
    def socket_count(self) -> int:
        """Open sockets across all endpoints (0 after shutdown)."""
        return sum(e.socket_count for e in self._endpoints)

    async def run(
        self, *, task_status: trio.TaskStatus[RtpRelay] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; on the way out every endpoint is closed and its ports freed."""
        if self._nursery is not None:
            raise RtpError("this relay is already running")
        epoll = self._epoll = select.epoll()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.ticker.run)
                task_status.started(self)
                await self._serve(epoll)
        finally:
            self._nursery = None
            for endpoint in list(self._endpoints):
                endpoint.close()
            self._epoll = None
            epoll.close()

    async def _serve(self, epoll: select.epoll) -> None:
        """The hot loop: one wake-up serves every socket that has packets, however many."""
        wait_readable = trio.lowlevel.wait_readable
        poll = epoll.poll
        sockets = self._sockets
        while True:
            await wait_readable(epoll)
            budget = _BUDGET
            # One datagram per ready socket per round: level-triggered epoll reports a socket
            # again while it holds more, so sockets take turns and nobody pays for a recv
            # that finds nothing.
            while budget > 0 and (ready := poll(0, _ROUND)):
                budget -= len(ready)
                for fd, _ in ready:
                    # A tap may have closed an endpoint earlier in this round.
                    receive = sockets.get(fd)
                    if receive is not None:
                        receive()

    def open_endpoint(
        self,
        remote: tuple[str, int] | None = None,
        *,
        rtcp_mux: bool = False,
        rtcp_port: int | None = None,
        payload_types: Collection[int] | None = None,
    ) -> MediaEndpoint:
        """Bind a new endpoint on the next free even port (and port + 1 unless ``rtcp_mux``).

        A port that turns out to be bound by someone else is marked unusable in the allocator
        and the next one is tried. Raises PortsExhausted when none is left.
        """
        if self._nursery is None:
            raise RtpError("the relay is not running: start RtpRelay.run in a nursery first")
        rtp_sock, rtcp_sock, port = self._bind(rtcp_mux)
        rtp_latch = SourceLatch(self.latch_window)
        rtcp_latch = rtp_latch if rtcp_mux else SourceLatch(self.latch_window)
        endpoint = MediaEndpoint(
            self, port, rtcp_mux, rtp_sock, rtcp_sock, rtp_latch, rtcp_latch
        )
        try:
            if remote is not None:
                endpoint.set_remote(
                    remote[0], remote[1], rtcp_port=rtcp_port, payload_types=payload_types
                )
            else:
                if payload_types is not None:
                    rtp_latch.payload_types = frozenset(payload_types)
                endpoint._rearm(None, None)
        except BaseException:
            rtp_sock.close()
            if rtcp_sock is not None:
                rtcp_sock.close()
            self.allocator.release(port)
            raise
        self._endpoints.add(endpoint)
        for sock, rtcp_port in ((rtp_sock, False), (rtcp_sock, True)):
            if sock is not None:
                self._sockets[sock.fileno()] = functools.partial(
                    endpoint._receive, sock, rtcp_port
                )
                self._epoll.register(sock, select.EPOLLIN)
        return endpoint

    def _bind(self, rtcp_mux: bool) -> tuple[socket.socket, socket.socket | None, int]:
        while True:
            port = self.allocator.allocate(rtcp_mux=rtcp_mux)
            socks: list[socket.socket] = []
            try:
                for p in (port,) if rtcp_mux else (port, port + 1):
                    sock = socket.socket(self._family, socket.SOCK_DGRAM)
                    socks.append(sock)
                    sock.setblocking(False)
                    try:
                        sock.bind((self.host, p))
                    except OSError as exc:
                        if exc.errno == errno.EADDRINUSE:
                            self.allocator.mark_unusable(p)
                            raise _PortTaken from exc
                        raise TransportError(
                            f"cannot bind RTP port {self.host}:{p}: {exc}"
                        ) from exc
            except _PortTaken:
                for sock in socks:
                    sock.close()
                self.allocator.release(port)
                continue
            except BaseException:
                for sock in socks:
                    sock.close()
                self.allocator.release(port)
                raise
            return socks[0], (None if rtcp_mux else socks[1]), port

    def connect(self, a: MediaEndpoint, b: MediaEndpoint) -> None:
        """Bridge two endpoints: what arrives on one goes out of the other to its remote."""
        for endpoint in (a, b):
            if endpoint.relay is not self or endpoint.closed:
                raise RtpError(f"endpoint on port {endpoint.local_port} is not open on this relay")
        if a is b:
            raise RtpError("cannot connect an endpoint to itself")
        if (a.peer is not None and a.peer is not b) or (b.peer is not None and b.peer is not a):
            raise RtpError("endpoint already connected: disconnect it first")
        a.peer = b
        b.peer = a

    def disconnect(self, endpoint: MediaEndpoint) -> None:
        """Undo :meth:`connect`; packets then count as ``no_peer``. No-op when not connected."""
        peer = endpoint.peer
        if peer is not None:
            peer.peer = None
            endpoint.peer = None

    async def close_endpoint(self, endpoint: MediaEndpoint) -> None:
        """Close ``endpoint``; the relay never touches its sockets again."""
        endpoint.close()
        await trio.lowlevel.checkpoint()

    def _forget(self, endpoint: MediaEndpoint) -> None:
        if endpoint in self._endpoints:
            self._endpoints.discard(endpoint)
            for sock in (endpoint._rtp_sock, endpoint._rtcp_sock):
                if sock is not None:
                    del self._sockets[sock.fileno()]
                    if self._epoll is not None:
                        self._epoll.unregister(sock)
            self.allocator.release(endpoint.local_port)
            self.ticker.forget(endpoint)


class _PortTaken(RtpError):
    """Internal: the port pair was bound by someone else; try the next one."""
