"""Highest call rate `examples/b2bua.py` holds with zero failed calls, beside SIPp calling SIPp.

Two ladders of rising rates, each step bounded to RATE*SECS calls and a time limit:
  b2bua:  SIPp `uac` -> examples/b2bua.py (a subprocess) -> SIPp `uas`
  direct: SIPp `uac` -> SIPp `uas`
Each call is INVITE/180/200/ACK/BYE/200 with no hold time. A rate is held when both SIPp
sides count every call successful and none failed (a B2BUA that swallowed a BYE would look
fine to the caller alone), and at least 95% of the rate was achieved. The ratio b2bua/direct
is the headline (both measured in this run, on this machine, over 127.0.0.1 only).

    python bench/bench_b2bua.py [--rates 50,100,...] [--direct-rates 500,1000,...] [--secs 4]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import trio

from trio_voip.testing.sipp import SippResult, run_sipp, sipp_binary

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


async def start_b2bua(port: int, target_port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "b2bua.py"), "--bind", f"127.0.0.1:{port}",
         "--target", f"sip:127.0.0.1:{target_port}", "--quiet"],
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


async def step(rate: int, secs: float, with_b2bua: bool) -> tuple[bool, str]:
    calls = max(200, int(rate * secs))
    limit = int(secs * 4 + 20)
    uas_port = free_port()
    uas: list[SippResult] = []
    b2bua = None
    cpu = float("nan")
    summary = ""

    async def run_uas(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        uas.append(await run_sipp("uas", target=None, local_port=uas_port, calls=calls,
                                  timeout=limit + 10, task_status=task_status))

    try:
        # The callee SIPp exits once `calls` calls are through (or at its time limit), so
        # leaving the nursery waits for the B2BUA's last BYEs to reach it.
        async with trio.open_nursery() as nursery:
            await nursery.start(run_uas)
            await trio.sleep(0.5)
            try:
                target = uas_port
                if with_b2bua:
                    b2bua_port = free_port()
                    b2bua = await start_b2bua(b2bua_port, uas_port)
                    target = b2bua_port
                    cpu0 = cpu_seconds(b2bua.pid)
                t0 = time.monotonic()
                uac = await run_sipp("uac", target=f"127.0.0.1:{target}",
                                     local_port=free_port(), calls=calls, rate=rate,
                                     timeout=limit)
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
    ok = (uac.returncode == 0 and uac.failed == 0 and uac.successful == calls
          and callee.failed == 0 and callee.successful == calls
          and uac.calls_per_second >= 0.95 * rate)
    line = (f"rate={rate:5d} calls={calls:6d} uac_ok={uac.successful:6d} uac_fail={uac.failed:4d} "
            f"uas_ok={callee.successful:6d} uas_fail={callee.failed:4d} "
            f"retrans={uac.retransmissions:5d} achieved_cps={uac.calls_per_second:7.1f}")
    if with_b2bua:
        line += f" b2bua_cpu%={cpu:5.1f}"
        if not ok and summary:
            line += f"\n    {summary}"
    return ok, line


async def ladder(name: str, rates: list[int], secs: float, with_b2bua: bool) -> int:
    best = 0
    for rate in rates:
        ok, line = await step(rate, secs, with_b2bua)
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
    args = parser.parse_args()
    if sipp_binary() is None:
        print("sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 2
    rates = [int(r) for r in args.rates.split(",")]
    direct_rates = [int(r) for r in args.direct_rates.split(",")]
    best_b2bua = trio.run(ladder, "b2bua", rates, args.secs, True)
    best_direct = trio.run(ladder, "direct", direct_rates, args.secs, False)
    ratio = best_b2bua / best_direct if best_direct else float("nan")
    notes = []
    if best_b2bua == rates[-1]:
        notes.append("b2bua reached the top of its ladder: raise --rates")
    if best_direct == direct_rates[-1]:
        notes.append("direct reached the top of its ladder: raise --direct-rates")
    print(f"highest rate held: through trio-voip b2bua {best_b2bua} cps, SIPp direct "
          f"{best_direct} cps, ratio {ratio:.3f}" + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
