"""Highest call rate `examples/b2bua.py` holds with zero failed calls, beside SIPp calling SIPp.

Two ladders of rising rates, each step bounded to RATE*SECS calls and a time limit:
  b2bua:  SIPp `uac` -> examples/b2bua.py (a subprocess) -> SIPp `uas`
  direct: SIPp `uac` -> SIPp `uas`
Each call is INVITE/180/200/ACK/BYE/200 with no hold time. A rate is held when both SIPp
sides count every call successful and none failed (a B2BUA that swallowed a BYE would look
fine to the caller alone), and at least 95% of the rate was achieved. The ratio b2bua/direct
is the headline (both measured in this run, on this machine, over 127.0.0.1 only).

``--media relay`` runs the B2BUA with ``--media relay`` (each call takes two relay endpoints,
answered and offered with our SDP, bridged on the caller's ACK; ``--hold-ms`` lets the ACK land
before the caller's BYE so the calls really get bridged): the ladder is the signalling rate
held in that mode, no RTP. Then one bounded media step carries real RTP: ``--media-calls``
calls of SIPp's ``uac_pcap`` (7 s of G.711 A-law, 236 packets, then RFC 4733 digit 1, 10
packets) at ``--media-rate`` calls/s, to a SIPp callee answering PCMA that echoes every packet
(``-rtp_echo``), so the relay forwards each packet twice. The B2BUA, both SIPps and the RTP
share this machine's cores: keep that step small.

    python bench/bench_b2bua.py [--rates 50,100,...] [--direct-rates 500,1000,...] [--secs 4]
                                [--media relay [--hold-ms 200] [--media-calls 20]
                                 [--media-rate 2]]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs
import trio

from trio_voip.testing.sipp import UAS_PCMA, SippResult, run_sipp, sipp_binary, sipp_pcaps

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def media_port() -> int:
    """An even port P with P..P+3 free on 127.0.0.1 (SIPp's -rtp_echo binds P and P+2)."""
    while True:
        base = free_port() & ~1
        socks: list[socket.socket] = []
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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


async def start_b2bua(port: int, target_port: int, media: str) -> subprocess.Popen[str]:
    # Relay: 2500 calls' worth of ports, so the limit found is the B2BUA's, not the range's.
    ports = ["--rtp-ports", "20000-29999"] if media == "relay" else []
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "b2bua.py"), "--bind", f"127.0.0.1:{port}",
         "--target", f"sip:127.0.0.1:{target_port}", "--quiet", "--media", media, *ports],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    with trio.move_on_after(15):
        line = await trio.to_thread.run_sync(proc.stdout.readline)
        if line.startswith("listening"):
            return proc
    stop(proc)
    raise RuntimeError("examples/b2bua.py did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGTERM (the B2BUA prints its counters), KILL if it lingers; returns its output."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


@attrs.frozen
class Mode:
    """What one step runs: the B2BUA's ``--media`` (None: SIPp calls SIPp directly), the
    SIPp scenarios, their extra arguments and files, and how long each call lasts."""

    media: str | None = None
    uac: str = "uac"
    uas: str = "uas"
    uac_extra: tuple[str, ...] = ()
    uas_extra: tuple[str, ...] = ()
    files: dict[str, Path] = attrs.field(factory=dict)
    call_secs: float = 0.0


async def step(rate: float, secs: float, mode: Mode,
               calls: int | None = None) -> tuple[bool, str]:
    """``calls`` default: RATE*SECS (at least 200)."""
    calls = calls if calls is not None else max(200, int(rate * secs))
    limit = int(calls / rate * 4 + mode.call_secs + 20)
    uas_port = free_port()
    with_b2bua = mode.media is not None
    uas: list[SippResult] = []
    b2bua = None
    cpu = float("nan")
    summary = ""

    async def run_uas(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        uas.append(await run_sipp(mode.uas, target=None, local_port=uas_port, calls=calls,
                                  timeout=limit + 10, extra=mode.uas_extra,
                                  task_status=task_status))

    try:
        # The callee SIPp exits once `calls` calls are through (or at its time limit), so
        # leaving the nursery waits for the B2BUA's last BYEs to reach it.
        async with trio.open_nursery() as nursery:
            await nursery.start(run_uas)
            await trio.sleep(0.5)
            try:
                target = uas_port
                if mode.media is not None:
                    b2bua_port = free_port()
                    b2bua = await start_b2bua(b2bua_port, uas_port, mode.media)
                    target = b2bua_port
                    cpu0 = cpu_seconds(b2bua.pid)
                t0 = time.monotonic()
                uac = await run_sipp(mode.uac, target=f"127.0.0.1:{target}",
                                     local_port=free_port(), calls=calls, rate=rate,
                                     timeout=limit, extra=mode.uac_extra, files=mode.files)
                if b2bua is not None:
                    cpu = (cpu_seconds(b2bua.pid) - cpu0) / (time.monotonic() - t0) * 100
            except BaseException:
                nursery.cancel_scope.cancel()
                raise
    finally:
        if b2bua is not None:
            out = stop(b2bua)
            summary = next((s for s in out.splitlines() if s.startswith("b2bua:")), "")
    callee = uas[0]
    # SIPp's rate is successful calls over its whole run, which long calls stretch: take
    # their length off (the media step) before comparing with the rate asked for.
    busy = uac.elapsed - mode.call_secs
    achieved = uac.successful / busy if busy > 0 else 0.0
    ok = (uac.returncode == 0 and uac.failed == 0 and uac.successful == calls
          and callee.failed == 0 and callee.successful == calls
          and achieved >= 0.95 * rate)
    line = (f"rate={rate:5g} calls={calls:6d} uac_ok={uac.successful:6d} uac_fail={uac.failed:4d} "
            f"uas_ok={callee.successful:6d} uas_fail={callee.failed:4d} "
            f"retrans={uac.retransmissions:5d} achieved_cps={achieved:7.1f}")
    if with_b2bua:
        line += f" b2bua_cpu%={cpu:5.1f}"
        # Relay mode: the counters show how many pairs were really bridged.
        if summary and (not ok or mode.media == "relay"):
            line += f"\n    {summary}"
    return ok, line


async def ladder(name: str, rates: list[int], secs: float, mode: Mode) -> int:
    best = 0
    for rate in rates:
        ok, line = await step(rate, secs, mode)
        print(f"{name:7s} {line} {'OK' if ok else 'FAILED'}", flush=True)
        if not ok:
            break
        best = rate
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,300,350,400,500,600,800")
    parser.add_argument("--direct-rates", default="1000,2000,4000,8000,12000,16000,20000,24000,32000")
    parser.add_argument("--secs", type=float, default=4.0)
    parser.add_argument("--media", choices=["passthrough", "relay"], default="passthrough")
    parser.add_argument("--hold-ms", type=int, default=None,
                        help="caller's hold time (SIPp -d); default 0, 200 with --media relay")
    parser.add_argument("--media-calls", type=int, default=20,
                        help="calls of the RTP step (relay mode; 0 skips it)")
    parser.add_argument("--media-rate", type=float, default=2.0)
    args = parser.parse_args()
    if sipp_binary() is None:
        print("sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    direct_rates = [int(r) for r in args.direct_rates.split(",")]
    hold = args.hold_ms if args.hold_ms is not None else (200 if args.media == "relay" else 0)
    hold_args = ("-d", str(hold))
    name = "b2bua" if args.media == "passthrough" else "relay"
    best_b2bua = trio.run(ladder, name, rates, args.secs,
                          Mode(args.media, uac_extra=hold_args, call_secs=hold / 1000))
    if args.media == "relay" and args.media_calls > 0:
        with tempfile.TemporaryDirectory(prefix="bench-b2bua-") as tmp:
            uas_scen = Path(tmp) / "uas_pcma.xml"
            uas_scen.write_text(UAS_PCMA)
            mode = Mode(
                "relay", uac="uac_pcap", uas=str(uas_scen),
                uac_extra=("-mi", "127.0.0.1", "-mp", str(media_port())),
                uas_extra=("-mi", "127.0.0.1", "-mp", str(media_port()), "-rtp_echo"),
                files=sipp_pcaps(),
                call_secs=9.0,  # uac_pcap: 8 s of audio, 1 s of digit, then BYE
            )
            ok, line = trio.run(step, args.media_rate, args.secs, mode, args.media_calls)
        print(f"rtp     {line} {'OK' if ok else 'FAILED'}\n"
              "        (per call the caller plays 246 RTP packets, which the callee echoes;"
              " both ways pass the relay)", flush=True)
    best_direct = trio.run(ladder, "direct", direct_rates, args.secs,
                           Mode(uac_extra=hold_args, call_secs=hold / 1000))
    ratio = best_b2bua / best_direct if best_direct else float("nan")
    notes = []
    if best_b2bua == rates[-1]:
        notes.append("b2bua reached the top of its ladder: raise --rates")
    if best_direct == direct_rates[-1]:
        notes.append("direct reached the top of its ladder: raise --direct-rates")
    print(f"highest rate held: through trio-voip b2bua --media {args.media} {best_b2bua} cps, "
          f"SIPp direct {best_direct} cps, ratio {ratio:.3f}"
          + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
