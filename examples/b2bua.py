"""A back-to-back user agent on the SessionCoordinator: every call in becomes one call out.

    python examples/b2bua.py --bind 127.0.0.1:5062 --target sip:127.0.0.1:5070 \
        [--media passthrough|relay] [--rtp-ports 20000-20999] [--quiet]

Each incoming call (the caller's leg, A) places one call to ``--target`` (the callee's leg, B)
and the two are tied together:

* ``--media passthrough`` (the default): SDP is passed through: A's offer goes to B byte for
  byte, B's answer goes back to A (as parsed and written out again by trio_voip.sdp: same
  content, not necessarily the same bytes). We carry no media (signalling only, like a B2BUA
  without a media relay).
* ``--media relay``: the media flows through our RTP relay. B is called with our own offer
  (on a relay endpoint), A is answered with our own answer (on another one), and once A's
  ACK is in the two calls are joined with ``bridge_sessions``, which connects the two
  endpoints. We do not transcode, so when the codec B chose is not one A offered, A is
  refused with 488 (and B hung up). Either leg ending ends the other, and with it the
  bridge (the coordinator publishes ParticipantRemoved ``hangup``, ``left_alone`` and
  BridgeDestroyed). Each call holds four ports of ``--rtp-ports``; when they run out, A
  gets 503.
* An INVITE without an offer is refused with 488 in both modes: the coordinator answers an
  offer in a 2xx by itself, so a late offer cannot be passed through.
* The Request-URI of B is ``--target``; when the target has no user part, A's Request-URI user
  is kept (``INVITE sip:bob@b2bua`` -> ``sip:bob@target``). B's From carries A's user and
  display name; Call-ID, tags and CSeq are B's own.
* When B rings (180 or 183), A gets 180 Ringing. The coordinator has no call API for a
  provisional response with a body, so a 183 with early-media SDP reaches A as a plain 180.
* B answers: A is answered with B's SDP. B fails: A gets the mapped status (see
  :func:`map_failure`: 4xx and 6xx as they are, 401/407 -> 403, 3xx -> 480, 5xx -> 502, no
  answer -> 408).
* A CANCELs: B is CANCELled. A or B hangs up (BYE): the other leg gets a BYE. A leg that
  ends any other way (ring timeout, no ACK) ends the other one too.
* In-dialog requests (re-INVITE, INFO, ...) are answered by the coordinator on each leg and
  not relayed: a re-INVITE (hold, a new media address) gets the coordinator's own answer,
  and the other leg never hears of it. The coordinator has no hook yet to answer a
  re-INVITE with the other leg's answer.

It prints one "listening on ..." line per socket once ready. On SIGTERM/SIGINT the live calls
are hung up (bounded) and the counters are printed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Literal, get_args

import attrs
import trio

from trio_voip import (
    BridgeError,
    CallDecision,
    CallHandler,
    CallSession,
    CallState,
    EndKind,
    EndReason,
    SessionCoordinator,
    SessionManagerBuilder,
    TrioVoipError,
)
from trio_voip.errors import PortsExhausted
from trio_voip.offer_answer import offers_codec
from trio_voip.session import DecisionKind, first_to_end, hangup_quietly
from trio_voip.sip.transaction import TimerConfig
from trio_voip.sip.uri import SipUri, parse_uri

__all__ = [
    "CALLEE_TIMEOUT", "MediaMode", "B2buaStats", "B2bua", "map_failure",
    "parse_bind", "make_builder", "serve", "main",
]

logger = logging.getLogger("b2bua")

# How long the callee's INVITE may stay unanswered after a provisional response (Timer C;
# RFC 3261 16.6 asks a proxy for more than 3 minutes).
CALLEE_TIMEOUT = 181.0

MediaMode = Literal["passthrough", "relay"]

_REASONS = {403: "Forbidden", 408: "Request Timeout", 480: "Temporarily Unavailable",
            488: "Not Acceptable Here", 500: "Server Internal Error", 502: "Bad Gateway"}


def map_failure(reason: EndReason | None) -> tuple[int, str | None]:
    """The status (and reason phrase, None for the default) to refuse the caller with when
    the callee's leg ended without an answer for ``reason``.

    4xx and 6xx pass as they are (486 -> 486, 408 -> 408, 603 -> 603), except 401/407: the
    challenge was for us, not for the caller -> 403. 3xx -> 480: we do not follow redirects.
    5xx -> 502 Bad Gateway: the fault is downstream, and a caller must not take a callee's
    503 (and its Retry-After) as our own overload (RFC 3261 16.7 makes a proxy turn 503 into
    500 for the same reason). No response at all (a timeout, a transport error) -> 408;
    anything else without a status -> 500.
    """
    if reason is None:
        return 500, None
    status = reason.status
    if status is None:
        if reason.kind is EndKind.NO_ANSWER:
            return 408, None
        return 500, None
    if status in (401, 407):
        return 403, None
    if 300 <= status < 400:
        return 480, None
    if 500 <= status < 600:
        return 502, None
    if 400 <= status < 700:
        return status, None
    return 500, None  # a "failure" with a 1xx/2xx status is our bug: say so



@attrs.define
class B2buaStats:
    """Counts of incoming calls: ``answered`` (the callee answered, so did we), ``refused``
    (the caller got a failure status), ``cancelled`` (the caller gave up first); ``active``
    pairs of legs are not both over yet; ``bridged`` pairs joined on the relay (relay mode)."""

    calls: int = 0
    answered: int = 0
    refused: int = 0
    cancelled: int = 0
    active: int = 0
    bridged: int = 0


class B2bua(CallHandler):
    """The B2BUA's call handler; run it with ``await nursery.start(b2bua.run, builder)``, which
    builds the coordinator (with this handler) from ``builder`` and reports it started.
    ``media="relay"`` needs a builder with ``media_relay(True)`` (see :func:`make_builder`).
    :meth:`stop` ends it gracefully (live calls get BYE/CANCEL); cancelling ``run`` instead
    tears the sockets down at once, with no time left to say goodbye."""

    def __init__(self, target: SipUri, *, media: MediaMode = "passthrough") -> None:
        if media not in get_args(MediaMode):
            raise TrioVoipError(f"unknown media mode {media!r}")
        self.target = target
        self.media = media
        self.stats = B2buaStats()
        # The answer each caller was given, by call id, until its pair of legs is over.
        self._outcome: dict[str, bool] = {}
        # Relay mode: the callee's leg of each answered caller, until the caller's ACK.
        self._callees: dict[str, CallSession] = {}
        self._coordinator: SessionCoordinator | None = None
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()

    @property
    def coordinator(self) -> SessionCoordinator:
        if self._coordinator is None:
            raise TrioVoipError("the B2BUA is not running")
        return self._coordinator

    async def run(
        self,
        builder: SessionManagerBuilder,
        *,
        task_status: trio.TaskStatus[SessionCoordinator] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if self.media == "relay" and not builder.config().media_relay:
            raise TrioVoipError("relay mode needs builder.media_relay(True)")
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async with builder.handler(self).build() as coordinator:
                    self._coordinator = coordinator
                    task_status.started(coordinator)
                    await self._stop.wait()
            finally:
                self._coordinator = None
                nursery.cancel_scope.cancel()

    def stop(self) -> None:
        """Leave the coordinator normally: it hangs up every live call, then closes."""
        self._stop.set()

    def _callee_uri(self, caller: CallSession) -> SipUri:
        invite = caller.invite
        uri = invite.uri if invite is not None else None
        if self.target.user is None and isinstance(uri, SipUri) and uri.user:
            return attrs.evolve(self.target, user=uri.user)
        return self.target

    # -- the handler --

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        self.stats.calls += 1
        invite = call.invite
        if invite is None or not invite.body:
            self.stats.refused += 1
            return CallDecision.reject(488, "Offer Required")
        caller = call.remote_party.uri
        try:
            callee = await self.coordinator.make_call(
                self._callee_uri(call),
                from_user=(caller.user if isinstance(caller, SipUri) else None) or "b2bua",
                display_name=call.remote_party.display_name,
                # Relay: our offer, on a relay endpoint of the callee's leg.
                sdp=None if self.media == "relay" else invite.body,
            )
        except TrioVoipError as exc:
            logger.info("cannot call %s: %s", self.target, exc)
            self.stats.refused += 1
            if isinstance(exc, PortsExhausted):  # out of relay ports: overload, not a fault
                return CallDecision.reject(503)
            status = getattr(exc, "status", None)
            return CallDecision.reject(status if status and 400 <= status < 700 else 500)
        assert self._nursery is not None
        self._nursery.start_soon(self._tie, call, callee)
        # A CANCEL from the caller cancels us here; _tie then CANCELs the callee.
        state = await callee.wait_state(CallState.RINGING, CallState.ACTIVE, CallState.ON_HOLD)
        if state is CallState.RINGING:
            self._nursery.start_soon(self._finish_ringing, call, callee)
            return CallDecision.defer()
        return self._decision(call, callee)

    def _decision(self, caller: CallSession, callee: CallSession) -> CallDecision:
        """Answer the caller as the callee's INVITE ended: its SDP answer, or its failure."""
        answered = callee.state.established
        if self.media == "relay" and answered:
            media = callee.media
            if media is None or not offers_codec(caller.remote_sdp, media.codec):
                self._outcome[caller.id] = False
                return CallDecision.reject(488, "Codec Mismatch")
            self._outcome[caller.id] = True
            self._callees[caller.id] = callee
            return CallDecision.accept()  # our answer, on the caller's relay endpoint
        self._outcome[caller.id] = answered
        if answered:
            return CallDecision.accept(callee.remote_sdp)
        status, reason = map_failure(callee.end_reason)
        return CallDecision.reject(status, reason or _REASONS.get(status))

    async def on_call_established(self, call: CallSession) -> None:
        """Relay mode: the caller's ACK is in (its callee answered before we did), so both
        legs are active: bridge them, which connects their relay endpoints."""
        callee = self._callees.pop(call.id, None)
        if callee is None:
            return
        try:
            self.coordinator.bridge_sessions(call.id, callee.id)
        except BridgeError as exc:  # a leg ended meanwhile: _tie ends the other
            logger.info("cannot bridge %s and %s: %s", call.id, callee.id, exc)
            return
        self.stats.bridged += 1

    async def _finish_ringing(self, caller: CallSession, callee: CallSession) -> None:
        """The caller rings (180 sent): answer or refuse it once the callee's INVITE ends."""
        # Wait for our 180 to be out first, so a quick answer cannot overtake it.
        await caller.wait_state(CallState.RINGING)
        await callee.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
        if caller.state is not CallState.RINGING:
            return  # the caller gave up (CANCEL, ring timeout): _tie ends the callee
        decision = self._decision(caller, callee)
        try:
            if decision.kind is DecisionKind.ACCEPT:
                await caller.answer(decision.sdp)
            else:
                assert decision.status is not None
                await caller.reject(decision.status, decision.reason)
        except TrioVoipError as exc:  # the caller went away at the same moment
            logger.info("could not answer %s: %s", caller.id, exc)

    async def _tie(self, caller: CallSession, callee: CallSession) -> None:
        """Whichever leg ends first, end the other: CANCEL or BYE the callee; BYE the caller
        once its answer (from the callee's outcome) is out."""
        self.stats.active += 1
        try:
            first = await first_to_end(caller, callee)
            if first is caller:
                await hangup_quietly(callee)
            else:
                # An unanswered caller gets the callee's outcome from on_incoming_call or
                # _finish_ringing; once that is out (and ACKed), hang up what is left.
                await caller.wait_state(CallState.ACTIVE, CallState.ON_HOLD)
                await hangup_quietly(caller)
            await caller.wait_ended()
            await callee.wait_ended()
        finally:
            self.stats.active -= 1
            self._callees.pop(caller.id, None)
            self._count(caller)

    def _count(self, caller: CallSession) -> None:
        answered = self._outcome.pop(caller.id, False)
        reason = caller.end_reason
        if reason is not None and reason.kind is EndKind.CANCELLED:
            self.stats.cancelled += 1
        elif answered:
            self.stats.answered += 1
        else:
            self.stats.refused += 1




