"""The supervisor page: a small HTTP/1.1 server on Trio, with a WebSocket for live state.

* ``GET /``: one self-contained HTML page (inline CSS and JS, nothing from elsewhere) that
  opens ``/ws`` and shows queues, the call engine's agents (state, pause reason; pause,
  resume and log-out buttons, a form to add one), users and their registrations, live calls
  and bridges.
* ``GET /api/state``: the same state as JSON (:meth:`SupervisorServer.state`).
* ``GET /api/metrics?from=T0&to=T1``: every queue's and agent's numbers over ``[T0, T1)``
  (Unix times; default: the last hour) from the call engine's store
  (:meth:`~trio_voip.callcenter.driver.CallCenterDriver.interval_metrics`); 409 without one.
* ``GET /ws`` (WebSocket, via trio-websocket): the state as a JSON text message at once and
  after every change, at most ``1 / push_interval`` per second. The page sends admin
  operations as JSON objects with an ``op`` (below); each gets ``{"type": "result", "op":
  .., "ok": true|false, "error": ..}`` (and, when not ok, ``"status"``: 400 for a malformed
  operation or a definition the engine refuses, 404 for an unknown call, user, agent or
  queue, 409 for an id that exists, a state that does not allow it, or no call engine).
* ``POST /api/<path>``: the same operations for scripts (``curl -X POST``), their arguments
  in the query string and/or a JSON object body (the body wins), answered with the same
  result object (200, else the status above).

The operations (POST path: op, arguments):

* ``/api/hangup``: ``hangup``, ``call``; ``/api/logout``: ``logout``, ``user`` (drops the
  user's registrations).
* ``/api/agent/add``: ``add-agent``, ``id``, ``sip_user`` and optionally ``name`` (default
  the id), ``queues`` (list of queue numbers), ``skills`` (name: level 1-10),
  ``max_concurrent``, ``tier``, ``order``, ``weight``, ``password`` (its phone registers
  with it; needed for a SIP user that is not a configured one).
  ``/api/agent/edit``: ``edit-agent``, ``id`` and the fields to change (a new ``sip_user``
  of an agent with a password needs the password again). ``/api/agent/remove``:
  ``remove-agent``, ``agent``.
* ``/api/agent/pause``: ``pause``, ``agent``, ``reason``; ``/api/agent/resume``: ``resume``,
  ``agent``; ``/api/agent/logout``: ``logout-agent``, ``agent`` (logged out of the engine,
  its phone's registrations dropped).
* ``/api/queue/add``: ``add-queue``, ``id`` (its number), optionally ``name``, ``strategy``
  (default longest-idle), ``settings`` (the engine's, see
  :func:`~trio_voip.callcenter.settings.queue_from_settings`). ``/api/queue/edit``:
  ``edit-queue``, ``id`` and what changes (``settings`` are merged; a null removes one).
  ``/api/queue/remove``: ``remove-queue``, ``queue``.

Agents and queues are the call engine's (:class:`~trio_voip.callcenter.driver.
CallCenterDriver`, kept in its store): without the engine these answer 409.

Each HTTP connection serves one request (``Connection: close``). A WebSocket request is read
like any other, then handed to trio-websocket with its bytes replayed in front of the stream.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import attrs
import trio
import trio_websocket

from trio_voip.callcenter.driver import CallCenterDriver
from trio_voip.callcenter.store import AgentRecord, QueueRecord
from trio_voip.errors import (
    CallCenterError,
    ConfigError,
    DuplicateRecord,
    SoftswitchError,
    StoreError,
    TrioVoipError,
)
from trio_voip.softswitch.app import Softswitch

__all__ = ["HttpRequest", "parse_request_head", "ReplayStream", "SupervisorServer", "PAGE"]

logger = logging.getLogger(__name__)

_MAX_HEAD = 16384
_MAX_BODY = 65536
_HEAD_TIMEOUT = 10.0
# POST paths and their operations
_POST_OPS = {
    "/api/hangup": "hangup", "/api/logout": "logout",
    "/api/agent/add": "add-agent", "/api/agent/edit": "edit-agent",
    "/api/agent/remove": "remove-agent", "/api/agent/pause": "pause",
    "/api/agent/resume": "resume", "/api/agent/logout": "logout-agent",
    "/api/queue/add": "add-queue", "/api/queue/edit": "edit-queue",
    "/api/queue/remove": "remove-queue",
}
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
            431: "Request Header Fields Too Large"}
# the agent record fields an operation may set (password: its credentials)
_AGENT_FIELDS = frozenset({
    "id", "name", "sip_user", "queues", "skills", "max_concurrent", "tier", "order", "weight",
    "password",
})
_QUEUE_FIELDS = frozenset({"id", "name", "strategy", "settings"})


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


async def _read_body(stream: trio.abc.Stream, request: HttpRequest, rest: bytes) -> bytes:
    """The request's body (``Content-Length`` bytes; ``rest`` was read with the head)."""
    text = request.headers.get("content-length", "0")
    if not text.isdigit():
        raise SoftswitchError(f"bad Content-Length {text[:20]!r}", status=400)
    length = int(text)
    if length > _MAX_BODY:
        raise SoftswitchError(f"a body of at most {_MAX_BODY} bytes", status=413)
    body = bytearray(rest[:length])
    while len(body) < length:
        data = await stream.receive_some(length - len(body))
        if not data:
            raise SoftswitchError("the body ended early", status=400)
        body += data
    return bytes(body)


