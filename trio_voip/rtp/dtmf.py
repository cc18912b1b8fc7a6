"""DTMF as RFC 4733 telephone events: payload codec, receiver-side detector, sender-side schedule.

A key press travels as several RTP packets sharing one RTP timestamp (the event's start): the
first carries the marker bit, updates grow the duration, and the end packet (E bit) is sent three
times. :class:`DtmfDetector` folds that stream back into one :class:`DtmfDigit` per press;
:func:`dtmf_packets` produces it.
"""

from __future__ import annotations

import struct
from collections import deque

import attrs

from trio_voip.errors import RtpError, RtpParseError
from trio_voip.rtp.packet import Buffer, RtpPacket

__all__ = [
    "DTMF_EVENTS",
    "TelephoneEvent",
    "parse_telephone_event",
    "DtmfDigit",
    "DtmfDetector",
    "dtmf_packets",
]

# RFC 4733 section 3.2: event codes 0-15 are the DTMF keys.
DTMF_EVENTS = "0123456789*#ABCD"
_EVENT_OF = {digit: code for code, digit in enumerate(DTMF_EVENTS)}

_PAYLOAD = struct.Struct("!BBH")


@attrs.frozen
class TelephoneEvent:
    """One RFC 4733 payload: ``event`` code, ``end`` bit, ``volume`` (-dBm0, 0-63), ``duration``
    (in RTP timestamp units since the event's timestamp)."""

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise RtpError(f"telephone event {self.event} outside 0..255")
        if not 0 <= self.volume <= 63:
            raise RtpError(f"telephone event volume {self.volume} outside 0..63")
        if not 0 <= self.duration <= 0xFFFF:
            raise RtpError(f"telephone event duration {self.duration} outside 0..65535")

    @property
    def digit(self) -> str | None:
        """The DTMF key, or None for other events (flash, tones, ...)."""
        return DTMF_EVENTS[self.event] if self.event < 16 else None

    def to_bytes(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_telephone_event(payload: Buffer) -> TelephoneEvent:
    """Parse the first (normally only) event block of an RFC 4733 payload."""
    if len(payload) < 4:
        raise RtpParseError(f"telephone-event payload of {len(payload)} bytes, need 4")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    # The R bit (0x40) is reserved: senders set it to 0, receivers ignore it.
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@attrs.frozen
class DtmfDigit:
    """One key press: ``duration`` in seconds, ``timestamp`` the RTP timestamp it started at.

    ``ended`` is False when no end packet arrived and a timeout (or the next press) closed it.
    """

    digit: str
    duration: float
    timestamp: int
    volume: int
    ended: bool = True


# Event timestamps already reported, so late retransmissions of their end packets are ignored.
_REMEMBERED = 8


@attrs.define
class DtmfDetector:
    """Turns telephone-event RTP packets into :class:`DtmfDigit` values, one per key press.

    Feed every packet of the negotiated telephone-event payload type to :meth:`feed`. A press is
    reported on its first end packet; if all end packets are lost it is reported by
    :meth:`on_timer` once no update arrived for ``timeout`` seconds (see :meth:`next_deadline`),
    or as soon as another event starts. Events longer than a 16-bit duration are continued in a
    new segment (RFC 4733 2.5.1.3): same event, no marker, a timestamp at most 0xFFFF further on;
    their durations add up.
    """

    clock_rate: int = 8000
    timeout: float = 0.25
    # The open event: its current segment's timestamp, latest payload, the first segment's
    # timestamp and the duration of the segments before this one.
    _timestamp: int | None = attrs.field(default=None, init=False)
    _event: TelephoneEvent | None = attrs.field(default=None, init=False)
    _start: int = attrs.field(default=0, init=False)
    _earlier_segments: int = attrs.field(default=0, init=False)
    _last_update: float = attrs.field(default=0.0, init=False)
    _done: deque[int] = attrs.field(factory=lambda: deque(maxlen=_REMEMBERED), init=False)

    def feed(self, packet: RtpPacket, now: float) -> list[DtmfDigit]:
        """Account one packet; return the digits it completes (usually none or one)."""
        event = parse_telephone_event(packet.payload)
        timestamp = packet.timestamp
        if timestamp in self._done:
            return []
        # A driver that never calls on_timer still gets timed-out presses, one packet later.
        out = self.on_timer(now)
        previous = self._timestamp
        if timestamp != previous:
            current = self._event
            delta = (timestamp - previous) & 0xFFFFFFFF if previous is not None else 0
            if (
                current is not None
                and previous is not None
                and not packet.marker
                and current.event == event.event
                and 0 < delta <= 0xFFFF
                and delta >= current.duration
            ):
                self._earlier_segments += delta
                self._done.append(previous)
            else:
                out.extend(self._finish(ended=False))
                self._earlier_segments = 0
                self._start = timestamp
            self._timestamp = timestamp
        self._event = event
        self._last_update = now
        if event.end:
            out.extend(self._finish(ended=True))
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` should be called, or None while no event is open."""
        if self._event is None:
            return None
        return self._last_update + self.timeout

    def on_timer(self, now: float) -> list[DtmfDigit]:
        """Close an event whose end packets never came."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        return self._finish(ended=False)

    def _finish(self, *, ended: bool) -> list[DtmfDigit]:
        event, timestamp = self._event, self._timestamp
        self._event = None
        if event is None or timestamp is None:
            return []
        self._done.append(timestamp)
        self._timestamp = None
        digit = event.digit
        if digit is None:
            return []
        samples = self._earlier_segments + event.duration
        return [DtmfDigit(digit, samples / self.clock_rate, self._start, event.volume, ended)]


def dtmf_packets(
    digit: str,
    *,
    payload_type: int,
    ssrc: int,
    sequence: int,
    timestamp: int,
    duration: float = 0.1,
    volume: int = 10,
    clock_rate: int = 8000,
    interval: float = 0.05,
    end_repeats: int = 3,
) -> list[tuple[float, RtpPacket]]:
    """The RFC 4733 packets for one key press, each with its send time relative to the first.

    All share ``timestamp`` (the event start); sequence numbers count up from ``sequence``. The
    first packet has the marker bit; an update follows every ``interval`` seconds, each announcing
    the duration covered so far; at ``duration`` the end packet goes out ``end_repeats`` times.
    The caller's stream timestamp should move on by ``duration * clock_rate`` afterwards.
    """
    code = _EVENT_OF.get(digit.upper()) if len(digit) == 1 else None
    if code is None:
        raise RtpError(f"not a DTMF digit: {digit!r}")
    total = round(duration * clock_rate)
    step = round(interval * clock_rate)
    if total <= 0 or step <= 0 or total > 0xFFFF:
        raise RtpError(f"DTMF duration {duration}s / interval {interval}s out of range")
    schedule: list[tuple[float, TelephoneEvent]] = []
    sent = 0
    while sent < total:
        covered = min(sent + step, total)
        schedule.append((sent / clock_rate, TelephoneEvent(code, False, volume, covered)))
        sent += step
    end = TelephoneEvent(code, True, volume, total)
    schedule.extend((total / clock_rate, end) for _ in range(end_repeats))
    return [
        (
            offset,
            RtpPacket(
                payload_type=payload_type,
                sequence=(sequence + index) & 0xFFFF,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=event.to_bytes(),
                marker=index == 0,
            ),
        )
        for index, (offset, event) in enumerate(schedule)
    ]
