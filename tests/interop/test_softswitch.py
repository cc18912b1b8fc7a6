"""``python -m trio_voip.softswitch serve`` as a process, with SIPp phones on 127.0.0.1.

SIPp registers as user 1002 (Digest, MD5) from the port its UAS then listens on; a SIPp
caller dials 1002 through the softswitch, which calls the registered UAS and bridges the two
on its RTP relay. Both SIPp sides must count every call successful. SIGTERM then stops the
softswitch with exit code 0; with a call still up, both sides get a BYE first.

The supervisor page is loaded in headless Chromium (Debian package ``chromium``) before and
during a call: the DOM shows the call's legs and bridge once the WebSocket's state is in.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from trio_voip import CallState

from test_softswitch_app import Phone, dial, phone, settled, sip_port, softswitch

from .conftest import require_tool
from .test_sipp_scenarios import assert_clean, scenario, sipp_uac, sipp_uas


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """\
[sip]
port = {sip}
transports = ["udp"]
auth_invite = false            # SIPp's stock callers do not answer INVITE challenges
digest_algorithms = ["MD5"]    # SIPp answers the first challenge only, and MD5 only

[rtp]
start = 33200
end = 33299

[http]
port = {http}

[callcenter]
store = "{store}"

[[users]]
name = "1001"
password = "demo1001"

[[users]]
name = "1002"
password = "demo1002"

[[queues]]
number = "6000"
members = ["1001", "1002"]
"""


@attrs.define
class SoftswitchProcess:
    process: trio.Process
    sip_port: int
    http_port: int
    output: list[str]

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        with trio.fail_after(10):
            return await self.process.wait()


@asynccontextmanager
async def softswitch_process(tmp_path: Path) -> AsyncIterator[SoftswitchProcess]:
    ports = {"sip": free_udp_port(), "http": free_tcp_port()}
    config = tmp_path / "softswitch.toml"
    # the process runs in the repository: its store goes to tmp_path
    config.write_text(CONFIG.format(**ports, store=tmp_path / "cc.sqlite"))
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_voip.softswitch", "serve", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    output: list[str] = []
    try:
        async with trio.open_nursery() as nursery:
            ready = trio.Event()

            async def read() -> None:
                assert process.stdout is not None
                buffer = b""
                while chunk := await process.stdout.receive_some(4096):
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    output.extend(line.decode() for line in lines)
                    if "ready (Ctrl-C stops)" in output:
                        ready.set()

            nursery.start_soon(read)
            with trio.fail_after(10):
                await ready.wait()
            yield SoftswitchProcess(process, ports["sip"], ports["http"], output)
            with trio.fail_after(10):
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()


async def state(port: int) -> dict:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


async def register_1002(switch: SoftswitchProcess, port: int) -> None:
    result = await sipp_uac(switch.sip_port, port, scenario("uac_register_auth.xml"), 1,
                            extra=["-s", "1002", "-au", "1002", "-ap", "demo1002"], timeout=10)
    assert_clean(result, 1)
    users = {u["name"]: u for u in (await state(switch.http_port))["users"]}
    assert users["1002"]["online"] and not users["1001"]["online"]
    assert users["1002"]["contacts"][0]["source"] == f"udp:127.0.0.1:{port}"


async def test_sipp_calls_a_registered_sipp_extension(sipp, tmp_path, unused_udp_port_pair):
    uas_port, uac_port = unused_udp_port_pair
    calls = 5
    async with softswitch_process(tmp_path) as switch:
        await register_1002(switch, uas_port)
        async with sipp_uas(uas_port, "uas", calls) as uas:
            uac = await sipp_uac(switch.sip_port, uac_port, "uac", calls, rate=10,
                                 extra=["-s", "1002"], timeout=30)
        assert_clean(uac, calls)
        assert_clean(uas[0], calls)
        with trio.fail_after(5):
            while (now := await state(switch.http_port))["calls"]:
                await trio.sleep(0.1)
        assert now["bridges"] == []
        assert await switch.stop() == 0
    assert switch.output[-2:] == ["SIGTERM: shutting down, ending 0 call(s)", "stopped"]
    assert "user     1002" in switch.output  # a config's users, without passwords
    assert f"store    {tmp_path / 'cc.sqlite'} (agents, queues, call records)" in switch.output


async def test_sipp_calls_the_queue_and_its_one_registered_agent_answers(
        sipp, tmp_path, unused_udp_port_pair):
    """SIPp customers call queue 6000, a SIPp agent answers each; the supervisor page in
    headless Chromium shows the queue's numbers change (offered, answered)."""
    chromium = require_tool("chromium", "chromium")
    uas_port, uac_port = unused_udp_port_pair
    calls = 3
    async with softswitch_process(tmp_path) as switch:
        url = f"http://127.0.0.1:{switch.http_port}/"
        with trio.fail_after(60):
            before = await dump_dom(chromium, url, tmp_path / "before", "users online")
        assert 'data-metric="offered">offered 0' in before
        await register_1002(switch, uas_port)
        (queue,) = (await state(switch.http_port))["queues"]
        assert {a["name"]: a["state"] for a in queue["agents"]} == {
            "1001": "offline", "1002": "available"}
        async with sipp_uas(uas_port, "uas", calls) as uas:
            # One call at a time: the agent is busy while on a call (another caller: 480).
            uac = await sipp_uac(switch.sip_port, uac_port, "uac", calls, rate=10,
                                 extra=["-s", "6000", "-l", "1"], timeout=30)
        assert_clean(uac, calls)
        assert_clean(uas[0], calls)
        with trio.fail_after(60):
            after = await dump_dom(chromium, url, tmp_path / "after", "offered 3")
        assert 'data-metric="offered">offered 3' in after
        assert 'data-metric="answered">answered 3' in after
        assert 'data-metric="abandoned">abandoned 0' in after
        assert await switch.stop(signal.SIGINT) == 0  # Ctrl-C
    assert switch.output[-2:] == ["SIGINT: shutting down, ending 0 call(s)", "stopped"]


