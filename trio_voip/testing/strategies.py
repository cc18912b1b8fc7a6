"""Hypothesis strategies for SIP values and messages, for our tests and yours.

Everything generated is valid, and round-trips: ``parse_message(bytes(m)) == m`` for every
``m`` drawn from ``requests()`` or ``responses()`` (names of generated parameters are lower
case, as the parser gives them back).
"""

from __future__ import annotations

import functools

from hypothesis import strategies as st

from trio_voip.sip.grammar import TOKEN_CHARS, WORD_CHARS, quote_string
from trio_voip.sip.headers import (
    CANONICAL_NAMES,
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Via,
)
from trio_voip.sip.message import Request, Response
from trio_voip.sip.uri import AbsoluteUri, SipUri, TelUri

__all__ = [
    "tokens",
    "hosts",
    "sip_uris",
    "tel_uris",
    "absolute_uris",
    "uris",
    "display_names",
    "name_addrs",
    "contacts",
    "vias",
    "cseqs",
    "call_ids",
    "header_texts",
    "requests",
    "responses",
    "messages",
]

_ALPHA = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Factories are cached: building a strategy costs far more than drawing from it.
_VIA_SPECIAL = frozenset({"branch", "received", "rport", "maddr", "ttl"})


@functools.cache
def tokens(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    """RFC 3261 ``token``."""
    return st.text(TOKEN_CHARS, min_size=min_size, max_size=max_size)


@functools.cache
def _names() -> st.SearchStrategy[str]:
    return tokens(max_size=8).map(str.lower)


@functools.cache
def _text(min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[str]:
    """Any text without control characters or lone surrogates."""
    return st.text(
        st.characters(blacklist_categories=("Cc", "Cs")), min_size=min_size, max_size=max_size
    )


@functools.cache
def hosts() -> st.SearchStrategy[str]:
    """Host names, IPv4 addresses and (bare) IPv6 addresses."""
    label = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
    top = st.text(_ALPHA, min_size=1, max_size=6)
    hostname = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, max_size=3), top)
    ipv4 = st.ip_addresses(v=4).map(str)
    ipv6 = st.ip_addresses(v=6).map(str)
    return st.one_of(hostname, ipv4, ipv6)


@functools.cache
def _ports() -> st.SearchStrategy[int | None]:
    return st.none() | st.integers(1, 65535)


@functools.cache
def sip_uris(*, with_headers: bool = True) -> st.SearchStrategy[SipUri]:
    """SIP/SIPS URIs with arbitrary (escaped on output) user, password, parameters."""
    params = st.lists(st.tuples(_names(), st.none() | _text(1)), max_size=3).map(tuple)
    headers = st.lists(st.tuples(_text(1, 8), _text(0, 8)), max_size=2).map(tuple)

    @st.composite
    def build(draw: st.DrawFn) -> SipUri:
        user = draw(st.none() | _text(1, 12))
        return SipUri(
            scheme=draw(st.sampled_from(["sip", "sips"])),
            user=user,
            password=None if user is None else draw(st.none() | _text(0, 8)),
            host=draw(hosts()),
            port=draw(_ports()),
            params=draw(params),
            headers=draw(headers) if with_headers else (),
        )

    return build()


@functools.cache
def tel_uris() -> st.SearchStrategy[TelUri]:
    number = st.from_regex(r"\+[0-9]{1,3}(-?[0-9]{1,4}){1,4}", fullmatch=True)
    params = st.lists(st.tuples(_names(), st.none() | tokens()), max_size=2).map(tuple)
    return st.builds(lambda n, p: TelUri(number=n, params=p), number, params)


@functools.cache
def absolute_uris() -> st.SearchStrategy[AbsoluteUri]:
    scheme = st.from_regex(r"[a-z][a-z0-9+.\-]{0,8}", fullmatch=True).filter(
        lambda s: s not in ("sip", "sips", "tel")
    )
    rest = st.text("abcXYZ0129-._~:/?#[]@!$&'()*+,;=%", min_size=1, max_size=20)
    return st.builds(AbsoluteUri, scheme, rest)


@functools.cache
def uris(*, with_headers: bool = True) -> st.SearchStrategy[SipUri | TelUri | AbsoluteUri]:
    return st.one_of(sip_uris(with_headers=with_headers), tel_uris(), absolute_uris())


@functools.cache
def display_names() -> st.SearchStrategy[str | None]:
    # Any character but CR/LF can be carried in a quoted-string.
    chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n")
    return st.none() | st.text(chars, max_size=16)


@functools.cache
def _header_params(exclude: frozenset[str] = frozenset()) -> st.SearchStrategy:
    value = st.none() | tokens() | _text(0, 10).map(quote_string)
    return st.lists(
        st.tuples(_names().filter(lambda n: n not in exclude), value), max_size=3
    ).map(tuple)


