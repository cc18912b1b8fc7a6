"""Highest call rate `examples/uas.py` holds with zero failed calls, beside SIPp's own UAS.

SIPp's built-in `uac` scenario (INVITE/100/180/200/ACK/BYE/200, no hold time) calls each UAS at
rising rates, each step bounded to RATE*SECS calls and a time limit. The figure is the highest
rate held (zero failed calls, and at least 95% of the rate achieved); the ratio ours/SIPp is the headline (both measured in this run, on
this machine, over 127.0.0.1 only).

    python bench/bench_sipp_uas.py [--rates 100,200,400,800] [--secs 4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import trio

from trio_voip.testing.sipp import run_sipp, sipp_binary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_b2bua import cpu_seconds, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


async def step(rate: int, secs: float, uas_port: int, uas_pid: int | None) -> tuple[bool, str]:
    calls = max(200, int(rate * secs))
    cpu0 = cpu_seconds(uas_pid) if uas_pid else 0.0
    t0 = time.monotonic()
    result = await run_sipp("uac", target=f"127.0.0.1:{uas_port}", local_port=free_port(),
                            calls=calls, rate=rate, timeout=int(secs * 4 + 20))
    wall = time.monotonic() - t0
    cpu = (cpu_seconds(uas_pid) - cpu0) / wall * 100 if uas_pid else float("nan")
    # Held = every call succeeded AND the rate was really reached (not stretched out in time).
    ok = (result.returncode == 0 and result.failed == 0 and result.successful == calls
          and result.calls_per_second >= 0.95 * rate)
    line = (f"rate={rate:5d} calls={calls:6d} ok={result.successful:6d} fail={result.failed:4d} "
            f"retrans={result.retransmissions:5d} achieved_cps={result.calls_per_second:7.1f} "
            f"uas_cpu%={cpu:5.1f}")
    return ok, line


async def ladder(name: str, rates: list[int], secs: float, start_uas) -> int:
    best = 0
    for rate in rates:
        port = free_port()
        proc = start_uas(port)
        try:
            time.sleep(0.8)
            ok, line = await step(rate, secs, port, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"{name:8s} {line} {'OK' if ok else 'FAILED'}", flush=True)
        if not ok:
            break
        best = rate
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="100,200,400,600,800,1000,1200,1600,2000")
    parser.add_argument("--secs", type=float, default=4.0)
    args = parser.parse_args()
    if sipp_binary() is None:
        print("sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]

    def ours(port: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(ROOT / "examples" / "uas.py"),
                                 "--bind", f"127.0.0.1:{port}", "--quiet"])

    def sipps(port: int) -> subprocess.Popen:
        return subprocess.Popen([sipp_binary(), "-sn", "uas", "-i", "127.0.0.1", "-p", str(port),
                                 "-nostdin", "-timeout", "300", "-buff_size", "4194304"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    best_ours = trio.run(ladder, "trio-voip", rates, args.secs, ours)
    best_sipp = trio.run(ladder, "sipp-uas", rates, args.secs, sipps)
    ratio = best_ours / best_sipp if best_sipp else float("nan")
    ceiling = " (the top of the ladder: raise --rates)" if best_sipp == rates[-1] else ""
    print(f"highest rate held: trio-voip uas {best_ours} cps, SIPp uas {best_sipp} cps{ceiling}, "
          f"ratio {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
