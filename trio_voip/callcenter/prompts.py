"""Spoken prompts of the call engine: what to say (sans-IO) and the audio to say it with.

* **Composition** is pure: :func:`announcement` turns a waiting caller's position and
  estimated wait into the names of the prompts to play in order, e.g. position 23 and 150 s
  give ``you-are-caller-number twenty three your-estimated-wait-is three minutes
  thank-you-for-holding``.
  Numbers are said from words (:func:`number_words`: zero to nine hundred ninety nine).
* **Audio**: the built-in prompts are 8 kHz mono 16-bit WAVs shipped in the package
  (``sounds/<name>.wav``, made once with espeak-ng by ``tools/make_prompts.py``; the names and
  their words are :data:`PHRASES`). :class:`PromptSet` reads them once per G.711 law in a worker
  thread and concatenates named prompts into one
  :class:`~trio_voip.rtp.playback.FrameListSource`. A WAV configured for a name overrides the
  built-in one (or adds a name, e.g. an ``announce:<prompt>`` overflow's prompt).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

import trio

from trio_voip.errors import CallCenterError, MediaFormatError
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.playback import FrameListSource, WavSource

__all__ = [
    "PHRASES",
    "SOUNDS",
    "MAX_NUMBER",
    "MAX_WAIT_MINUTES",
    "ALL_AGENTS_BUSY",
    "LEAVE_MESSAGE",
    "PLEASE_HOLD",
    "THANK_YOU_FOR_HOLDING",
    "number_words",
    "wait_words",
    "announcement",
    "PromptSet",
]

logger = logging.getLogger(__name__)

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

ALL_AGENTS_BUSY = "all-agents-busy"
LEAVE_MESSAGE = "leave-message"
PLEASE_HOLD = "please-hold"
THANK_YOU_FOR_HOLDING = "thank-you-for-holding"

#: Every built-in prompt: its name (the file ``sounds/<name>.wav``) and the words it says.
PHRASES: Mapping[str, str] = {
    "you-are-caller-number": "You are caller number",
    "your-estimated-wait-is": "Your estimated wait is",
    "less-than-one-minute": "less than one minute",
    "more-than": "more than",
    "minute": "minute",
    "minutes": "minutes",
    **{word: word for word in _ONES},
    **{word: word for word in _TENS if word},
    "hundred": "hundred",
    THANK_YOU_FOR_HOLDING: "Thank you for holding.",
    PLEASE_HOLD: "Please hold.",
    ALL_AGENTS_BUSY: "All our agents are busy. Please call again later.",
    LEAVE_MESSAGE: "Please leave a message after the tone.",
}

#: The package folder of the built-in WAVs.
SOUNDS = "sounds"
#: Positions beyond this are said as "more than" it.
MAX_NUMBER = 999
#: Estimated waits beyond this many minutes are said as "more than sixty minutes".
MAX_WAIT_MINUTES = 60


def number_words(n: int) -> tuple[str, ...]:
    """``n`` (0 to :data:`MAX_NUMBER`) in prompt names: 7 -> seven, 42 -> forty two,
    310 -> three hundred ten."""
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise CallCenterError(f"cannot say {n!r}: only whole numbers 0 to {MAX_NUMBER}")
    if n < 20:
        return (_ONES[n],)
    hundreds, rest = divmod(n, 100)
    words = (_ONES[hundreds], "hundred") if hundreds else ()
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        return (*words, _TENS[tens], *((_ONES[ones],) if ones else ()))
    return (*words, _ONES[rest]) if rest else words


def wait_words(seconds: float) -> tuple[str, ...]:
    """An estimated wait as said: rounded *up* to whole minutes (a promise should not be
    short), "less than one minute" under 60 s, "more than sixty minutes" past the cap."""
    if not seconds >= 0:  # also NaN
        raise CallCenterError(f"an estimated wait must be 0 s or more, not {seconds!r}")
    if seconds < 60:
        return ("less-than-one-minute",)
    if seconds > MAX_WAIT_MINUTES * 60:
        return ("more-than", *number_words(MAX_WAIT_MINUTES), "minutes")
    minutes = math.ceil(seconds / 60)
    return (*number_words(minutes), "minute" if minutes == 1 else "minutes")


def announcement(position: int, estimated_wait: float | None) -> tuple[str, ...]:
    """The prompts telling a waiting caller its ``position`` (1 = next) and, unless None
    (no history to estimate from), its ``estimated_wait`` in seconds (:func:`wait_words`),
    then thanking it for holding (as the music comes back)."""
    if isinstance(position, bool) or not isinstance(position, int) or position < 1:
        raise CallCenterError(f"a queue position is 1 or more, not {position!r}")
    said = (number_words(position) if position <= MAX_NUMBER
            else ("more-than", *number_words(MAX_NUMBER)))
    estimate = (() if estimated_wait is None
                else ("your-estimated-wait-is", *wait_words(estimated_wait)))
    return ("you-are-caller-number", *said, *estimate, THANK_YOU_FOR_HOLDING)


class PromptSet:
    """The built-in prompts, each overridden or added by a WAV file in ``overrides`` (name ->
    path). :meth:`load` reads them all for a law once, in a worker thread; a configured file
    that cannot be read is logged and the built-in one (if any) is used instead."""

    def __init__(self, overrides: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
        self.overrides = {name: Path(path) for name, path in (overrides or {}).items()}
        self._frames: dict[G711Law, dict[str, tuple[bytes, ...]]] = {}
        self._loading = trio.Lock()

    def __contains__(self, name: object) -> bool:
        return name in PHRASES or name in self.overrides

    async def load(self, law: G711Law) -> None:
        """Read every prompt in ``law`` unless done already. Raises CallCenterError if a
        built-in prompt is missing or unreadable (a broken installation)."""
        async with self._loading:  # concurrent first announcements read the files once
            if law not in self._frames:
                self._frames[law] = await trio.to_thread.run_sync(self._read, law)

    def _read(self, law: G711Law) -> dict[str, tuple[bytes, ...]]:
        frames = {}
        folder = resources.files(__package__).joinpath(SOUNDS)
        for name in PHRASES:
            try:
                with folder.joinpath(f"{name}.wav").open("rb") as wav:
                    frames[name] = WavSource.read(wav, law).frames
            except (OSError, MediaFormatError) as exc:
                raise CallCenterError(f"built-in prompt {name!r} unusable: {exc}") from exc
        for name, path in self.overrides.items():
            try:
                frames[name] = WavSource.read(path, law).frames
            except MediaFormatError as exc:
                fallback = "the built-in one instead" if name in PHRASES else "nothing"
                logger.warning("prompt %r: cannot use %s (%s); playing %s",
                               name, path, exc, fallback)
        return frames

    def source(self, names: Iterable[str], law: G711Law) -> FrameListSource:
        """The prompts ``names`` one after the other, as one source (loaded in ``law``)."""
        frames = self._frames.get(law)
        if frames is None:
            raise CallCenterError(f"prompts not loaded for {law.name}")
        out: list[bytes] = []
        for name in names:
            prompt = frames.get(name)
            if prompt is None:
                raise CallCenterError(f"no prompt {name!r}")
            out += prompt
        return FrameListSource(out, law)

    async def compose(self, names: Iterable[str], law: G711Law) -> FrameListSource:
        """:meth:`load` then :meth:`source`."""
        await self.load(law)
        return self.source(names, law)
