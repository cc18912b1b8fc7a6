"""The softswitch's configuration: a TOML file read into frozen attrs classes.

Every key has a default, and the defaults are the demo setup (SIP on 127.0.0.1:5060 UDP+TCP,
RTP 20000-20999 relayed, users 1001-1003, queue 6000 ringing them, the supervisor page on
http://127.0.0.1:8080/), so an empty file, or none, runs the demo. A file overrides what it
names; ``[[users]]`` / ``[[queues]]`` replace the demo lists as a whole (users without
queues: no queues). :data:`EXAMPLE_CONFIG` (``trio-voip config`` prints it) is the defaults
written out, with a comment on every key.

A mistake raises :class:`~trio_voip.errors.ConfigError` naming the key and its line
(``softswitch.toml:7: sip.port: must be 0-65535, not 70000``).
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_voip.callcenter.model import Agent
from trio_voip.callcenter.settings import queue_from_settings
from trio_voip.errors import CallCenterError, ConfigError
from trio_voip.sip.digest import SUPPORTED_ALGORITHMS

__all__ = [
    "EXAMPLE_CONFIG",
    "STRATEGIES",
    "DEMO_USERS",
    "DEMO_QUEUES",
    "SipConfig",
    "RtpConfig",
    "HttpConfig",
    "CallsConfig",
    "CallCenterConfig",
    "UserConfig",
    "QueueConfig",
    "SoftswitchConfig",
    "parse_config",
    "load_config",
]

#: The routing strategies of the call engine (see :mod:`trio_voip.callcenter.strategies`).
STRATEGIES = (
    "ring-all", "longest-idle", "round-robin", "fewest-calls", "least-talk-time", "linear",
    "random", "weighted-random", "skill-based", "ring-progressively",
)

# A SIP user part we accept as a user name or a dialable number: no escaping needed.
_NAME = re.compile(r"[A-Za-z0-9._~+-]{1,64}")

#: The embedded defaults as a TOML file, every key explained: a file to start from.
EXAMPLE_CONFIG = """\
# trio-voip softswitch configuration. Every key is optional: this file is the defaults.

[sip]
host = "127.0.0.1"              # where SIP listens (UDP and TCP); "0.0.0.0" for all
port = 5060
transports = ["udp", "tcp"]
# domain = "pbx.example"        # our domain (From, Digest realm); default: the host
# advertise = "192.0.2.10"      # the host written in Contact and SDP (behind NAT)
auth_invite = true              # calls in must authenticate as one of the users (Digest)
# The Digest challenges, in order; ["MD5"] for UAs that answer only the first (SIPp).
digest_algorithms = ["SHA-256", "MD5"]

[rtp]
start = 20000                   # the relay's ports: an even RTP and the odd RTCP port per call leg
end = 20999
relay = true                    # media flows through us (a bridge connects two relay endpoints)

[http]
enabled = true                  # the supervisor page (/, /api/state, WebSocket /ws)
host = "127.0.0.1"
port = 8080

[calls]
ring_timeout = 30.0             # seconds an extension may ring before the caller gets 480
max_calls = 1000                # call legs at once (a bridged call is two)
shutdown_timeout = 2.0          # seconds live calls get to end (BYE) when we stop

# Users register with their name and password and are called by their name (the extension).
# Setting users replaces the demo users; the demo queue goes with them unless queues are set.
[[users]]
name = "1001"
password = "demo1001"
display_name = "Alice"
# As an agent (a member of a queue):
# skills = { english = 5, billing = 2 }   # levels 1-10, for skill-based routing and queues'
#                                         # required_skills
max_concurrent = 1              # queue calls at once (calls elsewhere count too)
tier = 0                        # tier k is offered a caller only after k * tier_wait seconds
weight = 1.0                    # share of calls under weighted-random

[[users]]
name = "1002"
password = "demo1002"
display_name = "Bob"

[[users]]
name = "1003"
password = "demo1003"
display_name = "Carol"

