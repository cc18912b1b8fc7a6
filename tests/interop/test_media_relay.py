"""Real RTP through the coordinator's relay: SIPp plays its G.711 and RFC 4733 captures
(``/usr/share/sip-tester/*.pcap``) into bridged calls on 127.0.0.1.

SIPp 3.6 counts no RTP (no column in ``-trace_stat``, no ``-trace_rtpstream`` in this build),
so the far side's reception is proven by echo: a SIPp run with ``-rtp_echo`` sends every packet
it receives back to its sender, and what comes back to the relay carries the SSRC of the
capture the other side played. Every test also counts the SIP calls on both SIPp sides and
checks that the coordinator holds no call and no RTP port afterwards.

The relay endpoints are read from ``coordinator._endpoints``: the coordinator has no public
accessor for a call's relay endpoint yet.
"""

from __future__ import annotations

import socket
import struct
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from trio_voip import (
    BridgeCreated,
    BridgeDestroyed,
    BridgeEvent,
    CallHandler,
    CallSession,
    DtmfReceived,
    EndKind,
    ParticipantAdded,
    ParticipantRemoved,
    RemovalReason,
    SessionCoordinator,
    SessionEvent,
    SessionManagerBuilder,
)
from trio_voip.rtp.relay import EndpointStats, MediaEndpoint
from trio_voip.sip.uri import SipUri
from trio_voip.testing.sipp import (
    SIPP_PCAP_DIR, UAS_PCMA, SippResult, run_sipp, sipp_pcaps,
)

from .test_sipp_scenarios import CALLER_TIMERS, FAST_TIMERS, assert_clean, scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from b2bua import B2bua  # noqa: E402

HANGUP, ALONE = RemovalReason.HANGUP, RemovalReason.LEFT_ALONE


# -- the captures --


def pcap_rtp(path: Path) -> list[tuple[int, int]]:
    """(payload type, SSRC) of each RTP packet in a classic little-endian Ethernet pcap."""
    data = path.read_bytes()
    magic, _, _, _, _, _, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, link) == (0xA1B2C3D4, 1), f"{path}: not a little-endian Ethernet pcap"
    out, offset = [], 24
    while offset < len(data):
        _, _, length, _ = struct.unpack_from("<IIII", data, offset)
        ip = data[offset + 16 + 14 : offset + 16 + length]
        rtp = ip[(ip[0] & 0x0F) * 4 + 8 :]
        out.append((rtp[1] & 0x7F, int.from_bytes(rtp[8:12], "big")))
        offset += 16 + length
    return out


AUDIO = pcap_rtp(SIPP_PCAP_DIR / "g711a.pcap") if SIPP_PCAP_DIR.is_dir() else []
DTMF = pcap_rtp(SIPP_PCAP_DIR / "dtmf_2833_1.pcap") if SIPP_PCAP_DIR.is_dir() else []


@pytest.fixture
def captures(sipp) -> None:
    if not AUDIO or not DTMF:
        pytest.skip(f"SIPp's captures are not in {SIPP_PCAP_DIR}")
    # One stream each, told apart by SSRC: G.711 A-law (PT 8) and RFC 4733 digit 1 (PT 101).
    assert {pt for pt, _ in AUDIO} == {8} and len({ssrc for _, ssrc in AUDIO}) == 1
    assert {pt for pt, _ in DTMF} == {101} and len({ssrc for _, ssrc in DTMF}) == 1
    assert AUDIO[0][1] != DTMF[0][1]


def audio_key() -> tuple[int, int]:
    return AUDIO[0]


def dtmf_key() -> tuple[int, int]:
    return DTMF[0]


# -- SIPp --

_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
"""

_INVITE = """
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP {formats}
      a=rtpmap:0 PCMU/8000
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" rtd="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"""

_PLAY = """
  <pause milliseconds="{before}"/>
  <nop><action><exec play_pcap_audio="pcap/{pcap}"/></action></nop>
"""

_BYE = """
  <pause milliseconds="{after}"/>
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
"""

_WAIT_BYE = """
  <recv request="BYE" timeout="{after}"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="500"/>
