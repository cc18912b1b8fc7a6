"""RFC 4028 session timers: the Session-Expires / Min-SE headers and their negotiation.

Everything here is a pure function of messages and configuration; the dialog layer
(``trio_voip.sip.dialog``) owns the clocks. ``refresher`` values are relative to the
transaction that carried them ("uac" = whoever sent that request), so each side translates
them into "do *we* refresh?" with ``we_refresh``.
"""

from __future__ import annotations

import attrs

from trio_voip.errors import DialogError, SipParseError
from trio_voip.sip import grammar as g
from trio_voip.sip.message import Request, Response, make_response
from trio_voip.sip.transaction import new_branch

__all__ = [
    "MIN_SE_FLOOR",
    "SessionExpires",
    "SessionTimerConfig",
    "UasNegotiation",
    "parse_session_expires",
    "parse_min_se",
    "supports_timer",
    "check_min_se",
    "negotiate_uas",
    "negotiate_uac",
    "request_headers",
    "retry_after_422",
    "refresh_delay",
    "expiry_delay",
]

MIN_SE_FLOOR = 90
"""No session interval may be shorter than this (RFC 4028 4, 5)."""
_REFRESHERS = ("uac", "uas")
# delta-seconds is 1*DIGIT; bound it so a hostile value cannot build a huge int.
_MAX_DELTA = 2**32 - 1


def _refresher(_inst: object, _attr: object, value: str | None) -> None:
    if value is not None and value not in _REFRESHERS:
        raise DialogError(f"refresher must be 'uac' or 'uas', not {g.snip(value)}")


@attrs.frozen
class SessionExpires:
    """A Session-Expires value: the interval in seconds and who refreshes (if stated)."""

    interval: int
    refresher: str | None = attrs.field(default=None, validator=_refresher)

    def __str__(self) -> str:
        if self.refresher is None:
            return str(self.interval)
        return f"{self.interval};refresher={self.refresher}"


def _delta(text: str, what: str) -> int:
    text = text.strip(" \t")
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        raise SipParseError(f"bad {what} value {g.snip(text)}")
    value = int(text)
    if value > _MAX_DELTA:
        raise SipParseError(f"{what} value {value} is too large")
    return value


def parse_session_expires(value: str) -> SessionExpires:
    """``delta-seconds *(;se-params)``; unknown parameters are ignored (RFC 4028 4)."""
    delta, semi, rest = value.partition(";")
    interval = _delta(delta, "Session-Expires")
    refresher = None
    if semi:
        for name, param in g.parse_params(rest):
            if name == "refresher":
                if param is None or param.lower() not in _REFRESHERS:
                    raise SipParseError(f"bad refresher in Session-Expires {g.snip(value)}")
                refresher = param.lower()
    return SessionExpires(interval, refresher)


def parse_min_se(value: str) -> int:
    """``delta-seconds *(;generic-param)``."""
    return _delta(value.partition(";")[0], "Min-SE")


def supports_timer(message: Request | Response) -> bool:
    """Does the message list ``timer`` in Supported (or Require)?"""
    for name in ("Supported", "Require"):
        for option in message.headers.get_all(name):
            if option.lower() == "timer":
                return True
    return False


def _positive_min_se(_inst: object, _attr: object, value: int) -> None:
    if value < MIN_SE_FLOOR:
        raise DialogError(f"min_se must be at least {MIN_SE_FLOOR} s, not {value}")


def _session_expires(inst: SessionTimerConfig, _attr: object, value: int) -> None:
    if value < inst.min_se:
        raise DialogError(f"session_expires {value} is below min_se {inst.min_se}")


def _refresh_method(_inst: object, _attr: object, value: str) -> None:
    if value not in ("UPDATE", "INVITE"):
        raise DialogError(f"refresh_method must be 'UPDATE' or 'INVITE', not {value!r}")


@attrs.frozen
class SessionTimerConfig:
    """Our side of session timers.

    ``session_expires`` is the interval we ask for (and the most we accept), ``min_se`` the
    shortest we accept (smaller requests get a 422). ``refresher`` is who we pick when the
    peer supports timers but left the choice to us. ``refresh_method`` is what the
    application should send when ``RefreshSession`` fires.
    """

    min_se: int = attrs.field(default=MIN_SE_FLOOR, validator=_positive_min_se)
    session_expires: int = attrs.field(default=1800, validator=_session_expires)
    refresher: str = attrs.field(default="uac", validator=_refresher)
    refresh_method: str = attrs.field(default="UPDATE", validator=_refresh_method)


def _header_session_expires(message: Request | Response) -> SessionExpires | None:
    value = message.headers.get("Session-Expires")
    return None if value is None else parse_session_expires(value)


