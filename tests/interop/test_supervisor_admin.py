"""The supervisor page's admin buttons in headless Chromium (Debian package ``chromium``),
driven over the DevTools protocol (a WebSocket, via trio-websocket): clicking an agent's
"pause" pauses it in the call engine and the page shows it paused, with the reason typed in;
"resume" undoes it; the add-agent form adds an agent.
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from test_softswitch_app import phone, sip_port, softswitch, until

from .conftest import require_tool

_JS_TIMEOUT_MS = 10000


class DevTools:
    """One page of a browser, over the DevTools protocol (flat sessions)."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.session: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        reply = await self.request(method, **params)
        assert "error" not in reply, reply["error"]
        return reply["result"]

    async def request(self, method: str, **params: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        message: dict[str, Any] = {"id": request_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        await self.ws.send_message(json.dumps(message))
        while True:  # events (none subscribed, but targets may report) are skipped
            reply = json.loads(await self.ws.get_message())
            if reply.get("id") == request_id:
                return reply

    async def open(self, url: str) -> None:
        target = await self.call("Target.createTarget", url=url)
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"],
                                   flatten=True)
        self.session = attached["sessionId"]

    async def wait_for(self, expression: str) -> Any:
        """The value of a JS ``expression`` once it is truthy (polled in the page)."""
        script = f"""new Promise((resolve, reject) => {{
            const start = Date.now();
            (function poll() {{
                let value;
                try {{ value = ({expression}); }} catch (e) {{ value = null; }}
                if (value) resolve(value);
                else if (Date.now() - start > {_JS_TIMEOUT_MS})
                    reject("timeout: " + {json.dumps(expression)});
                else setTimeout(poll, 50);
            }})();
        }})"""
        while True:
            reply = await self.request("Runtime.evaluate", expression=script, awaitPromise=True,
                                       returnByValue=True)
            # the page was (re)loading: its scripts are not there yet
            if "context was destroyed" not in reply.get("error", {}).get("message", ""):
                break
            await trio.sleep(0.05)
        assert "error" not in reply, reply["error"]
        result = reply["result"]
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]


@asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[DevTools]:
    """Headless Chromium with its DevTools endpoint on a free port of 127.0.0.1."""
    chromium = require_tool("chromium", "chromium")
    process = await trio.lowlevel.open_process(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        output = b""
        with trio.fail_after(30):
            while b"DevTools listening on " not in output or not output.endswith(b"\n"):
                chunk = await process.stderr.receive_some()
                assert chunk, output.decode(errors="replace")
                output += chunk
        url = output.split(b"DevTools listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        async with trio_websocket.open_websocket_url(url, max_message_size=2**24) as ws:
            yield DevTools(ws)
    finally:
        process.kill()
        with trio.CancelScope(shield=True):
            await process.wait()


def row(agent: str) -> str:
    return f'document.querySelector(\'tr[data-agent="{agent}"]\')'


async def test_pause_and_resume_buttons_change_the_agent_shown(tmp_path):
    async with softswitch() as running, phone("1001", sip_port(running)):
        assert running.http_url is not None
        driver = running.softswitch.driver
        assert driver is not None
        await until(lambda: driver.engine.agent_state("1001").value == "available")
        async with browser(tmp_path / "profile") as page:
            with trio.fail_after(60):
                await page.open(running.http_url)
                shown = await page.wait_for(
                    f"{row('1001')} && {row('1001')}.textContent.includes('available')"
                    f" && {row('1001')}.textContent")
                assert "paused" not in shown
                await page.wait_for(
                    "(document.getElementById('pause-reason').value = 'coffee') && true")
                await page.wait_for(f"{row('1001')}.querySelector('button.pause').click() || 1")
                shown = await page.wait_for(
                    f"{row('1001')}.textContent.includes('(coffee)') && {row('1001')}.innerHTML")
                assert 'class="state-paused"' in shown and "resume" in shown
                status = driver.engine.agent_status("1001")
                assert status.paused and status.pause_reason == "coffee"
                await page.wait_for(f"{row('1001')}.querySelector('button.resume').click() || 1")
                await page.wait_for(f"{row('1001')}.querySelector('button.pause')")
                assert not driver.engine.agent_status("1001").paused
                # the add-agent form
                await page.wait_for("""(() => {
                    const f = document.getElementById('add-agent').elements;
                    f['id'].value = 'a2001'; f['sip_user'].value = '2001';
                    f['password'].value = 'pw2001'; f['queues'].value = '6000';
                    document.querySelector('#add-agent button').click();
                    return true; })()""")
                shown = await page.wait_for(f"{row('a2001')} && {row('a2001')}.textContent")
                assert "offline" in shown and "6000" in shown
        assert "a2001" in {a.agent_id for a in driver.engine.agents()}