"""

def uac_scenario(*, formats: str = "8 101", pcap: str | None = None, before: int = 0,
                 hang_up: bool = True, after: int = 1000) -> str:
    """A caller offering ``formats``; after its ACK it waits ``before`` ms, plays ``pcap``,
    then hangs up after ``after`` ms, or (``hang_up=False``) waits that long for a BYE."""
    body = _INVITE.format(formats=formats)
    if pcap is not None:
        body += _PLAY.format(before=before, pcap=pcap)
    body += (_BYE if hang_up else _WAIT_BYE).format(after=after)
    return _HEAD + f'<scenario name="caller">{body}</scenario>\n'


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def free_media_port() -> int:
    """An even port P with P..P+3 free on 127.0.0.1 (SIPp's -rtp_echo binds P and P+2)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1] & ~1
        if base + 3 > 65535:
            continue
        socks = []
        try:
            for port in range(base, base + 4):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base


def media_args(echo: bool = False) -> list[str]:
    """Media on loopback on a port of its own (SIPp's default 6000 is shared by every run)."""
    return ["-mi", "127.0.0.1", "-mp", str(free_media_port()), *(["-rtp_echo"] if echo else [])]


async def uac(target: int, port: int, scen: str, *, extra: list[str] | None = None,
              timeout: float = 40, calls: int = 1) -> SippResult:
    return await run_sipp(scen, target=f"127.0.0.1:{target}", local_port=port, calls=calls,
                          rate=10, timeout=timeout, extra=extra or media_args(),
                          files=sipp_pcaps())


@asynccontextmanager
async def uas(port: int, scen: str, calls: int = 1, timeout: float = 40,
              extra: list[str] | None = None) -> AsyncIterator[list[SippResult]]:
    """A SIPp callee echoing RTP; the list holds its result once the block is left."""
    result: list[SippResult] = []

    async def run(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        result.append(await run_sipp(scen, target=None, local_port=port, calls=calls,
                                     timeout=timeout,
                                     extra=[*media_args(echo=True), *(extra or [])],
                                     task_status=task_status))

    async with trio.open_nursery() as nursery:
        await nursery.start(run)
        await trio.sleep(0.3)  # SIPp binds its sockets after it starts
        yield result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- watching the relay --


@attrs.define
class Leg:
    """A bridged call, its relay endpoint and what a tap saw on it, by (payload type,
    SSRC). The tap is attached when the bridge event is read, a moment after the bridge, so
    exact counts come from the endpoint's stats; the tap says whose packets they were."""

    call: CallSession
    endpoint: MediaEndpoint
    heard: Counter[tuple[int, int]] = attrs.field(factory=Counter)

    @property
    def stats(self) -> EndpointStats:
        return self.endpoint.stats

    def tap(self, view: memoryview, rtcp: bool) -> None:
        if not rtcp:
            self.heard[(view[1] & 0x7F, int.from_bytes(view[8:12], "big"))] += 1


@attrs.define
class BridgeWatch:
    """Every bridge event, a :class:`Leg` per participant added (taps attached then), and
    the DTMF digits the coordinator reported."""

    coordinator: SessionCoordinator
    events: list[BridgeEvent] = attrs.field(factory=list)
    legs: list[Leg] = attrs.field(factory=list)
    digits: list[DtmfReceived] = attrs.field(factory=list)
    on_event: Callable[[BridgeEvent], None] | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._digits, self.coordinator.subscribe_to_session_events())
            await self._bridges(self.coordinator.subscribe_to_bridge_events(), task_status)

    async def _digits(self, channel: trio.MemoryReceiveChannel[SessionEvent]) -> None:
        with channel:
            async for event in channel:
                if isinstance(event, DtmfReceived):
                    self.digits.append(event)

    async def _bridges(self, channel: trio.MemoryReceiveChannel[BridgeEvent],
                       task_status: trio.TaskStatus[None]) -> None:
        with channel:
            task_status.started()
            async for event in channel:
                self.events.append(event)
                if isinstance(event, ParticipantAdded):
                    call = next(c for c in self.coordinator.calls if c.id == event.session_id)
                    leg = Leg(call, self.coordinator._endpoints[call.id])
                    leg.endpoint.add_tap(leg.tap)
                    self.legs.append(leg)
                if self.on_event is not None:
                    self.on_event(event)

    def ids(self) -> list[str]:
        return [leg.call.id for leg in self.legs]


def assert_bridge_lifecycle(events: list[BridgeEvent], first: str, second: str,
                            hung_up: str) -> None:
    """Created, both added, the one that hung up removed (hangup), the other left alone,
    destroyed: nothing else."""
    assert len(events) == 6, events
    created, *rest = events
    assert isinstance(created, BridgeCreated)
    bridge = created.bridge_id
    alone = second if hung_up == first else first
    assert rest == [
        ParticipantAdded(bridge, first),
        ParticipantAdded(bridge, second),
        ParticipantRemoved(bridge, hung_up, HANGUP),
        ParticipantRemoved(bridge, alone, ALONE),
        BridgeDestroyed(bridge),
    ]


def assert_relayed(src: Leg, dst: Leg) -> int:
    """Everything ``src`` accepted once bridged went out of ``dst``; returns how many."""
    assert src.stats.malformed == src.stats.foreign_dropped == 0, src.stats
    assert dst.stats.send_errors == dst.stats.send_dropped == 0, dst.stats
    forwarded = src.stats.packets_in - src.stats.no_peer
    assert dst.stats.packets_out == forwarded > 0
    return forwarded


async def released(coordinator: SessionCoordinator, timeout: float = 10) -> tuple[int, int, int]:
    """(calls, RTP ports, relay endpoints) once all are zero, or as they are at timeout."""
    assert coordinator.relay is not None
    with trio.move_on_after(timeout):
        while coordinator.stats().calls or coordinator.stats().rtp_ports:
            await trio.sleep(0.05)
    s = coordinator.stats()
    return s.calls, s.rtp_ports, coordinator.relay.endpoint_count


# -- (a) two SIPp callers bridged by an application --


class Bridger(CallHandler):
    """Answers every call with our SDP (on a relay endpoint) and bridges the first two once
    both are up. Its rule for a participant left alone: hang that call up."""

    def __init__(self) -> None:
        self.coordinator: SessionCoordinator | None = None
        self.established: list[CallSession] = []

    async def on_call_established(self, call: CallSession) -> None:
        self.established.append(call)
        if len(self.established) == 2:
            assert self.coordinator is not None
            self.coordinator.bridge_sessions(self.established[0].id, self.established[1].id)

    def rule(self, nursery: trio.Nursery) -> Callable[[BridgeEvent], None]:
        def on_event(event: BridgeEvent) -> None:
            if isinstance(event, ParticipantRemoved) and event.reason is ALONE:
                call = next(c for c in self.established if c.id == event.session_id)
                nursery.start_soon(call.hangup)

        return on_event


@pytest.mark.parametrize("hanging_up", ["first", "second"])
async def test_two_callers_bridged_hear_each_other(captures, tmp_path, hanging_up):
    # Caller 1 plays the G.711 capture; caller 2 plays RFC 4733 digit 1 and echoes all it
    # gets (so what comes back with caller 1's SSRC reached caller 2). One of them hangs up
    # after the audio is over, the other waits for our BYE.
    first_hangs = hanging_up == "first"
    scen1 = write(tmp_path, "uac1.xml", uac_scenario(
        pcap="g711a.pcap", hang_up=first_hangs, after=8000 if first_hangs else 30000))
    scen2 = write(tmp_path, "uac2.xml", uac_scenario(
        pcap="dtmf_2833_1.pcap", before=500, hang_up=not first_hangs,
        after=9000 if not first_hangs else 30000))
    app = Bridger()
    builder = (
        SessionManagerBuilder(app)
        .listen("127.0.0.1", 0, transports=["UDP"])
        .timers(FAST_TIMERS)
        .media_relay(True)
    )
    results: dict[str, SippResult] = {}

    async def caller(name: str, scen: str, extra: list[str]) -> None:
        results[name] = await uac(coordinator.port(), free_port(), scen, extra=extra)

    async with builder.build() as coordinator, trio.open_nursery() as nursery:
        app.coordinator = coordinator
        watch = BridgeWatch(coordinator, on_event=app.rule(nursery))
        await nursery.start(watch.run)
        nursery.start_soon(caller, "first", scen1, media_args())
        with trio.fail_after(10):
            while not app.established:
                await trio.sleep(0.05)
        await caller("second", scen2, media_args(echo=True))
        while "first" not in results:
            await trio.sleep(0.05)
        assert await released(coordinator) == (0, 0, 0)
        nursery.cancel_scope.cancel()

    assert_clean(results["first"], 1)
    assert_clean(results["second"], 1)  # each got its BYE answered, or answered ours
    one, two = watch.legs
    assert [one.call.id, two.call.id] == [c.id for c in app.established]
    hung_up, alone = (one, two) if first_hangs else (two, one)
    assert_bridge_lifecycle(watch.events, one.call.id, two.call.id, hung_up.call.id)
    assert hung_up.call.end_reason.kind is EndKind.REMOTE_HANGUP
    assert alone.call.end_reason.kind is EndKind.LOCAL_HANGUP  # the app's rule hung it up
    # A -> B: every packet of caller 1's capture reached the relay; all after the bridge
    # went on to caller 2, which echoed every one of them back.
    assert one.stats.packets_in == len(AUDIO)
    to_two = assert_relayed(one, two)
    assert two.stats.packets_in == to_two + len(DTMF)
    assert two.heard.keys() == {audio_key(), dtmf_key()}  # the echoes carry caller 1's SSRC
    # B -> A: caller 2's digit, and the echoes, went on to caller 1.
    assert two.heard[dtmf_key()] == len(DTMF)
    assert assert_relayed(two, one) == to_two + len(DTMF)


# -- (b), (c) SIPp -> examples/b2bua.py --media relay -> SIPp echoing --


@asynccontextmanager
async def relaying_b2bua(target_port: int) -> AsyncIterator[tuple[B2bua, BridgeWatch]]:
    b2bua = B2bua(SipUri(host="127.0.0.1", port=target_port), media="relay")
    builder = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0, transports=["UDP"])
        .timers(CALLER_TIMERS)  # it calls SIPp's UAS (see there)
        .media_relay(True)
    )
    async with trio.open_nursery() as nursery:
        coordinator = await nursery.start(b2bua.run, builder)
        watch = BridgeWatch(coordinator)
        await nursery.start(watch.run)
        yield b2bua, watch
        assert await released(coordinator) == (0, 0, 0)
        nursery.cancel_scope.cancel()