def _header_min_se(message: Request | Response) -> int | None:
    value = message.headers.get("Min-SE")
    return None if value is None else parse_min_se(value)


def check_min_se(request: Request, config: SessionTimerConfig) -> Response | None:
    """The 422 to answer when the request asks for a shorter session than we allow (RFC 4028 9).

    The 422 carries our Min-SE so the UAC can retry with a larger Session-Expires.
    """
    se = _header_session_expires(request)
    if se is None or se.interval >= config.min_se:
        return None
    response = make_response(request, 422)
    response.headers.add("Min-SE", str(config.min_se))
    return response


@attrs.frozen
class UasNegotiation:
    """What a UAS puts in its 2xx: the Session-Expires value and whether to add Require: timer."""

    session_expires: SessionExpires
    require: bool

    @property
    def we_refresh(self) -> bool:
        return self.session_expires.refresher == "uas"

    def headers(self) -> list[tuple[str, str]]:
        out = [("Session-Expires", str(self.session_expires))]
        if self.require:
            out.append(("Require", "timer"))
        return out


def negotiate_uas(request: Request, config: SessionTimerConfig) -> UasNegotiation:
    """Choose the interval and refresher for the 2xx to ``request`` (RFC 4028 9).

    Call after ``check_min_se`` passed. We may lower the requested interval to our
    ``session_expires`` but never below the request's Min-SE (or 90 s) and never raise it. A
    UAC that does not support timers cannot refresh, so we do; when it supports them and did
    not choose, ``config.refresher`` decides. Require: timer goes in whenever the UAC supports
    the extension (a MUST when it refreshes, a SHOULD otherwise).
    """
    supported = supports_timer(request)
    se = _header_session_expires(request)
    floor = max(_header_min_se(request) or MIN_SE_FLOOR, MIN_SE_FLOOR)
    if se is None:
        # The UAC did not ask; we may still run a timer, refreshing it ourselves if need be.
        interval = max(config.session_expires, floor)
        refresher = config.refresher if supported else "uas"
    else:
        interval = max(min(se.interval, config.session_expires), min(floor, se.interval))
        if not supported:
            refresher = "uas"
        else:
            refresher = se.refresher or config.refresher
    return UasNegotiation(SessionExpires(interval, refresher), require=supported)


def negotiate_uac(response: Response) -> SessionExpires | None:
    """The session the 2xx to our request set up, or None when it has no Session-Expires
    (then there is no session timer, RFC 4028 7.2). A 2xx without a refresher leaves the
    refreshing to us, the side that wants the timer."""
    se = _header_session_expires(response)
    if se is None:
        return None
    if se.refresher is None:
        return attrs.evolve(se, refresher="uac")
    return se


def request_headers(
    config: SessionTimerConfig, current: SessionExpires | None = None, *, we_refresh: bool = True
) -> list[tuple[str, str]]:
    """Headers for a request that asks for (or refreshes) a session timer (RFC 4028 7.1, 7.4).

    For a refresh, ``current`` is the running session and ``we_refresh`` says who refreshes
    it now; the refresher parameter is stated from the point of view of this request.
    """
    if current is None:
        se = SessionExpires(config.session_expires)
    else:
        se = SessionExpires(current.interval, "uac" if we_refresh else "uas")
    return [
        ("Supported", "timer"),
        ("Session-Expires", str(se)),
        ("Min-SE", str(config.min_se)),
    ]


def retry_after_422(request: Request, response: Response) -> Request:
    """``request`` again after a 422 (RFC 4028 7.4): Session-Expires and Min-SE raised to the
    422's Min-SE, the next CSeq and a fresh branch (a new transaction). For an initial INVITE,
    hand the result to ``DialogLayer.start_uac`` again. Assumes our single Via (we are a UAC).
    """
    if response.status != 422:
        raise DialogError(f"a {response.status} is not a 422")
    min_se = _header_min_se(response)
    if min_se is None:
        raise DialogError("the 422 has no Min-SE")
    se = _header_session_expires(request)
    interval = max(min_se, se.interval if se is not None else 0)
    refresher = se.refresher if se is not None else None
    headers = request.headers.copy()
    headers.set("Session-Expires", str(SessionExpires(interval, refresher)))
    headers.set("Min-SE", str(min_se))
    headers.set("CSeq", f"{request.cseq.seq + 1} {request.method}")
    headers.set("Via", str(request.top_via.with_param("branch", new_branch())))
    return Request(request.method, request.uri, headers, request.body)


def refresh_delay(interval: int) -> float:
    """When the refresher sends its refresh, counted from the last 2xx: half the interval."""
    return interval / 2


def expiry_delay(interval: int) -> float:
    """When a side that saw no refresh gives up and sends BYE (RFC 4028 10)."""
    return interval - min(32.0, interval / 3)
