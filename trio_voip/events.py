"""A small publish/subscribe bus whose publisher never waits: :class:`EventBus`.

Subscribers get a Trio receive channel of their own (``bus.subscribe(buffer=...)``) and read
it at their own pace. ``publish`` hands each event to every subscriber with ``send_nowait``,
so the policy for a subscriber that does not keep up is explicit:

* **full buffer: the event is dropped** for that subscriber only, and counted (``bus.dropped``
  in total, :attr:`Subscription.dropped` for the one subscriber); other subscribers still get it;
* **closed receive channel: the subscriber is removed** (closing your channel is how you
  unsubscribe);
* ``bus.close()`` closes every subscriber's channel, so their ``async for`` loops end.

Publishing is a plain synchronous call: a protocol state machine (a call, a bridge) can report
what happened from anywhere without awaiting and without being stalled by a slow reader.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs
import trio

from trio_voip.errors import TrioVoipError

__all__ = ["EventBus", "Subscription"]

T = TypeVar("T")

DEFAULT_BUFFER = 100


@attrs.define(eq=False)
class Subscription(Generic[T]):
    """The bus's side of one subscriber: its send channel and how many events it missed."""

    send: trio.MemorySendChannel[T]
    dropped: int = 0


class EventBus(Generic[T]):
    """Fan-out of events to subscriber channels; see the module docstring for the policy."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription[T]] = []
        self.dropped = 0
        self.published = 0
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, buffer: int = DEFAULT_BUFFER) -> trio.MemoryReceiveChannel[T]:
        """A new channel receiving every event published from now on (up to ``buffer``
        unread ones; later events are dropped for it until it catches up). On a closed bus
        the channel is already at its end."""
        if buffer < 1:
            raise TrioVoipError(f"a subscription needs a buffer of at least 1, not {buffer}")
        send, receive = trio.open_memory_channel[T](buffer)
        if self._closed:
            send.close()
        else:
            self._subscriptions.append(Subscription(send))
        return receive

    def publish(self, event: T) -> None:
        """Offer ``event`` to every subscriber without blocking (see the module docstring)."""
        if self._closed:
            return
        self.published += 1
        gone: list[Subscription[T]] = []
        for subscription in self._subscriptions:
            try:
                subscription.send.send_nowait(event)
            except trio.WouldBlock:
                subscription.dropped += 1
                self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                gone.append(subscription)
        for subscription in gone:
            self._subscriptions.remove(subscription)

    def close(self) -> None:
        """End every subscription (their channels report end-of-channel once drained)."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription.send.close()
        self._subscriptions = []

