"""G.711 mu-law (PCMU) and A-law (PCMA) codecs and a clipping mixer.

The per-sample functions are the classic Sun/CCITT reference algorithms (``g711.c``); they run
once at import to fill lookup tables, and the public functions only index tables:

* decoding goes through ``bytes.translate`` twice (low and high byte of each int16) and
  interleaves the results: C speed, no Python-level loop;
* encoding indexes a 64K-entry table with each int16 sample (``map``, no Python loop).

Linear audio is signed 16-bit, either as ``array('h')`` or as little-endian ``bytes`` (the WAV and
most sound-card layout).
"""

from __future__ import annotations

import enum
import sys
from array import array
from collections.abc import Callable, Iterable, Sequence

from trio_voip.errors import MediaFormatError

__all__ = [
    "G711Law",
    "ulaw_decode",
    "ulaw_encode",
    "alaw_decode",
    "alaw_encode",
    "ulaw_to_pcm16",
    "pcm16_to_ulaw",
    "alaw_to_pcm16",
    "pcm16_to_alaw",
    "linear_to_ulaw",
    "ulaw_to_linear",
    "linear_to_alaw",
    "alaw_to_linear",
    "mix",
    "mix_minus",
    "ULAW_SILENCE",
    "ALAW_SILENCE",
]

ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5

_SIGN_BIT = 0x80
_QUANT_MASK = 0x0F
_SEG_SHIFT = 4
_SEG_MASK = 0x70
_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
_SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _segment(value: int, table: tuple[int, ...]) -> int:
    for seg, limit in enumerate(table):
        if value <= limit:
            return seg
    return len(table)