@functools.cache
def name_addrs(*, tag: bool | None = None) -> st.SearchStrategy[NameAddr]:
    """name-addrs; ``tag=True`` always adds a tag, ``False`` never, None maybe."""
    exclude = frozenset({"tag"}) if tag is not None else frozenset()

    @st.composite
    def build(draw: st.DrawFn) -> NameAddr:
        addr = NameAddr(
            draw(uris()), draw(_header_params(exclude)), display_name=draw(display_names())
        )
        if tag or (tag is None and draw(st.booleans())):
            addr = addr.with_tag(draw(tokens()))
        return addr

    return build()


@functools.cache
def contacts() -> st.SearchStrategy[Contact]:
    qvalue = st.sampled_from(["0", "1", "0.5", "0.123", "1.000", "0.0"])
    extra = st.tuples(
        st.none() | st.integers(0, 2**32 - 1).map(str), st.none() | qvalue
    )

    @st.composite
    def build(draw: st.DrawFn) -> Contact:
        params = list(draw(_header_params(frozenset({"expires", "q"}))))
        expires, q = draw(extra)
        if expires is not None:
            params.append(("expires", expires))
        if q is not None:
            params.append(("q", q))
        return Contact(draw(uris()), tuple(params), display_name=draw(display_names()))

    return build()


@functools.cache
def vias() -> st.SearchStrategy[Via]:
    transport = st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]) | tokens().map(
        str.upper
    )

    @st.composite
    def build(draw: st.DrawFn) -> Via:
        params: list[tuple[str, str | None]] = [("branch", "z9hG4bK" + draw(tokens()))]
        if draw(st.booleans()):
            params.append(("rport", draw(st.none() | st.integers(1, 65535).map(str))))
        if draw(st.booleans()):
            params.append(("received", str(draw(st.ip_addresses()))))
        params.extend(draw(_header_params(_VIA_SPECIAL)))
        return Via(draw(transport), draw(hosts()), draw(_ports()), tuple(params))

    return build()


@functools.cache
def cseqs(method: str | None = None) -> st.SearchStrategy[CSeq]:
    methods = st.just(method) if method is not None else tokens()
    return st.builds(CSeq, st.integers(0, 2**31 - 1), methods)


@functools.cache
def call_ids() -> st.SearchStrategy[str]:
    word = st.text(WORD_CHARS, min_size=1, max_size=16)
    return st.builds(lambda a, b: a if b is None else f"{a}@{b}", word, st.none() | word)


@functools.cache
def header_texts() -> st.SearchStrategy[tuple[str, str]]:
    """(name, value) of an extension header (never a name the parser knows)."""
    name = tokens().filter(lambda n: n.lower() not in CANONICAL_NAMES).map(lambda n: "X-" + n)
    value = _text(0, 30).map(lambda v: v.strip(" \t"))
    return st.tuples(name, value)


_METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "UPDATE",
            "PRACK", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"]  # fmt: skip


@st.composite
def _headers(draw: st.DrawFn, method: str, *, response: bool) -> Headers:
    fields: list[tuple[str, str]] = [
        ("Via", ", ".join(str(v) for v in draw(st.lists(vias(), min_size=1, max_size=3)))),
        ("From", str(draw(name_addrs(tag=True)))),
        ("To", str(draw(name_addrs(tag=response or None)))),
        ("Call-ID", draw(call_ids())),
        ("CSeq", str(draw(cseqs(method)))),
    ]
    if not response:
        fields.append(("Max-Forwards", str(draw(st.integers(0, 255)))))
    for contact in draw(st.lists(contacts(), max_size=2)):
        fields.append(("Contact", str(contact)))
    fields.extend(draw(st.lists(header_texts(), max_size=4)))
    fields = draw(st.permutations(fields))
    return Headers(fields)


@functools.cache
def requests() -> st.SearchStrategy[Request]:
    @st.composite
    def build(draw: st.DrawFn) -> Request:
        method = draw(st.sampled_from(_METHODS) | tokens())
        headers = draw(_headers(method, response=False))
        body = draw(st.binary(max_size=64))
        headers.add("Content-Length", str(len(body)))
        return Request(method, draw(uris(with_headers=False)), headers, body)

    return build()


@functools.cache
def responses() -> st.SearchStrategy[Response]:
    @st.composite
    def build(draw: st.DrawFn) -> Response:
        headers = draw(_headers(draw(st.sampled_from(_METHODS)), response=True))
        body = draw(st.binary(max_size=64))
        headers.add("Content-Length", str(len(body)))
        return Response(draw(st.integers(100, 699)), draw(_text(0, 20)), headers, body)

    return build()


@functools.cache
def messages() -> st.SearchStrategy[Request | Response]:
    return st.one_of(requests(), responses())
