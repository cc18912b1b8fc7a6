"""Configuration of a :class:`SessionCoordinator`: :class:`CoordinatorConfig` and the fluent
:class:`SessionManagerBuilder` that fills it in.

    coordinator = (
        SessionManagerBuilder()
        .listen("127.0.0.1", 0)             # UDP and TCP; 0 = any free port
        .rtp_ports(20000, 20999)
        .handler(MyHandler())
        .user("alice", "secret")            # registrar + Digest users
        .require_auth(invite=True, register=True)
        .build()
    )
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

from trio_voip.errors import TrioVoipError
from trio_voip.offer_answer import DEFAULT_CODECS, Codec
from trio_voip.session.handler import CallHandler
from trio_voip.sip.session_timer import SessionTimerConfig
from trio_voip.sip.stack import SipTransport
from trio_voip.sip.transaction import TimerConfig

if TYPE_CHECKING:
    from trio_voip.session.coordinator import SessionCoordinator

__all__ = ["TransportFactory", "CoordinatorConfig", "SessionManagerBuilder"]

TransportFactory = Callable[[str, int], SipTransport]
"""``(host, port) -> transport``: e.g. a ``MemoryNetwork.transport`` for in-memory tests."""


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _check_port(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise TrioVoipError(f"{attribute.name} must be 0-65535, not {value}")


@attrs.frozen
class CoordinatorConfig:
    """Everything a coordinator needs; see :class:`SessionManagerBuilder` for the meaning."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=5060, validator=_check_port)
    transports: tuple[str, ...] = ("UDP", "TCP")
    advertise: str | None = None
    media_address: str | None = None
    rtp_start: int = 20000
    rtp_end: int = 20999
    codecs: tuple[Codec, ...] = DEFAULT_CODECS
    users: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, repr=False)
    domains: tuple[str, ...] = ()
    realm: str | None = None
    auth_invite: bool = False
    auth_register: bool = True
    digest_algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    timers: TimerConfig = TimerConfig()
    session_timers: SessionTimerConfig | None = None
    max_calls: int = 1000
    ring_timeout: float = 120.0
    answer_timeout: float = 180.0
    shutdown_timeout: float = 2.0
    event_buffer: int = 1000
    media_relay: bool = False
    music_on_hold: str | None = None
    user_agent: str = "trio-voip"
    transport_factory: TransportFactory | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if not 0 < self.rtp_start <= self.rtp_end <= 65535:
            raise TrioVoipError(f"bad RTP port range {self.rtp_start}-{self.rtp_end}")
        if self.max_calls < 1:
            raise TrioVoipError("max_calls must be at least 1")
        if not self.answer_timeout > 0:
            raise TrioVoipError("answer_timeout must be positive")
        if self.music_on_hold is not None and not self.media_relay:
            raise TrioVoipError("music on hold needs relayed media (builder.media_relay())")
        if self.auth_invite and not self.users:
            raise TrioVoipError("INVITE authentication needs users (builder.user(name, password))")

    @property
    def public_host(self) -> str:
        """The host we write in Contact, SDP and From: ``advertise``, else the bound host."""
        if self.advertise is not None:
            return self.advertise
        return "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def domain(self) -> str:
        return self.domains[0] if self.domains else self.public_host


