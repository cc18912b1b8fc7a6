"""Generated audio for the coordinator's calls: conference mixes, prompts, tones, music on hold.

:class:`CallMedia` is the coordinator-side wiring of the relay's
:class:`~trio_voip.rtp.ticker.MediaTicker`; it exists only with ``builder.media_relay()``,
since everything here is sent from the calls' own relay endpoints.

* **Bridges.** The :class:`~trio_voip.session.bridges.BridgeManager` reports every bridge
  it touched with its mixed sessions (:meth:`CallMedia.follow_bridge`): a ``MIX`` bridge
  (three or more participants) puts their endpoints in one mix -- each phone hears the others,
  in its own codec, and pairwise relaying stops -- and a bridge back at two participants (or
  gone) dissolves the mix while the manager reconnects the direct relay. A leg whose codec is
  not G.711 cannot be mixed: it is left out (and logged).
* **Playback** into one call (:meth:`CallMedia.start`): replaces what the phone would hear
  from its bridge while it plays (see :mod:`trio_voip.rtp.ticker`). Sources are converted to
  the call's law on the fly.
* **Music on hold** (``builder.music_on_hold(path)``): when *we* hold a call, the held party
  hears the file looped until we resume. The file is read once per law, in a worker thread, on
  first use; a file that cannot be read is logged and the hold goes on in silence. A playback
  the application starts during the hold replaces the music (it does not come back after).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import attrs
import trio

from trio_voip.bridge import BridgeId, SessionId
from trio_voip.errors import CallError, MediaFormatError
from trio_voip.offer_answer import NegotiatedMedia
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.playback import FrameSource, WavSource
from trio_voip.rtp.relay import MediaEndpoint
from trio_voip.rtp.ticker import MediaTicker, Playback, StreamFormat

__all__ = ["CallMedia", "stream_format"]

logger = logging.getLogger(__name__)

_LAWS = {"PCMU": G711Law.PCMU, "PCMA": G711Law.PCMA}


def stream_format(media: NegotiatedMedia) -> StreamFormat | None:
    """How the phone of a call negotiated as ``media`` talks, or None if not G.711."""
    law = _LAWS.get(media.codec.name.upper())
    if law is None or media.codec.clock_rate != 8000:
        return None
    return StreamFormat(law, media.payload_type)


class CallMedia:
    """Mixes and playback for calls, by session id (module docstring).

    ``endpoint(session_id)`` is the call's relay endpoint aimed at its phone (None if it has
    none), ``media(session_id)`` its negotiated media (None before an offer/answer completed).
    """

    def __init__(
        self,
        ticker: MediaTicker,
        endpoint: Callable[[SessionId], MediaEndpoint | None],
        media: Callable[[SessionId], NegotiatedMedia | None],
        *,
        music_on_hold: str | os.PathLike[str] | None = None,
    ) -> None:
        self.ticker = ticker
        self._endpoint = endpoint
        self._media = media
        self.music_on_hold = music_on_hold
        self._moh: dict[G711Law, WavSource] = {}
        self._moh_playing: dict[SessionId, Playback] = {}

    # -- bridges --

    def follow_bridge(self, bridge_id: BridgeId, mixed: tuple[SessionId, ...]) -> None:
        """Bridge ``bridge_id`` now mixes ``mixed`` (empty: it relays, idles or is gone)."""
        members: dict[MediaEndpoint, StreamFormat] = {}
        for session_id in mixed:
            endpoint = self._endpoint(session_id)
            media = self._media(session_id)
            if endpoint is None or endpoint.closed or media is None:
                continue
            fmt = stream_format(media)
            if fmt is None:
                logger.warning(
                    "call %s uses %s, not G.711: left out of the mix of bridge %s",
                    session_id,
                    media.codec.name,
                    bridge_id,
                )
                continue
            members[endpoint] = fmt
        self.ticker.set_mix(bridge_id, members)

    # -- playback --

    def _target(self, session_id: SessionId) -> tuple[MediaEndpoint, StreamFormat]:
        endpoint = self._endpoint(session_id)
        if endpoint is None or endpoint.closed:
            raise CallError(f"call {session_id} has no relay endpoint to play into")
        media = self._media(session_id)
        if media is None:
            raise CallError(f"call {session_id} has no negotiated media yet")
        if not media.direction.sends:
            raise CallError(f"call {session_id} does not let us send media ({media.direction})")
        fmt = stream_format(media)
        if fmt is None:
            raise CallError(f"call {session_id} uses {media.codec.name}: playback needs G.711")
        return endpoint, fmt

    def law(self, session_id: SessionId) -> G711Law:
        """The law the call's phone talks (CallError if it cannot be played into)."""
        return self._target(session_id)[1].law

    def start(self, session_id: SessionId, source: FrameSource, *, loop: bool = False) -> Playback:
        """Play ``source`` into the call from the next tick, replacing what played before."""
        endpoint, fmt = self._target(session_id)
        return self.ticker.play(endpoint, source, fmt, loop=loop)

    def stop(self, session_id: SessionId) -> None:
        """Stop what plays into the call; no-op when nothing does."""
        endpoint = self._endpoint(session_id)
        if endpoint is not None:
            self.ticker.stop_playback(endpoint)

    def playback(self, session_id: SessionId) -> Playback | None:
        endpoint = self._endpoint(session_id)
        return None if endpoint is None else self.ticker.playback(endpoint)

    # -- music on hold --

    async def local_hold(self, session_id: SessionId, held: bool) -> None:
        """We put the call on hold (``held``) or took it off: start or stop the music."""
        playing = self._moh_playing.pop(session_id, None)
        if playing is not None:
            playing.stop()
        if not held or self.music_on_hold is None:
            return
        try:
            law = self.law(session_id)
            source = await self._music(law)
            self._moh_playing[session_id] = self.start(session_id, source, loop=True)
        except (CallError, MediaFormatError) as exc:
            logger.warning("no music on hold for %s: %s", session_id, exc)

    def forget(self, session_id: SessionId) -> None:
        """The call ended (its endpoint closing ends any playback)."""
        self._moh_playing.pop(session_id, None)

    async def _music(self, law: G711Law) -> WavSource:
        cached = self._moh.get(law)
        if cached is None:
            assert self.music_on_hold is not None
            cached = await trio.to_thread.run_sync(WavSource.read, self.music_on_hold, law)
            self._moh[law] = cached
        # Own position per call; the frames are shared.
        return attrs.evolve(cached, position=0)
