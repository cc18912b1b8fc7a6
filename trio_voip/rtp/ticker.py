"""The media clock of a relay: one task that generates audio every 20 ms.

Every :class:`~trio_voip.rtp.relay.RtpRelay` owns one :class:`MediaTicker` (``relay.ticker``),
run in the relay's nursery. It does the media work that is not packet forwarding:

* **Mixes.** :meth:`MediaTicker.set_mix` puts endpoints in a :class:`~trio_voip.rtp.mixer.Mixer`:
  a tap on each endpoint (:meth:`~trio_voip.rtp.relay.MediaEndpoint.add_tap`) feeds what its
  phone sends (RTP of the negotiated payload type only: DTMF events and RTCP are not audio),
  and each tick sends every member the mix of all the others from its own socket.
* **Playback.** :meth:`MediaTicker.play` sends one frame of a
  :class:`~trio_voip.rtp.playback.FrameSource` per tick to an endpoint's phone. Playback
  *replaces* what the phone would otherwise hear: while it plays, the endpoint's relay peer is
  not forwarded to it (counted in ``stats.suppressed``) and its mix output is not sent. What the
  phone itself says still reaches its peer or its mix (a prompt to one member does not mute
  them to the others). A one-shot source ends the tick after its last frame went out.

**The schedule.** :class:`TickSchedule` is the sans-IO clock: ticks fall on an absolute grid
``origin + n * period``, so there is no drift whatever each tick costs; a tick that wakes a
whole period or more late skips the ticks it missed (counted) rather than bursting to catch
up, and every outgoing stream's RTP timestamp jumps over the gap so the phone plays it as loss.
Sources do not advance over skipped ticks. The task sleeps on an event while there is no mix
and no playback, so an idle relay pays nothing.

Each endpoint generating audio has one :class:`~trio_voip.rtp.mixer.RtpPacketizer` (own SSRC,
marker on the first packet) for as long as it is in a mix or playing, so a phone moving from a
mix to a prompt and back sees one continuous stream. Sends are non-blocking; a full socket
buffer drops the packet (counted in the endpoint's ``send_dropped``). A mixed endpoint has no
relay peer, so its received packets also count in ``no_peer`` after the tap took them. No RTCP
is generated for these streams (RTCP from the phones of a mix is not forwarded either).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING

import attrs
import trio

from trio_voip.errors import RtpError, RtpParseError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.mixer import FRAME_SAMPLES, Mixer, RtpPacketizer
from trio_voip.rtp.packet import RTP_HEADER_SIZE, rtp_payload_bounds
from trio_voip.rtp.playback import FrameSource, convert_frame

if TYPE_CHECKING:
    from trio_voip.rtp.relay import MediaEndpoint, PacketHook

__all__ = [
    "FRAME_PERIOD",
    "MediaTicker",
    "Playback",
    "PlaybackEnd",
    "StreamFormat",
    "TickSchedule",
]

logger = logging.getLogger(__name__)

#: Seconds per tick: one 20 ms G.711 frame.
FRAME_PERIOD = 0.020


@attrs.frozen
class StreamFormat:
    """How an endpoint's phone talks: G.711 ``law`` under RTP ``payload_type`` (both ways)."""

    law: G711Law = G711Law.PCMU
    payload_type: int = attrs.field(
        default=attrs.Factory(lambda self: self.law.value, takes_self=True)
    )

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise RtpError(f"payload type {self.payload_type} outside 0..127")


@attrs.define
class TickSchedule:
    """Ticks on the absolute grid ``origin + index * period`` (module docstring).

    :meth:`start` at time ``now`` makes the first tick due at once; after each wake-up
    :meth:`advance` says how many ticks were missed and moves ``deadline`` to the next one.
    """

    period: float = FRAME_PERIOD
    origin: float = 0.0
    index: int = 0
    ticks: int = 0
    skipped: int = 0

    def __attrs_post_init__(self) -> None:
        if not self.period > 0:
            raise RtpError(f"tick period must be positive, got {self.period}")

    @property
    def deadline(self) -> float:
        """When the next tick is due."""
        return self.origin + self.index * self.period

    def start(self, now: float) -> None:
        self.origin = now
        self.index = 0

    def advance(self, now: float) -> int:
        """Run the due tick at ``now``: returns how many earlier ticks were missed (skipped)."""
        late = max(0, math.floor((now - self.deadline) / self.period))
        self.index += late + 1
        self.skipped += late
        self.ticks += 1
        return late


class PlaybackEnd(enum.Enum):
    """Why a playback ended."""

    COMPLETED = "completed"  # a one-shot source ran out
    STOPPED = "stopped"  # stop_playback
    REPLACED = "replaced"  # another playback started on the endpoint
    CLOSED = "closed"  # the endpoint closed or the relay stopped
    FAILED = "failed"  # the source raised or gave a frame that is not 20 ms


