"""Queue definitions as plain data: every queue survives the round trip, and mistakes name
their key."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.callcenter import (
    AnnounceAndHangup,
    Busy,
    EmptyRule,
    Queue,
    Strategy,
    ToQueue,
    ToRecording,
)
from trio_voip.callcenter.settings import (
    format_target,
    parse_target,
    queue_from_settings,
    queue_settings,
)
from trio_voip.errors import CallCenterError

names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
targets = st.one_of(
    st.builds(Busy, st.integers(400, 699)),
    st.builds(ToQueue, names),
    st.builds(ToRecording, names),
    st.builds(AnnounceAndHangup, names),
)
times = st.floats(0.5, 1000.0, allow_nan=False)
queues = st.builds(
    Queue,
    names,
    strategy=st.sampled_from(Strategy),
    max_length=st.none() | st.integers(1, 100),
    max_wait=st.none() | times,
    overflow=targets,
    join_empty=st.sampled_from(EmptyRule),
    leave_empty=st.sampled_from(EmptyRule),
    ring_timeout=times,
    retry_delay=times,
    wrap_up_time=times,
    max_no_answer=st.none() | st.integers(1, 9),
    tier_wait=times,
    service_level_threshold=times,
    required_skills=st.dictionaries(names, st.integers(1, 10), max_size=3),
    progressive_step=times,
    announce_every=st.none() | times,
    estimate_window=st.integers(1, 50),
    exit_keys=st.dictionaries(st.sampled_from("0123456789*#"), targets, max_size=3),
)


@given(queues)
def test_every_queue_survives_the_round_trip(queue: Queue) -> None:
    strategy, settings = queue_settings(queue)
    assert queue_from_settings(queue.queue_id, strategy, settings) == queue


@given(targets)
def test_targets_round_trip(target: object) -> None:
    assert parse_target(format_target(target)) == target  # type: ignore[arg-type]


def test_a_toml_like_queue() -> None:
    queue = queue_from_settings(
        "sales",
        "skill-based",
        {
            "max_wait": 300,
            "overflow": "recording:sales-vm",
            "leave_empty": "strict",
            "required_skills": {"en": 3},
            "exit_keys": {"0": "queue:operator", "9": "busy"},
        },
    )
    assert queue.strategy is Strategy.SKILL_BASED
    assert queue.overflow == ToRecording("sales-vm")
    assert queue.leave_empty is EmptyRule.STRICT
    assert dict(queue.exit_keys) == {"0": ToQueue("operator"), "9": Busy()}
    assert queue_settings(Queue("q")) == ("longest-idle", {})


@pytest.mark.parametrize(
    ("strategy", "settings", "named"),
    [
        ("ring-some", {}, "strategy"),
        ("linear", {"ring_time": 5}, "ring_time"),
        ("linear", {"ring_timeout": "5"}, "ring_timeout"),
        ("linear", {"max_length": 2.5}, "max_length"),
        ("linear", {"overflow": "voicemail"}, "overflow"),
        ("linear", {"overflow": "busy:abc"}, "overflow"),
        ("linear", {"join_empty": "sometimes"}, "join_empty"),
        ("linear", {"exit_keys": {"0": 5}}, "exit_keys"),
        ("linear", {"exit_keys": ["0"]}, "exit_keys"),
        ("linear", {"required_skills": 5}, "required_skills"),
        ("linear", {"required_skills": {"en": 0}}, "en"),
    ],
)
def test_mistakes_name_their_key(strategy: str, settings: dict[str, Any], named: str) -> None:
    with pytest.raises(CallCenterError, match=named) as caught:
        queue_from_settings("q1", strategy, settings)
    assert "q1" in str(caught.value)