def parse_bind(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def make_builder(
    host: str,
    port: int,
    max_calls: int,
    media: MediaMode = "passthrough",
    rtp_ports: tuple[int, int] | None = None,
) -> SessionManagerBuilder:
    """Two coordinator calls per B2BUA call. Passed-through SDP uses no RTP ports; relayed
    media takes two relay endpoints (four ports) per call from ``rtp_ports`` (default
    20000-20999: 250 relayed calls at once; more are refused with 503). Timer C bounds a
    callee that sends 100 Trying and then nothing (the caller gets 408)."""
    builder = (
        SessionManagerBuilder()
        .listen(host, port)
        .timers(TimerConfig(timer_c=CALLEE_TIMEOUT))
        .limits(max_calls=2 * max_calls)
    )
    if rtp_ports is not None:
        builder.rtp_ports(*rtp_ports)
    return builder.media_relay(True) if media == "relay" else builder


async def serve(
    host: str,
    port: int,
    target: SipUri,
    max_calls: int,
    media: MediaMode = "passthrough",
    rtp_ports: tuple[int, int] | None = None,
) -> None:
    b2bua = B2bua(target, media=media)
    coordinator: SessionCoordinator | None = None
    try:
        async with trio.open_nursery() as nursery:
            coordinator = await nursery.start(
                b2bua.run, make_builder(host, port, max_calls, media, rtp_ports)
            )
            # Printed even with --quiet: scripts wait for this line before placing calls.
            for address in coordinator.addresses:
                print(f"listening on {address}, calling {target}", flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    b2bua.stop()
                    break
    finally:
        held = coordinator.stats() if coordinator is not None else None
        print(f"b2bua: {b2bua.stats}; coordinator: {held}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="trio-voip back-to-back user agent")
    parser.add_argument("--bind", default="127.0.0.1:5062", help="HOST:PORT (UDP and TCP)")
    parser.add_argument("--target", required=True, help="SIP URI every call is placed to")
    parser.add_argument("--max-calls", type=int, default=10000, help="concurrent calls")
    parser.add_argument("--media", choices=get_args(MediaMode), default="passthrough",
                        help="pass SDP through (no media here) or relay RTP through us")
    parser.add_argument("--rtp-ports", default=None, metavar="START-END",
                        help="relay port range (default 20000-20999: 250 relayed calls)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO)
    target = parse_uri(args.target)
    if not isinstance(target, SipUri):
        parser.error(f"--target must be a sip: or sips: URI, not {args.target}")
    host, port = parse_bind(args.bind)
    rtp_ports = None
    if args.rtp_ports is not None:
        start, _, end = args.rtp_ports.partition("-")
        if not (start.isdigit() and end.isdigit()):
            parser.error(f"--rtp-ports must be START-END, not {args.rtp_ports}")
        rtp_ports = (int(start), int(end))
    trio.run(serve, host, port, target, args.max_calls, args.media, rtp_ports)
    return 0


if __name__ == "__main__":
    sys.exit(main())
