"""The call engine's spoken prompts: composition (sans-IO), the shipped WAVs, PromptSet."""

from __future__ import annotations

import logging
import math
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.callcenter import prompts as prompts_module
from trio_voip.callcenter.prompts import (
    MAX_NUMBER,
    MAX_WAIT_MINUTES,
    PHRASES,
    SOUNDS,
    PromptSet,
    announcement,
    number_words,
    wait_words,
)
from trio_voip.errors import CallCenterError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.playback import WavSource
from trio_voip.rtp.tones import SAMPLE_RATE
from trio_voip.rtp.wav import read_wav, wav_to_frames, write_wav

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_voip" / "callcenter"
FOLDER = PACKAGE / SOUNDS
FRAME = 160

_VALUES = {word: n for n, word in enumerate(
    ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
     " fifteen sixteen seventeen eighteen nineteen").split())}
_VALUES.update({word: 10 * n for n, word in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)})


def value(words: tuple[str, ...]) -> int:
    """What a listener hears: number words back to the number (strict English grammar)."""
    total, seen_tens = 0, False
    for i, word in enumerate(words):
        if word == "hundred":
            assert i == 1 and 1 <= total <= 9
            total *= 100
            continue
        n = _VALUES[word]
        assert n and not (seen_tens and n >= 10) and (total % 100 == 0 or seen_tens and n < 10)
        seen_tens = n >= 20
        total += n
    return total


def minutes_said(words: tuple[str, ...]) -> float:
    """The wait a caller understands: 0 for "less than one minute", inf past the cap."""
    if words == ("less-than-one-minute",):
        return 0
    if words[0] == "more-than":
        assert words == ("more-than", "sixty", "minutes")
        return math.inf
    *number, unit = words
    minutes = value(tuple(number))
    assert unit == ("minute" if minutes == 1 else "minutes")
    return minutes


# -- composition --


def test_every_number_is_said_with_existing_prompts_and_means_itself():
    assert number_words(0) == ("zero",)
    assert number_words(42) == ("forty", "two")
    assert number_words(310) == ("three", "hundred", "ten")
    assert number_words(900) == ("nine", "hundred")
    for n in range(1, MAX_NUMBER + 1):
        words = number_words(n)
        assert set(words) <= PHRASES.keys()
        assert value(words) == n


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_NUMBER + 1),
                 st.booleans(), st.floats(), st.text(max_size=3)))
def test_a_number_out_of_range_is_refused(n):
    with pytest.raises(CallCenterError):
        number_words(n)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.0, ("less-than-one-minute",)),
        (59.9, ("less-than-one-minute",)),
        (60.0, ("one", "minute")),
        (60.1, ("two", "minutes")),  # rounded up: never promise less than the estimate
        (150.0, ("three", "minutes")),
        (3600.0, ("sixty", "minutes")),
        (3600.5, ("more-than", "sixty", "minutes")),
        (math.inf, ("more-than", "sixty", "minutes")),
    ],
)
def test_wait_words(seconds, words):
    assert wait_words(seconds) == words


@pytest.mark.parametrize("seconds", [-0.1, -math.inf, math.nan])
def test_a_negative_or_undefined_wait_is_refused(seconds):
    with pytest.raises(CallCenterError):
        wait_words(seconds)


waits = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(st.integers(min_value=1, max_value=5000), st.one_of(st.none(), waits))
def test_announcement_says_position_then_estimate_with_existing_prompts(position, wait):
    words = announcement(position, wait)
    assert set(words) <= PHRASES.keys()
    assert words[0] == "you-are-caller-number" and words[-1] == "thank-you-for-holding"
    rest = words[1:-1]
    if "your-estimated-wait-is" in rest:
        split = rest.index("your-estimated-wait-is")
        said, estimate = rest[:split], rest[split + 1:]
        assert wait is not None
        assert minutes_said(estimate) == (
            0 if wait < 60 else math.ceil(wait / 60)
            if wait <= MAX_WAIT_MINUTES * 60 else math.inf
        )
    else:
        said = rest
        assert wait is None
    if position <= MAX_NUMBER:
        assert value(said) == position
    else:  # capped
        assert said == ("more-than", *number_words(MAX_NUMBER))


@given(waits, waits)
def test_a_longer_wait_is_never_said_shorter(a, b):
    low, high = sorted((a, b))
    assert minutes_said(wait_words(low)) <= minutes_said(wait_words(high))


