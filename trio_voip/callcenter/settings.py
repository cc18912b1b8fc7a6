"""Queue definitions to and from plain data: what a TOML file or a store row holds.

:func:`queue_from_settings` builds a :class:`~.model.Queue` from a strategy name and a mapping
of settings (the keys are the ``Queue`` field names; times are seconds), and
:func:`queue_settings` gives them back, so ``queue_from_settings(id, *queue_settings(q)) == q``.
Overflow destinations are strings:

* ``"busy"`` or ``"busy:486"``: hang up with that SIP status (486 by default);
* ``"queue:<id>"``: into another queue;
* ``"recording:<mailbox>"``: a voicemail-like recording;
* ``"announce:<prompt>"``: play the prompt, then hang up.

``exit_keys`` maps DTMF digits to such strings, ``required_skills`` skill names to minimum
levels, ``join_empty`` / ``leave_empty`` take ``"ignore"``, ``"relaxed"`` or ``"strict"``. A
mistake raises :class:`~trio_voip.errors.CallCenterError` naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trio_voip.errors import CallCenterError

from .model import (
    AnnounceAndHangup,
    Busy,
    EmptyRule,
    OverflowTarget,
    Queue,
    Strategy,
    ToQueue,
    ToRecording,
)

__all__ = ["queue_from_settings", "queue_settings", "parse_target", "format_target"]

_KINDS = {"queue": ToQueue, "recording": ToRecording, "announce": AnnounceAndHangup}
_NAMES = {cls: name for name, cls in _KINDS.items()}
_FIELDS = {field.name for field in attrs.fields(Queue)} - {"queue_id", "strategy"}
_RULES = ("join_empty", "leave_empty")


def parse_target(text: object) -> OverflowTarget:
    """An overflow destination from its string form (see the module docstring)."""
    if not isinstance(text, str):
        raise CallCenterError(f"an overflow destination must be a string, not {text!r}")
    kind, sep, value = text.partition(":")
    if kind == "busy":
        if not sep:
            return Busy()
        if not value.isdigit():
            raise CallCenterError(f"busy status must be a number: {text!r}")
        return Busy(int(value))
    cls = _KINDS.get(kind)
    if cls is None or not sep or not value:
        raise CallCenterError(
            f"not an overflow destination: {text!r} (busy[:status], queue:<id>, "
            "recording:<mailbox>, announce:<prompt>)"
        )
    return cls(value)


def format_target(target: OverflowTarget) -> str:
    """The string form of an overflow destination (:func:`parse_target` reads it back)."""
    if isinstance(target, Busy):
        return "busy" if target.status == 486 else f"busy:{target.status}"
    value = attrs.astuple(target)[0]
    return f"{_NAMES[type(target)]}:{value}"


def queue_from_settings(queue_id: str, strategy: str, settings: Mapping[str, Any]) -> Queue:
    """A queue from its id, strategy name (``"longest-idle"``, ...) and settings."""
    try:
        chosen = Strategy(strategy)
    except ValueError:
        names = ", ".join(s.value for s in Strategy)
        raise CallCenterError(
            f"queue {queue_id!r}: unknown strategy {strategy!r} ({names})"
        ) from None
    Queue(queue_id)  # a bad id is the id's error, not the first setting's
    unknown = sorted(set(settings) - _FIELDS)
    if unknown:
        raise CallCenterError(f"queue {queue_id!r}: unknown setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for key, value in settings.items():
        try:
            values[key] = _convert(key, value)
            # alone, so that an error (from a converter too) is pinned on its key
            Queue(queue_id, **{key: values[key]})
        except CallCenterError as error:
            raise CallCenterError(f"queue {queue_id!r}: {key}: {error}") from None
    return Queue(queue_id, strategy=chosen, **values)


def _convert(key: str, value: object) -> object:
    if key == "overflow":
        return parse_target(value)
    if key == "exit_keys":
        if not isinstance(value, Mapping):
            raise CallCenterError(f"expected a table of digit = destination, not {value!r}")
        return {digit: parse_target(target) for digit, target in value.items()}
    if key in _RULES:
        try:
            return EmptyRule(value)
        except ValueError:
            raise CallCenterError(
                f"expected one of {', '.join(r.value for r in EmptyRule)}, not {value!r}"
            ) from None
    return value


def queue_settings(queue: Queue) -> tuple[str, dict[str, Any]]:
    """The strategy name and the settings that differ from the defaults, as plain data."""
    default = Queue(queue.queue_id)
    settings: dict[str, Any] = {}
    for name in sorted(_FIELDS):
        value = getattr(queue, name)
        if value == getattr(default, name):
            continue
        if name == "overflow":
            value = format_target(value)
        elif name == "exit_keys":
            value = {digit: format_target(target) for digit, target in value.items()}
        elif name in _RULES:
            value = value.value
        elif name == "required_skills":
            value = dict(value)
        settings[name] = value
    return queue.strategy.value, settings
