"""The SIPp runner itself, proven on SIPp calling SIPp (the baseline every bench compares to)."""

import trio

from trio_voip.testing.sipp import run_sipp


async def test_sipp_uac_against_sipp_uas_counts_calls(sipp, unused_udp_port_pair):
    uas_port, uac_port = unused_udp_port_pair
    async with trio.open_nursery() as nursery:
        uas = []

        async def uas_task(task_status=trio.TASK_STATUS_IGNORED):
            uas.append(await run_sipp("uas", target=None, local_port=uas_port, calls=20,
                                      timeout=30, task_status=task_status))

        await nursery.start(uas_task)
        await trio.sleep(0.3)  # SIPp binds its socket after start-up
        uac = await run_sipp("uac", target=f"127.0.0.1:{uas_port}", local_port=uac_port,
                             calls=20, rate=100, timeout=30)
    assert uac.returncode == 0, uac.stderr
    assert (uac.successful, uac.failed) == (20, 0)
    assert (uas[0].successful, uas[0].failed) == (20, 0)
