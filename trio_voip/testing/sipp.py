"""Run SIPp (Debian package ``sip-tester``) against a server on loopback and read its verdict.

Used by the interop tests and the ``bench/`` scripts. Every run is bounded in calls (``-m``) and
in time (``-timeout N -timeout_error``), and only loopback targets are accepted.

SIPp runs in a fresh temporary directory; ``files`` copies files into it. The media scenarios
(``-sn uac_pcap``) play ``pcap/g711a.pcap`` and ``pcap/dtmf_2833_1.pcap`` relative to that
directory: pass ``files=sipp_pcaps()``, and ``-mi 127.0.0.1 -mp PORT`` to keep media on loopback.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import attrs
import trio

__all__ = [
    "SIPP_PCAP_DIR", "SippResult", "sipp_binary", "sipp_pcaps", "sipp_args", "run_sipp",
    "read_sipp_stats", "UAS_PCMA",
]

# 4 MiB socket buffers: without them loopback drops datagrams at high call rates.
BUFF_SIZE = "4194304"
#: Where the Debian package puts the G.711 and RFC 4733 captures SIPp's scenarios play.
SIPP_PCAP_DIR = Path("/usr/share/sip-tester")

#: A SIPp callee scenario answering PCMA and telephone-event, what SIPp's captures carry
#: (``-sn uac_pcap``): SIPp's built-in ``uas`` answers PCMU only, which a relay that does not
#: transcode refuses (488).
UAS_PCMA = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="PCMA callee">
  <recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv request="ACK" rtd="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port]>
      Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="500"/>
</scenario>
"""


@attrs.frozen
class SippResult:
    returncode: int
    successful: int
    failed: int
    retransmissions: int
    elapsed: float  # seconds between SIPp's first and last statistics rows
    stats: dict[str, str]
    stderr: str

    @property
    def calls_per_second(self) -> float:
        return self.successful / self.elapsed if self.elapsed > 0 else 0.0


def sipp_binary() -> str | None:
    return shutil.which("sipp")


def sipp_pcaps(directory: Path = SIPP_PCAP_DIR) -> dict[str, Path]:
    """The captures shipped with SIPp, as ``files`` for :func:`run_sipp`: ``pcap/NAME``, where
    the built-in ``uac_pcap`` scenario looks for them."""
    return {f"pcap/{path.name}": path for path in sorted(directory.glob("*.pcap"))}


def _copy_files(files: Mapping[str, str | os.PathLike[str]], into: Path) -> None:
    for name, source in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ValueError(f"SIPp file {name!r} must be a relative path inside its directory")
        dest = into.joinpath(*relative.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)


def _require_loopback(target: str) -> None:
    host = target.rsplit(":", 1)[0] if target.count(":") == 1 else target
    if not (host.startswith("127.") or host in ("localhost", "[::1]", "::1")):
        raise ValueError(f"refusing non-loopback SIPp target {target!r}")


def sipp_args(
    scenario: str,
    *,
    target: str | None,
    local_port: int,
    calls: int,
    rate: float,
    timeout: float,
    stat_file: Path,
    extra: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """Command line for a bounded SIPp run: a built-in scenario name or a scenario file path."""
    binary = sipp_binary() or "sipp"
    scen = ["-sf", scenario] if scenario.endswith(".xml") else ["-sn", scenario]
    args = [binary, *scen]
    if target is not None:
        _require_loopback(target)
        args.append(target)
    args += [
        "-i", "127.0.0.1", "-p", str(local_port),
        "-m", str(calls), "-r", str(rate),
        "-nostdin", "-timeout", f"{int(timeout)}", "-timeout_error",
        "-buff_size", BUFF_SIZE,
        "-trace_stat", "-stf", str(stat_file), "-fd", "1",
        *extra,
    ]
    return args


def read_sipp_stats(stat_file: Path) -> dict[str, str]:
    """The last row of a SIPp ``-trace_stat`` CSV as a dict (empty when SIPp wrote none)."""
    try:
        rows = [r for r in csv.reader(stat_file.open(newline=""), delimiter=";") if r]
    except FileNotFoundError:
        return {}
    return dict(zip(rows[0], rows[-1])) if len(rows) >= 2 else {}


def _stamp(value: str) -> float:  # "2026-11-24\t14:52:52.960642\t1795531972.960642"
    return float(value.split("\t")[-1])


async def run_sipp(
    scenario: str,
    *,
    target: str | None,
    local_port: int,
    calls: int,
    rate: float = 50,
    timeout: float = 60,
    extra: list[str] | tuple[str, ...] = (),
    files: Mapping[str, str | os.PathLike[str]] | None = None,
    task_status=trio.TASK_STATUS_IGNORED,
) -> SippResult:
    """Run SIPp to completion (or ``timeout``) and return what it counted.

    ``files`` maps a relative path in SIPp's working directory to a file copied there first
    (see :func:`sipp_pcaps`). With ``nursery.start(run_sipp, ...)`` the caller is told when
    SIPp has been launched (useful for a SIPp UAS that must listen before calls are placed).
    """
    with tempfile.TemporaryDirectory(prefix="sipp-") as tmp:
        if files:
            _copy_files(files, Path(tmp))
        stat_file = Path(tmp) / "stats.csv"
        args = sipp_args(
            scenario, target=target, local_port=local_port, calls=calls, rate=rate,
            timeout=timeout, stat_file=stat_file, extra=extra,
        )
        err_file = Path(tmp) / "stderr.txt"
        with err_file.open("wb") as err:
            proc = await trio.lowlevel.open_process(
                args, cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )
        try:
            task_status.started(proc)
            # A hard stop after SIPp's own -timeout: a hung SIPp must not hang the caller.
            with trio.move_on_after(timeout + 15):
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                with trio.CancelScope(shield=True):
                    await proc.wait()
        stderr = err_file.read_bytes()[-8192:]
        stats = read_sipp_stats(stat_file)
    elapsed = _stamp(stats["CurrentTime"]) - _stamp(stats["StartTime"]) if stats else 0.0
    return SippResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        successful=int(stats.get("SuccessfulCall(C)", 0)),
        failed=int(stats.get("FailedCall(C)", 0)),
        retransmissions=int(stats.get("Retransmissions(C)", 0)),
        elapsed=elapsed,
        stats=stats,
        stderr=stderr.decode("utf-8", "replace"),
    )
