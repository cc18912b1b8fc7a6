"""Sans-IO framing of SIP messages on a byte stream (RFC 3261 section 18.3, RFC 5626 keep-alives).

A datagram is one message; a TCP/TLS stream is not, so something has to cut it into messages
before :func:`trio_voip.sip.parse_message` sees them. :class:`StreamFramer` does only that: it
finds the end of the header section, reads Content-Length (mandatory on streams) and waits for
the body. Full parsing happens later, on exactly one message's bytes.

Bytes go in with :meth:`StreamFramer.feed`, whole messages come out of
:meth:`StreamFramer.next_message` (``None`` means "need more data"), in the manner of h11's
receive buffer: the search for the end of the headers resumes where it stopped, so a peer
trickling a message in byte by byte costs linear time, not quadratic.

Limits are enforced while buffering, so a peer cannot make us hold an unbounded header section
or announce an unbounded body: the framer raises :class:`~trio_voip.errors.SipFramingError`
with the status a server should answer (513 header section too large, 413 body too large,
400 missing or bad Content-Length) and the connection is then unusable.
"""

from __future__ import annotations

from trio_voip.errors import SipFramingError

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "StreamFramer",
    "header_fields",
]

DEFAULT_MAX_MESSAGE_SIZE = 65535
DEFAULT_MAX_HEADER_BYTES = 16384

_CRLF = b"\r\n"
_HEADERS_END = b"\r\n\r\n"
_CR = 0x0D
_LF = 0x0A
_CONTENT_LENGTH_NAMES = (b"content-length", b"l")
# Ten digits already exceed any limit we accept; refusing longer values up front also keeps int()
# away from its own digit limit (ValueError beyond ~4300 digits).
_MAX_LENGTH_DIGITS = 10


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """Split a header section into ``(name, value)`` pairs, without interpreting them.

    ``head`` starts with the start line (skipped) and ends before the blank line. Folded lines
    (RFC 3261 7.3.1) are joined to their header with one space; names and values are stripped of
    surrounding whitespace; lines without a colon are skipped (the real parser rejects them).
    This is a light scan for framing and for answering broken requests, not a parser.
    """
    fields: list[tuple[bytes, bytes]] = []
    lines = head.split(_CRLF)
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, value = fields[-1]
                fields[-1] = (name, value + b" " + line.strip() if value else line.strip())
            continue
        colon = line.find(b":")
        if colon < 0:
            continue
        fields.append((line[:colon].strip(), line[colon + 1 :].strip()))
    return fields


class StreamFramer:
    """Cuts a SIP byte stream into messages; one instance per connection direction.

    ``max_message_size`` bounds a whole message (header section + body), ``max_header_bytes``
    the header section including its blank line. CRLFs between messages are skipped (RFC 3261
    7.5); every double CRLF among them is an RFC 5626 keep-alive ping, counted so the transport
    can answer each with a single CRLF pong (:meth:`take_pings`).

    After a :class:`~trio_voip.errors.SipFramingError` the framer stays failed: the stream has
    lost its message boundaries, and every later call raises the same error.
    """

    __slots__ = (
        "_buffer",
        "_crlf_run",
        "_error",
        "_max_header_bytes",
        "_max_message_size",
        "_message_length",
        "_pings",
        "_search_from",
    )

    def __init__(
        self,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        self._max_message_size = max_message_size
        self._max_header_bytes = min(max_header_bytes, max_message_size)
        self._buffer = bytearray()
        # Where the next search for the blank line starts: everything before it was searched.
        self._search_from = 0
        # Total length of the message at the buffer's start, once its header section is known.
        self._message_length: int | None = None
        self._crlf_run = 0
        self._pings = 0
        self._error: SipFramingError | None = None

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        if self._error is not None:
            raise self._error
        self._buffer += data

    def next_message(self) -> bytes | None:
        """Return the next complete message's bytes, or ``None`` until more data arrives.

        Raises :class:`~trio_voip.errors.SipFramingError` when the stream breaks framing.
        """
        if self._error is not None:
            raise self._error
        try:
            return self._next_message()
        except SipFramingError as exc:
            self._error = exc
            raise

    def take_pings(self) -> int:
        """Return (and reset) how many double-CRLF keep-alive pings arrived since the last call."""
        pings, self._pings = self._pings, 0
        return pings

    @property
    def buffered(self) -> int:
        """Bytes held that do not yet form a complete message (a truncated message at EOF)."""
        return len(self._buffer)

    def _next_message(self) -> bytes | None:
        buf = self._buffer
        if self._message_length is None:
            if not self._skip_keepalives():
                return None
            end = buf.find(_HEADERS_END, self._search_from)
            if end < 0:
                if len(buf) > self._max_header_bytes:
                    raise SipFramingError(
                        f"header section exceeds {self._max_header_bytes} bytes",
                        status=513,
                        reason="Message Too Large",
                    )
                # The blank line may straddle this chunk and the next: keep its first 3 bytes.
                self._search_from = max(0, len(buf) - 3)
                return None
            head_length = end + len(_HEADERS_END)
            head = bytes(buf[:end])
            if head_length > self._max_header_bytes:
                raise SipFramingError(
                    f"header section exceeds {self._max_header_bytes} bytes",
                    status=513,
                    reason="Message Too Large",
                    head=head,
                )
            total = head_length + _content_length(head)
            if total > self._max_message_size:
                raise SipFramingError(
                    f"message of {total} bytes exceeds {self._max_message_size}",
                    status=413,
                    reason="Request Entity Too Large",
                    head=head,
                )
            self._message_length = total
            self._search_from = 0
        length = self._message_length
        if len(buf) < length:
            return None
        message = bytes(buf[:length])
        del buf[:length]
        self._message_length = None
        return message

    def _skip_keepalives(self) -> bool:
        """Drop CRLFs before a message; return True once a message has started."""
        buf = self._buffer
        skipped = 0
        size = len(buf)
        while skipped + 1 < size and buf[skipped] == _CR and buf[skipped + 1] == _LF:
            skipped += 2
            self._crlf_run += 1
            if self._crlf_run == 2:
                self._pings += 1
                self._crlf_run = 0
        if skipped:
            del buf[:skipped]
        # A lone CR may be the first half of the next CRLF.
        if not buf or (len(buf) == 1 and buf[0] == _CR):
            return False
        self._crlf_run = 0
        return True


def _content_length(head: bytes) -> int:
    length: int | None = None
    for name, value in header_fields(head):
        if name.lower() not in _CONTENT_LENGTH_NAMES:
            continue
        if not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
            raise SipFramingError(
                f"bad Content-Length {value[:20]!r}", reason="Bad Content-Length", head=head
            )
        if length is not None and length != int(value):
            raise SipFramingError(
                "conflicting Content-Length values", reason="Conflicting Content-Length", head=head
            )
        length = int(value)
    if length is None:
        # RFC 3261 18.3: without it a stream has no message boundaries.
        raise SipFramingError(
            "Content-Length is mandatory on stream transports",
            reason="Missing Content-Length",
            head=head,
        )
    return length
