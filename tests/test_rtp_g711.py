import struct
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import MediaFormatError
from trio_voip.rtp.g711 import (
    G711Law,
    alaw_decode,
    alaw_encode,
    alaw_to_linear,
    alaw_to_pcm16,
    linear_to_alaw,
    linear_to_ulaw,
    mix,
    mix_minus,
    pcm16_to_alaw,
    pcm16_to_ulaw,
    ulaw_decode,
    ulaw_encode,
    ulaw_to_linear,
    ulaw_to_pcm16,
)

int16 = st.integers(-32768, 32767)


@pytest.mark.parametrize(
    "code, value",
    [(0xFF, 0), (0x7F, 0), (0x00, -32124), (0x80, 32124), (0xFE, 8), (0x7E, -8), (0xEF, 132),
     (0x70, -120)],
)
def test_ulaw_code_points(code: int, value: int) -> None:
    assert ulaw_to_linear(code) == value
    assert ulaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    "code, value",
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24), (0x80, 5504)],
)
def test_alaw_code_points(code: int, value: int) -> None:
    assert alaw_to_linear(code) == value
    assert alaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    "sample, ulaw, alaw",
    [(0, 0xFF, 0xD5), (-1, 0x7E, 0x55), (32767, 0x80, 0xAA), (-32768, 0x00, 0x2A)],
)
def test_encoder_code_points(sample: int, ulaw: int, alaw: int) -> None:
    assert linear_to_ulaw(sample) == ulaw
    assert linear_to_alaw(sample) == alaw
    assert ulaw_encode([sample]) == bytes([ulaw])
    assert alaw_encode([sample]) == bytes([alaw])


def test_every_code_survives_a_decode_encode_round_trip() -> None:
    codes = bytes(range(256))
    expected_ulaw = codes.replace(b"\x7f", b"\xff")  # two codes mean 0; encoding picks +0
    assert ulaw_encode(ulaw_decode(codes)) == expected_ulaw
    assert alaw_encode(alaw_decode(codes)) == codes


def test_tables_match_the_reference_functions_for_every_sample() -> None:
    samples = array("h", range(-32768, 32768))
    assert ulaw_encode(samples) == bytes(linear_to_ulaw(s) for s in samples)
    assert alaw_encode(samples) == bytes(linear_to_alaw(s) for s in samples)


def _quantisation_bound(sample: int) -> int:
    # Each segment doubles the step; the error is at most half a step (plus the clip at the top).
    magnitude = abs(sample)
    if magnitude > 32124:
        return magnitude - 32124 + 512
    return max(8, magnitude // 16 + 8)


@given(st.lists(int16, max_size=64))
def test_decode_of_encode_is_close(samples: list[int]) -> None:
    for law in G711Law:
        back = law.decode(law.encode(samples))
        assert len(back) == len(samples)
        for original, decoded in zip(samples, back):
            assert abs(original - decoded) <= _quantisation_bound(original)
            # Encoding is monotonic in sign: never flips a clearly non-zero sample.
            if abs(original) > 16:
                assert (original > 0) == (decoded > 0)


@given(st.binary(max_size=64))
def test_pcm16_helpers_are_little_endian(codes: bytes) -> None:
    for to_pcm, from_pcm, decode in (
        (ulaw_to_pcm16, pcm16_to_ulaw, ulaw_decode),
        (alaw_to_pcm16, pcm16_to_alaw, alaw_decode),
    ):
        pcm = to_pcm(codes)
        assert list(struct.unpack(f"<{len(codes)}h", pcm)) == list(decode(codes))
        assert to_pcm(from_pcm(pcm)) == pcm


def test_odd_pcm_length_and_out_of_range_samples_are_rejected() -> None:
    with pytest.raises(MediaFormatError):
        pcm16_to_ulaw(b"\x00\x00\x00")
    with pytest.raises(MediaFormatError):
        ulaw_encode([40000])
    with pytest.raises(MediaFormatError):
        alaw_encode(["x"])  # type: ignore[list-item]


def test_silence_codes() -> None:
    assert G711Law.PCMU.decode(bytes([G711Law.PCMU.silence]))[0] == 0
    assert abs(G711Law.PCMA.decode(bytes([G711Law.PCMA.silence]))[0]) <= 8
    assert G711Law.PCMU.value == 0 and G711Law.PCMA.value == 8


def test_mix_sums_all_but_the_excluded_participant_with_clipping() -> None:
    a = array("h", [1000, 30000, -30000, 0])
    b = array("h", [2000, 10000, -10000, 5])
    c = array("h", [-500, 0, 0, 7])
    assert list(mix([a, b, c])) == [2500, 32767, -32768, 12]
    assert list(mix([a, b, c], exclude_index=0)) == [1500, 10000, -10000, 12]
    assert list(mix([a], exclude_index=0)) == [0, 0, 0, 0]
    assert list(mix([])) == []


@given(st.integers(1, 6).flatmap(lambda n: st.lists(
    st.lists(int16, min_size=5, max_size=5), min_size=n, max_size=n)))
def test_mix_minus_equals_mix_excluding_each(frames: list[list[int]]) -> None:
    outputs = mix_minus(frames)
    assert len(outputs) == len(frames)
    for index, heard in enumerate(outputs):
        assert heard == mix(frames, exclude_index=index)
        assert heard.typecode == "h"


def test_mix_rejects_frames_of_different_length() -> None:
    with pytest.raises(MediaFormatError):
        mix([[1, 2], [3]])
    with pytest.raises(MediaFormatError):
        mix_minus([[1, 2], [3]])
