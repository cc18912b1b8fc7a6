"""A conference mixer and an RTP packetizer, sans-IO: payloads in, one mix per tick out.

:class:`Mixer` keeps, per participant, the G.711 bytes received since the last tick (bounded:
at most ``depth`` frames, the oldest dropped and counted, so a sender whose clock runs fast or
a burst after a network stall never builds up delay). Each :meth:`Mixer.tick` takes one frame
(20 ms, 160 samples) from every participant -- silence for one with nothing buffered -- and
returns, for every participant, the clipped sum of all the *others*
(:func:`~trio_voip.rtp.g711.mix_minus`), encoded in that participant's own law. Payloads of any
length are accepted (10 or 30 ms packetization too): they are queued as samples, not packets.

**Comfort silence.** A participant who hears nobody (everyone else silent or missing) still gets
a frame every tick, encoded linear silence. A continuous stream keeps the phone's jitter buffer
steady, keeps NAT bindings open and avoids a marker/timestamp jump whenever someone starts
talking; 64 kbit/s of silence is cheap next to those problems (we send no CN, RFC 3389).

:class:`RtpPacketizer` turns a stream of payloads into RTP packets: its own random SSRC and
initial sequence/timestamp (RFC 3550 5.1), sequence +1 and timestamp +160 per 20 ms frame,
the marker bit on the first packet. :meth:`RtpPacketizer.skip` advances the timestamp over
frames never sent (a late tick), so the receiver's playout stays in real time.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Hashable, Iterator

import attrs

from trio_voip.errors import RtpError
from trio_voip.rtp.g711 import G711Law, mix_minus
from trio_voip.rtp.packet import RTP_HEADER_SIZE, Buffer, RtpPacket, rewrite_rtp_header

__all__ = ["FRAME_SAMPLES", "MixParticipant", "Mixer", "RtpPacketizer"]

#: Samples in one 20 ms frame at 8 kHz: one G.711 frame is this many bytes.
FRAME_SAMPLES = 160

_SILENT_FRAME = array("h", bytes(2 * FRAME_SAMPLES))


@attrs.define(eq=False)
class MixParticipant:
    """One participant of a :class:`Mixer`: its law, what it sent us and its counters.

    ``frames_in`` counts frames taken into a mix, ``missing`` ticks it had nothing buffered
    (mixed as silence), ``dropped`` frames discarded because the buffer was full.
    """

    key: Hashable
    law: G711Law
    frames_in: int = 0
    missing: int = 0
    dropped: int = 0
    _pending: bytearray = attrs.field(factory=bytearray, repr=False)

    @property
    def buffered(self) -> int:
        """Samples waiting for the next ticks."""
        return len(self._pending)


@attrs.define(eq=False)
class Mixer:
    """Mix-minus of any number of participants, one 20 ms frame per :meth:`tick`.

    ``depth`` bounds each participant's buffer in frames (module docstring).
    """

    depth: int = 3
    _participants: dict[Hashable, MixParticipant] = attrs.field(init=False, factory=dict)
    _silence: dict[G711Law, bytes] = attrs.field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.depth < 1:
            raise RtpError(f"mixer depth must be at least one frame, got {self.depth}")
        for law in G711Law:
            self._silence[law] = bytes((law.silence,)) * FRAME_SAMPLES

    def __len__(self) -> int:
        return len(self._participants)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._participants

    def __iter__(self) -> Iterator[MixParticipant]:
        return iter(list(self._participants.values()))

    def participant(self, key: Hashable) -> MixParticipant:
        try:
            return self._participants[key]
        except KeyError:
            raise RtpError(f"{key!r} is not in this mix") from None

    def add(self, key: Hashable, law: G711Law) -> MixParticipant:
        """Add a participant (or change the law of one already in)."""
        existing = self._participants.get(key)
        if existing is not None:
            if existing.law is not law:
                existing.law = law
                existing._pending.clear()  # bytes in the old law
            return existing
        participant = self._participants[key] = MixParticipant(key, law)
        return participant

    def remove(self, key: Hashable) -> None:
        """Take a participant out; no-op when not in."""
        self._participants.pop(key, None)

    def feed(self, key: Hashable, payload: Buffer) -> None:
        """Queue G.711 bytes received from ``key`` (copied: ``payload`` may be a reused buffer).

        Unknown keys are ignored: a packet can still arrive for a participant just removed.
        """
        participant = self._participants.get(key)
        if participant is None:
            return
        pending = participant._pending
        pending += payload
        excess = len(pending) - self.depth * FRAME_SAMPLES
        if excess > 0:
            # Drop whole frames from the front: the newest audio is what matters.
            frames = -(-excess // FRAME_SAMPLES)
            participant.dropped += frames
            del pending[: frames * FRAME_SAMPLES]

    def tick(self) -> list[tuple[Hashable, bytes]]:
        """One 20 ms frame for every participant: what everyone else said, in its own law."""
        participants = list(self._participants.values())
        frames: list[array[int]] = []
        heard = 0
        for participant in participants:
            pending = participant._pending
            if len(pending) >= FRAME_SAMPLES:
                frames.append(participant.law.decode(pending[:FRAME_SAMPLES]))
                del pending[:FRAME_SAMPLES]
                participant.frames_in += 1
                heard += 1
            else:
                # Too little for a frame: mixed as silence; a partial frame waits for the rest.
                frames.append(_SILENT_FRAME)
                participant.missing += 1
        if not heard:
            return [(p.key, self._silence[p.law]) for p in participants]
        return [
            (p.key, p.law.encode(mixed)) for p, mixed in zip(participants, mix_minus(frames))
        ]


@attrs.define(eq=False)
class RtpPacketizer:
    """One outgoing RTP stream of fixed-duration frames (module docstring).

    ``ssrc``, ``sequence`` and ``timestamp`` default to random values; ``sequence`` and
    ``timestamp`` are those of the next packet.
    """

    payload_type: int
    ssrc: int = attrs.field(factory=lambda: random.getrandbits(32))
    sequence: int = attrs.field(factory=lambda: random.getrandbits(16))
    timestamp: int = attrs.field(factory=lambda: random.getrandbits(32))
    samples_per_frame: int = FRAME_SAMPLES
    packets: int = 0
    _header: bytearray = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Validates every field once; the template header is then re-stamped per packet.
        template = RtpPacket(self.payload_type, self.sequence, self.timestamp, self.ssrc)
        self._header = bytearray(template.to_bytes()[:RTP_HEADER_SIZE])
        if self.samples_per_frame < 1:
            raise RtpError(f"samples per frame must be positive, got {self.samples_per_frame}")

    def packet(self, payload: Buffer) -> bytes:
        """The next packet carrying ``payload`` (one frame)."""
        header = self._header
        rewrite_rtp_header(
            header,
            sequence=self.sequence,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            marker=self.packets == 0,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + self.samples_per_frame) & 0xFFFFFFFF
        self.packets += 1
        return bytes(header) + payload

    def skip(self, frames: int) -> None:
        """``frames`` frames of time passed unsent: advance the timestamp, not the sequence."""
        self.timestamp = (self.timestamp + frames * self.samples_per_frame) & 0xFFFFFFFF
