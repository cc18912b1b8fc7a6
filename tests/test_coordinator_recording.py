"""Recording relayed calls and bridges to WAV: SIP on the in-memory network, RTP on real
127.0.0.1 sockets ("phones" bound on the callees' advertised RTP ports), real time."""

from __future__ import annotations

import math
import threading
from array import array
from pathlib import Path

import pytest
import trio

from trio_voip import (
    CallError,
    CallSession,
    CallState,
    CallStateError,
    RecordingError,
    SessionCoordinator,
    UnknownBridge,
)
from trio_voip.rtp.g711 import G711Law
from trio_voip.rtp.packet import RtpPacket
from trio_voip.rtp.wav import read_wav
from trio_voip.session.recording import Recording

from test_coordinator import Scripted, pair
from test_coordinator_bridges import calls, phone

RELAY = lambda b: b.media_relay().rtp_ports(31400, 31499)  # noqa: E731
# The callee's ports are where the test's phones bind: out of other tests' way.
PHONES = lambda b: b.rtp_ports(31500, 31599)  # noqa: E731
RATE = 8000


def goertzel(samples: array[int], frequency: float) -> float:
    """Mean power of ``frequency`` in ``samples`` (normalised by length)."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / RATE)
    s1 = s2 = 0.0
    for sample in samples:
        s1, s2 = sample + coefficient * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / len(samples) ** 2


def tone_packets(frequency: float, seconds: float, *, ssrc: int) -> list[bytes]:
    amplitude = 8000
    count = round(seconds * RATE)
    step = 2 * math.pi * frequency / RATE
    samples = array("h", (round(amplitude * math.sin(step * i)) for i in range(count)))
    payload = G711Law.PCMU.encode(samples)
    return [
        RtpPacket(0, i, 160 * i, ssrc, payload[160 * i : 160 * (i + 1)]).to_bytes()
        for i in range(count // 160)
    ]


async def play(sock: trio.socket.SocketType, port: int, packets: list[bytes]) -> None:
    """Send ``packets`` paced at 20 ms, as a phone would."""
    start = trio.current_time()
    for index, packet in enumerate(packets):
        await trio.sleep_until(start + 0.02 * index)
        await sock.sendto(packet, ("127.0.0.1", port))


def loudest_span(samples: array[int], threshold: int = 1000) -> tuple[int, int]:
    loud = [i for i, v in enumerate(samples) if abs(v) > threshold]
    return loud[0], loud[-1]


async def one_call(
    a: SessionCoordinator, handler: Scripted
) -> tuple[CallSession, CallSession, trio.socket.SocketType]:
    ((call, far),) = await calls(a, handler, 1)
    assert call.rtp_port is not None and far.rtp_port is not None
    return call, far, await phone(far.rtp_port)


async def test_recording_a_call_holds_the_tone_in_real_time(tmp_path: Path) -> None:
    handler = Scripted()
    path = tmp_path / "call.wav"
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        call, _far, sock = await one_call(a, handler)
        with sock:
            recording = await call.record(path)
            assert a.recordings == [recording] and not recording.done
            started = trio.current_time()
            await trio.sleep(0.1)
            packets = tone_packets(1000, 0.6, ssrc=7)
            del packets[10]  # one packet lost: 20 ms of silence, the rest stays in time
            await play(sock, call.rtp_port, packets)
            await trio.sleep(0.1)
            await recording.stop()
            elapsed = trio.current_time() - started
            assert recording.done and a.recordings == []
            assert call.state is CallState.ACTIVE  # stopping a recording leaves the call alone
            await call.hangup()
    samples = read_wav(str(path))
    assert abs(len(samples) / RATE - elapsed) < 0.06
    assert recording.duration == len(samples) / RATE
    first, last = loudest_span(samples)
    assert 0.07 < first / RATE < 0.2
    assert abs((last - first) / RATE - 0.6) < 0.03  # tone of 0.6 s, the lost packet included
    tone = samples[first : last + 1]
    assert goertzel(tone, 1000) > 100 * goertzel(tone, 1500)
    gap = samples[first + 10 * 160 + 20 : first + 11 * 160 - 20]
    assert max(map(abs, gap)) == 0  # the lost packet's place is silence
    assert recording.stats.packets == 29 and recording.stats.late == 0
    assert recording.dropped_seconds == 0


async def test_bridge_recording_and_call_recording_hold_both_parties(tmp_path: Path) -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        (x, x_far), (y, y_far) = await calls(a, handler, 2)
        assert x_far.rtp_port is not None and y_far.rtp_port is not None
        phone_x, phone_y = await phone(x_far.rtp_port), await phone(y_far.rtp_port)
        with phone_x, phone_y:
            bridge = a.bridge_sessions(x.id, y.id)
            whole = await a.record_bridge(bridge, tmp_path / "bridge.wav")
            leg = await x.record(str(tmp_path / "x.wav"))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(play, phone_x, x.rtp_port, tone_packets(700, 0.4, ssrc=1))
                nursery.start_soon(play, phone_y, y.rtp_port, tone_packets(1300, 0.4, ssrc=2))
            await trio.sleep(0.05)
            await leg.stop()
            await whole.stop()
            for endpoint in (a._endpoints[x.id], a._endpoints[y.id]):
                assert len(endpoint.taps) == 1  # only the DTMF tap is left
            for call in (x, y):
                await call.hangup()
        assert a.relay is not None and a.relay.endpoint_count == 0
    for name in ("bridge.wav", "x.wav"):
        samples = read_wav(str(tmp_path / name))
        first, last = loudest_span(samples)
        mixed = samples[first : last + 1]
        assert abs((last - first) / RATE - 0.4) < 0.05, name
        low, high, neither = goertzel(mixed, 700), goertzel(mixed, 1300), goertzel(mixed, 1000)
        assert low > 30 * neither and high > 30 * neither, name
        assert 0.2 < low / high < 5, name


async def test_three_party_recordings_hold_everyone(tmp_path: Path) -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        legs = await calls(a, handler, 3)
        room = a.create_bridge()
        whole = await a.record_bridge(room, tmp_path / "room.wav")
        x = legs[0][0]
        leg = await x.record(tmp_path / "x.wav")  # before x joins: it follows x into the room
        phones = []
        for call, far in legs:
            a.add_session_to_bridge(room, call.id)
            assert far.rtp_port is not None
            phones.append(await phone(far.rtp_port))
        async with trio.open_nursery() as nursery:
            for (call, _far), sock, frequency in zip(legs, phones, (600, 1000, 1400)):
                packets = tone_packets(frequency, 0.3, ssrc=frequency)
                nursery.start_soon(play, sock, call.rtp_port, packets)
        await trio.sleep(0.05)
        await leg.stop()
        await whole.stop()
        for sock in phones:
            sock.close()
        for call, _far in legs:
            await call.hangup()
    for name in ("room.wav", "x.wav"):
        samples = read_wav(str(tmp_path / name))
        first, last = loudest_span(samples)
        mixed = samples[first : last + 1]
        powers = [goertzel(mixed, f) for f in (600, 1000, 1400)]
        assert min(powers) > 30 * goertzel(mixed, 800), name


async def test_recording_stops_and_is_valid_when_the_call_ends(tmp_path: Path) -> None:
    handler = Scripted()
    path = tmp_path / "ended.wav"
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        call, far, sock = await one_call(a, handler)
        with sock:
            recording = await call.record(path)
            started = trio.current_time()
            await play(sock, call.rtp_port, tone_packets(500, 0.3, ssrc=3))
            await far.hangup()  # the far end hangs up: the recording ends with the call
            await call.wait_ended()
            ended = trio.current_time()
            with trio.fail_after(2):
                await recording.wait()
            assert recording.done and a.recordings == []
        assert a.relay is not None and a.relay.endpoint_count == 0
    samples = read_wav(str(path))
    assert abs(len(samples) / RATE - (ended - started)) < 0.2
    first, last = loudest_span(samples)
    assert abs((last - first) / RATE - 0.3) < 0.03


async def test_shutdown_finalises_a_bridge_room_recording(tmp_path: Path) -> None:
    handler = Scripted()
    path = tmp_path / "room.wav"
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        room = a.create_bridge()
        recording = await a.record_bridge(room, path)
        (x, x_far), = await calls(a, handler, 1)
        a.add_session_to_bridge(room, x.id)
        assert x_far.rtp_port is not None
        with await phone(x_far.rtp_port) as sock:
            await play(sock, x.rtp_port, tone_packets(900, 0.2, ssrc=9))
        await trio.sleep(0.3)
    # leaving `async with` hung up the call and stopped the recording of the (still live) room
    assert recording.done
    samples = read_wav(str(path))
    first, last = loudest_span(samples)
    assert abs((last - first) / RATE - 0.2) < 0.03


async def test_recording_errors(tmp_path: Path) -> None:
    handler = Scripted()
    async with pair(callee=handler, caller_setup=RELAY, callee_setup=PHONES) as (a, b):
        ((call, _far),) = await calls(a, handler, 1)
        with pytest.raises(RecordingError):
            await call.record(tmp_path / "no-such-dir" / "x.wav")
        with pytest.raises(UnknownBridge):
            await a.record_bridge("bridge-404", tmp_path / "x.wav")  # type: ignore[arg-type]
        await call.hangup()
        with pytest.raises(CallStateError):
            await call.record(tmp_path / "late.wav")
        assert not (tmp_path / "late.wav").exists()
        assert a.recordings == []
    async with pair(callee=handler) as (a, b):  # no relay: nothing to tap
        ((call, _far),) = await calls(a, handler, 1)
        with pytest.raises(CallError):
            await call.record(tmp_path / "x.wav")
        await call.hangup()


class SlowWriter:
    """Stands in for the WAV file: each write waits until the test lets it go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.frames = 0
        self.closed = False

    def writeframes(self, data: bytes) -> None:
        self.release.wait(5)
        self.frames += len(data) // 2

    def close(self) -> None:
        self.closed = True