# The call engine runs the queues: strategies, waiting with music on hold and announcements,
# wrap-up, call records. Queue members are its agents: logged in while their phone is
# registered, busy while on any call.
[callcenter]
store = "callcenter.sqlite"     # SQLite file (in the working directory) that keeps agents,
                                # queues, call records and agent history; "": keep nothing
# music_on_hold = "moh.wav"     # 8 kHz mono 16-bit WAV, looped; default: ringback tone
# recordings = "messages"       # where overflow "recording:<mailbox>" messages go
pause_code = "*46"              # an agent dials it to pause (*46*<reason code>: with a reason)
resume_code = "*47"             # ... and this to resume; two beeps: done, busy tone: refused

[[queues]]
number = "6000"
name = "support"
# ring-all, longest-idle, round-robin, fewest-calls, least-talk-time, linear, random,
# weighted-random, skill-based, ring-progressively
strategy = "ring-all"
members = ["1001", "1002", "1003"]
ring_timeout = 20.0             # seconds an agent's phone rings before the next is tried
wrap_up_time = 0.0              # seconds an agent rests after each call
retry_delay = 5.0               # seconds an agent that missed an offer is left alone
# max_wait = 120.0              # seconds a caller may wait, then goes to overflow
# max_length = 10               # callers at most; more get 486
overflow = "busy"               # busy[:status], queue:<number>, recording:<mailbox>,
                                # announce:<prompt> (when max_wait runs out or the queue empties)
join_empty = "strict"           # refuse callers (480) when: strict (no agent logged in and not
                                # paused), relaxed (none logged in), ignore (never)
