"""How many G.711 calls one RtpRelay process carries on 127.0.0.1 before it loses packets.

Each step starts the relay in a subprocess (so the CPU measured is the relay's own) with N
calls: two endpoints per call, bridged. A load generator in this process plays both phones of
every call: 2N UDP sockets, each sending a 172-byte RTP packet (12-byte header + 160 bytes of
G.711) every 20 ms to its endpoint, paced and spread over the 20 ms cycle, and receiving what
the relay forwards from the other phone. One thread, non-blocking sockets, epoll.

Per step it prints packets relayed per second, loss, late packets (delivered after
``--late-ms``, which a jitter buffer would discard: socket buffers hide an overloaded relay as
latency before it shows as loss), added latency (send time stamped in the payload, so it
includes the generator's own scheduling delay), relay CPU (of one core) and per packet
relayed, how long the relay was ready to run but had no CPU ("no CPU": on a busy machine this,
not the relay, makes packets late), the generator's CPU (near 100% means the figure is the
generator's or the machine's, not the relay's) and relay RSS per call. The figure is the
largest N with lost + late < 0.1%.

    python bench/bench_relay.py [--calls 50,100,200,400,800,1600] [--seconds 3] [--late-ms 50]
                                [--receiver-stats] [--rtcp-mux] [--flood K]

``--flood K`` measures the relay alone, in this process, with nothing else competing for its
core: K packets are queued on every phone socket while the relay cannot run, then the relay
forwards them all; the relay's CPU time divided by the packets is what one packet costs at
saturation, and its inverse the packets per second one core relays (K=1 is how evenly spaced
calls look to an overloaded relay: every socket holding one packet). CPU time, not wall time,
so the figure holds on a busy machine where the paced run above cannot keep its schedule.

Linux only (/proc for the relay's CPU, scheduling and RSS). Sends to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time

HOST = "127.0.0.1"
PORT_RANGE = (20000, 31999)  # below Linux's ephemeral range, where the generator's ports live
PACKET_INTERVAL = 0.020
PAYLOAD = 160
_HEADER = struct.Struct("!BBHIIQ")  # RTP header + the send time (ns) at the payload's start


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc status")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runqueue_seconds(pid: int) -> float:
    """Time the process was runnable but waiting for a CPU (schedstat's second field, ns)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


# --------------------------------------------------------------------------------------------
# The relay process
# --------------------------------------------------------------------------------------------


def serve(calls: int, receiver_stats: bool, rtcp_mux: bool) -> None:
    import attrs
    import trio

    from trio_voip.rtp.ports import PortAllocator
    from trio_voip.rtp.relay import RtpRelay

    _raise_fd_limit()

    async def main() -> None:
        relay = RtpRelay(
            PortAllocator(*PORT_RANGE), latch_window=30.0, track_receiver_stats=receiver_stats
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            rss_before = _rss_kib()
            endpoints = []
            for _ in range(calls):
                # No SDP address: each endpoint latches to the generator socket that sends first.
                a = relay.open_endpoint(None, rtcp_mux=rtcp_mux)
                b = relay.open_endpoint(None, rtcp_mux=rtcp_mux)
                relay.connect(a, b)
                endpoints += [a, b]
            ready = {"rss_before": rss_before, "ports": [e.local_port for e in endpoints]}
            print(json.dumps(ready), flush=True)
            # Run until the parent closes our stdin.
            await trio.to_thread.run_sync(sys.stdin.read)
            totals: dict[str, int] = {}
            for e in endpoints:
                for name, value in attrs.asdict(e.stats).items():
                    totals[name] = totals.get(name, 0) + value
            print(json.dumps(totals), flush=True)
            nursery.cancel_scope.cancel()

    trio.run(main)


# --------------------------------------------------------------------------------------------
# The load generator
# --------------------------------------------------------------------------------------------


class Phones:
    """2N sockets; phone 2i talks to endpoint 2i, phone 2i+1 to endpoint 2i+1 (same call)."""

    def __init__(self, ports: list[int]) -> None:
        self.targets = [(HOST, p) for p in ports]
        self.socks = []
        for _ in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.bind((HOST, 0))
            self.socks.append(s)
        self.by_fd = {s.fileno(): i for i, s in enumerate(self.socks)}
        self.epoll = select.epoll()
        for s in self.socks:
            self.epoll.register(s.fileno(), select.EPOLLIN)
        self.packet = bytearray(12 + PAYLOAD)
        self.seq = [0] * len(ports)
        self.sent = 0
        self.send_blocked = 0
        self.received = 0
        self.latencies: list[int] = []
        self.buf = bytearray(2048)

    def send(self, i: int) -> None:
        seq = self.seq[i]
        self.seq[i] = seq + 1
        _HEADER.pack_into(
            self.packet, 0, 0x80, 0, seq & 0xFFFF, seq * 160, i, time.monotonic_ns()
        )
        try:
            self.socks[i].sendto(self.packet, self.targets[i])
        except BlockingIOError:
            self.send_blocked += 1
            return
        self.sent += 1

    def drain(self, timeout: float, record: bool) -> None:
        buf = self.buf
        for fd, _ in self.epoll.poll(timeout):
            recv = self.socks[self.by_fd[fd]].recv_into
            while True:
                try:
                    n = recv(buf)
                except BlockingIOError:
                    break
                now = time.monotonic_ns()
                if n == 12 + PAYLOAD:
                    self.received += 1
                    if record:
                        self.latencies.append(now - _HEADER.unpack_from(buf)[5])

    def close(self) -> None:
        self.epoll.close()
        for s in self.socks:
            s.close()


def run_step(
    calls: int, seconds: float, late_ms: float, receiver_stats: bool, rtcp_mux: bool
) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--serve", str(calls)]
    cmd += ["--receiver-stats"] * receiver_stats + ["--rtcp-mux"] * rtcp_mux
    relay = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    phones = None
    try:
        assert relay.stdin is not None and relay.stdout is not None
        ready = json.loads(relay.stdout.readline())
        phones = Phones(ready["ports"])
        count = len(phones.socks)
        # Prime: one packet from every phone so every endpoint latches, then forget them.
        for i in range(count):
            phones.send(i)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            phones.drain(0.01, record=False)
        phones.sent = phones.received = phones.send_blocked = 0

        cpu0 = _cpu_seconds(relay.pid)
        wait0 = _runqueue_seconds(relay.pid)
        gen_cpu0 = time.process_time()
        start = time.monotonic()
        end = start + seconds
        # Phone i sends at start + k * 20 ms + i * (20 ms / count): an even spread.
        spacing = PACKET_INTERVAL / count
        k = 0
        nxt = 0
        due = start
        while True:
            now = time.monotonic()
            while due <= now and due < end:
                phones.send(nxt)
                nxt += 1
                if nxt == count:
                    nxt = 0
                    k += 1
                due = start + k * PACKET_INTERVAL + nxt * spacing
            if due >= end:
                break
            phones.drain(max(0.0, min(due - time.monotonic(), 0.002)), record=True)
        elapsed = time.monotonic() - start
        cpu = _cpu_seconds(relay.pid) - cpu0
        waited = _runqueue_seconds(relay.pid) - wait0
        gen_cpu = time.process_time() - gen_cpu0
        rss = _rss_kib(relay.pid)
        # Grace period for packets still in flight.
        grace = time.monotonic() + 0.3
        while time.monotonic() < grace:
            phones.drain(0.01, record=True)
        relay.stdin.close()
        totals = json.loads(relay.stdout.readline())
        relay.wait(timeout=10)
        lat = sorted(phones.latencies)
        loss = 1 - phones.received / phones.sent if phones.sent else 1.0
        late_ns = late_ms * 1e6
        late = len(lat) - bisect.bisect_right(lat, late_ns)
        return {
            "calls": calls,
            "pps": phones.received / elapsed,
            "loss": loss * 100,
            "late": late / phones.sent * 100 if phones.sent else 0.0,
            "p50": lat[len(lat) // 2] / 1e3 if lat else float("nan"),
            "p99": lat[int(len(lat) * 0.99)] / 1e3 if lat else float("nan"),
            "cpu": cpu / elapsed * 100,
            "waited": waited / elapsed * 100,
            "us_per_packet": cpu / phones.received * 1e6 if phones.received else float("nan"),
            "gen_cpu": gen_cpu / elapsed * 100,
            "rss_per_call": (rss - ready["rss_before"]) / calls,
            "send_blocked": phones.send_blocked,
            # no_peer also counts the priming packets that arrived before the peer had latched.
            "relay_dropped": totals["send_dropped"] + totals["foreign_dropped"]
            + totals["malformed"] + totals["recv_errors"] + totals["send_errors"],
        }
    finally:
        if phones is not None:
            phones.close()
        if relay.poll() is None:
            relay.kill()
            relay.wait()


def flood(
    calls: int, per_socket: int, rounds: int, receiver_stats: bool, rtcp_mux: bool
) -> dict[str, float]:
    import trio

    from trio_voip.rtp.ports import PortAllocator
    from trio_voip.rtp.relay import RtpRelay

    packet = _HEADER.pack(0x80, 0, 0, 0, 0, 0) + bytes(PAYLOAD - 8)
    result: dict[str, float] = {}

    def drain(phones: list[socket.socket]) -> None:
        for s in phones:
            try:
                while True:
                    s.recv(2048)
            except BlockingIOError:
                pass

    async def relayed(endpoints: list, field: str, target: int) -> int:
        while (done := sum(getattr(e.stats, field) for e in endpoints)) < target:
            await trio.sleep(0.02)
        return done

    async def run() -> None:
        relay = RtpRelay(
            PortAllocator(*PORT_RANGE), latch_window=60.0, track_receiver_stats=receiver_stats
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            endpoints = []
            for _ in range(calls):
                a = relay.open_endpoint(None, rtcp_mux=rtcp_mux)
                b = relay.open_endpoint(None, rtcp_mux=rtcp_mux)
                relay.connect(a, b)
                endpoints += [a, b]
            phones = Phones([e.local_port for e in endpoints])
            try:
                count = len(phones.socks)
                for i in range(count):  # latch every endpoint
                    phones.socks[i].sendto(packet, phones.targets[i])
                await relayed(endpoints, "packets_in", count)
                drain(phones.socks)
                cpu = 0.0
                for n in range(rounds):
                    for _ in range(per_socket):
                        for i in range(count):
                            phones.socks[i].sendto(packet, phones.targets[i])
                    start = time.thread_time()
                    await relayed(endpoints, "packets_in", count * (1 + per_socket * (n + 1)))
                    cpu += time.thread_time() - start
                    drain(phones.socks)
                packets = count * per_socket * rounds
                result.update(calls=calls, packets=packets, us=cpu / packets * 1e6)
                result["pps"] = packets / cpu
            finally:
                phones.close()
            nursery.cancel_scope.cancel()

    trio.run(run)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="50,100,200,400,800,1600")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--late-ms", type=float, default=50.0, help="later than this is lost")
    parser.add_argument("--receiver-stats", action="store_true", help="RFC 3550 stats per packet")
    parser.add_argument("--rtcp-mux", action="store_true")
    parser.add_argument(
        "--flood", type=int, metavar="K", help="relay CPU per packet, K packets per socket"
    )
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.receiver_stats, args.rtcp_mux)
        return
    _raise_fd_limit()
    if args.flood is not None:
        print(f"{'calls':>6} {'packets':>9} {'us/pkt':>7} {'pkt/s of one core':>18}")
        for calls in (int(c) for c in args.calls.split(",")):
            r = flood(calls, args.flood, 20, args.receiver_stats, args.rtcp_mux)
            print(f"{calls:>6} {r['packets']:>9,} {r['us']:>7.2f} {r['pps']:>18,.0f}", flush=True)
        return
    print(
        f"{'calls':>6} {'pkt/s':>9} {'loss %':>8} {'late %':>8} {'p50 us':>8} {'p99 us':>9}"
        f" {'relay CPU':>9} {'us/pkt':>6} {'no CPU':>7} {'gen CPU':>8} {'KiB/call':>8}"
        f" {'relay drops':>11}"
    )
    best = None
    for calls in (int(c) for c in args.calls.split(",")):
        r = run_step(calls, args.seconds, args.late_ms, args.receiver_stats, args.rtcp_mux)
        print(
            f"{r['calls']:>6} {r['pps']:>9,.0f} {r['loss']:>8.3f} {r['late']:>8.3f}"
            f" {r['p50']:>8.0f} {r['p99']:>9.0f}"
            f" {r['cpu']:>8.1f}% {r['us_per_packet']:>6.1f} {r['waited']:>6.1f}%"
            f" {r['gen_cpu']:>7.1f}%"
            f" {r['rss_per_call']:>8.1f}"
            f" {r['relay_dropped']:>11}",
            flush=True,
        )
        bad = r["loss"] + r["late"]
        if bad < 0.1:
            best = calls
        elif bad > 5:
            break
    print(f"largest N with lost + late < 0.1%: {best}")


if __name__ == "__main__":
    main()
