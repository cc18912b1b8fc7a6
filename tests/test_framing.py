"""StreamFramer: cutting a SIP byte stream into messages (RFC 3261 18.3, RFC 5626 keep-alives)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import SipFramingError, SipParseError
from trio_voip.sip.framing import StreamFramer, header_fields


def _request(body: bytes = b"", *, length_name: str = "Content-Length", extra: str = "") -> bytes:
    return (
        "OPTIONS sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n"
        "Call-ID: a84b4c76e66710\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f"{extra}"
        f"{length_name}: {len(body)}\r\n"
        "\r\n"
    ).encode() + body


def _drain(framer: StreamFramer) -> list[bytes]:
    out = []
    while (message := framer.next_message()) is not None:
        out.append(message)
    return out


# -- messages and streams for property tests ---------------------------------------------------

_length_names = st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH", "l", "L"])
# Bodies may contain what looks like a header section end or a Content-Length header.
_bodies = st.one_of(
    st.binary(max_size=300),
    st.just(b"v=0\r\n\r\nContent-Length: 99\r\n\r\n"),
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    body = draw(_bodies)
    name = draw(_length_names)
    space = draw(st.sampled_from(["", " ", "\t "]))
    start = draw(st.sampled_from(["INVITE sip:a@b SIP/2.0", "SIP/2.0 200 OK"]))
    head = (
        f"{start}\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n{name}{space}:{space}{len(body)}\r\n\r\n"
    )
    return head.encode() + body


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    """Messages with keep-alive CRLFs between them: (stream, messages, pings)."""
    messages = draw(st.lists(_messages(), min_size=1, max_size=5))
    stream = bytearray()
    pings = 0
    for message in messages:
        # 0 = nothing, 1 = a pong (single CRLF), 2 = a ping (double CRLF).
        crlfs = draw(st.sampled_from([0, 1, 2]))
        pings += crlfs // 2
        stream += b"\r\n" * crlfs + message
    return bytes(stream), messages, pings


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points + [len(data)]:
        chunks.append(data[last:point])
        last = point
    return chunks


@given(_streams(), st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_yields_the_same_messages(stream_info, cuts):
    stream, messages, pings = stream_info
    framer = StreamFramer()
    received = []
    for chunk in _split(stream, cuts):
        framer.feed(chunk)
        received.extend(_drain(framer))
    assert received == messages
    assert framer.take_pings() == pings
    assert framer.buffered == 0


@given(_streams())
@settings(max_examples=30)
def test_byte_by_byte_feeding(stream_info):
    stream, messages, pings = stream_info
    framer = StreamFramer()
    received = []
    for i in range(len(stream)):
        framer.feed(stream[i : i + 1])
        received.extend(_drain(framer))
    assert received == messages
    assert framer.take_pings() == pings


# -- examples ----------------------------------------------------------------------------------


def test_two_messages_in_one_chunk_and_body_with_blank_line():
    first = _request(b"a\r\n\r\nb")
    second = _request(length_name="l")
    framer = StreamFramer()
    framer.feed(first + second)
    assert _drain(framer) == [first, second]


def test_partial_body_waits():
    message = _request(b"0123456789")
    framer = StreamFramer()
    framer.feed(message[:-1])
    assert framer.next_message() is None
    assert framer.buffered == len(message) - 1
    framer.feed(message[-1:])
    assert framer.next_message() == message
    assert framer.buffered == 0


def test_keepalive_ping_and_pong_counting():
    framer = StreamFramer()
    framer.feed(b"\r\n\r\n")
    assert framer.next_message() is None
    assert framer.take_pings() == 1
    assert framer.take_pings() == 0
    # A single CRLF is a pong: skipped, not a ping.
    framer.feed(b"\r\n" + _request())
    assert framer.next_message() == _request()
    assert framer.take_pings() == 0
    # A ping split after the CR still counts once.
    framer.feed(b"\r\n\r")
    assert framer.next_message() is None
    framer.feed(b"\n")
    assert framer.next_message() is None
    assert framer.take_pings() == 1


def test_content_length_with_folding_and_whitespace():
    head = b"INVITE sip:a@b SIP/2.0\r\nContent-Length :\r\n   3\r\n\r\n"
    framer = StreamFramer()
    framer.feed(head + b"abcXYZ")
    assert framer.next_message() == head + b"abc"


def test_header_fields_scan():
    head = b"SIP/2.0 200 OK\r\nVia: a\r\n ,b\r\nno colon here\r\nTo :  <sip:x>  "
    assert header_fields(head) == [(b"Via", b"a ,b"), (b"To", b"<sip:x>")]


# -- limits and errors -------------------------------------------------------------------------


def test_missing_content_length_is_an_error_with_the_head():
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert info.value.status == 400
    assert info.value.head == b"OPTIONS sip:a@b SIP/2.0\r\nVia: x"
    assert isinstance(info.value, SipParseError)


@pytest.mark.parametrize(
    "value", [b"-1", b"12a", b"", b"1 2", b"99999999999", b"1" * 5000, "\u0663".encode()]
)
def test_bad_content_length(value):
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n")
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert info.value.status == 400


def test_conflicting_content_lengths():
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab")
    with pytest.raises(SipFramingError, match="conflicting"):
        framer.next_message()


def test_repeated_equal_content_lengths_are_fine():
    message = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\nl: 2\r\n\r\nab"
    framer = StreamFramer()
    framer.feed(message)
    assert framer.next_message() == message


def test_announced_body_beyond_limit_is_413_before_buffering_it():
    framer = StreamFramer(max_message_size=1000)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert info.value.status == 413
    assert info.value.head is not None


def test_message_exactly_at_limit_passes():
    message = _request(b"x" * 100)
    framer = StreamFramer(max_message_size=len(message))
    framer.feed(message)
    assert framer.next_message() == message
    framer = StreamFramer(max_message_size=len(message) - 1)
    framer.feed(message)
    with pytest.raises(SipFramingError):
        framer.next_message()


def test_endless_header_section_is_refused_without_blank_line():
    framer = StreamFramer(max_header_bytes=1024)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    for _ in range(200):
        framer.feed(b"X-Filler: 0123456789\r\n")
        try:
            framer.next_message()
        except SipFramingError as exc:
            assert exc.status == 513
            assert exc.head is None
            assert framer.buffered <= 1024 + 22
            break
    else:
        pytest.fail("header limit not enforced")


def test_complete_but_oversized_header_section():
    framer = StreamFramer(max_header_bytes=64)
    framer.feed(_request())
    with pytest.raises(SipFramingError) as info:
        framer.next_message()
    assert info.value.status == 513


def test_errors_are_sticky():
    framer = StreamFramer()
    framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n")
    with pytest.raises(SipFramingError):
        framer.next_message()
    with pytest.raises(SipFramingError):
        framer.next_message()
    with pytest.raises(SipFramingError):
        framer.feed(_request())


# -- complexity --------------------------------------------------------------------------------


class _CountingBuffer(bytearray):
    """A bytearray that counts how many bytes ``find`` had to look at."""

    scanned = 0

    def find(self, sub, start=0, *args):  # type: ignore[override]
        self.scanned += max(0, len(self) - start)
        return super().find(sub, start, *args)


def test_byte_by_byte_search_is_linear():
    filler = "".join(f"X-H{i}: {'v' * 40}\r\n" for i in range(300))
    message = _request(b"b" * 2000, extra=filler)
    framer = StreamFramer(max_header_bytes=65535)
    framer._buffer = _CountingBuffer()  # spy on the search, the one step that could go quadratic
    for i in range(len(message)):
        framer.feed(message[i : i + 1])
        result = framer.next_message()
    assert result == message
    head_length = message.index(b"\r\n\r\n") + 4
    # Each new byte is looked at a bounded number of times (3 bytes of overlap per search).
    assert framer._buffer.scanned <= 4 * head_length
    # Rescanning from the start each time would cost ~head_length**2 / 2.
    assert head_length**2 // 2 > 100 * framer._buffer.scanned