leave_empty = "ignore"          # send waiting callers to overflow when the queue empties (same)
# max_no_answer = 3             # misses in a row that pause an agent
# announce_every = 30.0         # seconds between position / estimated wait announcements
estimate_window = 10            # recent answered waits the estimated wait is the mean of
tier_wait = 0.0                 # seconds before each next agent tier is tried
progressive_step = 5.0          # ring-progressively: seconds before one more agent rings
service_level_threshold = 20.0  # seconds: "answered within" for the service level metric
# required_skills = { english = 3 }        # agents need at least these levels
# exit_keys = { "0" = "queue:6001", "9" = "recording:support" }   # DTMF while waiting
"""


def _fail(attribute: attrs.Attribute[Any], message: str) -> typing.NoReturn:
    raise ConfigError(message, key=attribute.name)


def _port(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        _fail(attribute, f"must be 0-65535, not {value}")


def _positive(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        _fail(attribute, f"must be more than 0, not {value}")


def _name(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _NAME.fullmatch(value):
        _fail(attribute, f"{value!r} is not a plain SIP user name (letters, digits, ._~+-)")


def _not_empty(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value:
        _fail(attribute, "must not be empty")


def _feature_code(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 16 or value.strip("0123456789*#"):
        _fail(attribute, "must be 1-16 dial-pad keys (0-9, *, #)")


def _one_of(allowed: tuple[str, ...]) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        values = value if isinstance(value, tuple) else (value,)
        for item in values:
            if item not in allowed:
                _fail(attribute, f"{item!r} is not one of {', '.join(allowed)}")

    return check


@attrs.frozen
class SipConfig:
    host: str = attrs.field(default="127.0.0.1", validator=_not_empty)
    port: int = attrs.field(default=5060, validator=_port)
    transports: tuple[str, ...] = attrs.field(
        default=("udp", "tcp"), validator=[_not_empty, _one_of(("udp", "tcp"))]
    )
    domain: str | None = None
    advertise: str | None = None
    auth_invite: bool = True
    digest_algorithms: tuple[str, ...] = attrs.field(
        default=("SHA-256", "MD5"), validator=[_not_empty, _one_of(SUPPORTED_ALGORITHMS)]
    )


@attrs.frozen
class RtpConfig:
    start: int = attrs.field(default=20000, validator=_port)
    end: int = attrs.field(default=20999, validator=_port)
    relay: bool = True

    def __attrs_post_init__(self) -> None:
        # Whole pairs: an even RTP port and the odd RTCP port above it.
        if self.start < 1 or self.end < self.start + (self.start & 1) + 1:
            raise ConfigError(
                f"range {self.start}-{self.end} holds no even/odd port pair", key="end"
            )


@attrs.frozen
class HttpConfig:
    enabled: bool = True
    host: str = attrs.field(default="127.0.0.1", validator=_not_empty)
    port: int = attrs.field(default=8080, validator=_port)


@attrs.frozen
class CallsConfig:
    ring_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_calls: int = attrs.field(default=1000, validator=_positive)
    shutdown_timeout: float = attrs.field(default=2.0, validator=_positive)


# UserConfig keys that are the call engine's agent settings (trio_voip.callcenter.model.Agent)
_AGENT_KEYS = ("skills", "max_concurrent", "tier", "weight")


@attrs.frozen(hash=False)
class UserConfig:
    name: str = attrs.field(validator=_name)
    password: str = attrs.field(repr=False, validator=_not_empty)
    display_name: str = ""
    # as an agent (trio_voip.callcenter.model.Agent)
    skills: dict[str, int] = attrs.field(factory=dict)
    max_concurrent: int = 1
    tier: int = 0
    weight: float = 1.0

    def __attrs_post_init__(self) -> None:
        for key in _AGENT_KEYS:  # each alone, so that a mistake names its key
            try:
                Agent(self.name, self.name, self.name, **{key: getattr(self, key)})
            except CallCenterError as exc:
                raise ConfigError(str(exc), key=key) from None


def _none_if_empty(value: str | None) -> str | None:
    return value or None


@attrs.frozen
class CallCenterConfig:
    # relative to the working directory; "" (TOML has no null) keeps none
    store: str | None = attrs.field(default="callcenter.sqlite", converter=_none_if_empty)
    music_on_hold: str | None = None
    recordings: str | None = None
    pause_code: str = attrs.field(default="*46", validator=_feature_code)
    resume_code: str = attrs.field(default="*47", validator=_feature_code)


# QueueConfig keys that are the call engine's queue settings (trio_voip.callcenter.settings)
_ENGINE_KEYS = (
    "ring_timeout", "wrap_up_time", "retry_delay", "max_wait", "max_length", "overflow",
    "join_empty", "leave_empty", "max_no_answer", "announce_every", "estimate_window",
    "tier_wait", "progressive_step", "service_level_threshold", "required_skills", "exit_keys",
)


@attrs.frozen(hash=False)
class QueueConfig:
    number: str = attrs.field(validator=_name)
    name: str = ""
    strategy: str = attrs.field(default="ring-all", validator=_one_of(STRATEGIES))
    members: tuple[str, ...] = ()
    ring_timeout: float = attrs.field(default=20.0, validator=_positive)
    wrap_up_time: float = 0.0
    retry_delay: float = 5.0
    max_wait: float | None = None
    max_length: int | None = None
    overflow: str = "busy"
    join_empty: str = "strict"
    leave_empty: str = "ignore"
    max_no_answer: int | None = None
    announce_every: float | None = None
    estimate_window: int = 10
    tier_wait: float = 0.0
    progressive_step: float = 5.0
    service_level_threshold: float = 20.0
    required_skills: dict[str, int] = attrs.field(factory=dict)
    exit_keys: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        for key in _ENGINE_KEYS:  # each alone, so that a mistake names its key
            try:
                queue_from_settings(self.number, self.strategy, {key: getattr(self, key)})
            except CallCenterError as exc:
                message = str(exc).removeprefix(f"queue {self.number!r}: {key}: ")
                raise ConfigError(message, key=key) from None

    def engine_settings(self) -> dict[str, Any]:
        """The call engine's settings of this queue (see :func:`queue_from_settings`)."""
        return {
            key: value for key in _ENGINE_KEYS if (value := getattr(self, key)) is not None
        }


