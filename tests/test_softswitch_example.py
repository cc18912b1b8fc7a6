"""examples/softswitch.py: its configuration runs, and its users call each other by name."""

import sys
from pathlib import Path

import trio

from trio_voip import CallState
from trio_voip.softswitch import Softswitch

from test_softswitch_app import PASSWORDS, PHONE_RTP, Phone, phone

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import softswitch as example  # noqa: E402


async def test_the_example_config_calls_by_name(monkeypatch):
    # The example's users, as the test phones know them.
    monkeypatch.setitem(PASSWORDS, "alice", "wonderland")
    monkeypatch.setitem(PASSWORDS, "bob", "builder")
    monkeypatch.setitem(PHONE_RTP, "alice", PHONE_RTP["1001"])
    monkeypatch.setitem(PHONE_RTP, "bob", PHONE_RTP["1002"])
    config = example.make_config(0, 0, None)
    assert [u.name for u in config.users] == ["alice", "bob"]
    async with trio.open_nursery() as nursery:
        switch: Softswitch = await nursery.start(Softswitch(config).run)
        port = switch.coordinator.port("UDP")
        bob = Phone()
        async with phone("bob", port, bob), phone("alice", port) as alice:
            call = await alice.make_call(f"sip:bob@127.0.0.1:{port}", from_user="alice")
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            assert bob.incoming[0].remote_party.uri.user == "alice"
            await call.hangup()
            with trio.fail_after(5):
                while switch.coordinator.calls:
                    await trio.sleep(0.01)
            # the queue: alice (an agent, but on this very call) waits, bob is offered it
            call = await alice.make_call(f"sip:600@127.0.0.1:{port}", from_user="alice")
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            with trio.fail_after(5):
                while len(bob.incoming) < 2:
                    await trio.sleep(0.01)
                while not switch.coordinator.list_bridges():
                    await trio.sleep(0.01)
            assert switch.driver is not None
            (live,) = switch.driver.engine.live_calls()
            assert (live.queue_id, live.agent_id) == ("600", "bob")
            await call.hangup()
            with trio.fail_after(5):
                while switch.coordinator.calls:
                    await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
