"""What a call can be played, sans-IO: sources of 20 ms G.711 frames.

A :class:`FrameSource` hands out one 160-byte payload per call of ``next_frame`` and None once
it is exhausted; ``rewind`` starts it over (how a looped playback repeats it). The media
ticker pulls one frame per 20 ms tick, so a source never sleeps, reads files or awaits:

* :class:`ToneSource` -- call-progress tones (:mod:`trio_voip.rtp.tones`), one cadence cycle
  rendered once; ``ToneSource.named("ringback")`` / ``("busy")``. Tones are meant to loop.
* :class:`WavSource` -- a WAV prompt or music on hold, read whole by :meth:`WavSource.read`.
  That does blocking file I/O: call it in ``trio.to_thread.run_sync``, never in the tick.

A source is in one law; :func:`convert_frame` (one ``bytes.translate``) adapts frames for a
call negotiated in the other, and :meth:`FrameListSource.converted` converts a whole source.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import IO, Protocol, runtime_checkable

import attrs

from trio_voip.errors import MediaFormatError
from trio_voip.rtp.g711 import (
    G711Law,
    alaw_to_linear,
    linear_to_alaw,
    linear_to_ulaw,
    ulaw_to_linear,
)
from trio_voip.rtp.mixer import FRAME_SAMPLES
from trio_voip.rtp.tones import busy_frames, ringback_frames
from trio_voip.rtp.wav import wav_to_frames

__all__ = [
    "FrameSource",
    "FrameListSource",
    "ToneSource",
    "WavSource",
    "TONES",
    "convert_frame",
]

# Code-to-code tables: what decoding in one law and encoding in the other gives, per code.
_ULAW_TO_ALAW = bytes(linear_to_alaw(ulaw_to_linear(code)) for code in range(256))
_ALAW_TO_ULAW = bytes(linear_to_ulaw(alaw_to_linear(code)) for code in range(256))

#: The tones :meth:`ToneSource.named` knows.
TONES = ("ringback", "busy")


def convert_frame(frame: bytes, source: G711Law, target: G711Law) -> bytes:
    """``frame`` re-encoded from ``source`` law to ``target`` law (the same object if equal)."""
    if source is target:
        return frame
    return frame.translate(_ULAW_TO_ALAW if source is G711Law.PCMU else _ALAW_TO_ULAW)


@runtime_checkable
class FrameSource(Protocol):
    """Anything that yields 20 ms G.711 payloads in ``law`` (module docstring)."""

    @property
    def law(self) -> G711Law: ...

    def next_frame(self) -> bytes | None:
        """The next 160-byte payload, or None when the source is exhausted."""
        ...

    def rewind(self) -> None:
        """Start over from the first frame."""
        ...


def _check_frames(frames: Sequence[bytes]) -> tuple[bytes, ...]:
    out = tuple(bytes(frame) for frame in frames)
    if not out:
        raise MediaFormatError("a frame source needs at least one frame")
    for frame in out:
        if len(frame) != FRAME_SAMPLES:
            raise MediaFormatError(
                f"frames must be {FRAME_SAMPLES} bytes (20 ms), got {len(frame)}"
            )
    return out


@attrs.define(eq=False)
class FrameListSource:
    """A :class:`FrameSource` over frames held in memory, played from ``position``."""

    frames: tuple[bytes, ...] = attrs.field(converter=_check_frames)
    law: G711Law = G711Law.PCMU
    position: int = 0

    def next_frame(self) -> bytes | None:
        if self.position >= len(self.frames):
            return None
        frame = self.frames[self.position]
        self.position += 1
        return frame

    def rewind(self) -> None:
        self.position = 0

    @property
    def duration(self) -> float:
        """Seconds of audio, once through."""
        return len(self.frames) * FRAME_SAMPLES / 8000

    def converted(self, law: G711Law) -> FrameListSource:
        """This source in ``law`` (itself when already), from the first frame."""
        if law is self.law:
            return self
        frames = [convert_frame(f, self.law, law) for f in self.frames]
        return attrs.evolve(self, frames=frames, law=law, position=0)


@attrs.define(eq=False)
class ToneSource(FrameListSource):
    """One cadence cycle of a call-progress tone; play it looped."""

    @classmethod
    def named(cls, name: str, law: G711Law = G711Law.PCMU) -> ToneSource:
        """``"ringback"`` or ``"busy"`` (US tone plans, see :mod:`trio_voip.rtp.tones`)."""
        if name == "ringback":
            return cls(ringback_frames(law=law), law)
        if name == "busy":
            return cls(busy_frames(law=law), law)
        raise MediaFormatError(f"unknown tone {name!r}; known: {', '.join(TONES)}")


@attrs.define(eq=False)
class WavSource(FrameListSource):
    """A WAV file's audio (8 kHz mono 16-bit) as frames, the last padded with silence."""

    @classmethod
    def read(
        cls, source: str | PathLike[str] | IO[bytes], law: G711Law = G711Law.PCMU
    ) -> WavSource:
        """Read the whole file. Blocking: use ``trio.to_thread.run_sync`` from async code."""
        if isinstance(source, PathLike):
            source = str(source)
        try:
            frames = wav_to_frames(source, law)
        except OSError as exc:
            raise MediaFormatError(f"cannot read WAV file: {exc}") from exc
        return cls(frames, law)
