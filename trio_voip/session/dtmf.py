"""RFC 4733 DTMF on the coordinator's relayed calls: :class:`DtmfService`.

Receiving. Each call with a relay endpoint gets a tap that looks at the payload type byte of
every RTP packet and parses only those of the call's negotiated telephone-event payload type
(:attr:`NegotiatedMedia.telephone_event_pt
<trio_voip.offer_answer.NegotiatedMedia.telephone_event_pt>`, read per packet so a re-INVITE
is followed) into the call's :class:`~trio_voip.rtp.dtmf.DtmfDetector`. Digits are published
as :class:`~trio_voip.session.events.DtmfReceived` with ``method="rfc4733"``. A press whose end
packets were all lost is closed by the detector's timeout: the coordinator's one timer task
asks :meth:`DtmfService.next_deadline` and calls :meth:`DtmfService.on_timer`; only calls with
a press in progress are looked at.

Sending. :meth:`DtmfService.send` sends each digit as the packets of
:func:`~trio_voip.rtp.dtmf.dtmf_packets`, at their offsets, from the call's endpoint socket to
its remote, digits ``GAP`` seconds apart. While the relay generates audio into the endpoint
(a prompt, a conference mix: ``stream(endpoint)`` gives its
:class:`~trio_voip.rtp.mixer.RtpPacketizer`) the events join that stream, as RFC 4733 2.1
wants: its SSRC, its timestamp at the start of the press, and sequence numbers taken from it
packet by packet. Otherwise each call has an event stream of its own (own SSRC; sequence
numbers continue across sends, timestamps follow real time). Audio merely relayed from
another leg keeps that leg's SSRC, which the events cannot join. Concurrent sends on one call
go one after the other.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs
import trio

from trio_voip.errors import CallError, RtpError
from trio_voip.offer_answer import NegotiatedMedia
from trio_voip.rtp.dtmf import DtmfDetector, DtmfDigit, dtmf_packets
from trio_voip.rtp.mixer import RtpPacketizer
from trio_voip.rtp.packet import RtpPacket, parse_rtp
from trio_voip.rtp.relay import MediaEndpoint
from trio_voip.session.events import DtmfReceived

__all__ = ["DtmfService", "DtmfStats", "GAP"]

#: Silence between two digits sent in one go, in seconds.
GAP = 0.1
_CLOCK_RATE = 8000


@attrs.define
class DtmfStats:
    """RFC 4733 counters across calls: ``malformed`` event packets dropped, packets ``sent``
    and packets that could not be (``send_failed``: full socket buffer, endpoint closed; the
    endpoint's stats say which)."""

    malformed: int = 0
    sent: int = 0
    send_failed: int = 0


@attrs.define(eq=False)
class _CallDtmf:
    """One call's detector and outgoing event stream."""

    session_id: str
    media: Callable[[], NegotiatedMedia | None]
    detector: DtmfDetector = attrs.field(factory=DtmfDetector)
    ssrc: int = attrs.field(factory=lambda: random.getrandbits(32))
    sequence: int = attrs.field(factory=lambda: random.getrandbits(16))
    # RTP timestamp of ``epoch`` (a trio.current_time()): the stream's clock
    timestamp: int = attrs.field(factory=lambda: random.getrandbits(32))
    epoch: float = attrs.field(factory=trio.current_time)
    lock: trio.Lock = attrs.field(factory=trio.Lock)


class DtmfService:
    """RFC 4733 for every relayed call of one coordinator (module docstring).

    ``publish(session_id, event)`` reports digits; ``kick()`` wakes the timer task when a press
    starts, so it can take the new deadline into account; ``stream(endpoint)`` is the RTP
    stream the relay generates into an endpoint, if any (``RtpRelay.ticker.stream``).
    """

    def __init__(
        self,
        publish: Callable[[str, DtmfReceived], None],
        kick: Callable[[], None],
        stream: Callable[[MediaEndpoint], RtpPacketizer | None] | None = None,
    ) -> None:
        self._publish = publish
        self._kick = kick
        self._stream = stream
        self._calls: dict[str, _CallDtmf] = {}
        # calls with a press in progress: the only ones with a deadline
        self._open: set[_CallDtmf] = set()
        self.stats = DtmfStats()

    def __len__(self) -> int:
        return len(self._calls)

    def attach(
        self,
        session_id: str,
        endpoint: MediaEndpoint,
        media: Callable[[], NegotiatedMedia | None],
    ) -> None:
        """Detect DTMF in what ``endpoint`` receives for call ``session_id``; ``media()`` is
        the call's current negotiated media (None before the first offer/answer)."""
        state = self._calls[session_id] = _CallDtmf(session_id, media)
        endpoint.add_tap(self._tap(state))

    def detach(self, session_id: str) -> None:
        """Forget the call (it ended; its endpoint, and with it the tap, is closed)."""
        state = self._calls.pop(session_id, None)
        if state is not None:
            self._open.discard(state)

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is due, or None while no press is in progress."""
        deadlines = [d for s in self._open if (d := s.detector.next_deadline()) is not None]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> None:
        """Close presses whose end packets never came, publishing their digits."""
        for state in list(self._open):
            self._report(state, state.detector.on_timer(now))

    def _tap(self, state: _CallDtmf) -> Callable[[memoryview, bool], None]:
        detector = state.detector
        clock = trio.current_time
        stats = self.stats

        def tap(view: memoryview, rtcp: bool) -> None:
            if rtcp:
                return
            media = state.media()
            # The payload type byte first: audio packets cost no parsing.
            if media is None or view[1] & 0x7F != media.telephone_event_pt:
                return
            try:
                digits = detector.feed(parse_rtp(view), clock())
            except RtpError:  # a parse error, or an event field out of range
                stats.malformed += 1
                return
            self._report(state, digits)

        return tap

    def _report(self, state: _CallDtmf, digits: list[DtmfDigit]) -> None:
        for digit in digits:
            self._publish(
                state.session_id,
                DtmfReceived(
                    state.session_id,
                    digit.digit,
                    round(digit.duration * 1000),
                    method="rfc4733",
                ),
            )
        if state.detector.next_deadline() is None:
            self._open.discard(state)
        elif state not in self._open:
            self._open.add(state)
            self._kick()

    async def send(
        self, session_id: str, endpoint: MediaEndpoint, digits: str, duration: int
    ) -> None:
        """Send ``digits`` (each ``duration`` ms) as RFC 4733 events to the endpoint's remote.

        The digits are checked by the caller. Raises CallError if the call negotiated no
        telephone-event, has no remote media, or ``duration`` does not fit RFC 4733's 16 bits.
        """
        state = self._calls.get(session_id)
        media = state.media() if state is not None else None
        if state is None or media is None or media.telephone_event_pt is None:
            raise CallError(f"call {session_id} negotiated no telephone-event (RFC 4733)")
        if not 0 < duration * _CLOCK_RATE // 1000 <= 0xFFFF:
            raise CallError(f"DTMF duration {duration} ms out of range")
        async with state.lock:
            for digit in digits:
                if endpoint.closed or endpoint.remote is None:
                    raise CallError(f"call {session_id} has no media to send DTMF on")
                start = trio.current_time()
                stream = self._generated(endpoint)
                if stream is not None:
                    ssrc, timestamp = stream.ssrc, stream.timestamp
                else:
                    ssrc = state.ssrc
                    timestamp = (
                        state.timestamp + round((start - state.epoch) * _CLOCK_RATE)
                    ) & 0xFFFFFFFF
                schedule = dtmf_packets(
                    digit,
                    payload_type=media.telephone_event_pt,
                    ssrc=ssrc,
                    sequence=0,  # numbered when sent
                    timestamp=timestamp,
                    duration=duration / 1000,
                )
                for offset, packet in schedule:
                    await trio.sleep_until(start + offset)
                    sequence = self._number(state, endpoint, ssrc)
                    self._send(endpoint, attrs.evolve(packet, sequence=sequence))
                await trio.sleep_until(start + duration / 1000 + GAP)

    def _number(self, state: _CallDtmf, endpoint: MediaEndpoint, ssrc: int) -> int:
        """The next sequence number of the stream ``ssrc`` the press is sent in."""
        stream = self._generated(endpoint)
        if stream is not None and stream.ssrc == ssrc:
            owner: RtpPacketizer | _CallDtmf = stream
        else:
            # our own stream, or the generated one ended during the press
            owner = state
        sequence = owner.sequence
        owner.sequence = (sequence + 1) & 0xFFFF
        return sequence

    def _generated(self, endpoint: MediaEndpoint) -> RtpPacketizer | None:
        return self._stream(endpoint) if self._stream is not None else None

    def _send(self, endpoint: MediaEndpoint, packet: RtpPacket) -> None:
        if endpoint.send_rtp(packet.to_bytes()):
            self.stats.sent += 1
        else:
            self.stats.send_failed += 1
