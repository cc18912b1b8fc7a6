"""Memory per call held open through `examples/b2bua.py`: its RSS grown, divided by calls.

SIPp `uac` -> examples/b2bua.py (a subprocess) -> SIPp `uas`, on 127.0.0.1. After a warm-up
of short calls, the B2BUA's VmRSS (/proc/PID/status) is read; then CALLS calls are placed at
RATE with a hold time (`-d`) long enough that all of them are up at once; once SIPp reports
them all open, VmRSS is read again. Each B2BUA call is two coordinator calls (two legs: two
dialogs, two INVITE transactions, two tie tasks). The calls then end with their BYEs, and the
RSS after is printed too (CPython keeps freed memory for reuse, so it stays near the peak).

    python bench/bench_memory_per_call.py [--calls 2000] [--rate 200] [--hold-ms 60000]

Exit status 1 when any call failed on either SIPp side. Measured here: ~43 KiB per B2BUA call.
With 3000 calls up, CPython's full garbage collections (~200 objects per call, ~400 ms per
pass at 6000 legs) stall the B2BUA past T1 (500 ms): the callee's INVITE is retransmitted
after SIPp's uas has answered, and SIPp aborts such a call (~1% of them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from trio_voip.testing.sipp import SippResult, read_sipp_stats, run_sipp, sipp_args, sipp_binary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_b2bua import free_port, start_b2bua, stop  # noqa: E402

WARM_UP = 300


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def run(calls: int, rate: int, hold_ms: int) -> int:
    uas_port, b2bua_port = free_port(), free_port()
    place_secs = calls / rate
    limit = int(place_secs + hold_ms / 1000 + 60)
    uas: list[SippResult] = []

    async def run_uas(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        uas.append(await run_sipp("uas", target=None, local_port=uas_port,
                                  calls=WARM_UP + calls, timeout=limit, task_status=task_status))

    b2bua = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_uas)
            await trio.sleep(0.5)
            b2bua = await start_b2bua(b2bua_port, uas_port)
            target = f"127.0.0.1:{b2bua_port}"
            warm = await run_sipp("uac", target=target, local_port=free_port(), calls=WARM_UP,
                                  rate=100, timeout=60)
            if warm.failed or warm.successful != WARM_UP:
                raise RuntimeError(f"warm-up failed: {warm}")
            await trio.sleep(1.0)
            before = rss_kib(b2bua.pid)

            with tempfile.TemporaryDirectory(prefix="sipp-mem-") as tmp:
                stat_file = Path(tmp) / "uac.csv"
                args = sipp_args("uac", target=target, local_port=free_port(), calls=calls,
                                 rate=rate, timeout=limit, stat_file=stat_file,
                                 extra=["-d", str(hold_ms), "-l", str(calls)])
                proc = await trio.lowlevel.open_process(
                    args, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                try:
                    # Wait until every call is placed and up (SIPp's CurrentCall), bounded.
                    open_calls = 0
                    with trio.move_on_after(place_secs + min(hold_ms / 1000, 60) - 2):
                        while True:
                            await trio.sleep(1.0)
                            stats = read_sipp_stats(stat_file)
                            open_calls = int(stats.get("CurrentCall", 0) or 0)
                            total = int(stats.get("TotalCallCreated", 0) or 0)
                            if total >= calls and open_calls >= calls:
                                break
                    await trio.sleep(1.0)
                    peak = rss_kib(b2bua.pid)
                    with trio.move_on_after(limit + 15):
                        await proc.wait()
                finally:
                    if proc.returncode is None:
                        proc.kill()
                        with trio.CancelScope(shield=True):
                            await proc.wait()
                final = read_sipp_stats(stat_file)
            await trio.sleep(2.0)
            after = rss_kib(b2bua.pid)
    finally:
        summary = stop(b2bua) if b2bua is not None else ""
    ok, failed = int(final.get("SuccessfulCall(C)", 0)), int(final.get("FailedCall(C)", 0))
    callee = uas[0]
    print(f"calls held open at once: {open_calls} of {calls} (rate {rate}/s, hold {hold_ms} ms)")
    print(f"caller: ok={ok} fail={failed}; callee: ok={callee.successful} fail={callee.failed}")
    print(f"b2bua VmRSS: {before} KiB after warm-up, {peak} KiB with the calls open, "
          f"{after} KiB after they ended")
    per_call = (peak - before) * 1024 / max(open_calls, 1)
    print(f"memory per B2BUA call: {per_call / 1024:.1f} KiB "
          f"({per_call / 2048:.1f} KiB per coordinator call leg)")
    for line in summary.splitlines():
        if line.startswith("b2bua:"):
            print(line)
    clean = failed == 0 and ok == calls and callee.failed == 0 and open_calls >= calls
    return 0 if clean else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--hold-ms", type=int, default=60000)
    args = parser.parse_args()
    if sipp_binary() is None:
        print("sipp not found (apt-get install sip-tester)", file=sys.stderr)
        return 2
    if args.calls / args.rate >= args.hold_ms / 1000:
        parser.error("the hold time must outlast placing all calls (calls/rate seconds)")
    t0 = time.monotonic()
    rc = trio.run(run, args.calls, args.rate, args.hold_ms)
    print(f"took {time.monotonic() - t0:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
