"""The call engine's store: one contract for MemoryStore and SqliteStore, plus SQLite's own
promises (migrations, restarts, never blocking the Trio loop)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_voip.callcenter.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    AgentRecord,
    AgentStateChange,
    CallEvent,
    CallOutcome,
    CallPhase,
    CallRecord,
    MemoryStore,
    Offer,
    QueueRecord,
    SqliteStore,
    Store,
    apply_call_event,
    record_definition,
)
from trio_voip.errors import DuplicateRecord, RecordNotFound, StoreError, TrioVoipError
from trio_voip.sip.digest import PrecomputedHA1

KINDS = ["memory", "sqlite-memory", "sqlite-file"]


def open_store(kind: str, directory: Path) -> Any:
    if kind == "memory":
        return MemoryStore.open()
    if kind == "sqlite-memory":
        return SqliteStore.open(":memory:")
    return SqliteStore.open(directory / "store.db")


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(request.param, tmp_path) as opened:
        yield opened


def agent(agent_id: str = "a1", **changes: Any) -> AgentRecord:
    values: dict[str, Any] = {"id": agent_id, "name": f"Agent {agent_id}", "sip_user": agent_id}
    values.update(changes)
    return AgentRecord(**values)


def arrived(call_id: str, at: float, queue_id: str | None = "sales", **changes: Any) -> CallEvent:
    values: dict[str, Any] = {
        "call_id": call_id,
        "phase": CallPhase.ARRIVED,
        "at": at,
        "session_id": f"s-{call_id}",
        "caller": "sip:alice@example.com",
        "queue_id": queue_id,
    }
    values.update(changes)
    return CallEvent(**values)


def event(call_id: str, phase: CallPhase, at: float, **changes: Any) -> CallEvent:
    return CallEvent(call_id=call_id, phase=phase, at=at, **changes)


# --- contract: agents and queues ------------------------------------------------------------


async def test_both_stores_are_stores(store: Store) -> None:
    assert isinstance(store, Store)


async def test_agent_crud(store: Store) -> None:
    bob = agent(
        "bob",
        queues={"sales", "support"},
        skills={"en": 5, "fr": 2},
        max_concurrent=2,
        tier=1,
        order=3,
        weight=0.25,
        credentials=PrecomputedHA1.from_password("bob", "example.com", "s3cret"),
    )
    alice = agent("alice")
    assert alice.weight == 1.0 and alice.queues == frozenset() and alice.credentials is None
    await store.add_agent(bob)
    await store.add_agent(alice)
    assert await store.get_agent("bob") == bob
    assert await store.get_agent("nobody") is None
    assert await store.list_agents() == [alice, bob]

    paused = attrs.evolve(
        bob, paused=True, pause_reason="lunch", skills={"de": 1}, queues=["sales"], credentials=None
    )
    await store.update_agent(paused)
    assert await store.get_agent("bob") == paused

    await store.remove_agent("alice")
    assert await store.list_agents() == [paused]


async def test_agent_conflicts_change_nothing(store: Store) -> None:
    await store.add_agent(agent("a1", sip_user="100"))
    await store.add_agent(agent("a2", sip_user="200"))
    before = await store.list_agents()
    with pytest.raises(DuplicateRecord, match="a1"):
        await store.add_agent(agent("a1", sip_user="300"))
    with pytest.raises(DuplicateRecord, match="'100'"):
        await store.add_agent(agent("a3", sip_user="100"))
    with pytest.raises(DuplicateRecord, match="'100'"):
        await store.update_agent(agent("a2", sip_user="100"))
    with pytest.raises(RecordNotFound):
        await store.update_agent(agent("a9", sip_user="100"))
    with pytest.raises(RecordNotFound):
        await store.remove_agent("a9")
    assert await store.list_agents() == before
    # An agent keeps its own SIP user when updated.
    await store.update_agent(agent("a1", sip_user="100", name="renamed"))
    assert (await store.get_agent("a1")).name == "renamed"  # type: ignore[union-attr]


async def test_queue_crud(store: Store) -> None:
    settings_ = {"max_wait": 30.5, "overflow": {"to": "support"}, "keys": ["1", "2"], "x": None}
    sales = QueueRecord(id="sales", name="Sales", strategy="ring-all", settings=settings_)
    support = QueueRecord(id="support", name="Support", strategy="longest-idle")
    await store.add_queue(support)
    await store.add_queue(sales)
    got = await store.get_queue("sales")
    assert got == sales and got.settings["overflow"] == {"to": "support"}
    assert await store.list_queues() == [sales, support]
    with pytest.raises(DuplicateRecord):
        await store.add_queue(sales)

    changed = attrs.evolve(sales, strategy="random", settings={"max_len": 3})
    await store.update_queue(changed)
    assert await store.get_queue("sales") == changed
    with pytest.raises(RecordNotFound):
        await store.update_queue(QueueRecord(id="nope", name="", strategy="random"))

    await store.remove_queue("support")
    with pytest.raises(RecordNotFound):
        await store.remove_queue("support")
    assert await store.list_queues() == [changed]
    assert await store.get_queue("support") is None


# --- contract: seeds ------------------------------------------------------------------------


async def test_seeds_are_kept_by_kind_and_id(store: Store) -> None:
    assert await store.seeds("agent") == {}
    await store.set_seed("queue", "sales", '{"v":1}')
    await store.set_seed("agent", "sales", "same id, other kind")
    await store.set_seed("queue", "après", "ü ✓")
    assert await store.seeds("queue") == {"après": "ü ✓", "sales": '{"v":1}'}
    assert list(await store.seeds("queue")) == ["après", "sales"]  # by id
    await store.set_seed("queue", "sales", "")  # replaced (empty text is text)
    await store.set_seed("queue", "après", None)
    await store.set_seed("queue", "never", None)  # forgetting a missing one is fine
    assert await store.seeds("queue") == {"sales": ""}
    assert await store.seeds("agent") == {"sales": "same id, other kind"}
    # seeds are apart from records: none of these touch them
    await store.add_queue(QueueRecord(id="sales", name="S", strategy="random"))
    await store.remove_queue("sales")
    assert await store.seeds("queue") == {"sales": ""}


async def test_wrong_seed_arguments_are_store_errors(store: Store) -> None:
    wrong: list[Callable[[], Awaitable[object]]] = [
        lambda: store.seeds(""),
        lambda: store.seeds(None),  # type: ignore[arg-type]
        lambda: store.set_seed("agent", "", "x"),
        lambda: store.set_seed("", "a1", "x"),
        lambda: store.set_seed("agent", "a1", b"x"),  # type: ignore[arg-type]
        lambda: store.set_seed("agent", "a1", "\udc80"),
        lambda: store.set_seed("agent", 1, "x"),  # type: ignore[arg-type]
    ]
    for call in wrong:
        with pytest.raises(StoreError):
            await call()
    assert await store.seeds("agent") == {}


def test_a_definition_leaves_out_runtime_state_only() -> None:
    base = agent("a1", queues={"q2", "q1"}, skills={"en": 3, "de": 1}, weight=2)
    text = record_definition(base)
    ha1 = PrecomputedHA1.from_password("a1", "realm", "pw")
    assert record_definition(attrs.evolve(base, paused=True, pause_reason="lunch")) == text
    assert record_definition(attrs.evolve(base, credentials=ha1)) == text
    assert record_definition(agent("a1", queues=["q1", "q2"], skills={"de": 1, "en": 3},
                                   weight=2.0)) == text
    for change in ({"name": "x"}, {"sip_user": "b"}, {"queues": {"q1"}}, {"skills": {"en": 3}},
                   {"max_concurrent": 2}, {"tier": 1}, {"order": 1}, {"weight": 2.5}):
        assert record_definition(attrs.evolve(base, **change)) != text, change
    queue = QueueRecord(id="a1", name="Q", strategy="random", settings={"b": 1, "a": [2]})
    assert record_definition(queue) == record_definition(
        QueueRecord(id="a1", name="Q", strategy="random", settings={"a": [2], "b": 1}))
    assert record_definition(queue) != text  # same id, other kind
    for change in ({"name": "R"}, {"strategy": "linear"}, {"settings": {"b": 1}}):
        assert record_definition(attrs.evolve(queue, **change)) != record_definition(queue)
    with pytest.raises(StoreError):
        record_definition({"id": "a1"})  # type: ignore[arg-type]


# --- contract: call records -----------------------------------------------------------------


async def test_answered_call_keeps_every_phase(store: Store) -> None:
    events = [
        arrived("c1", 100.0, priority=2),
        event("c1", CallPhase.OFFERED, 101.0, agent_id="a1"),
        event("c1", CallPhase.OFFERED, 101.0, agent_id="a2"),
        event("c1", CallPhase.OFFER_MISSED, 111.0, agent_id="a1", detail="no-answer"),
        event("c1", CallPhase.OFFERED, 112.0, agent_id="a1"),
        event("c1", CallPhase.ANSWERED, 113.0, agent_id="a2"),
        event("c1", CallPhase.OFFER_MISSED, 113.0, agent_id="a1", detail="answered-elsewhere"),
        event("c1", CallPhase.BRIDGED, 113.5),
        event("c1", CallPhase.ENDED, 200.0),
        event("c1", CallPhase.WRAPUP_ENDED, 215.0),
    ]
    for e in events:
        returned = await store.record_call_event(e)
    expected = CallRecord(
        id="c1",
        session_id="s-c1",
        queue_id="sales",
        caller="sip:alice@example.com",
        priority=2,
        arrived_at=100.0,
        offers=(
            Offer("a1", 101.0, 111.0, "no-answer"),
            Offer("a2", 101.0),
            Offer("a1", 112.0, 113.0, "answered-elsewhere"),
        ),
        answered_at=113.0,
        bridged_at=113.5,
        ended_at=200.0,
        wrapup_ended_at=215.0,
        outcome=CallOutcome.ANSWERED,
        agent_id="a2",
    )
    assert returned == expected
    assert await store.call_record("c1") == expected
    assert expected.offered_at == 101.0


async def test_unanswered_outcomes(store: Store) -> None:
    await store.record_call_event(arrived("gone", 1.0))
    await store.record_call_event(event("gone", CallPhase.ABANDONED, 5.0, detail="hangup"))
    record = await store.record_call_event(event("gone", CallPhase.ENDED, 5.0))
    assert (record.outcome, record.outcome_detail, record.abandoned_at) == (
        CallOutcome.ABANDONED,
        "hangup",
        5.0,
    )
    assert record.offered_at is None and record.agent_id is None

    await store.record_call_event(arrived("moved", 2.0, queue_id=None))
    record = await store.record_call_event(
        event("moved", CallPhase.OVERFLOWED, 62, detail="queue:support")
    )
    assert record.overflowed_at == 62.0 and isinstance(record.overflowed_at, float)
    assert record.outcome is CallOutcome.OVERFLOWED and record.queue_id is None

    await store.record_call_event(arrived("full", 3.0))
    record = await store.record_call_event(event("full", CallPhase.REJECTED, 3.0))
    assert (record.outcome, record.rejected_at, record.outcome_detail) == (
        CallOutcome.REJECTED,
        3.0,
        None,
    )


@pytest.mark.parametrize(
    ("setup", "bad", "error"),
    [
        ([], event("c", CallPhase.ENDED, 2.0), RecordNotFound),
        ([arrived("c", 1.0)], arrived("c", 2.0), DuplicateRecord),
        ([arrived("c", 1.0)], event("c", CallPhase.ANSWERED, 2.0, agent_id="a1"), StoreError),
        ([arrived("c", 1.0)], event("c", CallPhase.OFFER_MISSED, 2.0, agent_id="a1"), StoreError),
        ([arrived("c", 1.0)], event("c", CallPhase.BRIDGED, 2.0), StoreError),
        (
            [arrived("c", 1.0), event("c", CallPhase.OFFERED, 2.0, agent_id="a1")],
            event("c", CallPhase.OFFERED, 3.0, agent_id="a1"),
            StoreError,
        ),
        (
            [
                arrived("c", 1.0),
                event("c", CallPhase.OFFERED, 2.0, agent_id="a1"),
                event("c", CallPhase.ANSWERED, 3.0, agent_id="a1"),
            ],
            event("c", CallPhase.ABANDONED, 4.0),
            StoreError,
        ),
        (
            [
                arrived("c", 1.0),
                event("c", CallPhase.OFFERED, 2.0, agent_id="a1"),
                event("c", CallPhase.ANSWERED, 3.0, agent_id="a1"),
            ],
            event("c", CallPhase.WRAPUP_ENDED, 4.0),
            StoreError,
        ),
        (
            [
                arrived("c", 1.0),
                event("c", CallPhase.OFFERED, 2.0, agent_id="a1"),
                event("c", CallPhase.ANSWERED, 3.0, agent_id="a1"),
            ],
            event("c", CallPhase.OFFER_MISSED, 4.0, agent_id="a1"),
            StoreError,
        ),
        (
            [arrived("c", 1.0), event("c", CallPhase.ENDED, 2.0)],
            event("c", CallPhase.ENDED, 3.0),
            StoreError,
        ),
        (
            [
                arrived("c", 1.0),
                event("c", CallPhase.OFFERED, 2.0, agent_id="a1"),
                event("c", CallPhase.ENDED, 3.0),
            ],
            event("c", CallPhase.ANSWERED, 4.0, agent_id="a1"),
            StoreError,
        ),
        (
            [arrived("c", 1.0), event("c", CallPhase.REJECTED, 2.0)],
            event("c", CallPhase.OFFERED, 3.0, agent_id="a1"),
            StoreError,
        ),
    ],
)
async def test_events_the_call_state_forbids_change_nothing(
    store: Store, setup: list[CallEvent], bad: CallEvent, error: type[StoreError]
) -> None:
    for e in setup:
        await store.record_call_event(e)
    before = await store.call_record("c")
    with pytest.raises(error) as caught:
        await store.record_call_event(bad)
    assert type(caught.value) is error
    assert await store.call_record("c") == before


async def answer_race(stores: list[Store], agents: int) -> tuple[list[str], CallRecord | None]:
    """Offer call "race" to every agent, then let them all answer at once, each through one of
    ``stores`` in turn: the agents that won, and the record."""
    await stores[0].record_call_event(arrived("race", 1.0))
    for n in range(agents):
        await stores[0].record_call_event(event("race", CallPhase.OFFERED, 2.0, agent_id=f"a{n}"))
    winners: list[str] = []

    async def answer(n: int) -> None:
        try:
            await stores[n % len(stores)].record_call_event(
                event("race", CallPhase.ANSWERED, 3.0, agent_id=f"a{n}")
            )
        except StoreError:
            return
        winners.append(f"a{n}")

    async with trio.open_nursery() as nursery:
        for n in range(agents):
            nursery.start_soon(answer, n)
    return winners, await stores[-1].call_record("race")


async def test_racing_answers_have_one_winner(store: Store) -> None:
    winners, record = await answer_race([store], 20)
    assert len(winners) == 1
    assert record is not None and record.agent_id == winners[0]


async def test_two_nodes_share_one_database(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with SqliteStore.open(path) as first, SqliteStore.open(path) as second:
        await first.add_agent(agent("a1", sip_user="100"))
        assert await second.get_agent("a1") == agent("a1", sip_user="100")
        with pytest.raises(DuplicateRecord):
            await second.add_agent(agent("a2", sip_user="100"))
        winners, record = await answer_race([first, second], 20)
        assert len(winners) == 1
        assert record is not None and record.agent_id == winners[0]
        assert await first.call_record("race") == record


async def test_call_records_window_and_queue(store: Store) -> None:
    await store.record_call_event(arrived("late", 20.0))
    await store.record_call_event(arrived("b", 10.0, queue_id="support"))
    await store.record_call_event(arrived("a", 10.0))
    await store.record_call_event(arrived("early", 9.999))
    await store.record_call_event(event("a", CallPhase.OFFERED, 11.0, agent_id="x"))
    await store.record_call_event(event("b", CallPhase.OFFERED, 11.0, agent_id="y"))

    in_window = await store.call_records(10.0, 20.0)
    assert [r.id for r in in_window] == ["a", "b"]  # [since, until), by time then id
    assert [o.agent_id for r in in_window for o in r.offers] == ["x", "y"]
    assert [r.id for r in await store.call_records(0.0, 100.0, "sales")] == ["early", "a", "late"]
    assert [r.id for r in await store.call_records(0.0, 100.0, "support")] == ["b"]
    assert await store.call_records(20.0, 20.0) == []


async def test_agent_history(store: Store) -> None:
    changes = [
        AgentStateChange("a1", "available", 10.0),
        AgentStateChange("a2", "available", 5.0),
        AgentStateChange("a1", "ringing", 12.0),
        AgentStateChange("a1", "paused", 12.0, reason="no-answer"),
        AgentStateChange("a1", "offline", 30.0),
    ]
    for change in changes:
        await store.record_agent_state(change)
    everything = await store.agent_history()
    assert everything == [changes[1], changes[0], changes[2], changes[3], changes[4]]
    assert await store.agent_history("a1", since=12.0, until=30.0) == changes[2:4]
    assert await store.agent_history("a2", until=5.0) == []
    assert await store.agent_history(since=30.0) == [changes[4]]
    # Removing the agent keeps its history (and its calls): the metrics need them.
    await store.add_agent(agent("a1"))
    await store.remove_agent("a1")
    assert len(await store.agent_history("a1")) == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_closed_store_refuses_work(kind: str, tmp_path: Path) -> None:
    async with open_store(kind, tmp_path) as opened:
        await opened.add_agent(agent())
    with pytest.raises(StoreError, match="closed"):
        await opened.get_agent("a1")
    with pytest.raises(StoreError, match="closed"):
        await opened.record_call_event(arrived("c", 1.0))
    await opened.aclose()  # twice is fine


async def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "store.db"
    with pytest.raises(StoreError, match="no-such-dir"):
        async with SqliteStore.open(missing):
            pass  # pragma: no cover
    with pytest.raises(StoreError, match="not open"):
        await SqliteStore(tmp_path / "x.db").list_agents()


async def test_wrong_arguments_are_store_errors(store: Store) -> None:
    wrong: list[Callable[[], Awaitable[object]]] = [
        lambda: store.add_agent({"id": "a1"}),  # type: ignore[arg-type]
        lambda: store.update_agent(None),  # type: ignore[arg-type]
        lambda: store.add_queue(agent()),  # type: ignore[arg-type]
        lambda: store.update_queue("sales"),  # type: ignore[arg-type]
        lambda: store.record_call_event(CallPhase.ARRIVED),  # type: ignore[arg-type]
        lambda: store.record_agent_state(("a1", "available", 1.0)),  # type: ignore[arg-type]
        lambda: store.call_records("yesterday", 10.0),  # type: ignore[arg-type]
        lambda: store.call_records(0.0, math.nan),
        lambda: store.call_records(None, 1.0),  # type: ignore[arg-type]
        lambda: store.call_records(0, 10**400),
        lambda: store.agent_history(since=True),  # type: ignore[arg-type]
        lambda: store.agent_history("\udc80"),
        lambda: store.get_agent(["a1"]),  # type: ignore[arg-type]
        lambda: store.remove_agent(10**30),  # type: ignore[arg-type]
        lambda: store.get_queue("\ud800"),
        lambda: store.remove_queue(None),  # type: ignore[arg-type]
        lambda: store.call_record(b"c1"),  # type: ignore[arg-type]
        lambda: store.call_records(0.0, 1.0, queue_id=7),  # type: ignore[arg-type]
    ]
    for call in wrong:
        with pytest.raises(StoreError):
            await call()
    assert await store.list_agents() == [] and await store.list_queues() == []
    assert await store.call_records(-math.inf, math.inf) == []


# --- values check themselves --------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: agent("\ud800"),
        lambda: agent(""),
        lambda: agent(name=3),
        lambda: agent(skills={"en": True}),
        lambda: agent(skills={"en": 2**63}),
        lambda: agent(skills={"": 1}),
        lambda: agent(skills=[("en", 1)]),
        lambda: agent(max_concurrent=0),
        lambda: agent(weight=0),
        lambda: agent(weight=math.nan),
        lambda: agent(weight="1"),
        lambda: agent(queues="sales"),
        lambda: agent(queues=["sales", ""]),
        lambda: agent(queues=3),
        lambda: agent(credentials="s3cret"),
        lambda: agent(credentials=PrecomputedHA1(md5="\ud800")),
        lambda: agent(paused=1),
        lambda: agent(pause_reason="lunch"),
        lambda: QueueRecord(id="q", name="Q", strategy=""),
        lambda: QueueRecord(id="q", name="Q", strategy="s", settings={"t": (1, 2)}),
        lambda: QueueRecord(id="q", name="Q", strategy="s", settings={1: "x"}),
        lambda: QueueRecord(id="q", name="Q", strategy="s", settings={"x": math.nan}),
        lambda: QueueRecord(id="q", name="Q", strategy="s", settings={"x": object()}),
        lambda: QueueRecord(id="q", name="Q", strategy="s", settings={"x": "\udfff"}),
        lambda: AgentStateChange("a", "available", math.inf),
        lambda: AgentStateChange("a", "available", 10**400),
        lambda: AgentStateChange("a", "", 1.0),
        lambda: CallEvent(call_id="c", phase="arrived", at=1.0),
        lambda: arrived("c", 1.0, session_id=None),
        lambda: arrived("c", 1.0, agent_id="a1"),
        lambda: event("c", CallPhase.OFFERED, 1.0),
        lambda: event("c", CallPhase.ENDED, 1.0, agent_id="a1"),
        lambda: event("c", CallPhase.ENDED, 1.0, caller="bob"),
        lambda: event("c", CallPhase.ENDED, 1.0, priority=1),
        lambda: event("c", CallPhase.BRIDGED, 1.0, detail="why"),
    ],
)
def test_values_a_store_could_not_keep_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(StoreError):
        make()


def test_records_are_read_only_copies() -> None:
    skills = {"en": 1}
    settings_ = {"nested": {"a": [1]}}
    a = agent(skills=skills)
    q = QueueRecord(id="q", name="Q", strategy="s", settings=settings_)
    skills["en"] = 9
    settings_["nested"]["a"].append(2)
    assert a.skills == {"en": 1} and q.settings == {"nested": {"a": [1]}}
    with pytest.raises(TypeError):
        a.skills["en"] = 3  # type: ignore[index]
    assert issubclass(StoreError, TrioVoipError)


# --- SQLite: files, migrations, restarts ---------------------------------------------------

# The version 1 schema, written out by hand as the first release created it.
V1_SCHEMA = """
CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL, sip_user TEXT NOT NULL UNIQUE,
    skills TEXT NOT NULL DEFAULT '{}', max_concurrent INTEGER NOT NULL DEFAULT 1,
    paused INTEGER NOT NULL DEFAULT 0, pause_reason TEXT);
