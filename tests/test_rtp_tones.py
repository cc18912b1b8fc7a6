import io
import math
import wave
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import MediaFormatError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.tones import (
    UK_RINGBACK_CADENCE,
    busy_frames,
    dual_tone_frames,
    frame_samples,
    ringback_frames,
    split_frames,
    tone_frames,
    tone_samples,
)
from trio_voip.rtp.wav import frames_to_wav, read_wav, wav_to_frames, write_wav


def power_at(samples, frequency: float, rate: int = 8000) -> float:
    """Goertzel: relative power of one frequency in a block."""
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / len(samples) ** 2


def test_us_ringback_cadence_and_frequencies() -> None:
    frames = ringback_frames()
    assert len(frames) == 300 and all(len(f) == 160 for f in frames)  # 6 s of 20 ms frames
    silence = bytes([0xFF]) * 160
    assert all(f != silence for f in frames[:100])
    assert all(f == silence for f in frames[100:])
    on = G711Law.PCMU.decode(b"".join(frames[:10]))
    assert power_at(on, 440) > 100 * power_at(on, 620)
    assert power_at(on, 480) > 100 * power_at(on, 350)
    # -19 dBm0 per tone; a 0 dBm0 sine peaks 3.14 dB below G.711 full scale.
    peak = 32767 * 10 ** ((-3.14 - 19) / 20)
    for frequency in (440, 480):
        assert math.sqrt(4 * power_at(on, frequency)) == pytest.approx(peak, rel=0.03)


def test_busy_and_a_custom_cadence() -> None:
    busy = busy_frames(law=G711Law.PCMA)
    assert len(busy) == 50
    assert busy[25:] == [bytes([0xD5]) * 160] * 25
    on = G711Law.PCMA.decode(b"".join(busy[:25]))
    assert power_at(on, 620) > 100 * power_at(on, 440)
    uk = ringback_frames(cadence=UK_RINGBACK_CADENCE, frequencies=(400, 450))
    assert len(uk) == 150
    pattern = [f != bytes([0xFF]) * 160 for f in uk]
    assert pattern == [True] * 20 + [False] * 10 + [True] * 20 + [False] * 100


def test_phase_is_continuous_across_frames() -> None:
    samples = tone_samples([1000], level_dbm0=0)
    steps = [abs(b - a) for a, b in zip(samples, samples[1:])]
    peak = 32767 * 10 ** (-3.14 / 20)
    # The biggest sample-to-sample step of a 1 kHz sine at 8 kHz is peak * 2 sin(pi/8) ~ 0.77 peak.
    assert max(steps) <= 0.78 * peak


def test_cycles_must_be_whole_frames() -> None:
    with pytest.raises(MediaFormatError):
        dual_tone_frames(350, 440, cadence=((0.01, 0.0),))
    with pytest.raises(MediaFormatError):
        tone_frames([440], cadence=((-1.0, 1.0),))
    with pytest.raises(MediaFormatError):
        frame_samples(frame_ms=1, sample_rate=500)


def test_split_frames_pads_with_silence() -> None:
    frames = split_frames(array("h", [0] * 170), G711Law.PCMU)
    assert [len(f) for f in frames] == [160, 160]
    assert frames[1] == bytes([0xFF]) * 160


def _wav(rate: int = 8000, channels: int = 1, width: int = 2, frames: bytes = b"") -> io.BytesIO:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)
    buf.seek(0)
    return buf


@settings(max_examples=30)
@given(st.lists(st.integers(-32768, 32767), max_size=400))
def test_wav_round_trip(samples: list[int]) -> None:
    buf = io.BytesIO()
    write_wav(buf, samples)
    buf.seek(0)
    assert list(read_wav(buf)) == samples


def test_wav_is_little_endian_on_disk() -> None:
    buf = io.BytesIO()
    write_wav(buf, array("h", [1, -2]))
    assert buf.getvalue().endswith(b"\x01\x00\xfe\xff")


def test_wav_file_to_frames_and_back(tmp_path) -> None:
    path = str(tmp_path / "prompt.wav")
    write_wav(path, tone_samples([440], cadence=((0.05, 0.0),)))  # 400 samples: 2.5 frames
    frames = wav_to_frames(path, G711Law.PCMA)
    assert [len(f) for f in frames] == [160, 160, 160]
    out = str(tmp_path / "recording.wav")
    frames_to_wav(out, frames, G711Law.PCMA)
    assert len(read_wav(out)) == 480


@pytest.mark.parametrize(
    "buf", [_wav(rate=16000), _wav(channels=2), _wav(width=1), io.BytesIO(b"RIFF....garbage")]
)
def test_unusable_wav_files(buf: io.BytesIO) -> None:
    with pytest.raises(MediaFormatError):
        read_wav(buf)


@settings(max_examples=200)
@given(st.data())
def test_damaged_wav_files_only_raise_media_format_error(data) -> None:
    good = _wav(frames=b"\x01\x02" * 50).getvalue()
    damaged = bytearray(good)
    for index in data.draw(st.lists(st.integers(0, len(good) - 1), min_size=1, max_size=4)):
        damaged[index] = data.draw(st.integers(0, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    try:
        samples = read_wav(io.BytesIO(bytes(damaged)))
    except MediaFormatError:
        return
    assert len(samples) <= 50


def test_write_wav_rejects_out_of_range_samples() -> None:
    with pytest.raises(MediaFormatError):
        write_wav(io.BytesIO(), [70000])
