"""RFC 4475 transaction- and application-layer messages sent to examples/uas.py over TCP.

TCP, because the messages' Via headers name hosts outside 127.0.0.0/8: over TCP the answer
goes back on the connection the request came on (RFC 3261 18.2.2) and nothing leaves loopback.
"""

from pathlib import Path

import pytest
import trio

from trio_voip.sip import parse_message
from trio_voip.sip.framing import StreamFramer

from .uas_fixture import start_uas

TORTURE = Path(__file__).resolve().parents[1] / "data" / "torture"

VERDICTS = {
    "badbranch": 200,  # 3.2.1: processed (RFC 2543 matching), OPTIONS answered
    "insuf": 400,  # 3.3.1: missing Call-ID, From, To
    "unkscm": 416,  # 3.3.2
    "novelsc": 416,  # 3.3.3
    "bext01": 420,  # 3.3.5
    "invut": 415,  # 3.3.6
    "multi01": 400,  # 3.3.8
    "mcl01": 400,  # 3.3.9
    "zeromf": 200,  # 3.3.11: a UAS answers OPTIONS with Max-Forwards 0
    "sdp01": 406,  # 3.3.15
    # REGISTER (unksm2, regaut01, cparam01/02, regescrt): this UAS is no registrar -> 405.
    "unksm2": 405,
    "regaut01": 405,
    "cparam01": 405,
    "cparam02": 405,
    "regescrt": 405,
}


async def exchange(port: int, data: bytes, wait: float = 5.0) -> bytes | None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        framer = StreamFramer()
        with trio.move_on_after(wait):
            while (message := framer.next_message()) is None:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return None
                framer.feed(chunk)
            return message
    return None


@pytest.mark.parametrize("name", sorted(VERDICTS))
async def test_torture_message_gets_the_rfc_response(name):
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        reply = await exchange(port, (TORTURE / f"{name}.dat").read_bytes())
        assert reply is not None, f"no answer to {name}"
        response = parse_message(reply)
        assert response.status == VERDICTS[name], (response.status, response.reason)
        nursery.cancel_scope.cancel()


async def test_broadcast_via_response_is_dropped():
    # 3.3.10: a 200 OK that is not ours (and whose next Via is a broadcast address) is dropped.
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        transport = uas.endpoint.transport
        before = transport.stats.foreign_responses
        assert await exchange(port, (TORTURE / "bcast.dat").read_bytes(), wait=0.5) is None
        assert transport.stats.foreign_responses == before + 1
        nursery.cancel_scope.cancel()
