"""SIP, SIPS and tel URIs (RFC 3261 19.1, 25.1; RFC 3966), and any other scheme kept opaque.

URI components are stored unescaped (``%75ser`` reads back as ``user``) and escaped again
when serialised, so comparison works on meaning rather than spelling. IPv6 hosts are stored
without their brackets (``::1``); ``str()`` adds them back.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import quote, unquote

import attrs

from trio_voip.errors import SipParseError
from trio_voip.sip import grammar as g

__all__ = [
    "SipUri",
    "TelUri",
    "AbsoluteUri",
    "Uri",
    "parse_uri",
    "parse_host",
    "parse_hostport",
    "format_host",
]

_Params = tuple[tuple[str, "str | None"], ...]

# Characters that may stay unescaped in each component when we serialise.
_USER_SAFE = g.MARK + g.USER_UNRESERVED
_PASSWORD_SAFE = g.MARK + "&=+$,"
_PARAM_SAFE = g.MARK + g.PARAM_UNRESERVED
_HEADER_SAFE = g.MARK + g.HNV_UNRESERVED

_USER_FULL = g.USER.fullmatch
_PASSWORD_FULL = g.PASSWORD.fullmatch
_PARAMCHARS_FULL = g.PARAMCHARS.fullmatch
_HNAME_FULL = g.HNAME.fullmatch
_HVALUE_FULL = g.HVALUE.fullmatch
_HOSTNAME_FULL = g.HOSTNAME.fullmatch
_IPV4_FULL = g.IPV4ADDRESS.fullmatch
_PORT_FULL = g.PORT.fullmatch

# uri-parameters that must match when present in either URI (RFC 3261 19.1.4).
_SIGNIFICANT_PARAMS = ("user", "ttl", "method", "maddr", "transport")


def _unescape(text: str) -> str:
    if "%" not in text:
        return text
    # surrogateescape: an escaped octet that is not UTF-8 survives a round trip unchanged.
    return unquote(text, errors="surrogateescape")


def _escape(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def parse_host(text: str) -> str:
    """Validate a host (hostname, IPv4address or ``[IPv6reference]``); IPv6 comes back bare."""
    if not text:
        raise SipParseError("empty host")
    if text[0] == "[":
        if text[-1] != "]":
            raise SipParseError(f"bad IPv6 reference {g.snip(text)}")
        try:
            ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            raise SipParseError(f"bad IPv6 reference {g.snip(text)}") from None
        return text[1:-1]
    if _HOSTNAME_FULL(text) is None:
        if ":" in text:
            try:
                ipaddress.IPv6Address(text)
            except ValueError:
                pass
            else:
                return text
        raise SipParseError(f"bad host {g.snip(text)}")
    if _IPV4_FULL(text) is not None:
        if any(int(octet) > 255 for octet in text.split(".")):
            raise SipParseError(f"bad IPv4 address {g.snip(text)}")
        return text
    # Labels must be non-empty and not start or end with "-"; the top label is not numeric.
    name = text[:-1] if text[-1] == "." else text
    if (
        not name
        or name[0] in ".-"
        or name[-1] in ".-"
        or ".." in name
        or ".-" in name
        or "-." in name
        or name.rpartition(".")[2].isdigit()
    ):
        raise SipParseError(f"bad host name {g.snip(text)}")
    return text


def parse_port(text: str) -> int:
    if _PORT_FULL(text) is None or int(text) > 65535:
        raise SipParseError(f"bad port {g.snip(text)}")
    return int(text)


def parse_hostport(text: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ]."""
    if text[:1] == "[":
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"bad IPv6 reference {g.snip(text)}")
        host = parse_host(text[: end + 1])
        rest = text[end + 1 :]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError(f"bad host:port {g.snip(text)}")
        return host, parse_port(rest[1:])
    host, colon, port = text.partition(":")
    return parse_host(host), parse_port(port) if colon else None


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _format_params(params: _Params) -> str:
    out = []
    for name, value in params:
        out.append(";")
        out.append(_escape(name, _PARAM_SAFE))
        if value is not None:
            out.append("=")
            out.append(_escape(value, _PARAM_SAFE))
    return "".join(out)


def _param(params: _Params, name: str) -> str | None:
    name = name.lower()
    for n, v in params:
        if n == name:
            return v
    return None


def _has_param(params: _Params, name: str) -> bool:
    name = name.lower()
    return any(n == name for n, _ in params)


def _with_param(params: _Params, name: str, value: str | None) -> _Params:
    name = name.lower()
    out = []
    replaced = False
    for n, v in params:
        if n == name:
            if not replaced:
                out.append((n, value))
                replaced = True
        else:
            out.append((n, v))
    if not replaced:
        out.append((name, value))
    return tuple(out)


