"""The coordinator's bridges: :class:`BridgeManager`, a :class:`~trio_voip.bridge.BridgeTable`
wired to the calls and to an event bus.

The table decides (sans-IO); the manager supplies what only the coordinator knows -- whether a
session is active (its call is ACTIVE or ON_HOLD) and the time -- and publishes exactly the
events each operation returns, in order, on its :class:`~trio_voip.events.EventBus`. Every
operation is synchronous: it changes state, publishes, then makes the media follow, so an
operation that raises has changed and published nothing.

**Media.** Given ``media`` (session id -> the call's relay endpoint, None when the call has
none), the manager follows :meth:`~trio_voip.bridge.BridgeTable.media_plan` after each
operation: the two participants of a two-party bridge are connected on the relay, a session
leaving a bridge is disconnected. Three or more (``MIX``) are disconnected from each other
and handed to ``mix(bridge_id, session_ids)`` (the coordinator's
:class:`~trio_voip.session.media.CallMedia`), which mixes them; every other bridge touched is
reported to ``mix`` with no sessions, so a mix ends when its bridge drops to two (and is
relayed directly again) or goes away.

Bridge event subscribers get their own channel; one that falls ``buffer`` events behind loses
the newest ones (counted in :attr:`BridgeManager.dropped`), and bridge operations never wait.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from trio_voip.bridge import (
    BridgeEvent,
    BridgeId,
    BridgeInfo,
    BridgeMode,
    BridgeTable,
    ParticipantRemoved,
    SessionId,
)
from trio_voip.events import EventBus
from trio_voip.rtp.relay import MediaEndpoint

__all__ = ["BridgeManager"]


class BridgeManager:
    """Bridges between the sessions ``is_active`` knows, stamped with ``clock()``."""

    def __init__(
        self,
        is_active: Callable[[SessionId], bool],
        *,
        clock: Callable[[], float] = trio.current_time,
        table: BridgeTable | None = None,
        media: Callable[[SessionId], MediaEndpoint | None] | None = None,
        mix: Callable[[BridgeId, tuple[SessionId, ...]], None] | None = None,
    ) -> None:
        self._is_active = is_active
        self._media = media
        self._mix = mix
        self._clock = clock
        self.table = table if table is not None else BridgeTable()
        self._bus: EventBus[BridgeEvent] = EventBus()

    # -- queries --

    @property
    def count(self) -> int:
        """How many bridges are live."""
        return len(self.table)

    @property
    def dropped(self) -> int:
        """Bridge events lost by subscribers that did not keep up."""
        return self._bus.dropped

    def get_session_bridge(self, session_id: SessionId) -> BridgeId | None:
        return self.table.get_session_bridge(session_id)

    def list_bridges(self) -> list[BridgeInfo]:
        """The live bridges, oldest first."""
        return self.table.list_bridges()

    def subscribe(self, buffer: int) -> trio.MemoryReceiveChannel[BridgeEvent]:
        return self._bus.subscribe(buffer)

    # -- operations --

    def create_bridge(self) -> BridgeId:
        bridge_id, events = self.table.create_bridge(self._clock())
        self._publish(events)
        return bridge_id

    def bridge_sessions(self, first: SessionId, second: SessionId) -> BridgeId:
        bridge_id, events = self.table.bridge_sessions(
            first,
            second,
            now=self._clock(),
            first_active=self._is_active(first),
            second_active=self._is_active(second),
        )
        self._publish(events)
        return bridge_id

    def add_session_to_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._publish(self.table.add_session(bridge_id, session_id, self._is_active(session_id)))

    def remove_session_from_bridge(self, bridge_id: BridgeId, session_id: SessionId) -> None:
        self._publish(self.table.remove_session(bridge_id, session_id))

    def destroy_bridge(self, bridge_id: BridgeId) -> None:
        self._publish(self.table.destroy_bridge(bridge_id))

    def session_ended(self, session_id: SessionId) -> None:
        """The call ``session_id`` is over: out of its bridge (reason ``HANGUP``), if any."""
        self._publish(self.table.session_ended(session_id))

    def close(self) -> None:
        """End every subscription (after the coordinator ended its calls)."""
        self._bus.close()

    def _publish(self, events: list[BridgeEvent]) -> None:
        for event in events:
            self._bus.publish(event)
        if self._media is not None and events:
            self._follow_media(self._media, events)

    def _follow_media(
        self, media: Callable[[SessionId], MediaEndpoint | None], events: list[BridgeEvent]
    ) -> None:
        touched: dict[BridgeId, None] = {}
        for event in events:
            touched[event.bridge_id] = None
            if isinstance(event, ParticipantRemoved):
                endpoint = media(event.session_id)
                if endpoint is not None:
                    endpoint.relay.disconnect(endpoint)
        live = {info.bridge_id for info in self.table.list_bridges()}
        for bridge_id in touched.keys() - live:
            if self._mix is not None:
                self._mix(bridge_id, ())
        for bridge_id in touched.keys() & live:
            plan = self.table.media_plan(bridge_id)
            if self._mix is not None:
                self._mix(bridge_id, plan.mixed if plan.mode is BridgeMode.MIX else ())
            if plan.relay is not None:
                first, second = media(plan.relay[0]), media(plan.relay[1])
                if first is not None and second is not None:
                    first.relay.connect(first, second)
            elif plan.mode is BridgeMode.MIX:
                for session_id in plan.mixed:
                    endpoint = media(session_id)
                    if endpoint is not None:
                        endpoint.relay.disconnect(endpoint)
