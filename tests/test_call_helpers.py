"""first_to_end and hangup_quietly: how a B2BUA (the example, the softswitch, the call
engine) ties two legs together."""

from __future__ import annotations

import trio

from trio_voip import CallState, EndKind, first_to_end, hangup_quietly

from test_coordinator import BOB, Scripted, pair


async def test_first_to_end_returns_the_leg_that_ended(autojump_clock) -> None:
    handler = Scripted()
    async with pair(callee=handler) as (a, _b):
        x = await a.make_call(BOB)
        y = await a.make_call(BOB)
        for call in (x, y):
            await call.wait_state(CallState.ACTIVE, timeout=5)
        async with trio.open_nursery() as nursery:
            ended = []

            async def tie() -> None:
                ended.append(await first_to_end(x, y))

            nursery.start_soon(tie)
            await trio.sleep(1)
            assert not ended  # both legs up: still waiting
            await handler.incoming[1].hangup()  # y's far end hangs up
        assert ended == [y]
        assert x.state is CallState.ACTIVE
        await hangup_quietly(x)
        assert x.end_reason.kind is EndKind.LOCAL_HANGUP


async def test_hangup_quietly_of_an_ended_call_does_not_raise(autojump_clock) -> None:
    async with pair(callee=Scripted()) as (a, _b):
        x = await a.make_call(BOB)
        await x.wait_state(CallState.ACTIVE, timeout=5)
        await x.hangup()
        await hangup_quietly(x)  # already over: logged, not raised
        assert x.end_reason.kind is EndKind.LOCAL_HANGUP
