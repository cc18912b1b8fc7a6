"""SIPp's own UAC (`sipp -sn uac`) calling examples/uas.py on 127.0.0.1."""

import trio

from trio_voip.testing.sipp import run_sipp

from .uas_fixture import start_uas


async def sipp_calls(port, local_port, calls, rate, extra=()):
    return await run_sipp("uac", target=f"127.0.0.1:{port}", local_port=local_port, calls=calls,
                          rate=rate, timeout=60, extra=list(extra))


async def test_hundreds_of_calls_with_zero_failures(sipp, unused_udp_port_pair):
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        result = await sipp_calls(port, unused_udp_port_pair[0], calls=300, rate=150)
        assert result.returncode == 0, result.stderr
        assert (result.successful, result.failed) == (300, 0)
        # The UAS side agrees: every call answered and ended by BYE, nothing left behind.
        await trio.sleep(0.2)
        assert uas.stats.calls_answered == 300
        assert uas.stats.calls_ended == 300
        assert uas.dialogs.count == 0
        nursery.cancel_scope.cancel()


async def test_calls_survive_packet_loss(sipp, unused_udp_port_pair):
    # SIPp drops 5% of what it sends and receives: both sides must retransmit (Timer A/E on
    # SIPp's side, 2xx retransmission by our UAS core) and absorb duplicates.
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        result = await sipp_calls(port, unused_udp_port_pair[0], calls=200, rate=100,
                                  extra=["-lost", "5"])
        assert result.returncode == 0, result.stderr
        assert (result.successful, result.failed) == (200, 0)
        assert result.retransmissions > 0
        nursery.cancel_scope.cancel()


async def test_sipp_over_tcp(sipp, unused_udp_port_pair):
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        result = await sipp_calls(port, unused_udp_port_pair[0], calls=100, rate=100,
                                  extra=["-t", "t1"])
        assert result.returncode == 0, result.stderr
        assert (result.successful, result.failed) == (100, 0)
        nursery.cancel_scope.cancel()