async def test_b2bua_relays_the_g711_capture_and_its_echo(captures, tmp_path,
                                                         unused_udp_port_pair):
    # SIPp's own uac_pcap: G.711 A-law for 7 s, then RFC 4733 digit 1, then BYE.
    uas_port, uac_port = unused_udp_port_pair
    async with relaying_b2bua(uas_port) as (b2bua, watch):
        async with uas(uas_port, write(tmp_path, "uas.xml", UAS_PCMA)) as callee:
            caller = await uac(b2bua.coordinator.port(), uac_port, "uac_pcap")
    assert_clean(caller, 1)
    assert_clean(callee[0], 1)  # our BYE reached the callee
    assert (b2bua.stats.answered, b2bua.stats.bridged, b2bua.stats.active) == (1, 1, 0)
    a, b = watch.legs
    assert_bridge_lifecycle(watch.events, a.call.id, b.call.id, a.call.id)
    assert a.stats.packets_in == len(AUDIO) + len(DTMF)
    to_callee = assert_relayed(a, b)
    # The callee echoed every packet (audio and digit), and the echoes reached the caller.
    assert b.stats.packets_in == to_callee
    assert b.heard.keys() == {audio_key(), dtmf_key()} and b.heard[dtmf_key()] == len(DTMF)
    assert assert_relayed(b, a) == to_callee


