"""A minimal UAS on trio-voip's transaction layer: answers every call, then hangs up when told.

INVITE gets 200 OK with an SDP answer (PCMU/PCMA, no media is sent), ACK is taken silently,
BYE, CANCEL and OPTIONS get 200; what RFC 3261 8.2 says a UAS must refuse is refused. The 2xx
is retransmitted until its ACK arrives (13.3.1.4), through the sans-IO dialog layer.

    python examples/uas.py --bind 127.0.0.1:5060 [--quiet]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys

import attrs
import trio

from trio_voip.errors import OfferAnswerError, SdpError
from trio_voip.offer_answer import LocalCapabilities, answer_offer
from trio_voip.sdp import parse_sdp
from trio_voip.sip import Request, make_response
from trio_voip.sip.dialog import (
    DialogLayer,
    DialogTerminated,
    OutOfDialog,
    Retransmit,
    SendBye,
    SendResponse,
)
from trio_voip.sip.stack import ServerTransactionHandle, SipEndpoint
from trio_voip.sip.transaction import AckReceived, StrayAck, TransactionState
from trio_voip.sip.transport import TransportLayer
from trio_voip.sip.uas import inspect_request
from trio_voip.sip.uri import SipUri

logger = logging.getLogger("uas")


@attrs.define
class UasStats:
    calls_answered: int = 0
    calls_ended: int = 0
    refused: int = 0


class MinimalUas:
    """Answers calls on ``endpoint``; run with ``await nursery.start(uas.run)``."""

    def __init__(self, endpoint: SipEndpoint, host: str, media_port: int = 6000) -> None:
        self.endpoint = endpoint
        self.host = host
        self.dialogs = DialogLayer(t1=endpoint.layer.config.t1, t2=endpoint.layer.config.t2)
        self.capabilities = LocalCapabilities(address=host, ports={"audio": media_port})
        self.stats = UasStats()
        self._session_id = secrets.randbelow(2**31)
        self._wakeup = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._serve)
            nursery.start_soon(self._strays)
            nursery.start_soon(self._timers)
            task_status.started()

    def contact(self, port: int) -> SipUri:
        return SipUri(scheme="sip", user="uas", host=self.host, port=port)

    async def _serve(self) -> None:
        async for handle in self.endpoint.incoming:
            try:
                await self._answer(handle)
            except trio.BrokenResourceError:  # the transport closed under us: shutting down
                return

    async def _answer(self, handle: ServerTransactionHandle) -> None:
        request = handle.request
        refusal = inspect_request(request)
        if refusal is not None:
            self.stats.refused += 1
            await handle.respond(refusal)
            return
        now = trio.current_time()
        if request.method == "CANCEL":
            # Calls are answered at once, so a CANCEL normally finds its INVITE answered:
            # 200 for the CANCEL, and it has no further effect (RFC 3261 9.2).
            target = handle.cancel_target
            if target is not None and target.state is TransactionState.PROCEEDING:
                ok, terminated = self.dialogs.answer_cancel(request, target.request, now=now)
                await handle.respond(ok)
                await target.respond(terminated)
            else:
                await handle.respond(make_response(request, 200 if target else 481))
            return
        if request.method == "OPTIONS" and request.to.tag is None:
            response = make_response(request, 200)
            response.headers.add("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")
            response.headers.add("Accept", "application/sdp")
            await handle.respond(response)
            return
        answered = False
        for event in self.dialogs.on_request(request, now):
            if isinstance(event, OutOfDialog):
                await self._new_call(handle, request, now)
                answered = True
            elif isinstance(event, SendResponse):
                await handle.respond(event.response)
                answered = True
            elif isinstance(event, DialogTerminated):
                self.stats.calls_ended += 1
        if not answered:
            # An in-dialog request the dialog accepted (BYE, re-INVITE, INFO, ...): 200.
            await handle.respond(self.dialogs.respond(request, 200, now=now, **self._body(request)))
        self._kick()

    def _body(self, request: Request) -> dict:
        if request.method != "INVITE" or not request.body:
            return {}
        offer = parse_sdp(request.body)
        answer = answer_offer(offer, self.capabilities, session_id=self._session_id)
        return {"body": bytes(answer), "content_type": "application/sdp"}

    async def _new_call(self, handle: ServerTransactionHandle, request: Request, now: float) -> None:
        if request.method != "INVITE":
            await handle.respond(make_response(request, 481))
            return
        try:
            body = self._body(request)
        except (SdpError, OfferAnswerError) as exc:
            await handle.respond(make_response(request, 488, str(exc)[:100]))
            return
        local_port = handle.source.local_port if handle.source is not None else 5060
        dialog = self.dialogs.create_uas(request, secrets.token_hex(6), self.contact(local_port))
        await handle.respond(self.dialogs.respond(request, 200, now=now, dialog_id=dialog.id, **body))
        self.stats.calls_answered += 1

    async def _strays(self) -> None:
        async for stray in self.endpoint.stray:
            if isinstance(stray, StrayAck | AckReceived):
                self.dialogs.on_request(stray.request, trio.current_time())
                self._kick()

    def _kick(self) -> None:
        self._wakeup.set()

    async def _timers(self) -> None:
        while True:
            self._wakeup = trio.Event()
            deadline = self.dialogs.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._wakeup.wait()
            for event in self.dialogs.on_timer(trio.current_time()):
                if isinstance(event, Retransmit):
                    await self.endpoint.transport.send_response(event.response, None)
                elif isinstance(event, SendBye):
                    logger.info("no ACK for a 2xx: hanging up %s", event.request.call_id)
                    # Fire and forget: the BYE's own transaction reports nothing we act on.
                    await self.endpoint.request(event.request, *_target(event.request))
                elif isinstance(event, DialogTerminated):
                    self.stats.calls_ended += 1


def _target(request: Request) -> tuple[str, int, str]:
    uri = request.uri
    assert isinstance(uri, SipUri)
    return uri.host, uri.port or 5060, (uri.param("transport") or "UDP").upper()


def parse_bind(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(host: str, port: int, quiet: bool) -> None:
    transport = TransportLayer([("UDP", host, port), ("TCP", host, port)])
    endpoint = SipEndpoint(transport)
    uas = MinimalUas(endpoint, host)
    try:
        async with trio.open_nursery() as nursery:
            addresses = await nursery.start(endpoint.run)
            await nursery.start(uas.run)
            if not quiet:
                for a in addresses:
                    print(f"listening on {a.transport} {a.host}:{a.port}", flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    finally:
        # What a bench or an operator wants to know after a run: did anything get dropped?
        print(f"uas: {uas.stats}; endpoint: {endpoint.stats}; transport: {transport.stats}; "
              f"live transactions={len(endpoint.layer)} dialogs={uas.dialogs.count}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Minimal trio-voip UAS")
    parser.add_argument("--bind", default="127.0.0.1:5060", help="HOST:PORT (UDP and TCP)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)
    host, port = parse_bind(args.bind)
    trio.run(serve, host, port, args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
