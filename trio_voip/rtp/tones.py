"""Call-progress tones as ready-to-send G.711 frames.

A tone is one or more frequencies switched on and off by a cadence; we render one whole cadence
cycle once and the caller loops it (``itertools.cycle``), so playing a tone costs nothing per
frame. Levels are in dBm0 per frequency, as the tone plans specify them.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

from trio_voip.errors import MediaFormatError
from trio_voip.rtp.g711 import G711Law

__all__ = [
    "Cadence",
    "US_RINGBACK_CADENCE",
    "UK_RINGBACK_CADENCE",
    "BUSY_CADENCE",
    "CONTINUOUS",
    "SAMPLE_RATE",
    "tone_samples",
    "tone_frames",
    "dual_tone_frames",
    "ringback_frames",
    "busy_frames",
    "frame_samples",
    "split_frames",
]

Cadence = Sequence[tuple[float, float]]
"""(on seconds, off seconds) pairs making up one cycle of a tone."""

US_RINGBACK_CADENCE: Cadence = ((2.0, 4.0),)
UK_RINGBACK_CADENCE: Cadence = ((0.4, 0.2), (0.4, 2.0))
BUSY_CADENCE: Cadence = ((0.5, 0.5),)
CONTINUOUS: Cadence = ((1.0, 0.0),)

SAMPLE_RATE = 8000
# Peak int16 amplitude of a 0 dBm0 sine: G.711's full-scale sine is about +3.14 dBm0.
_DBM0_PEAK = 32767 * 10 ** (-3.14 / 20)


def frame_samples(frame_ms: int = 20, sample_rate: int = SAMPLE_RATE) -> int:
    samples, remainder = divmod(frame_ms * sample_rate, 1000)
    if remainder or samples <= 0:
        raise MediaFormatError(f"{frame_ms} ms is not a whole number of samples")
    return samples


def tone_samples(
    frequencies: Sequence[float],
    *,
    cadence: Cadence = CONTINUOUS,
    level_dbm0: float = -13.0,
    sample_rate: int = SAMPLE_RATE,
) -> array[int]:
    """One cadence cycle of the sum of ``frequencies`` as int16 samples.

    Phase runs on through the off periods, so each burst starts where a continuous tone would be.
    """
    amplitude = _DBM0_PEAK * 10 ** (level_dbm0 / 20)
    steps = [2 * math.pi * f / sample_rate for f in frequencies]
    out = array("h")
    n = 0
    for on, off in cadence:
        if on < 0 or off < 0:
            raise MediaFormatError(f"negative cadence period ({on}, {off})")
        on_end = n + round(on * sample_rate)
        for i in range(n, on_end):
            value = round(amplitude * sum(math.sin(step * i) for step in steps))
            out.append(max(-32768, min(32767, value)))
        off_samples = round(off * sample_rate)
        out.frombytes(bytes(2 * off_samples))
        n = on_end + off_samples
    return out


def split_frames(samples: array[int], law: G711Law, frame_ms: int = 20) -> list[bytes]:
    """Encode int16 samples into G.711 frames, padding the last one with silence."""
    size = frame_samples(frame_ms)
    encoded = law.encode(samples)
    encoded += bytes((law.silence,)) * (-len(encoded) % size)
    return [encoded[i : i + size] for i in range(0, len(encoded), size)]


def tone_frames(
    frequencies: Sequence[float],
    *,
    cadence: Cadence = CONTINUOUS,
    level_dbm0: float = -13.0,
    law: G711Law = G711Law.PCMU,
    frame_ms: int = 20,
) -> list[bytes]:
    """One cadence cycle as G.711 frames; the cycle must be a whole number of frames."""
    size = frame_samples(frame_ms)
    samples = tone_samples(frequencies, cadence=cadence, level_dbm0=level_dbm0)
    if not samples or len(samples) % size:
        raise MediaFormatError(f"cadence cycle of {len(samples)} samples is not whole frames")
    return split_frames(samples, law, frame_ms)


def dual_tone_frames(
    low: float,
    high: float,
    *,
    cadence: Cadence = CONTINUOUS,
    level_dbm0: float = -13.0,
    law: G711Law = G711Law.PCMU,
    frame_ms: int = 20,
) -> list[bytes]:
    """A two-frequency tone (as nearly every call-progress tone is)."""
    return tone_frames(
        (low, high), cadence=cadence, level_dbm0=level_dbm0, law=law, frame_ms=frame_ms
    )


def ringback_frames(
    *,
    cadence: Cadence = US_RINGBACK_CADENCE,
    frequencies: tuple[float, float] = (440.0, 480.0),
    level_dbm0: float = -19.0,
    law: G711Law = G711Law.PCMU,
) -> list[bytes]:
    """Ringback (US by default: 440+480 Hz, 2 s on, 4 s off, -19 dBm0 per tone)."""
    return dual_tone_frames(*frequencies, cadence=cadence, level_dbm0=level_dbm0, law=law)


def busy_frames(
    *,
    cadence: Cadence = BUSY_CADENCE,
    frequencies: tuple[float, float] = (480.0, 620.0),
    level_dbm0: float = -24.0,
    law: G711Law = G711Law.PCMU,
) -> list[bytes]:
    """Busy (US: 480+620 Hz, 0.5 s on, 0.5 s off, -24 dBm0 per tone)."""
    return dual_tone_frames(*frequencies, cadence=cadence, level_dbm0=level_dbm0, law=law)