async def test_b2bua_relays_rfc4733_digits(captures, tmp_path, unused_udp_port_pair):
    uas_port, uac_port = unused_udp_port_pair
    scen = write(tmp_path, "uac.xml", uac_scenario(pcap="dtmf_2833_1.pcap", before=300))
    async with relaying_b2bua(uas_port) as (b2bua, watch):
        async with uas(uas_port, write(tmp_path, "uas.xml", UAS_PCMA)) as callee:
            caller = await uac(b2bua.coordinator.port(), uac_port, scen)
    assert_clean(caller, 1)
    assert_clean(callee[0], 1)
    a, b = watch.legs
    # All ten packets of the digit reached the callee (it echoed them) and came back.
    assert a.heard == {dtmf_key(): len(DTMF)}
    assert assert_relayed(a, b) == len(DTMF)
    assert b.heard == {dtmf_key(): len(DTMF)}
    assert assert_relayed(b, a) == len(DTMF)
    # The coordinator's RFC 4733 detector saw the digit on both legs (the echo is the
    # callee "pressing" it back).
    assert sorted((d.session_id, d.digit, d.method) for d in watch.digits) == sorted(
        (leg.call.id, "1", "rfc4733") for leg in (a, b))


async def test_b2bua_callee_hanging_up_ends_the_bridge_and_the_caller(sipp, unused_udp_port_pair):
    # PCMU both sides (uas_bye.xml, uac_wait_bye.xml); the callee hangs up 500 ms after
    # its ACK, and the B2BUA's rule (either leg ends the other) BYEs the caller.
    uas_port, uac_port = unused_udp_port_pair
    async with relaying_b2bua(uas_port) as (b2bua, watch):
        async with uas(uas_port, scenario("uas_bye.xml"), extra=["-d", "500"]) as callee:
            caller = await uac(b2bua.coordinator.port(), uac_port, scenario("uac_wait_bye.xml"))
    assert_clean(caller, 1)  # the caller got our BYE
    assert_clean(callee[0], 1)  # the callee's BYE was answered
    a, b = watch.legs
    assert_bridge_lifecycle(watch.events, a.call.id, b.call.id, b.call.id)
    assert b.call.end_reason.kind is EndKind.REMOTE_HANGUP
    assert a.call.end_reason.kind is EndKind.LOCAL_HANGUP
    assert (b2bua.stats.answered, b2bua.stats.bridged, b2bua.stats.active) == (1, 1, 0)


