"""The supervisor page: HTTP on a real 127.0.0.1 socket, live state over the WebSocket."""

from __future__ import annotations

import json

import pytest
import trio
import trio_websocket
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip import CallState
from trio_voip.errors import SoftswitchError
from trio_voip.softswitch import Running, SupervisorServer
from trio_voip.softswitch.config import CallCenterConfig, QueueConfig
from trio_voip.softswitch.web import PAGE, ReplayStream, parse_request_head

from test_softswitch_app import (
    PASSWORDS, PHONE_RTP, Phone, dial, phone, settled, sip_port, softswitch, test_config, until,
)


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


# -- admin of the call engine's agents and queues --


def post_json(path: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def api(port: int, path: str, body: object = None) -> tuple[int, dict]:
    """POST an admin operation; its status and result object."""
    raw = post(path) if body is None else post_json(path, body)
    status, headers, data = await http(port, raw)
    assert headers["Content-Type"] == "application/json"
    result = json.loads(data)
    assert result["ok"] is (status == 200) and result["type"] == "result"
    return status, result


def agent_of(state: dict, agent_id: str) -> dict:
    (agent,) = [a for a in state["agents"] if a["id"] == agent_id]
    return agent


@pytest.fixture
def agent_2001(monkeypatch):
    """A phone for user 2001, which the configuration does not have (an agent added by the
    admin API, with this password)."""
    monkeypatch.setitem(PASSWORDS, "2001", "pw2001")
    monkeypatch.setitem(PHONE_RTP, "2001", PHONE_RTP["1002"])


DANA = {"id": "a2001", "name": "Dana", "sip_user": "2001", "password": "pw2001",
        "queues": ["7000"], "skills": {"fr": 3}, "max_concurrent": 2, "weight": 1.5}
SALES = {"id": "7000", "name": "sales", "strategy": "linear", "settings": {"ring_timeout": 5}}


async def test_admin_api_adds_edits_and_removes_agents_and_queues(agent_2001):
    async with softswitch() as running:
        port = http_port(running)
        switch = running.softswitch
        driver = switch.driver
        assert driver is not None
        assert (await api(port, "/api/queue/add", SALES))[0] == 200
        assert (await api(port, "/api/agent/add", DANA))[0] == 200
        state = json.loads((await http(port, get("/api/state")))[2])
        assert [q["number"] for q in state["queues"]] == ["6000", "7000"]
        assert state["queues"][1]["name"] == "sales" and state["queues"][1]["strategy"] == "linear"
        dana = agent_of(state, "a2001")
        assert dana == {"id": "a2001", "name": "Dana", "sip_user": "2001", "queues": ["7000"],
                        "state": "offline", "since": None, "logged_in": False, "paused": None,
                        "calls": 0, "answered": 0, "occupancy": None}
        agent = driver.engine.agent_status("a2001").agent
        assert (dict(agent.skills), agent.max_concurrent, agent.weight) == ({"fr": 3}, 2, 1.5)
        # edits: the fields given; queue settings merged (a null removes one)
        edit = {"id": "a2001", "skills": {"de": 2}, "queues": ["7000", "6000"]}
        assert (await api(port, "/api/agent/edit", edit))[0] == 200
        agent = driver.engine.agent_status("a2001").agent
        assert dict(agent.skills) == {"de": 2} and agent.queues == {"6000", "7000"}
        assert agent.name == "Dana" and agent.max_concurrent == 2
        edit = {"id": "7000", "strategy": "random",
                "settings": {"ring_timeout": None, "max_length": 4}}
        assert (await api(port, "/api/queue/edit", edit))[0] == 200
        assert driver.get_queue("7000").settings == {"max_length": 4}
        assert switch.state()["queues"][1]["strategy"] == "random"
        # the agent's phone registers with the password given
        async with phone("2001", sip_port(running)):
            await until(lambda: driver.engine.agent_state("a2001").value == "available")
        status, _ = await api(port, "/api/agent/remove?agent=a2001")
        assert status == 200 and "a2001" not in {a.agent_id for a in driver.engine.agents()}
        assert (await api(port, "/api/queue/remove?queue=7000"))[0] == 200
        assert [q["number"] for q in switch.state()["queues"]] == ["6000"]
        # a call to the removed queue's number: nobody there
        async with phone("1003", sip_port(running)) as caller:
            call = await dial(caller, "1003", "7000", sip_port(running))
            with trio.fail_after(5):
                await call.wait_ended()
            assert call.end_reason is not None and call.end_reason.status == 404


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/agent/add", {**DANA, "id": "1001"}, 409, "agent '1001' exists"),
        ("/api/agent/add", {**DANA, "colour": "red"}, 400, "no field 'colour'"),
        ("/api/agent/add", {"id": "a9"}, 400, "needs a sip_user"),
        ("/api/agent/add", {**DANA, "queues": ["9999"]}, 400, "no queue '9999'"),
        ("/api/agent/add", {**DANA, "queues": "6000"}, 400, "collection"),
        ("/api/agent/add", {**DANA, "queues": [], "skills": {"x": 11}}, 400, "1-10"),
        ("/api/agent/add", {**DANA, "queues": [], "sip_user": "1002"}, 400, "'1002'"),
        ("/api/agent/add", {**DANA, "queues": [], "password": ""}, 400, "password"),
        ("/api/agent/edit", {"id": "nobody"}, 404, "no agent 'nobody'"),
        ("/api/agent/edit", {"id": "1001", "max_concurrent": "two"}, 400, "integer"),
        ("/api/agent/edit", {"id": "1001", "sip_user": "1003"}, 400, "agent '1003'"),
        ("/api/agent/remove?agent=nobody", None, 404, "no agent 'nobody'"),
        ("/api/agent/remove", None, 400, "remove-agent needs an agent"),
        ("/api/agent/pause?agent=1001&reason=lunch", None, 409, "not logged in"),
        ("/api/agent/pause?agent=1001", None, 400, "pause needs a reason"),
        ("/api/agent/pause?agent=nobody&reason=x", None, 404, "no agent"),
        ("/api/agent/resume?agent=1001", None, 409, "not paused"),
        ("/api/agent/logout?agent=1001", None, 409, "not logged in"),
        ("/api/queue/add", {"id": "6000"}, 409, "queue '6000' exists"),
        ("/api/queue/add", {"id": "1001"}, 409, "user's extension"),
        ("/api/queue/add", {"id": "7000", "strategy": "loudest"}, 400, "loudest"),
        ("/api/queue/add", {"id": "7 000"}, 400, "number"),
        ("/api/queue/add", {"id": "7000", "settings": {"ring_timeout": -1}}, 400, "ring_timeout"),
        ("/api/queue/edit", {"id": "6000", "settings": [1]}, 400, "JSON object"),
        ("/api/queue/edit", {"id": "9999"}, 404, "no queue '9999'"),
        ("/api/queue/remove?queue=9999", None, 404, "no queue '9999'"),
    ],
)
async def test_admin_api_refusals(path, body, status, error):
    async with softswitch() as running:
        port = http_port(running)
        driver = running.softswitch.driver
        assert driver is not None
        before = (driver.engine.agents(), driver.engine.queues())
        got, result = await api(port, path, body)
        assert (got, result["status"]) == (status, status) and error in result["error"], result
        assert (driver.engine.agents(), driver.engine.queues()) == before