DEMO_USERS: tuple[UserConfig, ...] = (
    UserConfig("1001", "demo1001", "Alice"),
    UserConfig("1002", "demo1002", "Bob"),
    UserConfig("1003", "demo1003", "Carol"),
)
DEMO_QUEUES: tuple[QueueConfig, ...] = (
    QueueConfig("6000", "support", members=("1001", "1002", "1003")),
)


def _unique(items: tuple[Any, ...], field: str, what: str) -> None:
    seen: set[str] = set()
    for index, item in enumerate(items):
        value = getattr(item, field)
        if value in seen:
            raise ConfigError(f"{value!r} is taken twice", key=f"{what}[{index}].{field}")
        seen.add(value)


@attrs.frozen
class SoftswitchConfig:
    sip: SipConfig = SipConfig()
    rtp: RtpConfig = RtpConfig()
    http: HttpConfig = HttpConfig()
    calls: CallsConfig = CallsConfig()
    callcenter: CallCenterConfig = CallCenterConfig()
    users: tuple[UserConfig, ...] = DEMO_USERS
    queues: tuple[QueueConfig, ...] = DEMO_QUEUES

    def __attrs_post_init__(self) -> None:
        _unique(self.users, "name", "users")
        _unique(self.queues, "number", "queues")
        names = {user.name for user in self.users}
        for index, queue in enumerate(self.queues):
            if queue.number in names:
                raise ConfigError(
                    f"{queue.number!r} is a user's extension too", key=f"queues[{index}].number"
                )
            for member in queue.members:
                if member not in names:
                    raise ConfigError(
                        f"{member!r} is not a user", key=f"queues[{index}].members"
                    )
            numbers = {q.number for q in self.queues}
            targets = [("overflow", queue.overflow),
                       *(("exit_keys", target) for target in queue.exit_keys.values())]
            for key, target in targets:
                kind, _, number = target.partition(":")
                if kind == "queue" and number not in numbers:
                    raise ConfigError(
                        f"{target!r}: there is no queue {number!r}", key=f"queues[{index}].{key}"
                    )
        if self.sip.auth_invite and not self.users:
            raise ConfigError("is empty, but sip.auth_invite needs users to check", key="users")

    @property
    def demo_users(self) -> bool:
        """Whether the users are the embedded demo ones (with published passwords)."""
        return self.users == DEMO_USERS


# -- reading TOML into the classes --

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _type_name(tp: Any) -> str:
    if tp in _TYPE_NAMES:
        return _TYPE_NAMES[tp]
    if typing.get_origin(tp) is tuple:
        return "an array"
    return "a table"


