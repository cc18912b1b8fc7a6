"""The softswitch's TOML configuration: defaults, overrides, and mistakes named by key and line."""

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.callcenter import ToQueue, ToRecording
from trio_voip.errors import ConfigError
from trio_voip.softswitch import (
    DEMO_USERS,
    EXAMPLE_CONFIG,
    QueueConfig,
    SoftswitchConfig,
    UserConfig,
    load_config,
    parse_config,
)
from trio_voip.softswitch.__main__ import main
from trio_voip.softswitch.app import make_call_center


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "ss.toml")
    return info.value


def test_no_file_and_an_empty_file_are_the_demo():
    for config in (load_config(None), parse_config("")):
        assert config == SoftswitchConfig()
        assert (config.sip.host, config.sip.port, config.sip.transports) == (
            "127.0.0.1", 5060, ("udp", "tcp"))
        assert (config.rtp.start, config.rtp.end, config.rtp.relay) == (20000, 20999, True)
        assert (config.http.host, config.http.port) == ("127.0.0.1", 8080)
        assert [u.name for u in config.users] == ["1001", "1002", "1003"]
        assert config.demo_users
        assert config.queues[0].number == "6000"
        assert config.queues[0].members == ("1001", "1002", "1003")


def test_a_file_overrides_what_it_names():
    config = parse_config(
        """
        [sip]
        port = 5070
        transports = ["udp"]
        domain = "pbx.test"

        [calls]
        ring_timeout = 12      # an integer is fine for a number

        [[users]]
        name = "alice"
        password = "s3cret"

        [[users]]
        name = "bob"
        password = "hunter2"
        display_name = "Bob"

        [[queues]]
        number = "700"
        strategy = "longest-idle"
        members = ["bob"]
        """
    )
    sip = config.sip
    assert (sip.port, sip.transports, sip.domain) == (5070, ("udp",), "pbx.test")
    assert config.sip.host == "127.0.0.1"  # not named: default
    assert config.calls.ring_timeout == 12.0 and isinstance(config.calls.ring_timeout, float)
    assert config.users == (UserConfig("alice", "s3cret"), UserConfig("bob", "hunter2", "Bob"))
    assert not config.demo_users
    assert config.queues == (QueueConfig("700", strategy="longest-idle", members=("bob",)),)
    assert config.rtp == SoftswitchConfig().rtp


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("[sip]\nhost = '127.0.0.1'\nprot = 5060\n", 3, "sip.prot", "unknown key"),
        ("[sip]\n\nport = \"5060\"\n", 3, "sip.port", "must be an integer, not a string"),
        ("[sip]\nport = true\n", 2, "sip.port", "must be an integer, not a boolean"),
        ("[sip]\nport = 70000\n", 2, "sip.port", "must be 0-65535, not 70000"),
        ("sip.port = -1\n", 1, "sip.port", "must be 0-65535"),
        ("[http]\nport = 99999\n", 2, "http.port", "0-65535"),
        ("[rtp]\nstart = 30000\nend = 20000\n", 3, "rtp.end", "no even/odd port pair"),
        ("[rtp]\nstart = 20001\nend = 20002\n", 3, "rtp.end", "no even/odd port pair"),
        ("[sip]\ntransports = ['udp', 'sctp']\n", 2, "sip.transports", "'sctp' is not one of"),
        ("[sip]\ntransports = ['udp', 5]\n", 2, "sip.transports[1]", "must be a string"),
        ("[sip]\ntransports = []\n", 2, "sip.transports", "must not be empty"),
        ("[calls]\nring_timeout = 0\n", 2, "calls.ring_timeout", "more than 0"),
        ("[calls]\nmax_calls = 'many'\n", 2, "calls.max_calls", "must be an integer"),
        ("[sip]\ndigest_algorithms = ['SHA-1']\n", 2, "sip.digest_algorithms", "not one of"),
        ("sip = 5\n", 1, "sip", "must be a table, not an integer"),
        ("users = 'x'\n", 1, "users", "must be an array"),
        ("nope = 1\n", 1, "nope", "unknown key (known here: sip, rtp"),
        ("[[users]]\nname = '1'\npassword = 'a'\n[[users]]\nname = '1'\npassword = 'b'\n",
         5, "users[1].name", "taken twice"),
        ("[[users]]\nname = 'a'\npassword = 'a'\n\n[[users]]\nname = 'b'\n", 5,
         "users[1].password", "is required"),
        ("[[users]]\nname = 'has space'\npassword = 'a'\n", 2, "users[0].name",
         "not a plain SIP user name"),
        ("[[users]]\nname = 'a'\npassword = 'a'\n[[queues]]\nnumber = '7'\nmembers = ['a', 'z']\n",
         6, "queues[0].members", "'z' is not a user"),
        ("[[users]]\nname = 'a'\npassword = 'a'\n[[queues]]\nnumber = 'a'\n", 5,
         "queues[0].number", "a user's extension too"),
        ("[[queues]]\nnumber = '7'\nstrategy = 'fastest'\n", 3, "queues[0].strategy",
         "'fastest' is not one of ring-all"),
        ("users = []\nqueues = []\n", 1, "users", "sip.auth_invite needs users"),
    ],
)
def test_a_mistake_names_the_key_and_its_line(text, line, key, words):
    exc = error(text)
    assert (exc.key, exc.line, exc.source) == (key, line, "ss.toml")
    assert words in exc.message
    assert str(exc).startswith(f"ss.toml:{line}: {key}: ")
    assert "\n" not in str(exc)