@pytest.mark.parametrize(
    ("raw", "status", "error"),
    [
        (post_json("/api/agent/add", [1]), 400, "a JSON object"),
        (b"POST /api/queue/add HTTP/1.1\r\nContent-Length: 5\r\n\r\n{oops", 400, "not JSON"),
        (b"POST /api/queue/add HTTP/1.1\r\nContent-Length: 60000\r\n\r\n" + b"[" * 60000,
         400, "not JSON"),
        (b"POST /api/queue/add HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400, "Content-Length"),
        (b"POST /api/queue/add HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413, "at most"),
    ],
)
async def test_admin_api_bad_bodies(raw, status, error):
    async with softswitch() as running:
        got, _, data = await http(http_port(running), raw)
        result = json.loads(data)
        assert got == status and error in result["error"], result


async def test_admin_api_needs_the_call_engine():
    async with softswitch(test_config(queues=())) as running:
        assert running.softswitch.driver is None
        port = http_port(running)
        for path in ("/api/agent/pause?agent=1001&reason=x", "/api/queue/remove?queue=6000"):
            status, result = await api(port, path)
            assert status == 409 and "call engine is not running" in result["error"]
        status, result = await api(port, "/api/queue/add", SALES)
        assert status == 409
        assert json.loads((await http(port, get("/api/state")))[2])["agents"] == []


async def test_a_websocket_command_nested_too_deep_is_refused():
    async with softswitch() as running:
        server = SupervisorServer(running.softswitch)
        result = await server.command("[" * 100000)
        assert (result["ok"], result["status"]) == (False, 400)


async def test_pause_resume_and_logout_over_the_websocket():
    async with softswitch() as running:
        url = running.http_url.replace("http://", "ws://") + "ws"
        driver = running.softswitch.driver
        assert driver is not None

        async def command(ws, request: dict) -> dict:
            await ws.send_message(json.dumps(request))
            with trio.fail_after(5):
                while (message := json.loads(await ws.get_message()))["type"] != "result":
                    pass
            return message

        async with trio_websocket.open_websocket_url(url) as ws, \
                phone("1001", sip_port(running)):
            await next_state(ws, lambda s: agent_of(s, "1001")["state"] == "available")
            result = await command(ws, {"op": "pause", "agent": "1001", "reason": "lunch"})
            assert result == {"type": "result", "op": "pause", "ok": True, "error": None}
            paused = await next_state(ws, lambda s: agent_of(s, "1001")["state"] == "paused")
            assert agent_of(paused, "1001")["paused"] == "lunch"
            assert (await command(ws, {"op": "pause", "agent": "1001", "reason": "x"}))[
                "status"] == 409
            assert (await command(ws, {"op": "resume", "agent": "1001"}))["ok"]
            await next_state(ws, lambda s: agent_of(s, "1001")["paused"] is None)
            assert (await command(ws, {"op": "logout-agent", "agent": "1001"}))["ok"]
            out = await next_state(ws, lambda s: agent_of(s, "1001")["state"] == "offline")
            assert not out["users"][0]["online"]  # its registration went with it


async def test_admin_changes_survive_a_restart(tmp_path, agent_2001):
    """Add a queue and an agent and pause one over the API, stop; start again on the same
    store: the engine has them, paused as before, and a call to the new queue reaches the
    new agent."""
    config = test_config(
        callcenter=CallCenterConfig(store=str(tmp_path / "cc.sqlite")),
        queues=(QueueConfig("6000", "support", members=("1001", "1002")),),
    )
    async with softswitch(config) as running:
        port = http_port(running)
        assert (await api(port, "/api/queue/add", SALES))[0] == 200
        assert (await api(port, "/api/agent/add", DANA))[0] == 200
        async with phone("1001", sip_port(running)):
            driver = running.softswitch.driver
            assert driver is not None
            await until(lambda: driver.engine.agent_state("1001").value == "available")
            assert (await api(port, "/api/agent/pause?agent=1001&reason=lunch"))[0] == 200
            await driver.flush_store()
    async with softswitch(config) as running:
        port = http_port(running)
        driver = running.softswitch.driver
        assert driver is not None
        assert {a.agent_id for a in driver.engine.agents()} == {"1001", "1002", "a2001"}
        assert driver.get_queue("7000").name == "sales"
        state = json.loads((await http(port, get("/api/state")))[2])
        assert agent_of(state, "1001")["paused"] == "lunch"
        assert agent_of(state, "a2001")["queues"] == ["7000"]
        sip = sip_port(running)
        dana, ann = Phone(), Phone()
        async with phone("2001", sip, dana), phone("1001", sip, ann), \
                phone("1003", sip) as customer:
            await until(lambda: driver.engine.agent_state("1001").value == "paused")
            await until(lambda: driver.engine.agent_state("a2001").value == "available")
            call = await dial(customer, "1003", "7000", sip)
            with trio.fail_after(5):
                await dana.arrived.wait()
            assert await call.wait_state(CallState.ACTIVE, timeout=5) is CallState.ACTIVE
            await until(lambda: driver.engine.agent_state("a2001").value == "on-call")
            assert ann.incoming == []
            await call.hangup()
            await settled(running)


_OPS = ["add-agent", "edit-agent", "remove-agent", "pause", "resume", "logout-agent",
        "add-queue", "edit-queue", "remove-queue"]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=6,
)
_FIELD_NAMES = st.sampled_from(["id", "agent", "queue", "name", "sip_user", "queues", "skills",
                                "max_concurrent", "tier", "order", "weight", "password",
                                "reason", "strategy", "settings"])


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(_OPS) | _JSON,
       fields=st.dictionaries(_FIELD_NAMES | st.text(max_size=5),
                              st.sampled_from(["1001", "6000", "x"]) | _JSON, max_size=5))
async def test_any_admin_operation_gets_a_result_never_an_exception(op, fields):
    async with softswitch() as running:
        server = SupervisorServer(running.softswitch)
        result = await server.command(json.dumps({**fields, "op": op}))
        assert result["type"] == "result" and result["op"] == op
        if not result["ok"]:
            assert result["status"] in (400, 404, 409) and result["error"]
        driver = running.softswitch.driver
        assert driver is not None
        # whatever happened, the softswitch's queues are the engine's
        queues = {q["number"] for q in running.softswitch.state()["queues"]}
        assert queues == {q.queue_id for q in driver.engine.queues()}
