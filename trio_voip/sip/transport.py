"""SIP transports on Trio: UDP and TCP, with the rules of RFC 3261 section 18 and RFC 3581.

:class:`TransportLayer` owns every socket: one receive loop per UDP socket, one accept loop per
TCP listener and one task per TCP connection, all in its own nursery, so cancelling
:meth:`TransportLayer.run` (or calling :meth:`TransportLayer.aclose`) closes everything.

The layer moves bytes and applies the transport rules; it does not retransmit or match
transactions. Inbound messages come out of :attr:`TransportLayer.inbound` with the
:class:`Source` they came from; a response is sent with that source so it goes back on the
same connection (18.2.2) or from the same UDP socket (RFC 3581 section 4).

Choices worth knowing:

- Requests are sent where the caller says (host, port, transport). RFC 3263 (NAPTR/SRV)
  resolution is the caller's job; a host name is resolved to its first address only.
- A UDP request over 1300 bytes moves to TCP (18.1.1) only if the layer was built with
  ``large_requests_over_tcp=True``; the default keeps UDP, because switching needs a peer that
  listens on TCP, which many UDP-only endpoints do not.
- Connections are indexed by the remote (ip, port) they are connected to, for both directions:
  an accepted connection is reused for requests to the address it came from.
- A datagram that cannot be parsed gets a stateless 4xx/5xx back only when it looks like a
  request with a Via; anything else is counted in :attr:`TransportLayer.stats` and dropped.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket as _stdsocket
from collections.abc import Iterable

import attrs
import trio

from trio_voip.errors import SipFramingError, SipParseError, TransportError
from trio_voip.sip.framing import DEFAULT_MAX_HEADER_BYTES, StreamFramer, header_fields
from trio_voip.sip.headers import Headers, Via
from trio_voip.sip.message import Request, Response, parse_message

__all__ = [
    "BindSpec",
    "Inbound",
    "LocalAddress",
    "Source",
    "TransportLayer",
    "TransportStats",
    "UDP_SIZE_LIMIT",
]

logger = logging.getLogger(__name__)

# RFC 3261 18.1.1: above this (path MTU unknown) a request should use a congestion-controlled
# transport.
UDP_SIZE_LIMIT = 1300
DEFAULT_PORT = 5060
_TRANSPORTS = ("UDP", "TCP")
_DATAGRAM_SIZE = 65535
_RECEIVE_SIZE = 65536
_WILDCARDS = ("0.0.0.0", "::", "")
# Errors an unconnected UDP socket may report for an earlier send (ICMP); the socket is fine.
_TRANSIENT_UDP_ERRNOS = frozenset(
    {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}
)
_TOKEN_BYTES = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)
# Headers a response copies from its request besides Via (RFC 3261 8.2.6.2), compact forms too.
_VIA_NAMES = frozenset({b"via", b"v"})
_TO_NAMES = frozenset({b"to", b"t"})
_RESPONSE_COPIED = frozenset({b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"})


@attrs.frozen
class BindSpec:
    """Where to listen: ``transport`` ("UDP"/"TCP"), ``host`` and ``port`` (0 = ephemeral).

    ``advertise`` is the host written in Via sent-by (a public or DNS name); by default the
    bound address, or for a wildcard bind the local address that routes to the destination.
    """

    transport: str
    host: str
    port: int = 0
    advertise: str | None = None


@attrs.frozen
class LocalAddress:
    """A bound socket: transport, host as bound, and the real port."""

    transport: str
    host: str
    port: int


@attrs.frozen
class Source:
    """Where a message came from, and where it arrived.

    ``connection`` is an opaque handle of the TCP connection (None for UDP); hand the whole
    Source back to :meth:`TransportLayer.send_response` to answer on the same flow.
    """

    transport: str
    host: str
    port: int
    local_host: str
    local_port: int
    connection: object | None = None


@attrs.frozen
class Inbound:
    """A received message and its source."""

    message: Request | Response
    source: Source


@attrs.define
class TransportStats:
    """Counters of a :class:`TransportLayer` (messages, not bytes)."""

    received: int = 0
    sent: int = 0
    parse_errors: int = 0
    # Stateless 4xx/5xx answers to requests that could not be parsed.
    rejected: int = 0
    # Every message received but not delivered: unparseable, not ours, inbound channel full.
    dropped: int = 0
    queue_full: int = 0
    foreign_responses: int = 0
    framing_errors: int = 0
    connections_accepted: int = 0
    connections_opened: int = 0


@attrs.define(eq=False)
class _Connection:
    stream: trio.SocketStream
    remote: tuple[str, int]
    local: tuple[str, int]
    send_lock: trio.Lock = attrs.Factory(trio.Lock)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        # Synchronous close: trio wakes a task blocked on this socket with ClosedResourceError.
        self.stream.socket.close()


@attrs.define(eq=False)
class _Endpoint:
    """A bound UDP socket or TCP listener."""

    spec: BindSpec
    address: LocalAddress
    family: int
    sock: trio.socket.SocketType


def _bare(host: str) -> str:
    return host[1:-1] if host[:1] == "[" and host[-1:] == "]" else host


def _norm(host: str) -> str:
    """Comparable form of a host: canonical text of an IP literal, else lower-case name."""
    host = _bare(host)
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(_bare(host))
    except ValueError:
        return False
    return True


def _family(ip: str) -> int:
    return _stdsocket.AF_INET6 if ":" in ip else _stdsocket.AF_INET


def _default_port(transport: str) -> int:
    return 5061 if transport.upper() == "TLS" else DEFAULT_PORT


def _replace_top_via(headers: Headers, via: Via) -> None:
    # Relative order among Via values is all that matters (RFC 3261 7.3.1), so the list is
    # rewritten as one field line in place of the first.
    vias = headers.get_all("Via")
    headers.set("Via", ", ".join([str(via), *vias[1:]]))


def _stamp_via(request: Request, host: str, port: int) -> None:
    """RFC 3261 18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via of an inbound request."""
    via = request.top_via
    stamped = via
    wants_rport = via.has_param("rport") and via.param("rport") is None
    if wants_rport:
        stamped = stamped.with_param("rport", str(port))
    if wants_rport or not _is_ip(via.host) or _norm(via.host) != _norm(host):
        stamped = stamped.with_param("received", host)
    if stamped is not via:
        _replace_top_via(request.headers, stamped)


def _reason_phrase(text: str) -> bytes:
    phrase = "".join(ch for ch in text if " " <= ch <= "~")[:100].strip()
    return (phrase or "Bad Request").encode("ascii")


def _rejection(data: bytes, error: SipParseError) -> bytes | None:
    """A stateless answer to an unparseable request, or None when it cannot be one.

    Only something that starts like a request (method token, not ACK) with a Via that parses
    gets an answer. From, To, Call-ID and CSeq are copied raw when they parse on their own (the
    broken one is often among them), so we never emit what we would refuse ourselves.
    """
    end = data.find(b"\r\n\r\n")
    head = data if end < 0 else data[:end]
    start = 0
    while head.startswith(b"\r\n", start):
        start += 2
    head = head[start:]
    line_end = head.find(b"\r\n")
    method = head[: line_end if line_end >= 0 else len(head)].split(b" ", 1)[0]
    # A status line starts "SIP/2.0", which is not a token ("/"), so responses end here too.
    if not method or not _TOKEN_BYTES.issuperset(method) or method == b"ACK":
        return None
    fields = header_fields(head)
    status = error.status if 400 <= error.status <= 699 else 400
    lines = [b"SIP/2.0 %d %s" % (status, _reason_phrase(error.reason))]
    lines += [name + b": " + value for name, value in fields if name.lower() in _VIA_NAMES]
    if len(lines) == 1 or not _parses(lines):
        return None
    for name, value in fields:
        lname = name.lower()
        if lname not in _RESPONSE_COPIED:
            continue
        if lname in _TO_NAMES and b";tag=" not in value.lower():
            # RFC 3261 8.2.6.2: a final response carries a To tag.
            value += b";tag=" + secrets.token_hex(8).encode("ascii")
        line = name + b": " + value
        if _parses([*lines, line]):
            lines.append(line)
    return _assemble(lines)


def _assemble(lines: list[bytes]) -> bytes:
    return b"\r\n".join([*lines, b"Content-Length: 0\r\n\r\n"])


def _parses(lines: list[bytes]) -> bool:
    try:
        parse_message(_assemble(lines))
    except SipParseError:
        return False
    return True


def _is_keepalive(data: bytes) -> bool:
    return not data.strip(b"\r\n")


def _local_ip_towards(ip: str) -> str:
    """The local address the routing table would use for ``ip`` (connect() on UDP sends nothing)."""
    try:
        with _stdsocket.socket(_family(ip), _stdsocket.SOCK_DGRAM) as probe:
            probe.connect((ip, 9))
            return str(probe.getsockname()[0])
    except OSError as exc:
        raise TransportError(f"no route to {ip}: {exc}") from exc


class TransportLayer:
    """UDP and TCP listeners plus outgoing TCP connections, run as one structured service.

    ``binds`` lists :class:`BindSpec` (or ``(transport, host, port)`` tuples). Start with
    ``addresses = await nursery.start(layer.run)``; it reports once every socket is bound, with
    :attr:`local_addresses`. Received messages arrive on :attr:`inbound`, a bounded channel
    (``inbound_capacity``): when it is full a UDP message is dropped (and counted) so the socket
    loop never stalls, while a TCP connection waits (backpressure on that peer only).
    """

    def __init__(
        self,
        binds: Iterable[BindSpec | tuple[str, str, int]],
        *,
        inbound_capacity: int = 1000,
        max_message_size: int = 65535,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        large_requests_over_tcp: bool = False,
        connect_timeout: float = 10.0,
        send_timeout: float = 10.0,
        backlog: int = 128,
    ) -> None:
        self._specs: list[BindSpec] = []
        for bind in binds:
            spec = bind if isinstance(bind, BindSpec) else BindSpec(*bind)
            spec = attrs.evolve(spec, transport=spec.transport.upper())
            if spec.transport not in _TRANSPORTS:
                raise TransportError(f"unsupported transport {spec.transport!r}")
            self._specs.append(spec)
        self._max_message_size = max_message_size
        self._max_header_bytes = max_header_bytes
        self._large_requests_over_tcp = large_requests_over_tcp
        self._connect_timeout = connect_timeout
        self._send_timeout = send_timeout
        self._backlog = backlog
        self._inbound_send, self.inbound = trio.open_memory_channel[Inbound](inbound_capacity)
        self.stats = TransportStats()
        self._udp: list[_Endpoint] = []
        self._tcp: list[_Endpoint] = []
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._live: set[_Connection] = set()
        self._connecting: dict[tuple[str, int], trio.Event] = {}
        # (host, port) pairs that name us in a Via sent-by (RFC 3261 18.1.2 response check).
        self._sent_by: set[tuple[str, int]] = set()
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._stop = trio.Event()
        self._stopped = trio.Event()

    # -- public API ----------------------------------------------------------------------------

    @property
    def local_addresses(self) -> list[LocalAddress]:
        return [endpoint.address for endpoint in self._udp + self._tcp]

    @property
    def open_connections(self) -> int:
        return len(self._live)

    async def run(
        self, *, task_status: trio.TaskStatus[list[LocalAddress]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind every socket, report :attr:`local_addresses`, then serve until cancelled/closed."""
        if self._started:
            raise TransportError("a TransportLayer runs once")
        self._started = True
        try:
            # Bound outside the nursery, so a bind error reaches the caller as itself.
            for spec in self._specs:
                await self._bind(spec)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for endpoint in self._udp:
                    nursery.start_soon(self._udp_loop, endpoint)
                for endpoint in self._tcp:
                    nursery.start_soon(self._accept_loop, endpoint)
                task_status.started(self.local_addresses)
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        finally:
            # Connection tasks closed their own sockets when the nursery cancelled them.
            self._nursery = None
            for endpoint in self._udp + self._tcp:
                endpoint.sock.close()
            self._inbound_send.close()
            self._stopped.set()

    async def aclose(self) -> None:
        """Stop serving and close every socket; returns once all tasks have ended."""
        if not self._started:
            self._started = True
            self._inbound_send.close()
            return
        self._stop.set()
        await self._stopped.wait()

    async def send_request(
        self, request: Request, host: str, port: int, transport: str = "UDP"
    ) -> Source:
        """Send ``request`` to host:port, filling the top Via's transport and sent-by.

        The request is changed in place (its top Via), so a retransmission sends the same bytes.
        Over TCP an open connection to host:port is reused, else one is opened. Returns the flow
        used. Raises :class:`TransportError` when there is no Via (the transaction layer adds it)
        or the message cannot be sent.
        """
        self._check_running()
        transport = transport.upper()
        if transport not in _TRANSPORTS:
            raise TransportError(f"unsupported transport {transport!r}")
        try:
            via = request.top_via
        except SipParseError as exc:
            raise TransportError(f"request has no usable Via: {exc}") from exc
        ip = await self._resolve(host, port)
        if transport == "UDP":
            endpoint = self._udp_endpoint(ip, None)
            sent_by = self._udp_sent_by(endpoint, ip)
            _replace_top_via(
                request.headers,
                attrs.evolve(via, transport="UDP", host=sent_by[0], port=sent_by[1]),
            )
            data = bytes(request)
            if len(data) <= UDP_SIZE_LIMIT or not self._large_requests_over_tcp:
                await self._sendto(endpoint, data, ip, port)
                return Source("UDP", ip, port, endpoint.address.host, endpoint.address.port)
            # 18.1.1: too large for UDP; the top Via must then say TCP.
        connection = await self._connection_to(ip, port)
        sent_by = self._tcp_sent_by(connection)
        _replace_top_via(
            request.headers, attrs.evolve(via, transport="TCP", host=sent_by[0], port=sent_by[1])
        )
        await self._send_on(connection, bytes(request))
        return Source("TCP", ip, port, connection.local[0], connection.local[1], connection)

    async def send_response(self, response: Response, source: Source | None = None) -> None:
        """Send ``response`` per RFC 3261 18.2.2 (and RFC 3581).

        On the request's connection if ``source`` has one that is still open; otherwise to the
        top Via's ``maddr``, else ``received`` (with ``rport`` if set), else sent-by, default
        port 5060; over UDP from the socket the request arrived on when ``source`` says which.
        """
        self._check_running()
        try:
            via = response.top_via
        except SipParseError as exc:
            raise TransportError(f"response has no usable Via: {exc}") from exc
        data = bytes(response)
        connection = source.connection if source is not None else None
        if isinstance(connection, _Connection) and not connection.closed:
            await self._send_on(connection, data)
            return
        transport = via.transport.upper()
        if transport not in _TRANSPORTS:
            raise TransportError(f"cannot send over {transport!r}")
        port = via.port or _default_port(transport)
        received = via.param("received")
        rport = via.param("rport")
        rport_port = int(rport) if rport is not None and rport.isdigit() else None
        host = via.param("maddr") or received or via.host
        ip = await self._resolve(host, port)
        if transport == "TCP":
            # rport names the request's connection; if that is gone, a new one goes to the
            # sent-by port, where the client listens (18.2.2).
            open_one = self._connections.get((ip, rport_port)) if rport_port else None
            if open_one is None or open_one.closed:
                open_one = await self._connection_to(ip, port)
            await self._send_on(open_one, data)
            return
        if rport_port is not None and not via.param("maddr"):
            port = rport_port
        local = (source.local_host, source.local_port) if source is not None else None
        await self._sendto(self._udp_endpoint(ip, local), data, ip, port)

    def _check_running(self) -> None:
        if self._nursery is None:
            raise TransportError("transport layer is not running")

    # -- binding and addresses -----------------------------------------------------------------

    async def _bind(self, spec: BindSpec) -> None:
        host = _bare(spec.host)
        family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
        kind = _stdsocket.SOCK_DGRAM if spec.transport == "UDP" else _stdsocket.SOCK_STREAM
        sock = trio.socket.socket(family, kind)
        try:
            if family == _stdsocket.AF_INET6:
                # Keep IPv4 and IPv6 binds independent of each other.
                sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, 1)
            if kind == _stdsocket.SOCK_STREAM:
                sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            await sock.bind((host, spec.port))
            if kind == _stdsocket.SOCK_STREAM:
                sock.listen(self._backlog)
        except OSError as exc:
            sock.close()
            raise TransportError(
                f"cannot bind {spec.transport} {spec.host}:{spec.port}: {exc}"
            ) from exc
        address = LocalAddress(spec.transport, host, sock.getsockname()[1])
        endpoint = _Endpoint(spec, address, family, sock)
        (self._udp if spec.transport == "UDP" else self._tcp).append(endpoint)
        if host not in _WILDCARDS:
            self._sent_by.add((_norm(host), address.port))
        if spec.advertise:
            self._sent_by.add((_norm(spec.advertise), address.port))

    async def _resolve(self, host: str, port: int) -> str:
        host = _bare(host)
        if _is_ip(host):
            return _norm(host)
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=_stdsocket.SOCK_DGRAM)
        except OSError as exc:
            raise TransportError(f"cannot resolve {host!r}: {exc}") from exc
        if not infos:
            raise TransportError(f"{host!r} has no address")
        return _norm(str(infos[0][4][0]))

    def _udp_endpoint(self, ip: str, local: tuple[str, int] | None) -> _Endpoint:
        family = _family(ip)
        candidates = [e for e in self._udp if e.family == family]
        if not candidates:
            raise TransportError(f"no UDP socket can reach {ip}")
        if local is not None:
            for endpoint in candidates:
                if (endpoint.address.host, endpoint.address.port) == local:
                    return endpoint
        return candidates[0]

    def _udp_sent_by(self, endpoint: _Endpoint, ip: str) -> tuple[str, int]:
        host = endpoint.spec.advertise or endpoint.address.host
        if host in _WILDCARDS:
            host = _local_ip_towards(ip)
            self._sent_by.add((_norm(host), endpoint.address.port))
        return host, endpoint.address.port

    def _tcp_sent_by(self, connection: _Connection) -> tuple[str, int]:
        """Our TCP listener's address if we have one (a peer that must reconnect for a response
        connects there), else the connection's own local address."""
        family = _family(connection.local[0])
        for endpoint in self._tcp:
            if endpoint.family == family:
                host = endpoint.spec.advertise or endpoint.address.host
                if host in _WILDCARDS:
                    host = connection.local[0]
                sent_by = (host, endpoint.address.port)
                break
        else:
            sent_by = connection.local
        self._sent_by.add((_norm(sent_by[0]), sent_by[1]))
        return sent_by

    def _is_ours(self, via: Via) -> bool:
        return (_norm(via.host), via.port or _default_port(via.transport)) in self._sent_by

    # -- receiving -----------------------------------------------------------------------------

    def _examine(self, data: bytes, source: Source) -> tuple[Inbound | None, bytes | None]:
        """Parse and apply the receive rules: (message to deliver, stateless reply to send)."""
        try:
            message = parse_message(data, max_size=self._max_message_size)
            if isinstance(message, Request):
                _stamp_via(message, source.host, source.port)
            elif not self._is_ours(message.top_via):
                # RFC 3261 18.1.2: a response whose top Via is not ours was misrouted.
                self.stats.dropped += 1
                self.stats.foreign_responses += 1
                logger.debug(
                    "dropped response for %s from %s:%d",
                    message.top_via.sent_by,
                    source.host,
                    source.port,
                )
                return None, None
        except SipParseError as exc:
            self.stats.parse_errors += 1
            reply = _rejection(data, exc)
            if reply is None:
                self.stats.dropped += 1
                logger.debug(
                    "dropped unparseable message from %s:%d: %s", source.host, source.port, exc
                )
            return None, reply
        return Inbound(message, source), None

    async def _udp_loop(self, endpoint: _Endpoint) -> None:
        sock = endpoint.sock
        local_host = endpoint.address.host
        local_port = endpoint.address.port
        stats = self.stats
        while True:
            try:
                data, address = await sock.recvfrom(_DATAGRAM_SIZE)
            except OSError as exc:
                if exc.errno in _TRANSIENT_UDP_ERRNOS:
                    continue
                raise
            if _is_keepalive(data):
                continue
            stats.received += 1
            source = Source("UDP", address[0], address[1], local_host, local_port)
            inbound, reply = self._examine(data, source)
            if reply is not None:
                stats.rejected += 1
                try:
                    await sock.sendto(reply, address[:2])
                except OSError as exc:
                    logger.debug("cannot answer %s:%d: %s", address[0], address[1], exc)
                else:
                    stats.sent += 1
            if inbound is not None:
                try:
                    self._inbound_send.send_nowait(inbound)
                except (trio.WouldBlock, trio.BrokenResourceError):
                    stats.dropped += 1
                    stats.queue_full += 1

    async def _accept_loop(self, endpoint: _Endpoint) -> None:
        listener = trio.SocketListener(endpoint.sock)
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                # Out of file descriptors and the like: back off instead of spinning.
                logger.warning("accept on %s failed: %s", endpoint.address, exc)
                await trio.sleep(0.1)
                continue
            self.stats.connections_accepted += 1
            self._adopt(stream)

    def _adopt(self, stream: trio.SocketStream) -> _Connection:
        if self._nursery is None:
            stream.socket.close()
            raise TransportError("transport layer is not running")
        local = stream.socket.getsockname()
        peer = stream.socket.getpeername()
        connection = _Connection(stream, (_norm(peer[0]), peer[1]), (_norm(local[0]), local[1]))
        self._connections[connection.remote] = connection
        self._live.add(connection)
        self._nursery.start_soon(self._serve_connection, connection)
        return connection

    def _forget(self, connection: _Connection) -> None:
        connection.closed = True
        self._live.discard(connection)
        if self._connections.get(connection.remote) is connection:
            del self._connections[connection.remote]

    async def _serve_connection(self, connection: _Connection) -> None:
        framer = StreamFramer(self._max_message_size, self._max_header_bytes)
        remote_host, remote_port = connection.remote
        source = Source(
            "TCP", remote_host, remote_port, connection.local[0], connection.local[1], connection
        )
        try:
            while True:
                data = await connection.stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    if framer.buffered:
                        logger.debug("%s:%d closed inside a message", remote_host, remote_port)
                    break
                framer.feed(data)
                while (raw := framer.next_message()) is not None:
                    self.stats.received += 1
                    inbound, reply = self._examine(raw, source)
                    if reply is not None:
                        self.stats.rejected += 1
                        await self._send_on(connection, reply)
                    if inbound is not None:
                        await self._inbound_send.send(inbound)
                pings = framer.take_pings()
                if pings:
                    # RFC 5626 3.5.1: answer each double-CRLF ping with a single CRLF pong.
                    await self._send_on(connection, b"\r\n" * pings)
        except SipFramingError as exc:
            self.stats.framing_errors += 1
            self.stats.dropped += 1
            logger.debug("closing %s:%d: %s", remote_host, remote_port, exc)
            reply = _rejection(exc.head, exc) if exc.head is not None else None
            if reply is not None:
                self.stats.rejected += 1
                try:
                    await self._send_on(connection, reply)
                except TransportError:
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, TransportError) as exc:
            logger.debug("connection %s:%d ended: %s", remote_host, remote_port, exc)
        finally:
            self._forget(connection)
            connection.close()

    # -- sending -------------------------------------------------------------------------------

    async def _sendto(self, endpoint: _Endpoint, data: bytes, ip: str, port: int) -> None:
        try:
            await endpoint.sock.sendto(data, (ip, port))
        except OSError as exc:
            raise TransportError(f"cannot send to {ip}:{port}: {exc}") from exc
        self.stats.sent += 1

    async def _connection_to(self, ip: str, port: int) -> _Connection:
        key = (ip, port)
        while True:
            connection = self._connections.get(key)
            if connection is not None and not connection.closed:
                return connection
            pending = self._connecting.get(key)
            if pending is None:
                break
            # Someone is connecting there already: share their connection rather than open
            # a second one (or try ourselves if theirs failed).
            await pending.wait()
        self._check_running()
        done = self._connecting[key] = trio.Event()
        try:
            return await self._connect(ip, port)
        finally:
            del self._connecting[key]
            done.set()

    async def _connect(self, ip: str, port: int) -> _Connection:
        family = _family(ip)
        local_address = None
        for endpoint in self._tcp:
            if endpoint.family == family and endpoint.address.host not in _WILDCARDS:
                # Connect from the listener's address, so the peer sees the host our Via names.
                local_address = endpoint.address.host
                break
        with trio.move_on_after(self._connect_timeout):
            try:
                stream = await trio.open_tcp_stream(ip, port, local_address=local_address)
            except OSError as exc:
                raise TransportError(f"cannot connect to {ip}:{port}: {exc}") from exc
            self.stats.connections_opened += 1
            return self._adopt(stream)
        raise TransportError(f"connecting to {ip}:{port} timed out")

    async def _send_on(self, connection: _Connection, data: bytes) -> None:
        async with connection.send_lock:
            if connection.closed:
                raise TransportError(f"connection to {connection.remote} is closed")
            with trio.move_on_after(self._send_timeout) as scope:
                try:
                    await connection.stream.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._forget(connection)
                    connection.close()
                    raise TransportError(f"connection to {connection.remote} broke: {exc}") from exc
                except trio.Cancelled:
                    # A half-written message would corrupt whatever is sent after it.
                    self._forget(connection)
                    connection.close()
                    raise
            if scope.cancelled_caught:
                raise TransportError(f"sending to {connection.remote} timed out")
        self.stats.sent += 1