@attrs.frozen(kw_only=True)
class SipUri:
    """A ``sip:`` or ``sips:`` URI. Build one with keywords: ``SipUri(user="bob", host="h")``."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str
    port: int | None = None
    params: _Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Value of a uri-parameter (None if absent or valueless, see ``has_param``)."""
        return _param(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_param(self, name: str, value: str | None = None) -> SipUri:
        return attrs.evolve(self, params=_with_param(self.params, name, value))

    def without_param(self, name: str) -> SipUri:
        name = name.lower()
        return attrs.evolve(self, params=tuple(p for p in self.params if p[0] != name))

    @property
    def transport(self) -> str | None:
        t = self.param("transport")
        return t.upper() if t else None

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def lr(self) -> bool:
        return self.has_param("lr")

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_SAFE))
            if self.password is not None:
                out.append(":")
                out.append(_escape(self.password, _PASSWORD_SAFE))
            out.append("@")
        out.append(format_host(self.host))
        if self.port is not None:
            out.append(f":{self.port}")
        if self.params:
            out.append(_format_params(self.params))
        if self.headers:
            out.append("?")
            out.append(
                "&".join(
                    f"{_escape(n, _HEADER_SAFE)}={_escape(v, _HEADER_SAFE)}"
                    for n, v in self.headers
                )
            )
        return "".join(out)

    def equivalent(self, other: object) -> bool:
        """URI equality as RFC 3261 19.1.4 defines it (not the same as ``==``)."""
        if not isinstance(other, SipUri):
            return False
        if self.scheme != other.scheme:
            return False
        # userinfo is case-sensitive; everything else is not.
        if self.user != other.user or self.password != other.password:
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {n: v for n, v in self.params}
        theirs = {n: v for n, v in other.params}
        for name in _SIGNIFICANT_PARAMS:
            if (name in mine) != (name in theirs):
                return False
        for name in mine.keys() & theirs.keys():
            a, b = mine[name], theirs[name]
            if (a is None) != (b is None) or (a is not None and a.lower() != b.lower()):
                return False
        # URI headers are never ignored; compared as unordered sets of fields.
        mine_h = sorted((n.lower(), v) for n, v in self.headers)
        theirs_h = sorted((n.lower(), v) for n, v in other.headers)
        return mine_h == theirs_h


@attrs.frozen(kw_only=True)
class TelUri:
    """A ``tel:`` URI (RFC 3966): ``number`` as written (``+1-201-555-0123``) plus parameters."""

    number: str
    params: _Params = ()

    @property
    def scheme(self) -> str:
        return "tel"

    def param(self, name: str) -> str | None:
        return _param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{_format_params(self.params)}"

    def equivalent(self, other: object) -> bool:
        """RFC 3966 5: compare numbers without visual separators, parameters unordered."""
        if not isinstance(other, TelUri):
            return False
        if _tel_digits(self.number) != _tel_digits(other.number):
            return False
        mine = sorted((n, None if v is None else v.lower()) for n, v in self.params)
        theirs = sorted((n, None if v is None else v.lower()) for n, v in other.params)
        return mine == theirs


def _tel_digits(number: str) -> str:
    return "".join(c for c in number.lower() if c not in "-.()")


@attrs.frozen
class AbsoluteUri:
    """A URI of a scheme we do not interpret (``http:``, ``im:``, ...), kept as written."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"

    def equivalent(self, other: object) -> bool:
        return isinstance(other, AbsoluteUri) and self == other


Uri = SipUri | TelUri | AbsoluteUri

_TEL_NUMBER = g.PARAMCHARS.fullmatch
# Characters that may not appear in any URI we accept (whitespace, delimiters of name-addr).
_NOT_URI_CHARS = frozenset(' \t"<>\\^`{|}\r\n')


def parse_uri(text: str) -> Uri:
    """Parse a Request-URI or the URI inside a name-addr."""
    scheme, colon, rest = text.partition(":")
    if not colon or not rest:
        raise SipParseError(f"bad URI {g.snip(text)}")
    lscheme = scheme.lower()
    if lscheme == "sip" or lscheme == "sips":
        return _parse_sip(lscheme, rest, text)
    if g.SCHEME.fullmatch(scheme) is None or not _NOT_URI_CHARS.isdisjoint(rest):
        raise SipParseError(f"bad URI {g.snip(text)}")
    if lscheme == "tel":
        number, semi, params = rest.partition(";")
        if _TEL_NUMBER(number) is None:
            raise SipParseError(f"bad tel URI {g.snip(text)}")
        return TelUri(number=number, params=_parse_uri_params(params, text) if semi else ())
    return AbsoluteUri(lscheme, rest)


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if _USER_FULL(user) is None:
            raise SipParseError(f"bad user part in URI {g.snip(text)}")
        user = _unescape(user)
        if colon:
            if _PASSWORD_FULL(pw) is None:
                raise SipParseError(f"bad password in URI {g.snip(text)}")
            password = _unescape(pw)
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        headers = _parse_uri_headers(rest[q + 1 :], text)
        rest = rest[:q]
    params: _Params = ()
    semi = rest.find(";")
    if semi >= 0:
        params = _parse_uri_params(rest[semi + 1 :], text)
        rest = rest[:semi]
    try:
        host, port = parse_hostport(rest)
    except SipParseError as e:
        raise SipParseError(f"{e} in URI {g.snip(text)}") from None
    return SipUri(
        scheme=scheme,
        user=user,
        password=password,
        host=host,
        port=port,
        params=params,
        headers=headers,
    )


def _parse_uri_params(text: str, uri: str) -> _Params:
    params = []
    for piece in text.split(";"):
        name, eq, value = piece.partition("=")
        if _PARAMCHARS_FULL(name) is None or (eq and _PARAMCHARS_FULL(value) is None):
            raise SipParseError(f"bad URI parameter {g.snip(piece)} in {g.snip(uri)}")
        params.append((_unescape(name).lower(), _unescape(value) if eq else None))
    return tuple(params)


def _parse_uri_headers(text: str, uri: str) -> tuple[tuple[str, str], ...]:
    headers = []
    for piece in text.split("&"):
        name, eq, value = piece.partition("=")
        if not eq or _HNAME_FULL(name) is None or _HVALUE_FULL(value) is None:
            raise SipParseError(f"bad URI header {g.snip(piece)} in {g.snip(uri)}")
        headers.append((_unescape(name), _unescape(value)))
    return tuple(headers)