def linear_to_ulaw(sample: int) -> int:
    """Encode one int16 sample to a mu-law code (Sun ``linear2ulaw``, 14-bit magnitude)."""
    pcm = sample >> 2
    if pcm < 0:
        pcm = -pcm
        mask = 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(pcm, _SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def ulaw_to_linear(code: int) -> int:
    """Decode one mu-law code to an int16 sample (Sun ``ulaw2linear``)."""
    code = ~code & 0xFF
    t = ((code & _QUANT_MASK) << 3) + _ULAW_BIAS
    t <<= (code & _SEG_MASK) >> _SEG_SHIFT
    return _ULAW_BIAS - t if code & _SIGN_BIT else t - _ULAW_BIAS


def linear_to_alaw(sample: int) -> int:
    """Encode one int16 sample to an A-law code (Sun ``linear2alaw``, 13-bit magnitude)."""
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        pcm = -pcm - 1
    seg = _segment(pcm, _SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << _SEG_SHIFT
    aval |= (pcm >> (1 if seg < 2 else seg)) & _QUANT_MASK
    return aval ^ mask


def alaw_to_linear(code: int) -> int:
    """Decode one A-law code to an int16 sample (Sun ``alaw2linear``)."""
    code ^= 0x55
    t = (code & _QUANT_MASK) << 4
    seg = (code & _SEG_MASK) >> _SEG_SHIFT
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if code & _SIGN_BIT else -t


def _decode_tables(decode: Callable[[int], int]) -> tuple[bytes, bytes]:
    # Low and high byte of each code's int16 value, for bytes.translate.
    values = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


def _encode_table(encode: Callable[[int], int]) -> tuple[int, ...]:
    # Indexed by the sample's unsigned 16-bit pattern: Python's negative indexing makes
    # table[-5] == table[65531], so a signed sample indexes it directly. A tuple, not bytes:
    # tuple.__getitem__ is the faster of the two under map().
    return tuple(encode(v - 65536 if v >= 32768 else v) for v in range(65536))


_ULAW_LOW, _ULAW_HIGH = _decode_tables(ulaw_to_linear)
_ALAW_LOW, _ALAW_HIGH = _decode_tables(alaw_to_linear)
_ULAW_ENCODE = _encode_table(linear_to_ulaw)
_ALAW_ENCODE = _encode_table(linear_to_alaw)
_BIG_ENDIAN = sys.byteorder == "big"


def _to_pcm16(data: bytes | bytearray | memoryview, low: bytes, high: bytes) -> bytes:
    data = bytes(data)
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(low)
    out[1::2] = data.translate(high)
    return bytes(out)


def _from_pcm16(pcm: bytes | bytearray | memoryview, table: tuple[int, ...]) -> bytes:
    if len(pcm) % 2:
        raise MediaFormatError(f"16-bit PCM of odd length {len(pcm)}")
    samples = array("h", bytes(pcm))
    if _BIG_ENDIAN:
        samples.byteswap()
    return bytes(map(table.__getitem__, samples))


def _decode(data: bytes | bytearray | memoryview, low: bytes, high: bytes) -> array[int]:
    samples = array("h", _to_pcm16(data, low, high))
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples


def _encode(samples: Iterable[int], table: tuple[int, ...]) -> bytes:
    if not isinstance(samples, array) or samples.typecode != "h":
        try:
            samples = array("h", samples)
        except (OverflowError, TypeError) as exc:
            raise MediaFormatError(f"samples must be int16: {exc}") from None
    return bytes(map(table.__getitem__, samples))


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """Mu-law codes to little-endian 16-bit PCM."""
    return _to_pcm16(data, _ULAW_LOW, _ULAW_HIGH)


def alaw_to_pcm16(data: bytes | bytearray | memoryview) -> bytes:
    """A-law codes to little-endian 16-bit PCM."""
    return _to_pcm16(data, _ALAW_LOW, _ALAW_HIGH)


def pcm16_to_ulaw(pcm: bytes | bytearray | memoryview) -> bytes:
    """Little-endian 16-bit PCM to mu-law codes."""
    return _from_pcm16(pcm, _ULAW_ENCODE)


def pcm16_to_alaw(pcm: bytes | bytearray | memoryview) -> bytes:
    """Little-endian 16-bit PCM to A-law codes."""
    return _from_pcm16(pcm, _ALAW_ENCODE)


def ulaw_decode(data: bytes | bytearray | memoryview) -> array[int]:
    """Mu-law codes to ``array('h')`` samples."""
    return _decode(data, _ULAW_LOW, _ULAW_HIGH)


def alaw_decode(data: bytes | bytearray | memoryview) -> array[int]:
    """A-law codes to ``array('h')`` samples."""
    return _decode(data, _ALAW_LOW, _ALAW_HIGH)


def ulaw_encode(samples: Iterable[int]) -> bytes:
    """int16 samples (an ``array('h')`` is fastest) to mu-law codes."""
    return _encode(samples, _ULAW_ENCODE)


def alaw_encode(samples: Iterable[int]) -> bytes:
    """int16 samples (an ``array('h')`` is fastest) to A-law codes."""
    return _encode(samples, _ALAW_ENCODE)


class G711Law(enum.Enum):
    """The two G.711 laws, valued by their static RTP/AVP payload type (RFC 3551)."""

    PCMU = 0
    PCMA = 8

    @property
    def silence(self) -> int:
        """The code for linear 0 (what a silent frame is filled with)."""
        return ULAW_SILENCE if self is G711Law.PCMU else ALAW_SILENCE

    def decode(self, data: bytes | bytearray | memoryview) -> array[int]:
        return ulaw_decode(data) if self is G711Law.PCMU else alaw_decode(data)

    def encode(self, samples: Iterable[int]) -> bytes:
        return ulaw_encode(samples) if self is G711Law.PCMU else alaw_encode(samples)


def _clip(values: Iterable[int]) -> array[int]:
    return array(
        "h", [v if -32768 <= v <= 32767 else (32767 if v > 0 else -32768) for v in values]
    )


def _check_lengths(frames: Sequence[Sequence[int]]) -> int:
    lengths = {len(frame) for frame in frames}
    if len(lengths) > 1:
        raise MediaFormatError(f"frames to mix differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def mix(frames: Sequence[Sequence[int]], exclude_index: int | None = None) -> array[int]:
    """Sum equal-length int16 frames, clipped to int16, leaving out ``frames[exclude_index]``.

    With ``exclude_index`` set this is what one conference participant hears: everyone else.
    """
    length = _check_lengths(frames)
    chosen = [frame for index, frame in enumerate(frames) if index != exclude_index]
    if not chosen:
        return array("h", bytes(2 * length))
    return _clip(map(sum, zip(*chosen)))


def mix_minus(frames: Sequence[Sequence[int]]) -> list[array[int]]:
    """For each participant, the clipped sum of all the others' frames.

    Sums everything once and subtracts each participant's own frame, so N participants cost
    O(N) frame passes rather than O(N**2).
    """
    _check_lengths(frames)
    if not frames:
        return []
    total = list(map(sum, zip(*frames)))
    return [_clip(map(int.__sub__, total, frame)) for frame in frames]
