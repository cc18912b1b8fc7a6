"""The call engine with SIPp phones on 127.0.0.1: SIPp agents register with Digest (MD5) and
then answer as UASs; SIPp customers call the queue. Every customer must be answered by an
agent (call records, queue numbers) and every SIPp side must count every call successful."""

from __future__ import annotations

import trio

from trio_voip.callcenter import AgentState
from trio_voip.callcenter.store import CallOutcome
from trio_voip.softswitch import HttpConfig, QueueConfig, RtpConfig, SipConfig, Softswitch
from trio_voip.softswitch.config import CallCenterConfig, SoftswitchConfig, UserConfig

from .test_sipp_scenarios import assert_clean, scenario, sipp_uac, sipp_uas
from .test_softswitch import free_udp_port

AGENTS = {"1001": "demo1001", "1002": "demo1002"}


def config(strategy: str, store: str) -> SoftswitchConfig:
    return SoftswitchConfig(
        # SIPp's stock callers do not answer INVITE challenges; SIPp answers MD5 only
        sip=SipConfig(port=0, transports=("udp",), auth_invite=False, digest_algorithms=("MD5",)),
        rtp=RtpConfig(33400, 33499),
        http=HttpConfig(enabled=False),
        callcenter=CallCenterConfig(engine=True, store=store, poll_interval=0.1),
        users=tuple(UserConfig(name, password) for name, password in AGENTS.items()),
        queues=(QueueConfig("6000", "support", strategy=strategy, members=tuple(AGENTS)),),
    )


async def test_sipp_customers_are_all_answered_by_sipp_agents(sipp, tmp_path):
    per_agent = 3
    calls = per_agent * len(AGENTS)
    ports = {user: free_udp_port() for user in AGENTS}
    customer_port = free_udp_port()
    async with trio.open_nursery() as nursery:
        switch: Softswitch = await nursery.start(
            Softswitch(config("round-robin", str(tmp_path / "cc.sqlite"))).run
        )
        driver = switch.driver
        assert driver is not None and driver.store is not None
        port = switch.coordinator.port("UDP")
        for user, password in AGENTS.items():
            # registers from the port its UAS then answers on
            result = await sipp_uac(port, ports[user], scenario("uac_register_auth.xml"), 1,
                                    extra=["-s", user, "-au", user, "-ap", password],
                                    timeout=10)
            assert_clean(result, 1)
        with trio.fail_after(5):
            while any(driver.engine.agent_state(u) is not AgentState.AVAILABLE for u in AGENTS):
                await trio.sleep(0.05)
        async with sipp_uas(ports["1001"], "uas", per_agent) as first, \
                sipp_uas(ports["1002"], "uas", per_agent) as second:
            # one customer at a time, each staying 1 s: round-robin alternates the agents
            customers = await sipp_uac(port, customer_port, "uac", calls, rate=5,
                                       extra=["-s", "6000", "-l", "1", "-d", "1000"],
                                       timeout=60)
        assert_clean(customers, calls)
        assert_clean(first[0], per_agent)
        assert_clean(second[0], per_agent)
        with trio.fail_after(5):
            while switch.coordinator.calls or driver.engine.live_calls():
                await trio.sleep(0.05)
        stats = driver.engine.queue_stats("6000", trio.current_time())
        assert (stats.offered, stats.answered, stats.abandoned, stats.waiting) == (
            calls, calls, 0, 0)
        await driver.flush_store()
        records = await driver.store.call_records(0, 1e12)
        assert [r.outcome for r in records] == [CallOutcome.ANSWERED] * calls
        assert sorted(r.agent_id for r in records) == sorted(list(AGENTS) * per_agent)
        assert all(r.bridged_at is not None and r.ended_at is not None for r in records)
        nursery.cancel_scope.cancel()