async def test_b2bua_refuses_a_caller_without_the_callees_codec(captures, tmp_path,
                                                               unused_udp_port_pair):
    # The caller offers PCMU only, the callee answers PCMA: without transcoding the relay
    # cannot join them, so the caller gets 488 and the callee a BYE.
    uas_port, uac_port = unused_udp_port_pair
    log = tmp_path / "uac.log"
    async with relaying_b2bua(uas_port) as (b2bua, watch):
        async with uas(uas_port, write(tmp_path, "uas.xml", UAS_PCMA), calls=3) as callee:
            caller = await uac(b2bua.coordinator.port(), uac_port, scenario("uac_rejected.xml"),
                               calls=3, timeout=15,
                               extra=[*media_args(), "-trace_logs", "-log_file", str(log)])
    assert_clean(caller, 3)  # uac_rejected.xml: a refused call is a successful one
    assert Counter(log.read_text().split()) == {"final=488": 3}
    assert_clean(callee[0], 3)  # answered, then hung up by us
    assert (b2bua.stats.refused, b2bua.stats.bridged, b2bua.stats.active) == (3, 0, 0)
    assert watch.events == []


@pytest.mark.xfail(strict=True, reason=(
    "the caller offers PCMU then PCMA, the callee picks PCMA, and the coordinator answers "
    "the caller with its own preference (PCMU first): CallDecision.accept() cannot narrow "
    "our answer to the callee's codec, and an SDP given to accept() gets no relay endpoint "
    "(SessionCoordinator._answer opens one only for its own SDP), so the relay carries PCMA "
    "to a caller told to expect PCMU"))
async def test_b2bua_answers_the_caller_with_the_callees_codec(captures, tmp_path,
                                                               unused_udp_port_pair):
    uas_port, uac_port = unused_udp_port_pair
    scen = write(tmp_path, "uac.xml", uac_scenario(formats="0 8 101", after=500))
    async with relaying_b2bua(uas_port) as (b2bua, watch):
        async with uas(uas_port, write(tmp_path, "uas.xml", UAS_PCMA)) as callee:
            caller = await uac(b2bua.coordinator.port(), uac_port, scen)
    assert_clean(caller, 1)
    assert_clean(callee[0], 1)
    a, b = watch.legs
    assert a.call.media is not None and b.call.media is not None
    assert a.call.media.codec.name == b.call.media.codec.name == "PCMA"


# -- the harness: files copied into SIPp's directory --


def test_sipp_pcaps_are_where_uac_pcap_looks():
    files = sipp_pcaps()
    if not files:
        pytest.skip(f"SIPp's captures are not in {SIPP_PCAP_DIR}")
    assert {"pcap/g711a.pcap", "pcap/dtmf_2833_1.pcap"} <= files.keys()
    assert all(path.parent == SIPP_PCAP_DIR for path in files.values())


@pytest.mark.parametrize("name", ["/tmp/evil.pcap", "../evil.pcap", "pcap/../../evil", ""])
def test_sipp_files_stay_inside_its_directory(tmp_path, name):
    source = tmp_path / "source"
    source.write_bytes(b"x")
    with pytest.raises(ValueError, match="relative path"):
        trio.run(lambda: run_sipp("uac", target="127.0.0.1:9", local_port=9, calls=1,
                                  files={name: source}))