class SessionManagerBuilder:
    """Fluent builder of a :class:`SessionCoordinator`: each method returns the builder.

    ``SessionManagerBuilder(**fields)`` also works, with the :class:`CoordinatorConfig` field
    names.
    """

    def __init__(self, handler: CallHandler | None = None, **fields: object) -> None:
        users = fields.pop("users", None) or {}
        self._users: dict[str, str] = dict(users)  # type: ignore[call-overload]
        self._fields = fields
        self._handler = handler

    def listen(
        self, host: str, port: int = 0, *, transports: Iterable[str] = ("UDP", "TCP")
    ) -> SessionManagerBuilder:
        """SIP on ``host``:``port`` (0: a free port each; read them from
        ``coordinator.port(transport)`` once started)."""
        self._fields.update(host=host, port=port, transports=tuple(t.upper() for t in transports))
        return self

    def advertise(self, host: str) -> SessionManagerBuilder:
        """The host to write in Contact and SDP (when bound to a wildcard or behind NAT)."""
        self._fields["advertise"] = host
        return self

    def media_address(self, host: str) -> SessionManagerBuilder:
        self._fields["media_address"] = host
        return self

    def rtp_ports(self, start: int, end: int) -> SessionManagerBuilder:
        self._fields.update(rtp_start=start, rtp_end=end)
        return self

    def media_relay(self, enabled: bool = True) -> SessionManagerBuilder:
        """Terminate media of calls answered or placed with our own SDP on an RTP relay
        endpoint (bound on the listen host), so two-party bridges relay their packets."""
        self._fields["media_relay"] = enabled
        return self

    def music_on_hold(self, wav_path: str | os.PathLike[str]) -> SessionManagerBuilder:
        """Play this WAV file (8 kHz mono 16-bit), looped, to a call we put on hold until we
        resume it. Needs :meth:`media_relay`; see :mod:`trio_voip.session.media`."""
        self._fields["music_on_hold"] = os.fspath(wav_path)
        return self

    def codecs(self, *codecs: Codec) -> SessionManagerBuilder:
        self._fields["codecs"] = tuple(codecs)
        return self

    def handler(self, handler: CallHandler) -> SessionManagerBuilder:
        self._handler = handler
        return self

    def user(self, name: str, password: str) -> SessionManagerBuilder:
        """A user of our domain: may REGISTER and, with auth on, call in."""
        self._users[name] = password
        return self

    def users(self, users: Mapping[str, str]) -> SessionManagerBuilder:
        self._users.update(users)
        return self

    def domain(self, *domains: str) -> SessionManagerBuilder:
        """The domains we serve (the first is ours in From and the Digest realm)."""
        self._fields["domains"] = tuple(domains)
        return self

    def require_auth(self, *, invite: bool = True, register: bool = True) -> SessionManagerBuilder:
        self._fields.update(auth_invite=invite, auth_register=register)
        return self

    def digest_algorithms(self, *algorithms: str) -> SessionManagerBuilder:
        """The Digest algorithms we challenge with, most preferred first (default SHA-256,
        MD5). ``"MD5"`` alone suits UAs that answer only the first challenge (SIPp)."""
        self._fields["digest_algorithms"] = tuple(algorithms)
        return self

    def credentials(self, username: str, password: str) -> SessionManagerBuilder:
        """What we answer 401/407 challenges to our own requests with."""
        self._fields["credentials"] = (username, password)
        return self

    def timers(self, timers: TimerConfig) -> SessionManagerBuilder:
        self._fields["timers"] = timers
        return self

    def session_timers(
        self, enabled: bool = True, config: SessionTimerConfig | None = None
    ) -> SessionManagerBuilder:
        """RFC 4028 session timers on (with ``config``, default settings otherwise) or off."""
        self._fields["session_timers"] = (config or SessionTimerConfig()) if enabled else None
        return self

    def limits(
        self,
        *,
        max_calls: int | None = None,
        ring_timeout: float | None = None,
        answer_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        event_buffer: int | None = None,
    ) -> SessionManagerBuilder:
        """``max_calls`` at once (more are refused with 503; default 1000).
        ``ring_timeout``: how long an incoming call we ring (``CallDecision.defer()``) waits
        for an answer before 480 (default 120 s). ``answer_timeout``: how long an outgoing
        call waits for its final response after the INVITE and after each provisional
        response before it is cancelled and ends NO_ANSWER (408) -- a UA's Timer C (RFC 3261
        16.6); default 180 s, ``TimerConfig.timer_c`` overrides it when set.
        ``shutdown_timeout`` bounds the hang-ups on leaving ``async with`` (default 2 s);
        ``event_buffer`` is a subscriber's default buffer (default 1000)."""
        for name, value in (
            ("max_calls", max_calls),
            ("ring_timeout", ring_timeout),
            ("answer_timeout", answer_timeout),
            ("shutdown_timeout", shutdown_timeout),
            ("event_buffer", event_buffer),
        ):
            if value is not None:
                self._fields[name] = value
        return self

    def transport_factory(self, factory: TransportFactory) -> SessionManagerBuilder:
        """Use ``factory(host, port)`` instead of real UDP/TCP sockets (tests)."""
        self._fields["transport_factory"] = factory
        return self

    def config(self) -> CoordinatorConfig:
        try:
            return CoordinatorConfig(users=self._users, **self._fields)  # type: ignore[arg-type]
        except TypeError as exc:
            raise TrioVoipError(f"bad coordinator setting: {exc}") from exc

    def build(self) -> SessionCoordinator:
        from trio_voip.session.coordinator import SessionCoordinator

        return SessionCoordinator(self.config(), self._handler or CallHandler())