@pytest.mark.parametrize(
    ("text", "line"),
    [("[sip]\nport = = 3\n", 2), ("[sip\n", 1), ("a = 1\na = 2\n", 2), ("x = 'open\n", 1)],
)
def test_a_syntax_error_has_tomllibs_line(text, line):
    exc = error(text)
    assert exc.line == line and exc.key is None
    assert str(exc).startswith(f"ss.toml:{line}: not valid TOML: ")


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_any_port_number_is_taken_or_refused_by_range(port):
    text = f"# the SIP side\n[sip]\nport = {port}\n"
    if 0 <= port <= 65535:
        assert parse_config(text).sip.port == port
    else:
        exc = error(text)
        assert (exc.key, exc.line) == ("sip.port", 3)


@given(st.integers(1, 65535), st.integers(1, 65535))
def test_rtp_ranges_need_a_whole_pair(start, end):
    text = f"[rtp]\nstart = {start}\nend = {end}\n"
    first_even = start + (start & 1)
    if first_even + 1 <= end:
        config = parse_config(text)
        assert (config.rtp.start, config.rtp.end) == (start, end)
    else:
        assert error(text).key == "rtp.end"


def test_a_file_that_cannot_be_read(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "bad.toml")


def test_the_command_line_reports_one_line_and_exit_code_2(tmp_path, capsys):
    path = tmp_path / "ss.toml"
    path.write_text("[sip]\nport = 70000\n")
    for command in ("serve", "check"):
        assert main([command, "--config", str(path)]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == f"trio-voip: {path}:2: sip.port: must be 0-65535, not 70000\n"
    path.write_text("[[users]]\nname = 'a'\npassword = 'b'\n")
    assert main(["check", "--config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK\n"


def test_demo_users_have_their_published_passwords():
    assert [(u.name, u.password) for u in DEMO_USERS] == [
        ("1001", "demo1001"), ("1002", "demo1002"), ("1003", "demo1003")]


def test_the_example_file_is_the_defaults(capsys):
    assert parse_config(EXAMPLE_CONFIG) == SoftswitchConfig()
    assert main(["config"]) == 0
    assert capsys.readouterr().out == EXAMPLE_CONFIG


def test_the_store_is_a_file_in_the_working_directory_unless_empty():
    assert SoftswitchConfig().callcenter.store == "callcenter.sqlite"
    assert parse_config("[callcenter]\nstore = ''\n").callcenter.store is None
    assert parse_config("[callcenter]\nstore = '/var/cc.db'\n").callcenter.store == "/var/cc.db"
    with pytest.raises(ConfigError) as caught:
        parse_config("[callcenter]\n\nstore = 3\n")
    assert (caught.value.key, caught.value.line) == ("callcenter.store", 3)


def test_users_without_queues_drop_the_demo_queue():
    config = parse_config("[[users]]\nname = 'ann'\npassword = 'x'\n")
    assert config.queues == ()
    assert not config.demo_users


SECTIONS = {
    "sip": ["host = '127.0.0.1'", "port = 5060", "transports = ['udp']", "auth_invite = true"],
    "rtp": ["start = 20000", "end = 20999", "relay = false"],
    "http": ["enabled = true", "port = 8080"],
    "calls": ["ring_timeout = 5", "max_calls = 10"],
}
FILLER = st.sampled_from(["", "# a comment", "   ", "# bogus = 1 (commented out)"])


@given(st.data())
def test_an_unknown_key_is_found_on_its_line_wherever_it_is(data):
    """Sections in any order, lines in any order, comments and blank lines anywhere, a few
    users: an unknown key is reported at the line it is on."""
    names = data.draw(st.permutations(list(SECTIONS)))
    users = data.draw(st.integers(1, 3))
    blocks: list[tuple[str, list[str]]] = [
        (f"[{name}]", data.draw(st.permutations(SECTIONS[name]))) for name in names
    ]
    blocks += [("[[users]]", [f"name = 'u{i}'", "password = 'pw'"]) for i in range(users)]
    target = data.draw(st.integers(0, len(blocks) - 1))
    header, lines = blocks[target]
    where = data.draw(st.integers(0, len(lines)))
    blocks[target] = (header, lines[:where] + ["bogus = 1"] + lines[where:])
    text: list[str] = []
    for header, lines in blocks:
        text.append(header)
        for line in lines:
            text.extend(data.draw(st.lists(FILLER, max_size=2)))
            text.append(line)
    exc = error("\n".join(text) + "\n")
    section = blocks[target][0].strip("[]")
    key = f"users[{target - len(names)}].bogus" if section == "users" else f"{section}.bogus"
    assert exc.key == key
    assert text[exc.line - 1] == "bogus = 1"


def test_a_port_in_use_is_one_line_and_exit_code_1(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        path = tmp_path / "ss.toml"
        path.write_text(f"[sip]\nport = {port}\ntransports = ['udp']\n[http]\nenabled = false\n"
                        "[rtp]\nstart = 33000\nend = 33099\n[callcenter]\nstore = ''\n")
        assert main(["serve", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("trio-voip: cannot run the softswitch: ")
    assert err.count("\n") == 1


def test_agent_and_queue_engine_keys_reach_the_call_engine():
    config = parse_config('''
[[users]]
name = "ann"
password = "x"
skills = { french = 7, billing = 2 }
max_concurrent = 2
tier = 1
weight = 3.5

[[queues]]
number = "7"
strategy = "skill-based"
members = ["ann"]
required_skills = { french = 5 }
exit_keys = { "0" = "queue:8", "9" = "recording:box" }
tier_wait = 30.0
progressive_step = 2.0
service_level_threshold = 15.0
estimate_window = 5

[[queues]]
number = "8"
''')
    engine = make_call_center(config)
    (ann,) = engine.agents()
    assert (dict(ann.skills), ann.max_concurrent, ann.tier, ann.weight) == (
        {"french": 7, "billing": 2}, 2, 1, 3.5)
    seven = next(q for q in engine.queues() if q.queue_id == "7")
    assert dict(seven.required_skills) == {"french": 5}
    assert dict(seven.exit_keys) == {"0": ToQueue("8"), "9": ToRecording("box")}
    assert (seven.tier_wait, seven.progressive_step, seven.service_level_threshold,
            seven.estimate_window) == (30.0, 2.0, 15.0, 5)


@pytest.mark.parametrize(
    ("text", "key", "line", "words"),
    [
        ('[[users]]\nname = "a"\npassword = "x"\nskills = { fr = 11 }\n',
         "users[0].skills", 4, "1-10"),
        ('[[users]]\nname = "a"\npassword = "x"\nmax_concurrent = 0\n',
         "users[0].max_concurrent", 4, ">= 1"),
        ('[[users]]\nname = "a"\npassword = "x"\nskills = ["fr"]\n',
         "users[0].skills", 4, "table"),
        ('[[queues]]\nnumber = "7"\nexit_keys = { "0" = "nowhere" }\n',
         "queues[0].exit_keys", 3, "not an overflow destination"),
        ('[[queues]]\nnumber = "7"\nexit_keys = { "x" = "busy" }\n',
         "queues[0].exit_keys", 3, "DTMF"),
        ('[[queues]]\nnumber = "7"\noverflow = "queue:9"\n',
         "queues[0].overflow", 3, "no queue '9'"),
        ('[[queues]]\nnumber = "7"\nexit_keys = { "1" = "queue:9" }\n',
         "queues[0].exit_keys", 3, "no queue '9'"),
    ],
)
def test_agent_and_queue_engine_key_mistakes_name_key_and_line(text, key, line, words):
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    assert (caught.value.key, caught.value.line) == (key, line)
    assert words in str(caught.value)
