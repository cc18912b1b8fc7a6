"""RFC 3261 section 25 grammar, as named pieces compiled once.

Each constant is named after the ABNF rule it implements, so the module can be read side by
side with the RFC. Every pattern is anchored by the caller (``fullmatch``/``match`` at a
position) and is built from character classes or alternatives that start with distinct
characters, so none of them can backtrack catastrophically.

The helpers at the bottom (quoted strings, comma/semicolon lists, generic parameters) are the
small pieces every header parser shares.
"""

from __future__ import annotations

import re

from trio_voip.errors import SipParseError

__all__ = [
    "ALPHANUM",
    "MARK",
    "UNRESERVED",
    "RESERVED",
    "TOKEN_CHARS",
    "WORD_CHARS",
    "USER_UNRESERVED",
    "PASSWORD_CHARS",
    "PARAM_UNRESERVED",
    "HNV_UNRESERVED",
    "TOKEN",
    "WORD",
    "CALLID",
    "QUOTED_STRING",
    "GEN_VALUE",
    "USER",
    "PASSWORD",
    "PARAMCHARS",
    "HNAME",
    "HVALUE",
    "SCHEME",
    "HOSTNAME",
    "IPV4ADDRESS",
    "PORT",
    "RFC1123_DATE",
    "LWS_CHARS",
    "snip",
    "is_token",
    "quote_string",
    "unquote_string",
    "split_list",
    "parse_params",
    "format_params",
]

# --- character sets (RFC 3261 25.1) -------------------------------------------------------------

ALPHANUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MARK = "-_.!~*'()"
UNRESERVED = ALPHANUM + MARK
RESERVED = ";/?:@&=+$,"
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = ALPHANUM + "-.!%*_+`'~"
# word = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" / "(" / ")"
#          / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}")
WORD_CHARS = TOKEN_CHARS + "()<>:\\\"/[]?{}"
USER_UNRESERVED = "&=+$,;?/"
PASSWORD_CHARS = UNRESERVED + "&=+$,"
PARAM_UNRESERVED = "[]/:&+$"
HNV_UNRESERVED = "[]/?:+$"
LWS_CHARS = " \t"


def _cls(chars: str) -> str:
    return "[" + re.escape(chars) + "]"


_ESCAPED = "%[0-9A-Fa-f]{2}"

TOKEN = re.compile(_cls(TOKEN_CHARS) + "+")
WORD = re.compile(_cls(WORD_CHARS) + "+")
# callid = word [ "@" word ]
CALLID = re.compile(f"{_cls(WORD_CHARS)}+(?:@{_cls(WORD_CHARS)}+)?")
# quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE; quoted-pair excludes CR and LF.
QUOTED_STRING = re.compile(r'"(?:[^"\\\r\n]|\\[^\r\n])*"')
# gen-value = token / host / quoted-string (the quoted form is checked separately)
GEN_VALUE = re.compile(_cls(TOKEN_CHARS + ":[]") + "+")
# user = 1*(unreserved / escaped / user-unreserved)
USER = re.compile(f"(?:{_cls(UNRESERVED + USER_UNRESERVED)}|{_ESCAPED})+")
# password = *(unreserved / escaped / "&" / "=" / "+" / "$" / ",")
PASSWORD = re.compile(f"(?:{_cls(PASSWORD_CHARS)}|{_ESCAPED})*")
# paramchar = param-unreserved / unreserved / escaped
PARAMCHARS = re.compile(f"(?:{_cls(PARAM_UNRESERVED + UNRESERVED)}|{_ESCAPED})+")
# hname = 1*(hnv-unreserved / unreserved / escaped); hvalue = *(same)
HNAME = re.compile(f"(?:{_cls(HNV_UNRESERVED + UNRESERVED)}|{_ESCAPED})+")
HVALUE = re.compile(f"(?:{_cls(HNV_UNRESERVED + UNRESERVED)}|{_ESCAPED})*")
# scheme = ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# hostname, loosely: labels of alphanum / "-" / "_" separated by dots, optional final dot.
# The structure (no empty label, no leading "-") is checked in code, not by backtracking.
HOSTNAME = re.compile(r"[A-Za-z0-9_\-.]+")
IPV4ADDRESS = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
PORT = re.compile(r"[0-9]{1,5}")
# rfc1123-date = wkday "," SP date1 SP time SP "GMT"
RFC1123_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)

_TOKEN_FULL = TOKEN.fullmatch
_GEN_VALUE_FULL = GEN_VALUE.fullmatch
_QUOTED_FULL = QUOTED_STRING.fullmatch
_QUOTED_MATCH = QUOTED_STRING.match
_UNESCAPE_PAIR = re.compile(r"\\(.)", re.DOTALL)
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x08\x0a-\x1f\x7f]')


def snip(text: str, limit: int = 40) -> str:
    """Quote a piece of input for an error message, cut short so errors stay small."""
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def is_token(text: str) -> bool:
    return _TOKEN_FULL(text) is not None


def quote_string(text: str) -> str:
    """Render ``text`` as a quoted-string, escaping what qdtext cannot carry."""
    if "\r" in text or "\n" in text:
        raise SipParseError(f"CR/LF cannot appear in a quoted-string: {snip(text)}")
    if _NEEDS_ESCAPE.search(text) is not None:
        text = _NEEDS_ESCAPE.sub(lambda m: "\\" + m.group(), text)
    return f'"{text}"'


def unquote_string(quoted: str) -> str:
    """The content of a quoted-string (which the caller has matched), with quoted-pairs undone."""
    inner = quoted[1:-1]
    if "\\" in inner:
        inner = _UNESCAPE_PAIR.sub(r"\1", inner)
    return inner


def split_list(value: str, sep: str) -> list[str]:
    """Split on ``sep`` except inside quoted-strings and ``<...>``."""
    if sep not in value:
        return [value]
    if '"' not in value and "<" not in value:
        return value.split(sep)
    parts = []
    start = 0
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == '"':
            m = _QUOTED_MATCH(value, i)
            if m is None:
                raise SipParseError(f"unterminated quoted-string in {snip(value)}")
            i = m.end()
            continue
        if c == "<":
            j = value.find(">", i)
            if j < 0:
                raise SipParseError(f"unterminated '<' in {snip(value)}")
            i = j + 1
            continue
        if c == sep:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    parts.append(value[start:])
    return parts


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``name[=value]`` pieces separated by ``;`` (the text after the first SEMI).

    generic-param = token [ EQUAL gen-value ]. Names are case-insensitive and come back
    lower-cased; values are kept as written (a quoted-string keeps its quotes) so that
    serialising gives back the same parameter.
    """
    params = []
    for piece in split_list(text, ";"):
        name, eq, val = piece.partition("=")
        name = name.strip(LWS_CHARS)
        if _TOKEN_FULL(name) is None:
            raise SipParseError(f"bad parameter {snip(piece)}")
        if eq:
            val = val.strip(LWS_CHARS)
            if val[:1] == '"':
                if _QUOTED_FULL(val) is None:
                    raise SipParseError(f"bad quoted parameter value {snip(piece)}")
            elif _GEN_VALUE_FULL(val) is None:
                raise SipParseError(f"bad parameter value {snip(piece)}")
            params.append((name.lower(), val))
        else:
            params.append((name.lower(), None))
    return tuple(params)


def format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)