@attrs.define(eq=False)
class Playback:
    """One source playing into one endpoint; made by :meth:`MediaTicker.play`."""

    endpoint: MediaEndpoint
    source: FrameSource
    format: StreamFormat
    loop: bool
    frames_sent: int = 0
    result: PlaybackEnd | None = None
    _ticker: MediaTicker = attrs.field(kw_only=True, repr=False)
    _done: trio.Event = attrs.field(factory=trio.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.result is not None

    async def wait(self) -> PlaybackEnd:
        """Wait for the end of the playback and return why it ended."""
        await self._done.wait()
        assert self.result is not None
        return self.result

    def stop(self) -> None:
        """End this playback (STOPPED) if it is still the endpoint's; no-op once done."""
        if not self.done:
            self._ticker._finish(self.endpoint, PlaybackEnd.STOPPED)


@attrs.define(eq=False)
class _Member:
    format: StreamFormat
    tap: PacketHook


@attrs.define(eq=False)
class _Mix:
    mixer: Mixer
    members: dict[MediaEndpoint, _Member] = attrs.Factory(dict)


def _mix_tap(mixer: Mixer, endpoint: MediaEndpoint, payload_type: int) -> PacketHook:
    feed = mixer.feed

    def tap(view: memoryview, rtcp: bool) -> None:
        # The relay already checked version 2 and the 12-byte header.
        if rtcp or view[1] & 0x7F != payload_type:
            return
        if view[0] == 0x80:  # no CSRC, extension or padding: the common case
            feed(endpoint, view[RTP_HEADER_SIZE:])
            return
        try:
            start, end = rtp_payload_bounds(view, len(view))
        except RtpParseError:
            return  # a tap that raises is detached: drop the packet instead
        feed(endpoint, view[start:end])

    return tap


@attrs.define(eq=False)
class MediaTicker:
    """Mixes and playbacks of one relay's endpoints on one 20 ms clock (module docstring)."""

    schedule: TickSchedule = attrs.Factory(TickSchedule)
    mix_depth: int = 3
    _mixes: dict[Hashable, _Mix] = attrs.field(init=False, factory=dict, repr=False)
    _mix_of: dict[MediaEndpoint, Hashable] = attrs.field(init=False, factory=dict, repr=False)
    _players: dict[MediaEndpoint, Playback] = attrs.field(init=False, factory=dict, repr=False)
    _streams: dict[MediaEndpoint, RtpPacketizer] = attrs.field(
        init=False, factory=dict, repr=False
    )
    _wake: trio.Event = attrs.field(init=False, factory=trio.Event, repr=False)
    _running: bool = attrs.field(init=False, default=False, repr=False)

    # -- queries --

    @property
    def idle(self) -> bool:
        """No mix and no playback: the task sleeps."""
        return not self._mixes and not self._players

    @property
    def stream_count(self) -> int:
        """Endpoints with an outgoing generated stream (in a mix or playing)."""
        return len(self._streams)

    def mixes(self) -> dict[Hashable, tuple[MediaEndpoint, ...]]:
        """Each mix's members, by key."""
        return {key: tuple(mix.members) for key, mix in self._mixes.items()}

    def mixer(self, key: Hashable) -> Mixer | None:
        """The mixer of mix ``key`` (for its per-participant counters), if any."""
        mix = self._mixes.get(key)
        return None if mix is None else mix.mixer

    def playback(self, endpoint: MediaEndpoint) -> Playback | None:
        """What plays into ``endpoint`` now, if anything."""
        return self._players.get(endpoint)

    def stream(self, endpoint: MediaEndpoint) -> RtpPacketizer | None:
        """The generated RTP stream going out of ``endpoint``, if any."""
        return self._streams.get(endpoint)

    # -- mixes --

    def set_mix(self, key: Hashable, members: Mapping[MediaEndpoint, StreamFormat]) -> None:
        """Make mix ``key`` exactly ``members`` (each with how its phone talks).

        New members get a capture tap, members left out lose it; no members ends the mix.
        An endpoint is in one mix at a time; a closed one raises RtpError (nothing changed).
        """
        for endpoint in members:
            if endpoint.closed:
                raise RtpError(f"endpoint on port {endpoint.local_port} is closed")
            other = self._mix_of.get(endpoint)
            if other is not None and other != key:
                raise RtpError(f"endpoint on port {endpoint.local_port} is in mix {other!r}")
        mix = self._mixes.get(key)
        if mix is None:
            if not members:
                return
            mix = self._mixes[key] = _Mix(Mixer(self.mix_depth))
        for endpoint in [e for e in mix.members if e not in members]:
            self._leave(key, mix, endpoint)
        for endpoint, fmt in members.items():
            member = mix.members.get(endpoint)
            if member is not None and member.format == fmt:
                continue
            if member is not None:
                self._leave(key, mix, endpoint)
            tap = _mix_tap(mix.mixer, endpoint, fmt.payload_type)
            mix.members[endpoint] = _Member(fmt, tap)
            mix.mixer.add(endpoint, fmt.law)
            self._mix_of[endpoint] = key
            self._stream_for(endpoint, fmt)
            endpoint.add_tap(tap)
        if not mix.members:
            del self._mixes[key]
        self._wake.set()

    def _leave(self, key: Hashable, mix: _Mix, endpoint: MediaEndpoint) -> None:
        member = mix.members.pop(endpoint)
        endpoint.remove_tap(member.tap)
        mix.mixer.remove(endpoint)
        if self._mix_of.get(endpoint) == key:
            del self._mix_of[endpoint]
        self._release(endpoint)

    # -- playback --

    def play(
        self,
        endpoint: MediaEndpoint,
        source: FrameSource,
        format: StreamFormat | None = None,
        *,
        loop: bool = False,
    ) -> Playback:
        """Play ``source`` into ``endpoint`` from the next tick, in ``format`` (PCMU by default).

        Replaces (REPLACED) what played there before. ``loop`` rewinds the source when it runs
        out; otherwise the playback completes after its last frame.
        """
        if endpoint.closed:
            raise RtpError(f"endpoint on port {endpoint.local_port} is closed")
        if not isinstance(source, FrameSource):
            raise RtpError(f"not a frame source: {source!r}")
        fmt = format or StreamFormat()
        if endpoint in self._players:
            self._finish(endpoint, PlaybackEnd.REPLACED)
        playback = Playback(endpoint, source, fmt, loop, ticker=self)
        self._players[endpoint] = playback
        self._stream_for(endpoint, fmt)
        endpoint.playing = True
        self._wake.set()
        return playback

    def stop_playback(self, endpoint: MediaEndpoint) -> None:
        """Stop what plays into ``endpoint`` (STOPPED); no-op when nothing does."""
        if endpoint in self._players:
            self._finish(endpoint, PlaybackEnd.STOPPED)

    def _finish(self, endpoint: MediaEndpoint, result: PlaybackEnd) -> None:
        playback = self._players.pop(endpoint)
        endpoint.playing = False
        playback.result = result
        playback._done.set()
        self._release(endpoint)

    # -- endpoints --

    def forget(self, endpoint: MediaEndpoint) -> None:
        """``endpoint`` closed: out of its mix, its playback ended (CLOSED)."""
        key = self._mix_of.get(endpoint)
        if key is not None:
            mix = self._mixes[key]
            self._leave(key, mix, endpoint)
            if not mix.members:
                del self._mixes[key]
        if endpoint in self._players:
            self._finish(endpoint, PlaybackEnd.CLOSED)
        self._streams.pop(endpoint, None)

    def _stream_for(self, endpoint: MediaEndpoint, fmt: StreamFormat) -> None:
        stream = self._streams.get(endpoint)
        if stream is None or stream.payload_type != fmt.payload_type:
            self._streams[endpoint] = RtpPacketizer(fmt.payload_type)

    def _release(self, endpoint: MediaEndpoint) -> None:
        if endpoint not in self._mix_of and endpoint not in self._players:
            self._streams.pop(endpoint, None)

    # -- the clock --

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick while there is work, sleep while there is none; until cancelled. On the way
        out every playback ends (CLOSED) and every mix is dissolved."""
        if self._running:
            raise RtpError("this media ticker is already running")
        self._running = True
        task_status.started()
        schedule = self.schedule
        try:
            while True:
                while self.idle:
                    self._wake = trio.Event()
                    await self._wake.wait()
                schedule.start(trio.current_time())
                while not self.idle:
                    await trio.sleep_until(schedule.deadline)
                    if self.idle:
                        break  # the work went away while we slept: no empty tick
                    missed = schedule.advance(trio.current_time())
                    if missed:
                        for stream in self._streams.values():
                            stream.skip(missed)
                    self.tick()
        finally:
            self._running = False
            for endpoint in list(self._players):
                self._finish(endpoint, PlaybackEnd.CLOSED)
            for key in list(self._mixes):
                self.set_mix(key, {})

    def tick(self) -> None:
        """One frame of work: every playback, then every mix (the task calls this).

        Playbacks go first so that one ending in this tick leaves no gap: its endpoint gets
        its mix frame at once.
        """
        players = self._players
        for endpoint, playback in list(players.items()):
            frame = self._next_frame(playback)
            if frame is None:
                continue
            self._send(endpoint, convert_frame(frame, playback.source.law, playback.format.law))
            playback.frames_sent += 1
        for mix in list(self._mixes.values()):
            for endpoint, payload in mix.mixer.tick():
                if endpoint not in players:
                    self._send(endpoint, payload)  # type: ignore[arg-type]

    def _next_frame(self, playback: Playback) -> bytes | None:
        source = playback.source
        try:
            frame = source.next_frame()
            if frame is None and playback.loop:
                source.rewind()
                frame = source.next_frame()
        except Exception:
            logger.exception("frame source %r failed", source)
            self._finish(playback.endpoint, PlaybackEnd.FAILED)
            return None
        if frame is None:
            self._finish(playback.endpoint, PlaybackEnd.COMPLETED)
        elif len(frame) != FRAME_SAMPLES:
            logger.error("frame source %r gave a %d-byte frame", source, len(frame))
            self._finish(playback.endpoint, PlaybackEnd.FAILED)
            return None
        return frame

    def _send(self, endpoint: MediaEndpoint, payload: bytes) -> None:
        endpoint.send_rtp(self._streams[endpoint].packet(payload))
