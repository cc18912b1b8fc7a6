"""The supervisor page: a small HTTP/1.1 server on Trio, with a WebSocket for live state.

* ``GET /``: one self-contained HTML page (inline CSS and JS, nothing from elsewhere) that
  opens ``/ws`` and shows users and their registrations, live calls, bridges and queues.
* ``GET /api/state``: the same state as JSON (:meth:`Softswitch.state`).
* ``GET /ws`` (WebSocket, via trio-websocket): the state as a JSON text message at once and
  after every change, at most ``1 / push_interval`` per second. The page sends admin
  operations as JSON: ``{"op": "hangup", "call": id}``, ``{"op": "logout", "user": name}``;
  each gets ``{"type": "result", "op": .., "ok": true|false, "error": ..}`` (and, when not
  ok, ``"status"``: 400 for a malformed operation, 404 for an unknown call or user).
* ``POST /api/hangup?call=ID``, ``POST /api/logout?user=NAME``: the same operations for
  scripts (``curl -X POST``), answered with the same result object (200, else 400/404).

Each HTTP connection serves one request (``Connection: close``). A WebSocket request is read
like any other, then handed to trio-websocket with its bytes replayed in front of the stream.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
import trio_websocket

from trio_voip.errors import SoftswitchError, TrioVoipError
from trio_voip.softswitch.app import Softswitch

__all__ = ["HttpRequest", "parse_request_head", "ReplayStream", "SupervisorServer", "PAGE"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 16384
_HEAD_TIMEOUT = 10.0
# POST paths: (operation, its query argument)
_POST_OPS = {"/api/hangup": ("hangup", "call"), "/api/logout": ("logout", "user")}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large"}


@attrs.frozen
class HttpRequest:
    """A request line and headers (names lower-cased; a repeated header keeps the last)."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.target.partition("?")[2]))

    @property
    def wants_websocket(self) -> bool:
        return (
            self.headers.get("upgrade", "").lower() == "websocket"
            and "upgrade" in self.headers.get("connection", "").lower()
        )


def parse_request_head(head: bytes) -> HttpRequest:
    """The request in ``head`` (up to, not including, the blank line). Raises
    SoftswitchError (status 400) for anything that is not an HTTP/1.x request."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise SoftswitchError("request head is not ASCII", status=400) from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise SoftswitchError(f"bad request line {lines[0][:80]!r}", status=400)
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise SoftswitchError(f"bad header line {line[:80]!r}", status=400)
        headers[name.lower()] = value.strip()
    return HttpRequest(parts[0], parts[1], headers)


class ReplayStream(trio.abc.Stream):
    """``stream`` with ``prefix`` (bytes already read from it) received first."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return await self._stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._stream.aclose()


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes, bytes] | None:
    """(head, everything read after it); None if the peer closed first."""
    buffer = bytearray()
    searched = 0
    while True:
        # Only the new bytes (and 3 before them) can complete the blank line.
        end = buffer.find(b"\r\n\r\n", max(0, searched - 3))
        if 0 <= end <= _MAX_HEAD:
            return bytes(buffer[:end]), bytes(buffer[end + 4:])
        if len(buffer) > _MAX_HEAD:
            raise SoftswitchError("request head too large", status=431)
        searched = len(buffer)
        data = await stream.receive_some(4096)
        if not data:
            return None
        buffer += data


