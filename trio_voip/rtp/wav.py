"""WAV files <-> G.711 frames, for prompts, music on hold and recordings.

Only telephone-band audio is accepted: 8 kHz, mono, 16-bit PCM. Anything else raises
MediaFormatError rather than being resampled behind the caller's back (convert once with sox).
This module does blocking file I/O: call it from a worker thread (``trio.to_thread.run_sync``)
or at start-up, not from the media loop.
"""

from __future__ import annotations

import sys
import wave
from array import array
from collections.abc import Iterable
from typing import IO

from trio_voip.errors import MediaFormatError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.tones import SAMPLE_RATE, split_frames

__all__ = ["read_wav", "write_wav", "wav_to_frames", "frames_to_wav"]

def read_wav(source: str | IO[bytes]) -> array[int]:
    """Read an 8 kHz mono 16-bit PCM WAV file into int16 samples."""
    try:
        with wave.open(source, "rb") as reader:
            shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise MediaFormatError(
                    f"WAV is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit;"
                    " need 8000 Hz mono 16-bit"
                )
            data = reader.readframes(reader.getnframes())
    # wave reports a chunk length past the end of the data as a bare RuntimeError.
    except (wave.Error, EOFError, RuntimeError) as exc:
        raise MediaFormatError(f"not a readable PCM WAV file: {exc}") from None
    if len(data) % 2:
        raise MediaFormatError("WAV data ends in half a sample")
    samples = array("h", data)
    # WAV is little-endian whatever the host.
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def write_wav(target: str | IO[bytes], samples: Iterable[int]) -> None:
    """Write int16 samples as an 8 kHz mono 16-bit PCM WAV file."""
    if not isinstance(samples, array) or samples.typecode != "h":
        try:
            samples = array("h", samples)
        except (OverflowError, TypeError) as exc:
            raise MediaFormatError(f"samples must be int16: {exc}") from None
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    with wave.open(target, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(SAMPLE_RATE)
        writer.writeframes(samples.tobytes())


def wav_to_frames(
    source: str | IO[bytes], law: G711Law = G711Law.PCMU, frame_ms: int = 20
) -> list[bytes]:
    """A WAV prompt as G.711 frames ready to send, the last padded with silence."""
    return split_frames(read_wav(source), law, frame_ms)


def frames_to_wav(target: str | IO[bytes], frames: Iterable[bytes], law: G711Law) -> None:
    """Write received G.711 frames (e.g. a recording) as a 16-bit PCM WAV file."""
    write_wav(target, law.decode(b"".join(frames)))
