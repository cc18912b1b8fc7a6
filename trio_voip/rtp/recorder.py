"""Recording RTP audio as 16-bit PCM, sans-IO: packets and time in, PCM out.

:class:`MixRecorder` lays the G.711 packets of one or more *sources* (any hashable key: a
relay endpoint, a call id) on one timeline that starts when the recorder is made and runs at
8 kHz in real time, and mixes them. It never touches a file or a socket; its driver calls
:meth:`MixRecorder.advance` now and then and :meth:`MixRecorder.finish` at the end, and writes
the PCM it gets (see :mod:`trio_voip.session.recording`).

Placement. The first packet of a stream (a source's SSRC) is placed at its arrival time; the
packets after it at their RTP timestamp relative to that first one, so reordered packets fall
into place and a lost packet (a gap in sequence numbers is a gap in timestamps too) leaves
silence of its length: the recording keeps real time. A stream whose timestamps drift more
than ``resync`` seconds from arrival time (a sender restart, a timestamp jump) is re-anchored
at the arrival of the packet that showed it, which also bounds the audio buffered ahead of
time. Audio is written out ``delay`` seconds behind real time so that packets delayed by
jitter still find their place; a packet that comes later than that is dropped and counted.

Duplicates overwrite the samples they duplicate instead of adding to them: each source keeps
its own buffer and sources are only summed (and clipped to int16) when written out.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Hashable

import attrs

from trio_voip.errors import RtpError, RtpParseError
from trio_voip.rtp.g711 import G711Law, mix
from trio_voip.rtp.packet import Buffer, rtp_header_fields, rtp_payload_bounds
from trio_voip.rtp.tones import SAMPLE_RATE

__all__ = ["RecorderStats", "MixRecorder"]

_LAWS = {law.value: law for law in G711Law}
_BIG_ENDIAN = sys.byteorder == "big"


@attrs.define
class RecorderStats:
    """Counters of one recorder. ``packets`` were placed on the timeline; ``ignored`` carried
    another payload type than G.711 (telephone-event, comfort noise, ...); ``late`` came after
    their place was written out; ``resyncs`` counts streams (re-)anchored at arrival time."""

    packets: int = 0
    ignored: int = 0
    malformed: int = 0
    late: int = 0
    resyncs: int = 0


@attrs.define
class _Track:
    """One source: its current stream and the samples not written out yet, which start at
    the recorder's ``written`` position."""

    ssrc: int = -1
    anchor_timestamp: int = 0
    anchor_position: int = 0
    pending: array[int] = attrs.field(factory=lambda: array("h"))


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value & 0x80000000 else value


@attrs.define
class MixRecorder:
    """Mixes the G.711 RTP of several sources into one 8 kHz mono PCM timeline.

    ``start`` is the time (any monotonic clock, seconds) the timeline begins at; every ``now``
    given later is on the same clock. See the module docstring for placement rules.
    """

    start: float
    delay: float = 0.2
    resync: float = 2.0
    stats: RecorderStats = attrs.field(factory=RecorderStats)
    #: samples written out so far (the timeline position :meth:`advance` continues from)
    written: int = attrs.field(default=0, init=False)
    _tracks: dict[Hashable, _Track] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.delay < 0 or self.resync <= 0:
            raise RtpError(f"recorder delay {self.delay} / resync {self.resync} out of range")

    @property
    def duration(self) -> float:
        """Seconds of audio written out so far."""
        return self.written / SAMPLE_RATE

    def position(self, now: float) -> int:
        """The timeline sample that ``now`` corresponds to."""
        return round((now - self.start) * SAMPLE_RATE)

    def feed(self, source: Hashable, packet: Buffer, now: float) -> None:
        """Take one RTP packet from ``source`` (copied: ``packet`` may be a reused buffer)."""
        nbytes = len(packet)
        try:
            ssrc, _seq, timestamp, payload_type = rtp_header_fields(packet, nbytes)
            law = _LAWS.get(payload_type)
            if law is None:
                self.stats.ignored += 1
                return
            begin, end = rtp_payload_bounds(packet, nbytes)
        except RtpParseError:
            self.stats.malformed += 1
            return
        self.feed_audio(source, ssrc, timestamp, law.decode(packet[begin:end]), now)

    def feed_audio(
        self, source: Hashable, ssrc: int, timestamp: int, samples: array[int], now: float
    ) -> None:
        """Place decoded ``samples`` of stream ``ssrc`` of ``source`` (RTP ``timestamp``)."""
        track = self._tracks.get(source)
        if track is None:
            track = self._tracks[source] = _Track()
        arrival = self.position(now)
        position = track.anchor_position + _signed32(timestamp - track.anchor_timestamp)
        if track.ssrc != ssrc or abs(position - arrival) > self.resync * SAMPLE_RATE:
            track.ssrc = ssrc
            track.anchor_timestamp = timestamp
            track.anchor_position = position = arrival
            self.stats.resyncs += 1
        offset = position - self.written
        if offset < 0:
            self.stats.late += 1
            return
        pending = track.pending
        end = offset + len(samples)
        if end > len(pending):
            pending.extend(_silence(end - len(pending)))
        pending[offset:end] = samples
        self.stats.packets += 1

    def advance(self, now: float) -> bytes:
        """The little-endian PCM from the last call up to ``delay`` seconds before ``now``."""
        return self._take(self.position(now - self.delay) - self.written)

    def finish(self, now: float) -> bytes:
        """The rest: up to ``now``, or further when audio was received ahead of it (a sender
        that bursts)."""
        end = self.position(now)
        for track in self._tracks.values():
            end = max(end, self.written + len(track.pending))
        return self._take(end - self.written)

    def _take(self, count: int) -> bytes:
        if count <= 0:
            return b""
        parts = []
        for track in self._tracks.values():
            pending = track.pending
            if pending:
                part = pending[:count]
                del pending[:count]
                if len(part) < count:
                    part.extend(_silence(count - len(part)))
                parts.append(part)
        self.written += count
        if not parts:
            return bytes(2 * count)
        out = parts[0] if len(parts) == 1 else mix(parts)
        if _BIG_ENDIAN:
            out.byteswap()
        return out.tobytes()



def _silence(count: int) -> array[int]:
    return array("h", bytes(2 * count))