def test_announcement_examples():
    assert announcement(23, 150.0) == (
        "you-are-caller-number", "twenty", "three", "your-estimated-wait-is", "three", "minutes",
        "thank-you-for-holding")
    assert announcement(1, None) == ("you-are-caller-number", "one", "thank-you-for-holding")
    assert announcement(1, 20.0)[-2] == "less-than-one-minute"


@pytest.mark.parametrize("position", [0, -3, True, 1.0, "2"])
def test_a_bad_position_is_refused(position):
    with pytest.raises(CallCenterError):
        announcement(position, None)


# -- the shipped WAVs --


def test_every_prompt_file_is_shipped_short_telephone_band_speech():
    files = {path.stem: path for path in FOLDER.glob("*.wav")}
    assert files.keys() == PHRASES.keys()
    assert sum(path.stat().st_size for path in files.values()) < 600_000
    for name, path in files.items():
        samples = read_wav(str(path))  # refuses anything but 8 kHz mono 16-bit
        seconds = len(samples) / SAMPLE_RATE
        assert 0.2 <= seconds <= 4.0, name
        assert len(samples) % FRAME == 0, name  # whole 20 ms frames: no padding when joined
        peak = max(map(abs, samples))
        assert peak > 16000, name  # normalised, not silent
        rms = math.sqrt(sum(s * s for s in samples) / len(samples))
        assert rms > 1000, name
        # trimmed: speech within the first 60 ms and the last 100 ms (incl. frame padding)
        assert max(map(abs, samples[:480])) > 0.015 * peak, name
        assert max(map(abs, samples[-800:])) > 0.015 * peak, name


def test_the_wheel_ships_the_prompts():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["trio_voip.callcenter"]
    for path in FOLDER.glob("*.wav"):
        relative = path.relative_to(PACKAGE).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


# -- PromptSet --


async def test_a_prompt_set_joins_prompts_in_each_law():
    prompts = PromptSet()
    with pytest.raises(CallCenterError, match="not loaded"):
        prompts.source(["one"], G711Law.PCMU)
    for law in G711Law:
        await prompts.load(law)
        names = announcement(23, 150.0)
        source = prompts.source(names, law)
        expected = [f for name in names for f in wav_to_frames(str(FOLDER / f"{name}.wav"), law)]
        assert list(source.frames) == expected and source.law is law and source.position == 0
        assert source.duration == pytest.approx(len(expected) * 0.02)
    with pytest.raises(CallCenterError, match="no prompt 'closed'"):
        prompts.source(["closed"], G711Law.PCMU)
    assert "one" in prompts and "closed" not in prompts


async def test_prompts_are_read_once_per_law_in_a_thread(monkeypatch):
    reads = []
    read = WavSource.read.__func__

    def counting(cls, source, law=G711Law.PCMU):
        try:
            trio.lowlevel.current_task()
        except RuntimeError:  # a worker thread, not the event loop
            reads.append(law)
        return read(cls, source, law)

    monkeypatch.setattr(WavSource, "read", classmethod(counting))
    prompts = PromptSet()
    async with trio.open_nursery() as nursery:  # two first callers at once
        nursery.start_soon(prompts.load, G711Law.PCMA)
        nursery.start_soon(prompts.load, G711Law.PCMA)
    await prompts.compose(["one"], G711Law.PCMA)
    assert reads == [G711Law.PCMA] * len(PHRASES)


async def test_a_configured_wav_overrides_or_adds_and_a_bad_one_is_logged(tmp_path, caplog):
    mine = tmp_path / "mine.wav"
    write_wav(str(mine), [1000, -1000] * 400)  # 0.1 s
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF nonsense")
    prompts = PromptSet({"please-hold": mine, "closed": mine, "minute": broken,
                         "gone": tmp_path / "missing.wav"})
    assert "closed" in prompts and "gone" in prompts
    with caplog.at_level(logging.WARNING, logger=prompts_module.__name__):
        hold = await prompts.compose(["please-hold", "closed"], G711Law.PCMU)
    assert list(hold.frames) == wav_to_frames(str(mine)) * 2
    # the unusable override of a built-in name: the built-in plays
    minute = prompts.source(["minute"], G711Law.PCMU)
    assert list(minute.frames) == wav_to_frames(str(FOLDER / "minute.wav"))
    with pytest.raises(CallCenterError):
        prompts.source(["gone"], G711Law.PCMU)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "'minute'" in logged and "built-in" in logged and "'gone'" in logged


async def test_a_missing_built_in_prompt_fails_loading(monkeypatch, tmp_path):
    monkeypatch.setattr(prompts_module, "SOUNDS", "no-such-folder")
    with pytest.raises(CallCenterError, match="built-in prompt"):
        await PromptSet().load(G711Law.PCMU)
