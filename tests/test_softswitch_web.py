"""The supervisor page: HTTP on a real 127.0.0.1 socket, live state over the WebSocket."""

from __future__ import annotations

import json

import pytest
import trio
import trio_websocket
from hypothesis import given
from hypothesis import strategies as st

from trio_voip import CallState
from trio_voip.errors import SoftswitchError
from trio_voip.softswitch import Running, SupervisorServer
from trio_voip.softswitch.web import PAGE, ReplayStream, parse_request_head

from test_softswitch_app import Phone, dial, phone, settled, sip_port, softswitch


def http_port(running: Running) -> int:
    assert running.http_url is not None
    return int(running.http_url.rstrip("/").rsplit(":", 1)[1])


async def http(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` and read the whole answer (the server closes after one)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    return int(lines[0].split(" ")[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def test_the_page_and_the_state():
    async with softswitch() as running:
        port = http_port(running)
        status, headers, body = await http(port, get("/"))
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        page = body.decode()
        assert page == PAGE
        assert "new WebSocket(" in page and "/ws" in page
        assert "<script src" not in page and "http://" not in page and "https://" not in page
        status, headers, body = await http(port, get("/api/state?x=1"))
        assert status == 200 and headers["Content-Type"] == "application/json"
        state = json.loads(body)
        assert state["type"] == "state" and state["format"] == 1
        assert state["router"] == "call engine"
        assert [u["name"] for u in state["users"]] == ["1001", "1002", "1003"]
        assert state["calls"] == state["bridges"] == []
        assert state["queues"][0]["number"] == "6000"
        assert state["sip"] == [f"udp:127.0.0.1:{sip_port(running)}"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"POST / HTTP/1.1\r\n\r\n", 405),
        (get("/nope"), 404),
        (get("/ws"), 404),  # not an upgrade
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    ],
)
async def test_bad_requests_get_an_error_status(raw, status):
    async with softswitch() as running:
        assert (await http(http_port(running), raw))[0] == status


async def test_a_client_that_closes_early_is_no_trouble():
    async with softswitch() as running:
        port = http_port(running)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET / HT")
        await stream.aclose()
        assert (await http(port, get("/")))[0] == 200


async def next_state(ws: trio_websocket.WebSocketConnection, predicate) -> dict:
    """The first state message that satisfies ``predicate``."""
    with trio.fail_after(5):
        while True:
            message = json.loads(await ws.get_message())
            if message["type"] == "state" and predicate(message):
                return message


async def test_websocket_pushes_state_as_calls_start_and_end():
    async with softswitch() as running:
        url = running.http_url.replace("http://", "ws://") + "ws"
        port = sip_port(running)
        async with trio_websocket.open_websocket_url(url) as ws:
            first = await next_state(ws, lambda s: True)
            assert first["calls"] == [] and not first["users"][0]["online"]
            bob = Phone()
            async with phone("1002", port, bob), phone("1001", port) as caller:
                await next_state(ws, lambda s: s["users"][0]["online"] and s["users"][1]["online"])
                call = await dial(caller, "1001", "1002", port)
                live = await next_state(ws, lambda s: len(s["bridges"]) == 1)
                assert {c["user"] for c in live["calls"]} == {"1001", "1002"}
                assert set(live["bridges"][0]["participants"]) == {c["id"] for c in live["calls"]}
                assert all(c["state"] == "active" for c in live["calls"])
                await call.wait_state(CallState.ACTIVE, timeout=5)
                await call.hangup()
                over = await next_state(ws, lambda s: not s["calls"])
                assert over["bridges"] == [] and over["version"] > live["version"]
            await settled(running)


async def test_websocket_admin_operations():
    async with softswitch() as running:
        url = running.http_url.replace("http://", "ws://") + "ws"
        port = sip_port(running)
        bob = Phone()
        async with trio_websocket.open_websocket_url(url) as ws:
            async with phone("1002", port, bob), phone("1001", port) as caller:
                call = await dial(caller, "1001", "1002", port)
                live = await next_state(ws, lambda s: len(s["bridges"]) == 1)
                target = live["calls"][0]["id"]
                await ws.send_message(json.dumps({"op": "hangup", "call": target}))
                results = []
                with trio.fail_after(5):
                    while not results:
                        message = json.loads(await ws.get_message())
                        if message["type"] == "result":
                            results.append(message)
                assert results == [{"type": "result", "op": "hangup", "ok": True, "error": None}]
                await call.wait_ended()
                await bob.incoming[0].wait_ended()
                await settled(running)
                for request, error in [
                    ({"op": "hangup", "call": target}, "no live call"),
                    ({"op": "logout", "user": "9"}, "no user"),
                    ({"op": "reboot"}, "unknown operation"),
                    ({"op": "hangup", "call": 5}, "hangup needs a call"),
                    ([1], "a JSON object"),
                ]:
                    await ws.send_message(json.dumps(request))
                    with trio.fail_after(5):
                        while (message := json.loads(await ws.get_message()))["type"] != "result":
                            pass
                    assert not message["ok"] and error in message["error"]
                await ws.send_message(json.dumps({"op": "logout", "user": "1002"}))
                await next_state(ws, lambda s: not s["users"][1]["online"])
                await ws.send_message("not json")
                while (message := json.loads(await ws.get_message()))["type"] != "result":
                    pass
                assert not message["ok"]


async def test_state_pushes_are_debounced():
    async with softswitch() as running:
        url = running.http_url.replace("http://", "ws://") + "ws"
        async with trio_websocket.open_websocket_url(url) as ws:
            await next_state(ws, lambda s: True)
            for _ in range(50):
                running.softswitch.notify_changed()  # 50 changes at once
            received = 0
            with trio.move_on_after(0.35):
                while True:
                    await ws.get_message()
                    received += 1
            assert 1 <= received <= 4


@given(st.binary(max_size=300))
def test_parse_request_head_takes_anything_without_crashing(data):
    try:
        request = parse_request_head(data)
    except SoftswitchError as exc:
        assert exc.status == 400
    else:
        assert request.method.isalpha()


def test_parse_request_head():
    request = parse_request_head(
        b"GET /ws?x=1 HTTP/1.1\r\nHost: a\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade"
    )
    assert (request.method, request.path, request.headers["host"]) == ("GET", "/ws", "a")
    assert request.wants_websocket
    assert not parse_request_head(b"GET / HTTP/1.0").wants_websocket


async def test_replay_stream_gives_the_prefix_first():
    left, right = trio.testing.memory_stream_pair()
    stream = ReplayStream(right, b"abcdef")
    await left.send_all(b"xyz")
    assert await stream.receive_some(4) == b"abcd"
    assert await stream.receive_some() == b"ef"
    assert await stream.receive_some() == b"xyz"
    await stream.send_all(b"out")
    assert await left.receive_some() == b"out"
    await stream.aclose()


async def test_pages_pushed_at_one_time_share_one_snapshot():
    async with softswitch() as running:
        server = SupervisorServer(running.softswitch, push_interval=0.2)
        first = server.state_json()
        assert server.state_json() is first
        running.softswitch.notify_changed()
        second = server.state_json()
        assert second is not first
        assert json.loads(second)["version"] == json.loads(first)["version"] + 1
        await trio.sleep(0.25)  # same version, but the ages moved on
        assert server.state_json() is not second


async def test_a_failing_page_does_not_stop_the_server(monkeypatch):
    async with softswitch() as running:
        port = http_port(running)

        def broken() -> dict:
            raise RuntimeError("a bug in state()")

        monkeypatch.setattr(running.softswitch, "state", broken)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(get("/api/state"))
            with trio.fail_after(5):
                assert await stream.receive_some() == b""  # closed without an answer
        monkeypatch.undo()
        assert (await http(port, get("/api/state")))[0] == 200
        assert running.softswitch.coordinator.stats().calls == 0


async def test_a_bad_websocket_handshake_is_refused(caplog):
    async with softswitch() as running:
        port = http_port(running)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(  # no Sec-WebSocket-Key
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
            )
            with trio.fail_after(5):
                assert (await stream.receive_some()).startswith(b"HTTP/1.1 400 ")
        # Clients that come and go leave nothing in the log and the page still works.
        for _ in range(3):
            url = running.http_url.replace("http://", "ws://") + "ws"
            async with trio_websocket.open_websocket_url(url) as ws:
                await next_state(ws, lambda s: True)
        assert (await http(port, get("/")))[0] == 200
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]


def post(path: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n".encode()


async def test_admin_operations_by_post():
    async with softswitch() as running:
        port = http_port(running)
        sip = sip_port(running)
        bob = Phone()
        async with phone("1002", sip, bob), phone("1001", sip) as caller:
            call = await dial(caller, "1001", "1002", sip)
            await call.wait_state(CallState.ACTIVE, timeout=5)
            target = running.softswitch.coordinator.calls[0].id
            status, _, body = await http(port, post(f"/api/hangup?call={target}"))
            assert (status, json.loads(body)["ok"]) == (200, True)
            with trio.fail_after(5):
                await call.wait_ended()
            status, _, body = await http(port, post(f"/api/hangup?call={target}"))
            assert status == 404 and "no live call" in json.loads(body)["error"]
            status, _, body = await http(port, post("/api/logout?user=1002"))
            assert (status, json.loads(body)["ok"]) == (200, True)
            assert not running.softswitch.state()["users"][1]["online"]
            assert (await http(port, post("/api/logout?user=nobody")))[0] == 404
            status, _, body = await http(port, post("/api/logout"))
            assert (status, json.loads(body)["error"]) == (400, "logout needs a user")
            await settled(running)
