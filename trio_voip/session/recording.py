"""Recording calls and bridges to WAV files: :class:`Recording`.

Made by :meth:`CallSession.record <trio_voip.session.call.CallSession.record>` and
:meth:`SessionCoordinator.record_bridge
<trio_voip.session.coordinator.SessionCoordinator.record_bridge>`; both need relayed media
(``builder.media_relay()``), since the recording taps the calls' relay endpoints.

What is heard: every endpoint a recording taps is a *source* of a
:class:`~trio_voip.rtp.recorder.MixRecorder` (G.711 decoded to 16-bit PCM, 8 kHz mono, gaps
filled with silence so the file keeps real time). A call's recording taps its own endpoint
(what its remote party sends) and, while the call is in a bridge or relayed to another leg,
the other participants' endpoints too (what the remote party hears): both directions, mixed.
Audio the relay generates itself (prompts, music on hold) is not recorded. A
bridge's recording taps every participant, following them as they join and leave. The taps
follow the call or bridge as soon as the coordinator changes it (and at every tick, ``tick``
seconds), and the recording stops by itself when the call ends or the bridge is destroyed.

I/O. A tap only places the packet in memory (no await, no file). One task per recording takes
the mixed PCM out every tick, gathers it into chunks of ``chunk_seconds`` and hands them to a
writer task through a channel of ``max_chunks``; the writer writes with
``trio.to_thread.run_sync``. If the disk falls that far behind, new chunks are dropped (and
counted in ``dropped_seconds``) rather than buffered without bound. The WAV header is
rewritten after every chunk, so the file is valid at each chunk boundary, and finalised when
the recording stops.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Callable, Collection

import attrs
import trio

from trio_voip.errors import RecordingError
from trio_voip.rtp.recorder import MixRecorder, RecorderStats
from trio_voip.rtp.relay import MediaEndpoint, PacketHook
from trio_voip.rtp.tones import SAMPLE_RATE

__all__ = ["Recording", "Sources"]

#: What a recording taps now: the endpoints, or None once the call or bridge is gone.
Sources = Callable[[], Collection[MediaEndpoint] | None]


class _WavFile:
    """A WAV file being written: 8 kHz mono 16-bit, the header patched after every write.
    Blocking: used from worker threads only."""

    def __init__(self, path: str) -> None:
        try:
            self._file = open(path, "wb")  # noqa: SIM115 -- closed by close()
        except OSError as exc:
            raise RecordingError(f"cannot create recording {path!r}: {exc}") from exc
        self._wave = wave.open(self._file, "wb")
        self._wave.setnchannels(1)
        self._wave.setsampwidth(2)
        self._wave.setframerate(SAMPLE_RATE)

    def writeframes(self, data: bytes) -> None:
        self._wave.writeframes(data)

    def close(self) -> None:
        try:
            self._wave.close()  # writes the final header; leaves the file to us
        finally:
            self._file.close()


@attrs.define(eq=False)
class Recording:
    """One recording in progress (module docstring). Read-only for the application.

    ``stats`` counts packets as :class:`~trio_voip.rtp.recorder.RecorderStats`; ``error`` is
    the :class:`~trio_voip.errors.RecordingError` that ended it early, if any.
    """

    path: str
    _sources: Sources = attrs.field(repr=False)
    _writer: _WavFile = attrs.field(repr=False)
    tick: float = 0.1
    chunk_seconds: float = 1.0
    max_chunks: int = 16
    _recorder: MixRecorder = attrs.field(
        factory=lambda: MixRecorder(trio.current_time()), repr=False
    )
    #: audio dropped because the writer fell behind, in seconds
    dropped_seconds: float = 0.0
    error: RecordingError | None = None
    _written: int = attrs.field(default=0, repr=False)
    _taps: dict[MediaEndpoint, PacketHook] = attrs.field(factory=dict, repr=False)
    _stop: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _done: trio.Event = attrs.field(factory=trio.Event, repr=False)

    @classmethod
    async def open(cls, path: str | os.PathLike[str], sources: Sources) -> Recording:
        """Create the file (in a worker thread) and start taping ``sources`` from now on.

        The caller runs :meth:`run` in a nursery. Raises RecordingError if the file cannot be
        created.
        """
        name = os.fspath(path)
        writer = await trio.to_thread.run_sync(_WavFile, name)
        recording = cls(name, sources, writer)
        recording.refresh()
        return recording

    @property
    def stats(self) -> RecorderStats:
        return self._recorder.stats

    @property
    def duration(self) -> float:
        """Seconds of audio in the file so far."""
        return self._written / SAMPLE_RATE

    @property
    def done(self) -> bool:
        """Whether the recording is over and its file finalised."""
        return self._done.is_set()

    async def stop(self) -> None:
        """Stop recording and wait until the file is finalised. Idempotent; raises the
        RecordingError that ended the recording early, if one did."""
        self._stop.set()
        await self.wait()

    async def wait(self) -> None:
        """Wait until the recording is over (stopped, or its call or bridge ended)."""
        await self._done.wait()
        if self.error is not None:
            raise self.error

    async def run(self) -> None:
        """Record until stopped or the sources are gone, then finalise the file."""
        send, receive = trio.open_memory_channel[bytes](self.max_chunks)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, receive, nursery.cancel_scope)
                async with send:
                    await self._collect(send)
        finally:
            self._untap()
            self._done.set()

    async def _collect(self, send: trio.MemorySendChannel[bytes]) -> None:
        recorder = self._recorder
        chunk = bytearray()
        size = 2 * round(self.chunk_seconds * SAMPLE_RATE)
        while not self._stop.is_set():
            with trio.move_on_after(self.tick):
                await self._stop.wait()
            self.refresh()
            if self._stop.is_set():
                break
            chunk += recorder.advance(trio.current_time())
            if len(chunk) >= size:
                try:
                    send.send_nowait(bytes(chunk))
                except trio.WouldBlock:
                    self.dropped_seconds += len(chunk) / (2 * SAMPLE_RATE)
                chunk.clear()
        self._untap()
        chunk += recorder.finish(trio.current_time())
        if chunk:
            await send.send(bytes(chunk))

    async def _write(
        self, receive: trio.MemoryReceiveChannel[bytes], scope: trio.CancelScope
    ) -> None:
        writer = self._writer
        try:
            async with receive:
                async for chunk in receive:
                    await trio.to_thread.run_sync(writer.writeframes, chunk)
                    self._written += len(chunk) // 2
        except OSError as exc:
            self.error = RecordingError(f"writing recording {self.path!r} failed: {exc}")
            scope.cancel()
        finally:
            # Also when cancelled: the header must say how much audio the file holds.
            with trio.CancelScope(shield=True):
                try:
                    await trio.to_thread.run_sync(writer.close)
                except OSError as exc:
                    self.error = self.error or RecordingError(
                        f"finalising recording {self.path!r} failed: {exc}"
                    )

    def refresh(self) -> None:
        """Tap what the sources are now, or stop once they are gone. Runs every tick; the
        coordinator also calls it as soon as a bridge or call changes, so no audio is missed."""
        if self._stop.is_set():
            return
        sources = self._sources()
        if sources is None:
            self._stop.set()
            return
        current = set(sources)
        for endpoint in [e for e in self._taps if e not in current or e.closed]:
            endpoint.remove_tap(self._taps.pop(endpoint))
        for endpoint in current:
            if endpoint not in self._taps and not endpoint.closed:
                tap = self._taps[endpoint] = self._tap(endpoint)
                endpoint.add_tap(tap)

    def _tap(self, endpoint: MediaEndpoint) -> PacketHook:
        feed = self._recorder.feed
        clock = trio.current_time

        def tap(view: memoryview, rtcp: bool) -> None:
            if not rtcp:
                feed(endpoint, view, clock())

        return tap

    def _untap(self) -> None:
        for endpoint, tap in self._taps.items():
            endpoint.remove_tap(tap)
        self._taps.clear()