CREATE TABLE queues (id TEXT PRIMARY KEY, name TEXT NOT NULL, strategy TEXT NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}');
CREATE TABLE calls (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, queue_id TEXT,
    caller TEXT NOT NULL, priority INTEGER NOT NULL, arrived_at REAL NOT NULL, offered_at REAL,
    offered_agent TEXT, answered_at REAL, bridged_at REAL, ended_at REAL, abandoned_at REAL,
    overflowed_at REAL, rejected_at REAL, wrapup_ended_at REAL, outcome TEXT,
    outcome_detail TEXT, agent_id TEXT);
CREATE INDEX calls_by_arrival ON calls (arrived_at);
CREATE TABLE agent_states (seq INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT, at REAL NOT NULL);
CREATE INDEX agent_states_by_time ON agent_states (at);
CREATE INDEX agent_states_by_agent ON agent_states (agent_id, at);
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
INSERT INTO agents VALUES ('a1', 'Zoë', '100', '{"en": 3}', 2, 1, 'lunch');
INSERT INTO queues VALUES ('sales', 'Sales', 'ring-all', '{"max_wait": 60}');
INSERT INTO calls (id, session_id, queue_id, caller, priority, arrived_at, offered_at,
    offered_agent, answered_at, ended_at, outcome, agent_id)
    VALUES ('c1', 's1', 'sales', 'sip:bob@x', 0, 10.0, 11.0, 'a1', 12.0, 50.0, 'answered', 'a1');
