"""Admin of the call engine at runtime (CallCenterDriver): agents and queues added, edited and
removed in the engine and the store, pauses kept, everything back after a restart (the
configuration's edits applied, runtime edits and removals of what it did not change kept);
and the coordinator's users changed while it runs, so an agent added with a password can
register."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from test_softswitch_app import PASSWORDS, PHONE_RTP, Phone, dial, phone, test_config, until
from trio_voip import CallDecision, CallState, SessionCoordinator, SessionManagerBuilder
from trio_voip.callcenter import AgentState, Strategy
from trio_voip.callcenter.driver import (
    CallCenterDriver, agent_from_record, agent_record, queue_from_record, queue_record,
)
from trio_voip.callcenter.store import AgentRecord, MemoryStore, QueueRecord, SqliteStore, Store
from trio_voip.errors import CallCenterError, StoreError, TrioVoipError
from trio_voip.sip.digest import PrecomputedHA1
from trio_voip.sip.registrar import RegistrationSucceeded
from trio_voip.softswitch import QueueConfig, Softswitch
from trio_voip.testing.registration import register

QUEUE = "6000"


@pytest.fixture(autouse=True)
def agent_2001(monkeypatch):
    """A phone for user 2001, which the configuration does not have."""
    monkeypatch.setitem(PASSWORDS, "2001", "pw2001")
    monkeypatch.setitem(PHONE_RTP, "2001", PHONE_RTP["1002"])


@contextlib.asynccontextmanager
async def running(
    store: Store | None = None, queues: tuple[QueueConfig, ...] | None = None
) -> AsyncIterator[Softswitch]:
    """The softswitch with ``queues``, by default queue 6000 served by agents 1001 and 1002
    (1003 calls in)."""
    config = test_config(queues=queues or (QueueConfig(QUEUE, "support",
                                                       members=("1001", "1002")),))
    options = {"store": store} if store is not None else {}
    async with trio.open_nursery() as nursery:
        switch: Softswitch = await nursery.start(
            Softswitch(config, driver_options=options).run
        )
        assert switch.driver is not None
        yield switch
        nursery.cancel_scope.cancel()


def driver_of(switch: Softswitch) -> CallCenterDriver:
    assert switch.driver is not None
    return switch.driver


async def registers(phone_: SessionCoordinator, user: str, password: str, port: int) -> bool:
    """Whether ``user`` can REGISTER with ``password`` at the softswitch on ``port``."""
    with trio.fail_after(5):
        outcome = await register(phone_, user, password, port)
    return isinstance(outcome, RegistrationSucceeded)


def new_agent(driver: CallCenterDriver, **changes: object) -> AgentRecord:
    fields: dict = {"sip_user": "2001", "queues": {QUEUE}, "skills": {"fr": 3},
                    "max_concurrent": 2, "tier": 1, "order": 5, "weight": 2.5, **changes}
    return AgentRecord("a2001", "Dana", credentials=driver.credentials("2001", "pw2001"),
                       **fields)


# -- the coordinator's users at runtime --


async def test_a_user_set_at_runtime_registers_and_one_removed_cannot():
    async with running() as switch:
        coordinator = switch.coordinator
        port = coordinator.port("UDP")
        async with phone("2001", port, register=False) as dana:
            assert not await registers(dana, "2001", "pw2001", port)
            coordinator.set_user("2001", "pw2001")
            assert await registers(dana, "2001", "pw2001", port)
            assert not await registers(dana, "2001", "wrong", port)
            # HA1 values instead of a password, for our realm
            realm = coordinator.authenticator.realm
            coordinator.set_user("2001", PrecomputedHA1.from_password("2001", realm, "new"))
            assert await registers(dana, "2001", "new", port)
            assert not await registers(dana, "2001", "pw2001", port)
            assert coordinator.stats().registrations == 1
            coordinator.remove_user("2001")
            assert coordinator.stats().registrations == 0  # dropped with the user
            assert not await registers(dana, "2001", "new", port)
        with pytest.raises(TrioVoipError, match="no user '2001'"):
            coordinator.remove_user("2001")
        for name, secret in [("", "x"), ("a@b", "x"), (5, "x"), ("2002", ""), ("2002", None)]:
            with pytest.raises(TrioVoipError):
                coordinator.set_user(name, secret)  # type: ignore[arg-type]


async def test_a_coordinator_without_users_refuses_to_add_one():
    builder = (SessionManagerBuilder().listen("127.0.0.1", 0, transports=("UDP",))
               .rtp_ports(*PHONE_RTP["1003"]))
    async with builder.handler(Phone()).build() as coordinator:
        with pytest.raises(TrioVoipError, match="no users"):
            coordinator.set_user("2001", "pw")


# -- records and the engine's model --


def test_records_and_engine_definitions_convert_both_ways():
    record = AgentRecord("a1", "Ann", "1001", queues={"6000"}, skills={"fr": 2},
                         max_concurrent=3, tier=1, order=-2, weight=0.5)
    agent = agent_from_record(record)
    assert agent_record(agent) == record
    assert agent_record(agent, "lunch").pause_reason == "lunch"
    queue_rec = QueueRecord("7000", "sales", "skill-based",
                            {"ring_timeout": 9.0, "required_skills": {"fr": 2},
                             "overflow": "queue:6000"})
    queue = queue_from_record(queue_rec)
    assert queue.strategy is Strategy.SKILL_BASED and queue.ring_timeout == 9.0
    assert queue_record(queue, "sales") == queue_rec
    with pytest.raises(CallCenterError, match="level"):
        agent_from_record(AgentRecord("a1", "Ann", "1001", skills={"fr": 11}))
    with pytest.raises(CallCenterError, match="unknown strategy"):
        queue_from_record(QueueRecord("7000", "", "loudest"))


# -- agents --


async def test_an_agent_added_at_runtime_registers_and_takes_a_queue_call():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        record = new_agent(driver)
        await driver.add_agent(record)
        assert agent_from_record(record) in driver.engine.agents()
        assert await store.get_agent("a2001") == record
        port = switch.coordinator.port("UDP")
        dana = Phone()
        async with phone("2001", port, dana) as _, phone("1003", port) as customer:
            await until(lambda: driver.engine.agent_state("a2001") is AgentState.AVAILABLE)
            call = await dial(customer, "1003", QUEUE, port)
            with trio.fail_after(5):
                await dana.arrived.wait()
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await until(lambda: driver.engine.agent_state("a2001") is AgentState.ON_CALL)
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)
            # a user of the softswitch too: listed, and called by its extension
            (user,) = [u for u in switch.state()["users"] if u["name"] == "2001"]
            assert (user["display_name"], user["online"]) == (record.name, True)
            call = await dial(customer, "1003", "2001", port)
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert len(dana.incoming) == 2
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)
        with pytest.raises(CallCenterError, match="exists"):
            await driver.add_agent(record)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"queues": {"9999"}}, "no queue '9999'"),
        ({"sip_user": "1001"}, "agent '1001'"),  # 1001 is a configured agent's phone
        ({"skills": {"fr": 0}}, "level"),  # the store would take it, the engine does not
    ],
)
async def test_a_refused_agent_changes_nothing(changes, error):
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        before = (driver.engine.agents(), await store.list_agents())
        with pytest.raises((CallCenterError, StoreError), match=error):
            await driver.add_agent(new_agent(driver, **changes))
        assert (driver.engine.agents(), await store.list_agents()) == before


class RefusingStore(MemoryStore):
    """Refuses to add or update agents and queues once ``refuse`` is set."""

    refuse = False

    async def _refused(self) -> None:
        if self.refuse:
            raise StoreError("disk full")

    async def add_agent(self, agent: AgentRecord) -> None:
        await self._refused()
        await super().add_agent(agent)

    async def update_agent(self, agent: AgentRecord) -> None:
        await self._refused()
        await super().update_agent(agent)

    async def add_queue(self, queue: QueueRecord) -> None:
        await self._refused()
        await super().add_queue(queue)

    async def update_queue(self, queue: QueueRecord) -> None:
        await self._refused()
        await super().update_queue(queue)

    async def remove_queue(self, queue_id: str) -> None:
        await self._refused()
        await super().remove_queue(queue_id)


async def test_a_store_refusal_undoes_the_engine_change():
    async with RefusingStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        store.refuse = True
        agents, queues = driver.engine.agents(), driver.engine.queues()
        with pytest.raises(StoreError, match="disk full"):
            await driver.add_agent(new_agent(driver))
        with pytest.raises(StoreError):
            await driver.update_agent(AgentRecord("1001", "Renamed", "1001", queues={QUEUE}))
        with pytest.raises(StoreError):
            await driver.add_queue(QueueRecord("7000", "sales", "linear"))
        with pytest.raises(StoreError):
            await driver.update_queue(QueueRecord(QUEUE, "x", "random"))
        with pytest.raises(StoreError):
            await driver.remove_queue(QUEUE)
        assert (driver.engine.agents(), driver.engine.queues()) == (agents, queues)
        # and the coordinator did not get the refused agent's credentials
        async with phone("2001", switch.coordinator.port("UDP"), register=False) as dana:
            assert not await registers(dana, "2001", "pw2001", switch.coordinator.port("UDP"))


async def test_edit_an_agent_keeps_its_state_and_goes_to_the_store():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        port = switch.coordinator.port("UDP")
        async with phone("1001", port):
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            driver.pause("1001", "lunch")
            edited = AgentRecord("1001", "Ann B", "1001", queues={QUEUE}, skills={"de": 4},
                                 max_concurrent=2)
            await driver.update_agent(edited)
            status = driver.engine.agent_status("1001")
            assert status.agent == agent_from_record(edited) and status.paused
            await driver.flush_store()
            stored = await store.get_agent("1001")
            assert stored is not None and stored.skills == {"de": 4}
            assert (stored.paused, stored.pause_reason) == (True, "lunch")  # pause kept
            with pytest.raises(CallCenterError, match="no agent 'nobody'"):
                await driver.update_agent(AgentRecord("nobody", "N", "9"))


async def test_pause_resume_and_logout_are_kept_in_the_store():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        port = switch.coordinator.port("UDP")

        async def stored_pause() -> tuple[bool, str | None]:
            await driver.flush_store()
            record = await store.get_agent("1001")
            assert record is not None
            return record.paused, record.pause_reason

        async with phone("1001", port):
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            driver.pause("1001", "training")
            assert await stored_pause() == (True, "training")
            assert driver.agents_state()[0]["paused"] == "training"
            driver.resume("1001")
            assert await stored_pause() == (False, None)
            driver.pause("1001", "lunch")
            assert await stored_pause() == (True, "lunch")
            # a log-out ends the pause, and drops the phone's registration (else it would be
            # logged in again at once)
            driver.logout("1001")
            assert driver.engine.agent_state("1001") is AgentState.OFFLINE
            assert await stored_pause() == (False, None)
            assert switch.coordinator.stats().registrations == 0
            with pytest.raises(CallCenterError, match="not logged in"):
                driver.logout("1001")
            with pytest.raises(CallCenterError, match="not logged in"):
                driver.pause("1001", "lunch")


async def test_remove_an_agent_logs_it_out_and_forgets_its_credentials():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        await driver.add_agent(new_agent(driver))
        port = switch.coordinator.port("UDP")
        async with phone("2001", port, register=False) as dana:
            assert await registers(dana, "2001", "pw2001", port)
            await until(lambda: driver.engine.agent_state("a2001") is AgentState.AVAILABLE)
            await driver.remove_agent("a2001")
            assert "a2001" not in {a.agent_id for a in driver.engine.agents()}
            assert await store.get_agent("a2001") is None
            assert switch.coordinator.stats().registrations == 0
            assert not await registers(dana, "2001", "pw2001", port)
        # a configured agent: its user stays (it can still call extensions)
        await driver.remove_agent("1002")
        async with phone("1002", port, register=False) as bob:
            assert await registers(bob, "1002", "demo1002", port)
        with pytest.raises(CallCenterError, match="no agent"):
            await driver.remove_agent("1002")


async def test_without_a_store_the_changes_are_the_engine_s_only():
    async with running() as switch:
        driver = driver_of(switch)
        assert driver.store is None
        await driver.add_queue(QueueRecord("7000", "sales", "linear"))
        await driver.add_agent(new_agent(driver, queues={"7000"}))
        assert (await driver.get_agent("a2001")).queues == {"7000"}
        assert driver.get_queue("7000").name == "sales"
        port = switch.coordinator.port("UDP")
        async with phone("2001", port, register=False) as dana:
            assert await registers(dana, "2001", "pw2001", port)
            await until(lambda: driver.engine.agent_state("a2001") is AgentState.AVAILABLE)
            await driver.remove_agent("a2001")
            assert not await registers(dana, "2001", "pw2001", port)  # credentials gone too
        await driver.remove_queue("7000")
        assert [q.queue_id for q in driver.engine.queues()] == [QUEUE]


async def test_an_agent_on_a_call_is_not_removed():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        port = switch.coordinator.port("UDP")
        async with phone("1001", port), phone("1003", port) as customer:
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            call = await dial(customer, "1003", QUEUE, port)
            await until(lambda: driver.engine.agent_state("1001") is AgentState.ON_CALL)
            with pytest.raises(CallCenterError, match="on a call"):
                await driver.remove_agent("1001")
            assert await store.get_agent("1001") is not None
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)


# -- queues --


async def test_queues_added_edited_and_removed():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        sales = QueueRecord("7000", "sales", "linear", {"ring_timeout": 5.0})
        await driver.add_queue(sales)
        assert await store.get_queue("7000") == sales == driver.get_queue("7000")
        edited = QueueRecord("7000", "sales EU", "random", {"max_length": 3})
        await driver.update_queue(edited)
        assert await store.get_queue("7000") == edited
        (queue,) = [q for q in driver.engine.queues() if q.queue_id == "7000"]
        assert queue.strategy is Strategy.RANDOM and queue.max_length == 3
        assert queue.ring_timeout == 15.0  # settings replaced as a whole
        with pytest.raises(CallCenterError, match="unknown setting"):
            await driver.update_queue(QueueRecord("7000", "x", "random", {"colour": "red"}))
        assert driver.get_queue("7000") == edited
        await driver.remove_queue("7000")
        assert await store.get_queue("7000") is None
        with pytest.raises(CallCenterError, match="no queue '7000'"):
            driver.get_queue("7000")
        with pytest.raises(CallCenterError, match="already exists"):
            await driver.add_queue(QueueRecord(QUEUE, "again", "linear"))


async def test_a_queue_with_a_caller_waiting_is_not_removed():
    async with MemoryStore.open() as store, running(store) as switch:
        driver = driver_of(switch)
        port = switch.coordinator.port("UDP")
        slow = Phone(lambda call: CallDecision.defer())
        async with phone("1001", port, slow), phone("1003", port) as customer:
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            call = await dial(customer, "1003", QUEUE, port)
            await until(lambda: bool(driver.engine.waiting(QUEUE)))
            with pytest.raises(CallCenterError, match="still has 1 callers"):
                await driver.remove_queue(QUEUE)
            assert await store.get_queue(QUEUE) is not None
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)


# -- a restart --


async def test_the_store_comes_back_after_a_restart(tmp_path, caplog):
    path = tmp_path / "cc.sqlite"
    async with SqliteStore.open(path) as store, running(store) as switch:
        driver = driver_of(switch)
        # the configuration seeded the store
        assert [r.id for r in await store.list_agents()] == ["1001", "1002"]
        assert [(r.id, r.name) for r in await store.list_queues()] == [(QUEUE, "support")]
        assert list(await store.seeds("agent")) == ["1001", "1002"]
        assert list(await store.seeds("queue")) == [QUEUE]
        await driver.add_queue(QueueRecord("7000", "sales", "linear", {"ring_timeout": 4.0}))
        await driver.add_agent(new_agent(driver, queues={"7000"}))
        await driver.update_queue(QueueRecord(QUEUE, "help desk", "random"))
        await driver.remove_agent("1002")  # configured, but removed: stays removed
        port = switch.coordinator.port("UDP")
        async with phone("1001", port):
            await until(lambda: driver.engine.agent_state("1001") is AgentState.AVAILABLE)
            driver.pause("1001", "lunch")
        await driver.flush_store()
        # records the engine refuses (skill level 11, no such strategy) are skipped, logged
        await store.add_agent(AgentRecord("bad", "Bad", "2999", skills={"x": 11}))
        await store.add_queue(QueueRecord("8000", "bad", "loudest"))
    async with SqliteStore.open(path) as store, running(store) as switch:
        driver = driver_of(switch)
        engine = driver.engine
        assert {a.agent_id for a in engine.agents()} == {"1001", "a2001"}
        assert driver.get_queue("7000") == QueueRecord("7000", "sales", "linear",
                                                       {"ring_timeout": 4.0})
        assert driver.get_queue(QUEUE).name == "help desk"
        assert switch.state()["queues"][0]["name"] == "help desk"
        assert [q["number"] for q in switch.state()["queues"]] == [QUEUE, "7000"]
        assert "stored agent 'bad' not loaded" in caplog.text
        assert "stored queue '8000' not loaded" in caplog.text
        (paused,) = [a for a in driver.agents_state() if a["id"] == "1001"]
        assert (paused["state"], paused["paused"]) == ("offline", "lunch")
        port = switch.coordinator.port("UDP")
        ann, dana = Phone(), Phone()
        # the pause is back at the log-in, before anything is offered: ann never rings
        async with phone("1001", port, ann), phone("2001", port, dana), \
                phone("1003", port) as customer:
            await until(lambda: engine.agent_state("1001") is AgentState.PAUSED)
            assert engine.agent_status("1001").pause_reason == "lunch"
            await until(lambda: engine.agent_state("a2001") is AgentState.AVAILABLE)
            call = await dial(customer, "1003", "7000", port)
            with trio.fail_after(5):
                await dana.arrived.wait()
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert ann.incoming == []
            await call.hangup()
            await until(lambda: not switch.coordinator.calls)
        history = [c.state for c in await store.agent_history("1001")]
        assert history == ["available", "paused"] * 2  # before and after the restart


async def test_a_configuration_edit_applies_and_runtime_edits_of_the_rest_survive(tmp_path):
    async with SqliteStore.open(tmp_path / "cc.sqlite") as store:
        async with running(store) as switch:
            driver = driver_of(switch)
            await driver.update_queue(QueueRecord(QUEUE, "help desk", "random"))
            one = await driver.get_agent("1001")
            ha1 = driver.credentials("1001", "new-pw")
            await driver.update_agent(attrs.evolve(one, skills={"fr": 3}, max_concurrent=2,
                                                   credentials=ha1))
        # the same configuration: the runtime edits stand, a new password included
        async with running(store) as switch:
            driver = driver_of(switch)
            assert driver.get_queue(QUEUE) == QueueRecord(QUEUE, "help desk", "random")
            assert (await driver.get_agent("1001")).skills == {"fr": 3}
            assert driver.engine.agent_status("1001").agent.max_concurrent == 2
            port = switch.coordinator.port("UDP")
            async with phone("1001", port, register=False) as ann:
                assert await registers(ann, "1001", "new-pw", port)
        # the queue edited in the configuration: that applies; the agents' did not change
        linear = QueueConfig(QUEUE, "support", strategy="linear", ring_timeout=4.0,
                             members=("1001", "1002"))
        async with running(store, (linear,)) as switch:
            driver = driver_of(switch)
            expected = QueueRecord(QUEUE, "support", "linear",
                                   {"ring_timeout": 4.0, "join_empty": "strict"})
            assert driver.get_queue(QUEUE) == expected == await store.get_queue(QUEUE)
            state = switch.state()["queues"][0]
            assert (state["name"], state["strategy"]) == ("support", "linear")
            assert (await driver.get_agent("1001")).skills == {"fr": 3}
        two = await store.get_agent("1002")
        assert two is not None
        await store.update_agent(attrs.evolve(two, paused=True, pause_reason="lunch"))
        # the members reordered: both agents' rank changes, so their configured definitions
        # apply (1001's runtime skills go, and its password is its user's again); 1002's
        # pause is runtime state: it stays
        reordered = attrs.evolve(linear, members=("1002", "1001"))
        async with running(store, (reordered,)) as switch:
            driver = driver_of(switch)
            one, two = await driver.get_agent("1001"), await driver.get_agent("1002")
            assert (one.skills, one.max_concurrent, one.order, two.order) == ({}, 1, 1, 0)
            assert one.credentials is None
            port = switch.coordinator.port("UDP")
            async with phone("1001", port, register=False) as ann:
                assert await registers(ann, "1001", PASSWORDS["1001"], port)
                assert not await registers(ann, "1001", "new-pw", port)
            assert (two.paused, two.pause_reason) == (True, "lunch")
            (state,) = [a for a in driver.agents_state() if a["id"] == "1002"]
            assert state["paused"] == "lunch"
            assert driver.get_queue(QUEUE) == expected


async def test_runtime_removals_of_configured_ones_survive_a_restart(tmp_path):
    support = QueueConfig(QUEUE, "support", members=("1001", "1002"))
    sales = QueueConfig("7000", "sales", members=("1001",))
    async with SqliteStore.open(tmp_path / "cc.sqlite") as store:
        async with running(store, (support, sales)) as switch:
            driver = driver_of(switch)
            await driver.remove_queue("7000")
            await driver.remove_agent("1002")
        for _ in range(2):  # not back, however often it starts
            async with running(store, (support, sales)) as switch:
                driver = driver_of(switch)
                assert [q.queue_id for q in driver.engine.queues()] == [QUEUE]
                assert [q["number"] for q in switch.state()["queues"]] == [QUEUE]
                assert [a.agent_id for a in driver.engine.agents()] == ["1001"]
                assert [q.id for q in await store.list_queues()] == [QUEUE]
                assert [a.id for a in await store.list_agents()] == ["1001"]
                port = switch.coordinator.port("UDP")
                async with phone("1003", port, register=False) as customer:
                    call = await dial(customer, "1003", "7000", port)
                    with trio.fail_after(5):
                        assert (await call.wait_ended()).status == 404
        # the configuration edits the removed queue: it is back, as configured; 1002 is not
        random = attrs.evolve(sales, strategy="random")
        async with running(store, (support, random)) as switch:
            driver = driver_of(switch)
            back = driver.get_queue("7000")
            assert (back.name, back.strategy) == ("sales", "random")
            assert await store.get_queue("7000") == back
            assert [a.agent_id for a in driver.engine.agents()] == ["1001"]
        # dropped from the configuration: gone from the store, seed and all
        async with running(store, (support,)) as switch:
            assert [q.queue_id for q in driver_of(switch).engine.queues()] == [QUEUE]
            assert [q.id for q in await store.list_queues()] == [QUEUE]
            assert list(await store.seeds("queue")) == [QUEUE]


async def test_restore_needs_a_store():
    async with running() as switch:
        with pytest.raises(CallCenterError, match="no store"):
            await driver_of(switch).restore()


async def test_a_configured_agent_conflicting_with_a_stored_one_is_not_stored(caplog):
    async with MemoryStore.open() as store:
        await store.add_agent(AgentRecord("other", "Other", "1001"))  # 1001's phone
        with caplog.at_level(logging.WARNING):
            async with running(store) as switch:
                assert {r.id for r in await store.list_agents()} == {"other", "1002"}
                assert "configured agent '1001' not loaded" in caplog.text
                engine = driver_of(switch).engine
                assert {a.agent_id for a in engine.agents()} == {"other", "1002"}