def _post_arguments(request: HttpRequest, body: bytes) -> dict[str, Any]:
    """A POST's arguments: its query, then its JSON object body over it."""
    arguments: dict[str, Any] = dict(request.query)
    if body.strip():
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise SoftswitchError("the body is not JSON", status=400) from None
        if not isinstance(decoded, dict):
            raise SoftswitchError("the body must be a JSON object", status=400)
        arguments.update(decoded)
    return arguments


def _fields(request: dict[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    """The record fields of ``request`` (all but ``op``), refusing those ``what`` has not."""
    fields = {key: value for key, value in request.items() if key != "op"}
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise SoftswitchError(f"{what} has no field {unknown[0]!r}", status=400)
    return fields


def _agent_ids(driver: CallCenterDriver) -> set[str]:
    return {agent.agent_id for agent in driver.engine.agents()}


def _queue_ids(driver: CallCenterDriver) -> set[str]:
    return {queue.queue_id for queue in driver.engine.queues()}


def _known(request: dict[str, Any], name: str, ids: set[str], what: str) -> str:
    """Argument ``name``, the id of an existing ``what`` (404 otherwise)."""
    value = _argument(request, name)
    if value not in ids:
        raise SoftswitchError(f"no {what} {value!r}", status=404)
    return value


def _credentials(driver: CallCenterDriver, fields: dict[str, Any]) -> None:
    """Replace a ``password`` among ``fields`` by the ``credentials`` it gives."""
    if "password" in fields:
        password = fields.pop("password")
        if not isinstance(password, str) or not password:
            raise SoftswitchError("password must be a non-empty string", status=400)
        if not isinstance(fields.get("sip_user"), str):
            raise SoftswitchError("sip_user must be a string", status=400)
        fields["credentials"] = driver.credentials(fields["sip_user"], password)


def _argument(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        article = "an" if name in ("agent", "id") else "a"
        raise SoftswitchError(f"{request.get('op')} needs {article} {name}", status=400)
    return value


def _time(query: dict[str, str], name: str, default: float) -> float:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SoftswitchError(f"{name} must be a Unix time, not {text!r}", status=400)
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
        text = json.dumps(self.state())
        self._snapshot = (version, now, text)
        return text

    def state(self) -> dict[str, Any]:
        """:meth:`Softswitch.state` and ``agents``: the call engine's agents (see
        :meth:`~trio_voip.callcenter.driver.CallCenterDriver.agents_state`; none without it)."""
        state = self.softswitch.state()
        driver = self.softswitch.driver
        state["agents"] = driver.agents_state() if driver is not None else []
        return state

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
            try:
                with trio.fail_after(_HEAD_TIMEOUT):
                    body = await _read_body(stream, request, rest)
                arguments = _post_arguments(request, body)
            except trio.TooSlowError:
                await stream.send_all(_response(408, b"", "text/plain"))
                return
            except SoftswitchError as exc:
                result = {"type": "result", "op": _POST_OPS[request.path], "ok": False,
                          "error": str(exc), "status": exc.status}
            else:
                result = await self.command(
                    json.dumps({**arguments, "op": _POST_OPS[request.path]})
                )
            status = 200 if result["ok"] else result["status"]
            await stream.send_all(_response(status, json.dumps(result).encode(),
                                            "application/json"))
        elif request.method != "GET":
            await stream.send_all(
                _response(405, b"GET, or POST to /api/<operation>\n", "text/plain",
                          "Allow: GET, POST\r\n")
            )
        elif request.path == "/":
            await stream.send_all(_response(200, PAGE.encode(), "text/html; charset=utf-8"))
        elif request.path == "/api/state":
            body = json.dumps(self.state()).encode()
            await stream.send_all(_response(200, body, "application/json"))
        elif request.path == "/api/metrics":
            status, result = await self.metrics(request.query)
            await stream.send_all(_response(status, json.dumps(result).encode(),
                                            "application/json"))
        elif request.path == "/ws" and request.wants_websocket:
            await self._websocket(ReplayStream(stream, head + b"\r\n\r\n" + rest))
        else:
            await stream.send_all(_response(404, b"not found\n", "text/plain"))

    async def metrics(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``/api/metrics``: the status and the JSON object (see the module docstring)."""
        try:
            until = _time(query, "to", time.time())
            since = _time(query, "from", until - 3600.0)
            if not since < until:
                raise SoftswitchError("from must be before to", status=400)
            queues, agents = await self.softswitch.admin_driver().interval_metrics(since, until)
        except SoftswitchError as exc:
            return exc.status, {"type": "metrics", "error": str(exc)}
        except CallCenterError as exc:  # no store
            return 409, {"type": "metrics", "error": str(exc)}

        def plain(stats: object) -> dict[str, Any]:
            fields = attrs.asdict(stats)  # type: ignore[arg-type]
            return {k: v.value if isinstance(v, enum.Enum) else v for k, v in fields.items()}

        return 200, {
            "type": "metrics", "from": since, "to": until,
            "queues": {queue_id: plain(stats) for queue_id, stats in queues.items()},
            "agents": {agent_id: plain(stats) for agent_id, stats in agents.items()},
        }

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
            elif isinstance(op, str) and op in _ADMIN:
                await self._admin(op, request)
            else:
                raise SoftswitchError(f"unknown operation {op!r}", status=400)
        # ValueError: not JSON; RecursionError: nested too deep
        except (ValueError, RecursionError, TrioVoipError) as exc:
            status = getattr(exc, "status", 400)
            return {"type": "result", "op": op, "ok": False, "error": str(exc), "status": status}
        return {"type": "result", "op": op, "ok": True, "error": None}

    async def _admin(self, op: str, request: dict[str, Any]) -> None:
        """An operation on the call engine's agents and queues; the engine's and the store's
        refusals become 400 for a definition (add, edit), 409 for the rest."""
        driver = self.softswitch.admin_driver()
        try:
            await _ADMIN[op](self.softswitch, driver, request)
        except DuplicateRecord as exc:
            raise SoftswitchError(str(exc), status=409) from None
        except (CallCenterError, StoreError, ConfigError) as exc:
            status = 400 if op.startswith(("add-", "edit-")) else 409
            raise SoftswitchError(str(exc), status=status) from None


_Admin = Callable[[Softswitch, CallCenterDriver, dict[str, Any]], Awaitable[None]]


async def _add_agent(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    fields = _fields(request, _AGENT_FIELDS, "an agent")
    agent_id = _argument(request, "id")
    if agent_id in _agent_ids(driver):
        raise SoftswitchError(f"agent {agent_id!r} exists", status=409)
    _argument(request, "sip_user")
    fields.setdefault("name", agent_id)
    _credentials(driver, fields)
    await driver.add_agent(AgentRecord(**fields))


async def _edit_agent(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    fields = _fields(request, _AGENT_FIELDS, "an agent")
    current = await driver.get_agent(_known(request, "id", _agent_ids(driver), "agent"))
    if "sip_user" in fields and fields["sip_user"] != current.sip_user:
        if current.credentials is not None and "password" not in fields:
            raise SoftswitchError("a new sip_user needs its password", status=400)
    if "password" in fields:
        fields.setdefault("sip_user", current.sip_user)
    _credentials(driver, fields)
    await driver.update_agent(attrs.evolve(current, **fields))


async def _remove_agent(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    await driver.remove_agent(_known(request, "agent", _agent_ids(driver), "agent"))


async def _pause(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    agent_id = _known(request, "agent", _agent_ids(driver), "agent")
    driver.pause(agent_id, _argument(request, "reason"))


async def _resume(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    driver.resume(_known(request, "agent", _agent_ids(driver), "agent"))


async def _logout_agent(
    _switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    driver.logout(_known(request, "agent", _agent_ids(driver), "agent"))


async def _add_queue(
    switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    fields = _fields(request, _QUEUE_FIELDS, "a queue")
    queue_id = _argument(request, "id")
    if queue_id in _queue_ids(driver):
        raise SoftswitchError(f"queue {queue_id!r} exists", status=409)
    fields.setdefault("name", "")
    fields.setdefault("strategy", "longest-idle")
    await switch.add_queue(QueueRecord(**fields))


async def _edit_queue(
    switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    fields = _fields(request, _QUEUE_FIELDS, "a queue")
    current = driver.get_queue(_known(request, "id", _queue_ids(driver), "queue"))
    if "settings" in fields:
        changes = fields["settings"]
        if not isinstance(changes, dict):
            raise SoftswitchError("settings must be a JSON object", status=400)
        merged = {**current.settings, **changes}
        fields["settings"] = {key: value for key, value in merged.items() if value is not None}
    await switch.update_queue(attrs.evolve(current, **fields))


async def _remove_queue(
    switch: Softswitch, driver: CallCenterDriver, request: dict[str, Any]
) -> None:
    await switch.remove_queue(_known(request, "queue", _queue_ids(driver), "queue"))


_ADMIN: dict[str, _Admin] = {
    "add-agent": _add_agent, "edit-agent": _edit_agent, "remove-agent": _remove_agent,
    "pause": _pause, "resume": _resume, "logout-agent": _logout_agent,
    "add-queue": _add_queue, "edit-queue": _edit_queue, "remove-queue": _remove_queue,
}


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
.state-paused { color: #b91c1c; }
.state-wrap-up { color: #6b21a8; }
form, .tools { margin: .5em 0; }
input { font-size: .85em; width: 8em; }
#status { font-size: .9em; color: #666; }
#status.down { color: #b91c1c; }
button { font-size: .85em; }
</style>
</head>
<body>
<h1>trio-voip supervisor</h1>
<div id="status">connecting...</div>
<h2>Queues</h2><div id="queues"></div>
<h2>Agents</h2>
<div class="tools"><label>pause reason <input id="pause-reason" value="break"></label></div>
<div id="agents"></div>
<form id="add-agent">add agent:
<input name="id" placeholder="id" required>
<input name="name" placeholder="name">
<input name="sip_user" placeholder="SIP user" required>
<input name="password" type="password" placeholder="password">
<input name="queues" placeholder="queues (6000,7000)">
<button type="submit">add</button>
</form>
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

// A queue's live numbers, each in a span tagged with its name (data-metric).
function metrics(m) {
  if (!m) return "none";
  const pct = v => v === null ? "-" : Math.round(v * 100) + "%";
  const sec = v => v === null ? "-" : v.toFixed(1) + " s";
  const items = [
    ["offered", m.offered], ["answered", m.answered], ["abandoned", m.abandoned],
    ["overflowed", m.overflowed], ["service level", pct(m.service_level)],
    ["ASA", sec(m.average_speed_of_answer)], ["AHT", sec(m.average_handle_time)],
    ["longest wait", sec(m.longest_current_wait)]];
  return el("span", {}, ...items.map(([name, value]) =>
    el("span", {class: "metric", "data-metric": name}, name + " " + value + " \u00a0 ")));
}

function send(op) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(op));
}

function since(seconds, extra) {
  return (seconds + (extra || 0)).toFixed(1) + " s";
}

function agentButtons(a) {
  const buttons = [];
  if (a.logged_in && a.state !== "paused" && !a.paused) {
    buttons.push(el("button", {class: "pause", onclick: () => send(
      {op: "pause", agent: a.id,
       reason: document.getElementById("pause-reason").value || "break"})}, "pause"));
  }
  if (a.logged_in && a.paused) {
    buttons.push(el("button", {class: "resume", onclick: () => send(
      {op: "resume", agent: a.id})}, "resume"));
  }
  if (a.logged_in) {
    buttons.push(el("button", {class: "logout", onclick: () => send(
      {op: "logout-agent", agent: a.id})}, "log out"));
  }
  return el("span", {}, ...buttons);
}

function render(s, extra) {
  table("queues", ["Number", "Name", "Strategy", "Waiting", "Agents", "Metrics"],
    s.queues.map(q => ({attrs: {"data-queue": q.number}, cells: [
      q.number, q.name, q.strategy,
      q.waiting.length ? q.waiting.map(w => w.from + " (" + since(w.wait, extra) + ")").join(", ")
                       : "0",
      el("span", {}, ...q.agents.flatMap(a => [a.name + " ", badge(a.state), "  "])),
      metrics(q.metrics)]})));
  table("agents", ["Agent", "Name", "Phone", "Queues", "State", "Calls", "Answered",
                   "Occupancy", ""],
    (s.agents || []).map(a => ({attrs: {"data-agent": a.id}, cells: [
      a.id, a.name, a.sip_user, a.queues.join(", "),
      el("span", {}, badge(a.state), a.paused ? " (" + a.paused + ")" : "",
         a.since === null ? "" : " " + since(a.since, extra)),
      String(a.calls), String(a.answered),
      a.occupancy === null ? "-" : Math.round(a.occupancy * 100) + "%", agentButtons(a)]})));
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
document.getElementById("add-agent").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.target.elements;
  const op = {op: "add-agent", id: f["id"].value, sip_user: f["sip_user"].value,
              queues: f["queues"].value.split(",").map(q => q.trim()).filter(q => q)};
  if (f["name"].value) op.name = f["name"].value;
  if (f["password"].value) op.password = f["password"].value;
  send(op);
  event.target.reset();
});
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