INSERT INTO calls (id, session_id, queue_id, caller, priority, arrived_at, abandoned_at, outcome)
    VALUES ('c2', 's2', 'sales', 'sip:eve@x', 1, 20.0, 25.0, 'abandoned');
INSERT INTO agent_states (agent_id, state, reason, at) VALUES ('a1', 'paused', 'lunch', 60.0);
"""


def write_db(path: Path, script: str) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()


def stored_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version FROM schema_version").fetchone()[0]
    finally:
        conn.close()


async def test_version_1_database_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    write_db(path, V1_SCHEMA)
    async with SqliteStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert await store.list_agents() == [
            AgentRecord(
                id="a1",
                name="Zoë",
                sip_user="100",
                skills={"en": 3},
                max_concurrent=2,
                paused=True,
                pause_reason="lunch",
            )
        ]
        assert await store.list_queues() == [
            QueueRecord(id="sales", name="Sales", strategy="ring-all", settings={"max_wait": 60})
        ]
        answered, abandoned = await store.call_records(0.0, 100.0)
        assert answered.offers == (Offer("a1", 11.0),)
        assert (answered.answered_at, answered.ended_at, answered.agent_id) == (12.0, 50.0, "a1")
        assert answered.outcome is CallOutcome.ANSWERED
        assert abandoned.offers == () and abandoned.outcome is CallOutcome.ABANDONED
        assert abandoned.priority == 1 and abandoned.abandoned_at == 25.0
        assert await store.agent_history() == [AgentStateChange("a1", "paused", 60.0, "lunch")]
        # The migrated call goes on under the new schema.
        record = await store.record_call_event(event("c1", CallPhase.WRAPUP_ENDED, 55.0))
        assert record.offers == (Offer("a1", 11.0),) and record.wrapup_ended_at == 55.0
    assert stored_version(path) == SCHEMA_VERSION
    async with SqliteStore.open(path) as store:  # opening a current database changes nothing
        assert (await store.call_record("c1")) == record


async def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    # A stray table in the way of migration 2: the migration must fail as a whole.
    write_db(path, V1_SCHEMA + "CREATE TABLE call_offers (x);")
    with pytest.raises(StoreError, match="call_offers"):
        async with SqliteStore.open(path):
            pass  # pragma: no cover
    assert stored_version(path) == 1
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(agents)")]
    offered = conn.execute("SELECT offered_agent FROM calls WHERE id = 'c1'").fetchone()
    conn.close()
    assert "tier" not in columns and offered == ("a1",)


def write_v2_db(path: Path) -> None:
    """A version 2 database with data, as that release made it (its migrations are frozen)."""
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        migration(conn)
    conn.executescript("""
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (2);
        INSERT INTO agents (id, name, sip_user, queues, skills, max_concurrent, paused,
            pause_reason, tier, position, weight)
            VALUES ('a1', 'Zoë', '100', '["sales"]', '{"en": 3}', 2, 1, 'lunch', 1, 4, 2.5);
        INSERT INTO queues VALUES ('sales', 'Sales', 'linear', '{"ring_timeout": 4.0}');
        INSERT INTO calls (id, session_id, queue_id, caller, priority, arrived_at, answered_at,
            outcome, agent_id)
            VALUES ('c1', 's1', 'sales', 'sip:bob@x', 0, 10.0, 12.0, 'answered', 'a1');
        INSERT INTO call_offers VALUES ('c1', 0, 'a1', 11.0, NULL, NULL);
    """)
    conn.close()


async def test_version_2_database_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    write_v2_db(path)
    async with SqliteStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert await store.list_agents() == [
            agent("a1", name="Zoë", sip_user="100", queues={"sales"}, skills={"en": 3},
                  max_concurrent=2, tier=1, order=4, weight=2.5, paused=True,
                  pause_reason="lunch")
        ]
        assert await store.list_queues() == [
            QueueRecord(id="sales", name="Sales", strategy="linear",
                        settings={"ring_timeout": 4.0})
        ]
        (call,) = await store.call_records(0.0, 100.0)
        assert call.offers == (Offer("a1", 11.0),) and call.outcome is CallOutcome.ANSWERED
        # nothing was seeded before version 3; seeds work at once
        assert await store.seeds("agent") == {} and await store.seeds("queue") == {}
        await store.set_seed("agent", "a1", "definition")
    assert stored_version(path) == SCHEMA_VERSION
    async with SqliteStore.open(path) as store:
        assert await store.seeds("agent") == {"a1": "definition"}


async def test_failed_migration_to_3_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    write_v2_db(path)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE seeds (x)")  # in migration 3's way
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="seeds"):
        async with SqliteStore.open(path):
            pass  # pragma: no cover
    assert stored_version(path) == 2


async def test_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    async with SqliteStore.open(path) as store:
        await store.add_agent(agent())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer"):
        async with SqliteStore.open(path):
            pass  # pragma: no cover
    assert stored_version(path) == SCHEMA_VERSION + 1


async def test_foreign_files_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    write_db(foreign, "CREATE TABLE customers (id INTEGER);")
    with pytest.raises(StoreError, match="not a trio-voip store"):
        async with SqliteStore.open(foreign):
            pass  # pragma: no cover
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some text padded out " * 40)
    with pytest.raises(StoreError, match="database error"):
        async with SqliteStore.open(garbage):
            pass  # pragma: no cover


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    a = agent("a1", name="Ørjan 李", skills={"español": 4})
    q = QueueRecord(id="q", name="Q", strategy="skills", settings={"levels": [1, 2.5]})
    async with SqliteStore.open(path) as store:
        await store.add_agent(a)
        await store.add_queue(q)
        await store.record_call_event(arrived("c1", 1.0))
        await store.record_call_event(event("c1", CallPhase.OFFERED, 2.0, agent_id="a1"))
        call = await store.record_call_event(event("c1", CallPhase.ANSWERED, 3.0, agent_id="a1"))
        await store.record_agent_state(AgentStateChange("a1", "on-call", 3.0))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    async with SqliteStore.open(path) as store:
        assert await store.list_agents() == [a]
        assert await store.list_queues() == [q]
        assert await store.call_records(0.0, 10.0) == [call]
        assert await store.agent_history() == [AgentStateChange("a1", "on-call", 3.0)]
        # The call goes on where it left off.
        record = await store.record_call_event(event("c1", CallPhase.ENDED, 9.0))
        assert record == attrs.evolve(call, ended_at=9.0)


async def test_many_writers_never_block_the_loop(tmp_path: Path) -> None:
    """1000 writes from 50 tasks while another connection holds the write lock for a while:
    the writes wait (in the worker), and a 1 ms ticker on the loop keeps its pace."""
    path = tmp_path / "busy.db"
    lateness: list[float] = []
    async with SqliteStore.open(path) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")

        async def ticker(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            while True:
                deadline = trio.current_time() + 0.001
                await trio.sleep_until(deadline)
                lateness.append(trio.current_time() - deadline)

        async def writer(n: int) -> None:
            for i in range(20):
                await store.record_agent_state(AgentStateChange(f"a{n}", "available", float(i)))

        async with trio.open_nursery() as outer:
            await outer.start(ticker)
            async with trio.open_nursery() as writers:
                for n in range(50):
                    writers.start_soon(writer, n)
                await trio.sleep(0.3)
                assert len(lateness) > 20  # the loop ran on while every writer waited
                blocker.execute("COMMIT")
                blocker.close()
            outer.cancel_scope.cancel()
        history = await store.agent_history()
    assert len(history) == 1000
    assert len(lateness) > 100
    # Typically under 10 ms; the margin is for busy CI machines. Blocking would stall the loop
    # for the whole lock hold and then fail with "database is locked" after BUSY_TIMEOUT.
    assert max(lateness) < 0.1, f"the loop stalled for {max(lateness):.3f} s"


# --- hypothesis: what goes in comes back out, the same from every store ---------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
IDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
INT64 = st.integers(-(2**63), 2**63 - 1)
JSON = st.recursive(
    st.none() | st.booleans() | INT64 | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
TIMES = st.floats(-1e12, 1e12, allow_nan=False)
HEX = st.none() | st.text("0123456789abcdef", min_size=32, max_size=64)
CREDENTIALS = st.builds(PrecomputedHA1, md5=HEX, sha256=HEX, sha512_256=HEX)


@st.composite
def agents(draw: st.DrawFn) -> AgentRecord:
    paused = draw(st.booleans())
    return AgentRecord(
        id=draw(IDS),
        name=draw(TEXT),
        sip_user=draw(IDS),
        queues=draw(st.frozensets(IDS, max_size=4)),
        skills=draw(st.dictionaries(IDS, INT64, max_size=5)),
        max_concurrent=draw(st.integers(1, 2**63 - 1)),
        tier=draw(st.integers(0, 2**63 - 1)),
        order=draw(INT64),
        weight=draw(st.floats(min_value=0, exclude_min=True, allow_infinity=False)),
        paused=paused,
        pause_reason=draw(st.none() | TEXT) if paused else None,
        credentials=draw(st.none() | CREDENTIALS),
    )


queues = st.builds(
    QueueRecord,
    id=IDS,
    name=TEXT,
    strategy=IDS,
    settings=st.dictionaries(TEXT, JSON, max_size=5),
)


def run_on_every_store(check: Callable[[Store], Awaitable[None]]) -> None:
    async def main() -> None:
        for kind in ("memory", "sqlite-memory"):
            async with open_store(kind, Path()) as opened:
                await check(opened)

    trio.run(main)


def bare(record: AgentRecord) -> AgentRecord:
    return attrs.evolve(record, paused=False, pause_reason=None, credentials=None)


@settings(max_examples=200)
@given(agents(), agents(), st.data())
def test_definitions_are_equal_exactly_when_the_records_are_but_for_runtime_state(
    a: AgentRecord, b: AgentRecord, data: st.DataObject
) -> None:
    assert (record_definition(a) == record_definition(b)) == (bare(a) == bare(b))
    # the same agent with other runtime state, or one field of its definition changed
    runtime = {"paused": b.paused, "pause_reason": b.pause_reason, "credentials": b.credentials}
    assert record_definition(attrs.evolve(a, **runtime)) == record_definition(a)
    field = data.draw(st.sampled_from(["id", "name", "sip_user", "queues", "skills",
                                       "max_concurrent", "tier", "order", "weight"]))
    other = attrs.evolve(a, **{field: getattr(b, field)})
    assert (record_definition(other) == record_definition(a)) == (other == a)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(agents(), max_size=5, unique_by=(lambda a: a.id, lambda a: a.sip_user)),
    st.lists(queues, max_size=5, unique_by=lambda q: q.id),
)
def test_agents_and_queues_round_trip(
    agent_list: list[AgentRecord], queue_list: list[QueueRecord]
) -> None:
    async def check(store: Store) -> None:
        for a in agent_list:
            await store.add_agent(a)
        for q in queue_list:
            await store.add_queue(q)
        assert await store.list_agents() == sorted(agent_list, key=lambda a: a.id)
        assert await store.list_queues() == sorted(queue_list, key=lambda q: q.id)
        for a in agent_list:
            assert await store.get_agent(a.id) == a
        for q in queue_list:
            assert await store.get_queue(q.id) == q

    run_on_every_store(check)


CALL_IDS = st.sampled_from(["c1", "ç2"])
AGENT_IDS = st.sampled_from(["a1", "ägent"])
# Offers come and go several times in a call's life: draw them more often.
PHASES = st.sampled_from([*CallPhase, *[CallPhase.OFFERED, CallPhase.OFFER_MISSED] * 3])


@st.composite
def call_events(draw: st.DrawFn) -> CallEvent:
    phase = draw(PHASES)
    call_id = draw(CALL_IDS)
    at = draw(TIMES)
    if phase is CallPhase.ARRIVED:
        return arrived(
            call_id,
            at,
            queue_id=draw(st.none() | IDS),
            session_id=draw(IDS),
            caller=draw(TEXT),
            priority=draw(INT64),
        )
    agent_id = draw(AGENT_IDS) if phase in {
        CallPhase.OFFERED,
        CallPhase.OFFER_MISSED,
        CallPhase.ANSWERED,
    } else None
    detail = draw(st.none() | TEXT) if phase in {
        CallPhase.OFFER_MISSED,
        CallPhase.ABANDONED,
        CallPhase.OVERFLOWED,
        CallPhase.REJECTED,
    } else None
    return event(call_id, phase, at, agent_id=agent_id, detail=detail)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(call_events(), max_size=40), TIMES)
def test_call_records_match_the_pure_fold(events: list[CallEvent], start: float) -> None:
    """Any event sequence, valid or not: every store accepts and refuses exactly what
    apply_call_event does, and keeps exactly the records it builds."""
    events = [arrived("c1", start), arrived("ç2", start, queue_id=None), *events]
    expected: dict[str, CallRecord] = {}
    outcomes: list[CallRecord | type[StoreError]] = []
    for e in events:
        try:
            expected[e.call_id] = apply_call_event(expected.get(e.call_id), e)
            outcomes.append(expected[e.call_id])
        except StoreError as exc:
            outcomes.append(type(exc))

    async def check(store: Store) -> None:
        seen: list[CallRecord | type[StoreError]] = []
        for e in events:
            try:
                seen.append(await store.record_call_event(e))
            except StoreError as exc:
                seen.append(type(exc))
        assert seen == outcomes
        for call_id, record in expected.items():
            assert await store.call_record(call_id) == record
        everything = await store.call_records(-math.inf, math.inf)
        assert everything == sorted(expected.values(), key=lambda r: (r.arrived_at, r.id))

    run_on_every_store(check)