def _argument(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise SoftswitchError(f"{request.get('op')} needs a {name}", status=400)
    return value


def _response(status: int, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        f"Cache-Control: no-store\r\nConnection: close\r\n{extra}\r\n"
    )
    return head.encode("ascii") + body


class SupervisorServer:
    """Serves the supervisor page of ``softswitch``; ``port = await nursery.start(server.run,
    host, port)`` (port 0: any free one)."""

    def __init__(self, softswitch: Softswitch, *, push_interval: float = 0.1) -> None:
        self.softswitch = softswitch
        self.push_interval = push_interval
        # (version, when, JSON): one snapshot serves every page pushed within push_interval
        self._snapshot: tuple[int, float, str] | None = None

    def state_json(self) -> str:
        """The softswitch's state as JSON, shared by the pages pushed at about one time."""
        now = trio.current_time()
        version = self.softswitch.version
        cached = self._snapshot
        if cached is not None and cached[0] == version and now - cached[1] < self.push_interval:
            return cached[2]
        text = json.dumps(self.softswitch.state())
        self._snapshot = (version, now, text)
        return text

    async def run(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        bound = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._serve, listeners)
            task_status.started(bound)

    async def _serve(self, stream: trio.SocketStream) -> None:
        try:
            async with stream:
                await self._connection(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away
        except Exception:
            # A page's trouble must not take the calls down with the server's nursery.
            logger.exception("supervisor connection failed")

    async def _connection(self, stream: trio.SocketStream) -> None:
        try:
            with trio.fail_after(_HEAD_TIMEOUT):
                read = await _read_head(stream)
            if read is None:
                return
            head, rest = read
            request = parse_request_head(head)
        except trio.TooSlowError:
            await stream.send_all(_response(408, b"", "text/plain"))
            return
        except SoftswitchError as exc:
            await stream.send_all(_response(exc.status, f"{exc}\n".encode(), "text/plain"))
            return
        if request.method == "POST" and request.path in _POST_OPS:
            op, argument = _POST_OPS[request.path]
            result = await self.command(
                json.dumps({"op": op, argument: request.query.get(argument)})
            )
            status = 200 if result["ok"] else result["status"]
            await stream.send_all(_response(status, json.dumps(result).encode(),
                                            "application/json"))
        elif request.method != "GET":
            await stream.send_all(
                _response(405, b"GET, or POST to /api/hangup or /api/logout\n", "text/plain",
                          "Allow: GET, POST\r\n")
            )
        elif request.path == "/":
            await stream.send_all(_response(200, PAGE.encode(), "text/html; charset=utf-8"))
        elif request.path == "/api/state":
            body = json.dumps(self.softswitch.state()).encode()
            await stream.send_all(_response(200, body, "application/json"))
        elif request.path == "/ws" and request.wants_websocket:
            await self._websocket(ReplayStream(stream, head + b"\r\n\r\n" + rest))
        else:
            await stream.send_all(_response(404, b"not found\n", "text/plain"))

    async def _websocket(self, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            try:
                with trio.fail_after(_HEAD_TIMEOUT):
                    request = await trio_websocket.wrap_server_stream(nursery, stream)
                    ws = await request.accept()
                async with trio.open_nursery() as inner:
                    inner.start_soon(self._push, ws, inner.cancel_scope)
                    await self._commands(ws)
                    inner.cancel_scope.cancel()
            except trio.TooSlowError:
                logger.info("a WebSocket handshake did not complete")
            except trio_websocket.ConnectionClosed:
                pass  # during the handshake
            finally:
                nursery.cancel_scope.cancel()

    async def _push(
        self, ws: trio_websocket.WebSocketConnection, connection: trio.CancelScope
    ) -> None:
        """The state now, then after each change (debounced to one per push_interval)."""
        seen = -1
        try:
            while True:
                seen = await self.softswitch.wait_changed(seen)
                await ws.send_message(self.state_json())
                await trio.sleep(self.push_interval)
        except trio_websocket.ConnectionClosed:
            connection.cancel()

    async def _commands(self, ws: trio_websocket.WebSocketConnection) -> None:
        try:
            while True:
                message = await ws.get_message()
                await ws.send_message(json.dumps(await self.command(message)))
        except trio_websocket.ConnectionClosed:
            return

    async def command(self, message: str | bytes) -> dict[str, Any]:
        """Carry out one admin operation (a JSON object) and say how it went."""
        op = None
        try:
            request = json.loads(message)
            if not isinstance(request, dict):
                raise SoftswitchError("an operation is a JSON object", status=400)
            op = request.get("op")
            if op == "hangup":
                await self.softswitch.hangup(_argument(request, "call"))
            elif op == "logout":
                self.softswitch.logout(_argument(request, "user"))
            else:
                raise SoftswitchError(f"unknown operation {op!r}", status=400)
        except (ValueError, TrioVoipError) as exc:  # ValueError: not JSON
            status = getattr(exc, "status", 400)
            return {"type": "result", "op": op, "ok": False, "error": str(exc), "status": status}
        return {"type": "result", "op": op, "ok": True, "error": None}


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trio-voip supervisor</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; min-width: 40em; }
th, td { text-align: left; padding: .25em .7em; border-bottom: 1px solid #ddd; }
th { background: #f3f3f3; font-weight: 600; }
.empty { color: #888; font-style: italic; }
.state-available, .state-active { color: #11772d; }
.state-ringing { color: #a15c00; }
.state-on-call { color: #1d4ed8; }
.state-offline { color: #888; }
#status { font-size: .9em; color: #666; }
#status.down { color: #b91c1c; }
button { font-size: .85em; }
</style>
</head>
<body>
<h1>trio-voip supervisor</h1>
<div id="status">connecting...</div>
<h2>Queues</h2><div id="queues"></div>
<h2>Users</h2><div id="users"></div>
<h2>Calls</h2><div id="calls"></div>
<h2>Bridges</h2><div id="bridges"></div>
<script>
"use strict";
let socket = null;
let delay = 500;
let last = null;      // the last state, and when it came: ages tick on between pushes
let lastAt = 0;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function table(id, headers, rows) {
  const box = document.getElementById(id);
  box.replaceChildren();
  if (!rows.length) { box.append(el("div", {class: "empty"}, "none")); return; }
  const t = el("table", {id: id + "-table"});
  t.append(el("tr", {}, ...headers.map(h => el("th", {}, h))));
  for (const row of rows) {
    t.append(el("tr", row.attrs || {}, ...row.cells.map(c => el("td", {}, c))));
  }
  box.append(t);
}

function badge(state) { return el("span", {class: "state-" + state}, state); }

function send(op) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(op));
}

function since(seconds, extra) {
  return (seconds + (extra || 0)).toFixed(1) + " s";
}

function render(s, extra) {
  table("queues", ["Number", "Name", "Strategy", "Waiting", "Agents", "Metrics"],
    s.queues.map(q => ({attrs: {"data-queue": q.number}, cells: [
      q.number, q.name, q.strategy,
      q.waiting.length ? q.waiting.map(w => w.from + " (" + since(w.wait, extra) + ")").join(", ")
                       : "0",
      el("span", {}, ...q.agents.flatMap(a => [a.name + " ", badge(a.state), "  "])),
      q.metrics ? JSON.stringify(q.metrics) : "none (" + s.router + ")"]})));
  table("users", ["User", "Name", "State", "Registered from", ""],
    s.users.map(u => ({attrs: {"data-user": u.name}, cells: [
      u.name, u.display_name, badge(u.state),
      u.contacts.map(c => (c.source || c.uri) + " (" + c.expires_in + " s)").join(", "),
      u.online ? el("button", {onclick: () => send({op: "logout", user: u.name})}, "log out")
               : ""]})));
  table("calls", ["Call", "From", "To", "State", "Age", "Talk", "Bridge", ""],
    s.calls.map(c => ({attrs: {"data-call": c.id, class: "call"}, cells: [
      c.id + (c.queue ? " (queue " + c.queue + ")" : ""), c.from, c.to, badge(c.state),
      since(c.age, extra), since(c.talk, c.state === "active" ? extra : 0), c.bridge || "",
      el("button", {onclick: () => send({op: "hangup", call: c.id})}, "hang up")]})));
  table("bridges", ["Bridge", "Participants", "Age"],
    s.bridges.map(b => ({attrs: {"data-bridge": b.id}, cells: [
      b.id, b.participants.join(" + "), since(b.age, extra)]})));
  const st = document.getElementById("status");
  st.className = "";
  st.textContent = "live: SIP " + s.sip.join(", ") + " \\u00b7 " + s.calls.length + " calls, "
    + s.users.filter(u => u.online).length + "/" + s.users.length + " users online";
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  socket = new WebSocket(url);
  socket.onopen = () => { delay = 500; };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "state") {
      last = message;
      lastAt = Date.now();
      render(message, 0);
    }
    else if (message.type === "result" && !message.ok) alert(message.op + ": " + message.error);
  };
  socket.onclose = () => {
    const st = document.getElementById("status");
    st.className = "down";
    st.textContent = "disconnected; retrying...";
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  };
}
connect();
setInterval(() => {
  if (last && socket && socket.readyState === WebSocket.OPEN) {
    render(last, (Date.now() - lastAt) / 1000);
  }
}, 1000);
</script>
</body>
</html>
"""
