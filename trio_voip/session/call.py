"""One call as the application sees it: :class:`CallSession`.

Its state follows the table in :mod:`trio_voip.session.state`: every change goes through
:meth:`CallSession._transition`, which checks it against ``TRANSITIONS`` (anything else raises
:class:`~trio_voip.errors.CallStateError`) and returns the :class:`CallStateChanged` to
report. The methods (``answer``, ``hangup``, ``hold``, ...) are carried out by the coordinator
that owns the call; a CallSession is only ever made by a :class:`SessionCoordinator`.
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING

import attrs
import trio

from trio_voip.errors import CallError, CallStateError, TrioVoipError
from trio_voip.events import EventBus
from trio_voip.offer_answer import NegotiatedMedia
from trio_voip.rtp.playback import FrameSource, ToneSource, WavSource
from trio_voip.rtp.ticker import Playback, PlaybackEnd
from trio_voip.sdp import SessionDescription
from trio_voip.session.events import CallStateChanged, SessionEvent
from trio_voip.session.state import TRANSITIONS, CallDirection, CallState, EndReason
from trio_voip.sip.headers import NameAddr
from trio_voip.sip.message import Request
from trio_voip.sip.uri import Uri

if TYPE_CHECKING:
    from trio_voip.session.coordinator import SessionCoordinator
    from trio_voip.session.media import CallMedia
    from trio_voip.session.recording import Recording

__all__ = ["CallSession", "first_to_end", "hangup_quietly"]

logger = logging.getLogger(__name__)


@attrs.define(eq=False)
class CallSession:
    """One call; see the module docstring. Attributes are read-only for the application.

    ``local_sdp`` / ``remote_sdp`` are the last SDP each side sent, ``media`` the outcome of
    the last completed offer/answer (None before one completes), ``rtp_port`` the local RTP
    port advertised (released when the call ends; None while we advertise none, e.g. when
    a B2BUA passes the other leg's SDP through). ``invite`` is the initial INVITE (received
    or sent), for its headers. ``replaces`` is the id of the call this one took over
    (an incoming INVITE with Replaces, RFC 3891).
    """

    id: str
    direction: CallDirection
    call_id: str
    local_party: NameAddr
    remote_party: NameAddr
    _coordinator: SessionCoordinator = attrs.field(repr=False)
    state: CallState = CallState.INITIATING
    end_reason: EndReason | None = None
    local_sdp: SessionDescription | None = attrs.field(default=None, repr=False)
    remote_sdp: SessionDescription | None = attrs.field(default=None, repr=False)
    media: NegotiatedMedia | None = attrs.field(default=None, repr=False)
    rtp_port: int | None = None
    invite: Request | None = attrs.field(default=None, repr=False)
    replaces: str | None = None
    created_at: float = attrs.field(factory=trio.current_time)
    established_at: float | None = None
    ended_at: float | None = None
    local_hold: bool = False
    remote_hold: bool = False
    _bus: EventBus[SessionEvent] = attrs.field(factory=EventBus, repr=False)
    _changed: trio.Event = attrs.field(factory=trio.Event, repr=False)

    # -- state --

    def _transition(self, new: CallState, reason: str = "") -> CallStateChanged:
        """Move to ``new`` (checked against TRANSITIONS) and return the event to publish."""
        old = self.state
        if (old, new) not in TRANSITIONS:
            raise CallStateError(f"call {self.id}: {old.name} -> {new.name} is not allowed")
        self.state = new
        now = trio.current_time()
        if new.established and self.established_at is None:
            self.established_at = now
        if new is CallState.TERMINATED:
            self.ended_at = now
        changed, self._changed = self._changed, trio.Event()
        changed.set()
        return CallStateChanged(self.id, old, new, reason)

    @property
    def duration(self) -> float:
        """Seconds since the call was established (to its end, once over); 0 if never."""
        if self.established_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else trio.current_time()
        return end - self.established_at

    async def wait_state(self, *states: CallState, timeout: float = math.inf) -> CallState:
        """Wait until the call is in one of ``states`` (TERMINATED also ends the wait);
        returns the state. Raises CallStateError on timeout."""
        with trio.move_on_after(timeout):
            while self.state not in states and self.state is not CallState.TERMINATED:
                await self._changed.wait()
            return self.state
        raise CallStateError(f"call {self.id} still {self.state.name} after {timeout} s")

    async def wait_ended(self) -> EndReason:
        """Wait for the end of the call and return why it ended."""
        await self.wait_state(CallState.TERMINATED)
        assert self.end_reason is not None
        return self.end_reason

    def events(self, buffer: int = 100) -> trio.MemoryReceiveChannel[SessionEvent]:
        """This call's events from now on; the channel ends when the call does."""
        return self._bus.subscribe(buffer)

    # -- actions (carried out by the coordinator) --

    async def answer(self, sdp: SessionDescription | bytes | None = None) -> None:
        """Answer a ringing incoming call with 200. ``sdp`` is the answer to send (e.g. the
        other leg's SDP in a B2BUA); by default we answer the offer from our capabilities."""
        await self._coordinator._answer(self, sdp)

    async def ring(self, sdp: SessionDescription | bytes | None = None) -> None:
        """Tell the caller of an unanswered incoming call that it rings: 180 Ringing, or
        183 Session Progress carrying ``sdp`` (early media, e.g. a B2BUA relaying the other
        leg's 183). The call goes RINGING; answer or reject it later."""
        await self._coordinator._ring(self, sdp)

    async def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse an incoming call that is not answered yet (default 486 Busy Here)."""
        await self._coordinator._reject(self, status, reason)

    async def hangup(self) -> None:
        """End the call the way its state calls for: CANCEL an outgoing call still ringing,
        480 for an incoming one, BYE once answered. Ending an ended call does nothing."""
        await self._coordinator._hangup(self)

    async def hold(self) -> None:
        """Put the call on hold with a re-INVITE (our streams sendonly, RFC 3264 8.4).
        On glare (491) it tries once more after the RFC 3261 14.1 back-off; any other
        failure raises CallError and leaves the call as it was."""
        await self._coordinator._hold(self, hold=True)

    async def resume(self) -> None:
        """Take the call off hold with a re-INVITE (sendrecv again)."""
        await self._coordinator._hold(self, hold=False)

    async def send_dtmf(
        self, digits: str, duration: int = 160, method: str | None = None
    ) -> None:
        """Send ``digits``, each ``duration`` ms, one after the other; returns once sent.

        ``method`` is ``"info"`` (a SIP INFO per digit, application/dtmf-relay) or
        ``"rfc4733"`` (telephone-event RTP packets from the call's relayed media). By default
        it is RFC 4733 when the call has relayed media (``builder.media_relay()``) and the peer
        negotiated telephone-event, since that is what the peer said it understands and it
        keeps the digits in step with the audio; INFO otherwise.
        """
        await self._coordinator._send_dtmf(self, digits, duration, method)

    async def record(self, path: str | os.PathLike[str]) -> Recording:
        """Record the call to a WAV file at ``path`` (8 kHz mono 16-bit PCM) until ``await
        recording.stop()`` or the call ends. It holds what the remote party sends and, while
        the call is in a bridge (or relayed to another leg), what the others send too: both
        directions, mixed. Audio the relay generates (prompts, music on hold) is not in it.
        Needs relayed media (``builder.media_relay()``); see
        :mod:`trio_voip.session.recording`."""
        return await self._coordinator._record_call(self, path)

    # -- generated audio (relayed media only; see trio_voip.session.media) --

    def _call_media(self) -> CallMedia:
        media = self._coordinator.media
        if media is None:
            raise CallError("playback needs relayed media (builder.media_relay())")
        if self.state is CallState.TERMINATED:
            raise CallStateError(f"call {self.id} has ended")
        return media

    def start_playback(self, source: FrameSource, *, loop: bool = False) -> Playback:
        """Start playing ``source`` to the remote party and return at once (``await
        playback.wait()`` for its end). It replaces what the party hears from a bridge, and
        any playback before. Raises CallError without relayed media, G.711 or a way to send."""
        return self._call_media().start(self.id, source, loop=loop)

    async def play(self, source: FrameSource, *, loop: bool = False) -> PlaybackEnd:
        """Play ``source`` to the remote party and return why it ended: COMPLETED after a
        one-shot's last frame, or STOPPED (:meth:`stop_playback`), REPLACED (another
        playback) or CLOSED (the call ended). With ``loop`` it repeats until one of those."""
        return await self.start_playback(source, loop=loop).wait()

    def play_tone(self, name: str) -> Playback:
        """Start the tone ``"ringback"`` or ``"busy"``, looped until :meth:`stop_playback`
        (or another playback); returns at once."""
        media = self._call_media()
        return media.start(self.id, ToneSource.named(name, media.law(self.id)), loop=True)

    async def play_wav(self, path: str | os.PathLike[str], *, loop: bool = False) -> PlaybackEnd:
        """Play a WAV file (8 kHz mono 16-bit, read in a worker thread) as :meth:`play`.
        A file that cannot be used raises MediaFormatError."""
        law = self._call_media().law(self.id)
        source = await trio.to_thread.run_sync(WavSource.read, path, law)
        return await self.play(source, loop=loop)

    def stop_playback(self) -> None:
        """Stop what plays to the remote party (STOPPED); no-op when nothing does."""
        media = self._coordinator.media
        if media is None:
            raise CallError("playback needs relayed media (builder.media_relay())")
        media.stop(self.id)

    async def transfer(self, target: str | Uri, *, replaces: CallSession | None = None) -> None:
        """Transfer the peer to ``target`` with REFER (RFC 3515). Blind by default; with
        ``replaces`` (our established call to ``target``) it is an attended transfer: the
        peer's INVITE to the target carries Replaces (RFC 3891) and takes that call over.
        Returns once the REFER is accepted; progress arrives as TransferProgress events,
        and success ends this call (and ``replaces``) as TRANSFERRED. Raises CallError if
        the peer refuses the REFER."""
        await self._coordinator._transfer(self, target, replaces)


async def first_to_end(*calls: CallSession) -> CallSession:
    """Wait until one of ``calls`` has ended and return it: how a B2BUA ties two legs."""
    ended: list[CallSession] = []
    async with trio.open_nursery() as nursery:

        async def wait(call: CallSession) -> None:
            await call.wait_ended()
            ended.append(call)
            nursery.cancel_scope.cancel()

        for call in calls:
            nursery.start_soon(wait, call)
    return ended[0]


async def hangup_quietly(call: CallSession) -> None:
    """Hang ``call`` up when the other leg of a pair ended: a call that is already over (or
    whose hang-up fails) is logged, not raised, since there is nobody left to tell."""
    try:
        await call.hangup()
    except TrioVoipError as exc:
        logger.info("hang-up of %s failed: %s", call.id, exc)