async def test_sigterm_ends_a_live_call_with_bye_on_both_sides(sipp, tmp_path,
                                                               unused_udp_port_pair):
    uas_port, uac_port = unused_udp_port_pair
    async with softswitch_process(tmp_path) as switch:
        await register_1002(switch, uas_port)
        async with sipp_uas(uas_port, "uas", 1) as uas:
            async with trio.open_nursery() as nursery:
                results = []

                async def call() -> None:
                    # Waits (10 s at most) for the BYE the shutdown sends.
                    results.append(await sipp_uac(
                        switch.sip_port, uac_port, scenario("uac_wait_bye.xml"), 1,
                        extra=["-s", "1002"], timeout=20))

                nursery.start_soon(call)
                with trio.fail_after(10):
                    while not (await state(switch.http_port))["bridges"]:
                        await trio.sleep(0.1)
                assert await switch.stop() == 0
        assert_clean(results[0], 1)
        assert_clean(uas[0], 1)
    assert "SIGTERM: shutting down, ending 2 call(s)" in switch.output
    assert switch.output[-1] == "stopped"


# -- the supervisor page in a real browser --


async def dump_dom(chromium: str, url: str, profile: Path, expected: str) -> str:
    """The page's DOM after its scripts ran, once it shows ``expected``. Virtual time does
    not wait for a WebSocket message, so a loaded machine may dump the page before the
    first state is in: then it is loaded again (three times at most)."""
    for attempt in range(3):
        result = await trio.run_process(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}-{attempt}",
             "--virtual-time-budget=5000", "--dump-dom", url],
            capture_stdout=True, capture_stderr=True, check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
        dom = result.stdout.decode()
        if expected in dom:
            break
    return dom


async def test_the_supervisor_page_in_headless_chromium_shows_a_live_call(tmp_path):
    chromium = require_tool("chromium", "chromium")
    bob = Phone()
    async with softswitch() as running:
        assert running.http_url is not None
        port = sip_port(running)
        with trio.fail_after(60):
            idle = await dump_dom(chromium, running.http_url, tmp_path / "idle", "users online")
        assert "0 calls, 0/3 users online" in idle
        assert 'data-user="1001"' in idle and "data-call=" not in idle
        async with phone("1002", port, bob), phone("1001", port) as caller:
            call = await dial(caller, "1001", "1002", port)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            coordinator = running.softswitch.coordinator
            with trio.fail_after(5):
                while not coordinator.list_bridges():
                    await trio.sleep(0.01)
            (bridge,) = coordinator.list_bridges()
            with trio.fail_after(60):
                live = await dump_dom(chromium, running.http_url, tmp_path / "live", "2 calls")
            assert "2 calls, 2/3 users online" in live
            for leg in coordinator.calls:
                assert f'data-call="{leg.id}"' in live
            assert f'data-bridge="{bridge.bridge_id}"' in live
            assert live.count('class="state-on-call"') >= 2  # 1001 and 1002 (users, queue)
            await call.hangup()
            await settled(running)