def _describe(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _join(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Reader:
    """Builds the config classes from parsed TOML, naming the key and line of a mistake."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def error(self, message: str, path: tuple[str | int, ...]) -> ConfigError:
        return ConfigError(
            message, key=_join(path) or None, line=_line_of(self.text, path), source=self.source
        )

    def value(self, value: object, tp: Any, path: tuple[str | int, ...]) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):  # only ``X | None`` here
            (inner,) = [arg for arg in typing.get_args(tp) if arg is not type(None)]
            return self.value(value, inner, path)
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(f"must be a table, not {_describe(value)}", path)
            item = typing.get_args(tp)[1]
            return {key: self.value(v, item, (*path, key)) for key, v in value.items()}
        if origin is tuple:
            if not isinstance(value, list):
                raise self.error(f"must be an array, not {_describe(value)}", path)
            item = typing.get_args(tp)[0]
            return tuple(self.value(v, item, (*path, i)) for i, v in enumerate(value))
        if attrs.has(tp):
            if not isinstance(value, dict):
                raise self.error(f"must be a table, not {_describe(value)}", path)
            return self.table(value, tp, path)
        ok = (
            isinstance(value, tp) and not (tp is int and isinstance(value, bool))
            or tp is float and isinstance(value, int) and not isinstance(value, bool)
        )
        if not ok:
            raise self.error(f"must be {_type_name(tp)}, not {_describe(value)}", path)
        return float(value) if tp is float else value  # type: ignore[arg-type]

    def table(
        self, data: Mapping[str, object], cls: type[Any], path: tuple[str | int, ...]
    ) -> Any:
        fields = attrs.fields_dict(cls)
        hints = typing.get_type_hints(cls)
        for key in data:
            if key not in fields:
                known = ", ".join(fields)
                raise self.error(f"unknown key (known here: {known})", (*path, key))
        kwargs = {}
        for name, field in fields.items():
            if name in data:
                kwargs[name] = self.value(data[name], hints[name], (*path, name))
            elif field.default is attrs.NOTHING:
                raise self.error("is required", (*path, name))
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            # A validator names the key relative to its table (or a list inside it).
            relative = tuple(_split(exc.key)) if exc.key else ()
            raise self.error(exc.message, (*path, *relative)) from None


def _split(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in key.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            parts.append(int(index))
            rest = rest.removeprefix("[")
    return parts


_HEADER = re.compile(r"\s*(\[\[?)\s*([A-Za-z0-9_.\-\" ]+?)\s*\]\]?\s*(?:#.*)?")


def _assignment(
    tables: tuple[str | int, ...], key: str, current: tuple[str | int, ...]
) -> re.Pattern[str] | None:
    """How ``key`` of table ``tables`` is assigned inside table ``current`` (a dotted key for
    the tables in between), or None if it cannot be assigned there."""
    depth = len(current)
    rest = tables[depth:]
    if tables[:depth] != current or not all(isinstance(part, str) for part in rest):
        return None
    dotted = "".join(rf'"?{re.escape(str(part))}"?\s*\.\s*' for part in rest)
    return re.compile(rf'\s*{dotted}"?{re.escape(key)}"?\s*=')


def _line_of(text: str, path: tuple[str | int, ...]) -> int | None:
    """The 1-based line where ``path`` is set in ``text``: the line of its last key inside its
    table (indices after that key are items of its value), else the header of the deepest
    table of the path. A plain scan, good enough for the files people write, not every TOML
    spelling."""
    keys = [i for i, part in enumerate(path) if isinstance(part, str)]
    if not keys:
        return None
    tables, key = path[: keys[-1]], str(path[keys[-1]])
    counts: dict[str, int] = {}
    best, best_depth = None, 0
    assignment = _assignment(tables, key, ())
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.fullmatch(line)
        if header is None:
            if assignment is not None and assignment.match(line):
                return number
            continue
        name = header.group(2).replace('"', "").replace(" ", "")
        parts: list[str | int] = list(name.split("."))
        if header.group(1) == "[[":
            counts[name] = counts.get(name, -1) + 1
            parts.append(counts[name])
        current = tuple(parts)
        if len(current) > best_depth and path[: len(current)] == current:
            best, best_depth = number, len(current)
        assignment = _assignment(tables, key, current)
    return best


_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def parse_config(text: str, source: str = "<config>") -> SoftswitchConfig:
    """The configuration in TOML ``text`` (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        # "(at end of document)": the last line with something on it.
        line = int(found.group(1)) if found else text.rstrip().count("\n") + 1
        raise ConfigError(f"not valid TOML: {exc}", line=line, source=source) from None
    if "users" in data and "queues" not in data:
        data["queues"] = []  # the demo queue rings the demo users: it goes with them
    return _Reader(text, source).table(data, SoftswitchConfig, ())


def load_config(path: str | Path | None) -> SoftswitchConfig:
    """The configuration in the TOML file at ``path``; None: the embedded defaults."""
    if path is None:
        return SoftswitchConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file: {exc}", source=str(path)) from None
    return parse_config(text, str(path))
