"""EventBus: fan-out without ever blocking the publisher."""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import TrioVoipError
from trio_voip.events import EventBus


def drain(channel: trio.MemoryReceiveChannel[int]) -> list[int]:
    out = []
    while True:
        try:
            out.append(channel.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


async def test_every_subscriber_gets_every_event() -> None:
    bus: EventBus[int] = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for n in range(5):
        bus.publish(n)
    assert drain(first) == drain(second) == [0, 1, 2, 3, 4]
    assert bus.dropped == 0 and bus.published == 5


@given(buffer=st.integers(1, 20), events=st.integers(0, 60))
def test_full_subscriber_drops_newest_and_counts(buffer: int, events: int) -> None:
    async def main() -> None:
        bus: EventBus[int] = EventBus()
        slow = bus.subscribe(buffer)
        fast = bus.subscribe(events + 1)
        for n in range(events):
            bus.publish(n)  # never blocks, never raises
        assert drain(slow) == list(range(min(buffer, events)))
        assert drain(fast) == list(range(events))
        assert bus.dropped == max(0, events - buffer)

    trio.run(main)


async def test_closed_subscriber_is_removed() -> None:
    bus: EventBus[int] = EventBus()
    gone = bus.subscribe()
    kept = bus.subscribe()
    await gone.aclose()
    bus.publish(1)
    assert bus.subscribers == 1
    assert drain(kept) == [1]


async def test_close_ends_subscriptions() -> None:
    bus: EventBus[int] = EventBus()
    channel = bus.subscribe()
    bus.publish(7)
    bus.close()
    assert [event async for event in channel] == [7]
    bus.publish(8)  # ignored once closed
    late = bus.subscribe()
    with pytest.raises(trio.EndOfChannel):
        await late.receive()


async def test_buffer_must_be_positive() -> None:
    with pytest.raises(TrioVoipError):
        EventBus[int]().subscribe(0)