async def test_a_writer_that_falls_behind_loses_chunks_not_memory() -> None:
    writer = SlowWriter()
    started = trio.current_time()
    recording = Recording(
        "slow.wav",
        lambda: [],
        writer,  # type: ignore[arg-type]
        tick=0.01,
        chunk_seconds=0.05,
        max_chunks=2,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recording.run)
        await trio.sleep(0.8)
        writer.release.set()
        await recording.stop()
        stopped = trio.current_time()
    assert writer.closed and recording.done
    # One chunk in the writer's hands and two queued; the last one after stop() waits for the
    # writer. Everything else was dropped and counted: nothing is lost without a trace.
    written = writer.frames / RATE
    assert recording.duration == written
    assert written < 0.5 and recording.dropped_seconds > 0.3
    assert abs(written + recording.dropped_seconds - (stopped - started)) < 0.05


class FailingWriter(SlowWriter):
    def writeframes(self, data: bytes) -> None:
        raise OSError(28, "No space left on device")


async def test_a_failing_disk_ends_the_recording_with_an_error() -> None:
    writer = FailingWriter()
    recording = Recording(
        "full.wav",
        lambda: [],
        writer,  # type: ignore[arg-type]
        tick=0.01,
        chunk_seconds=0.05,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recording.run)
        with trio.fail_after(2), pytest.raises(RecordingError, match="No space left"):
            await recording.wait()
    assert recording.done and writer.closed and recording.duration == 0
    with pytest.raises(RecordingError):
        await recording.stop()
