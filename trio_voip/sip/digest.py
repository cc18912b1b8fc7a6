"""HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 8760), sans-IO.

Three layers, each usable alone:

* the header-value codec: :func:`parse_digest_params` / :func:`format_digest` for
  ``WWW-Authenticate``, ``Proxy-Authenticate``, ``Authorization`` and ``Proxy-Authorization``
  values (``Digest realm="x", nonce="y", algorithm=SHA-256, ...``);
* the server side, :class:`DigestAuthenticator`: builds challenges and checks credentials.
  Its nonces authenticate themselves (an HMAC over their issue time), so a challenge costs no
  server state; the only tables it keeps (nonce-counts of nonces in use, failures per source
  address) are bounded and pruned as entries expire;
* the client side, :class:`DigestClient`: answers a 401/407 for a UAC.

Time is always an argument (``now``, in seconds). Servers sharing one ``secret`` must pass the
same clock (e.g. ``time.time()``); a single server can use ``trio.current_time()``.

Choices:

* Algorithms: MD5, SHA-256 and SHA-512-256 (RFC 8760), each also as ``-sess``. SHA-512-256 is
  FIPS 180-4 SHA-512/256, not SHA-512 cut to 256 bits as RFC 7616's example 3.9.2 (and code
  tested against it) computes; see erratum 4897. The server offers one challenge per
  configured algorithm, in the configured order (RFC 8760: most preferred first); the client
  answers the strongest one it supports in each realm.
* qop: the server offers ``auth`` (``auth-int`` can be enabled). Credentials without qop (the
  RFC 2069 form, no cnonce or nonce-count, hence no replay protection) are refused unless
  ``allow_rfc2069=True``, and then only with MD5, the one algorithm RFC 2069 knows. The client
  answers such legacy challenges, since refusing them only locks the user out of old servers.
* ``userhash`` and ``username*`` (RFC 7616) are not supported (credentials using them fail);
  strings are hashed as UTF-8.
* Secrets (password, HA1, response digests) never appear in a ``repr``, an exception or an
  :attr:`AuthResult.reason`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import math
import re
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

import attrs

from trio_voip.errors import AuthenticationError

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "AuthOutcome",
    "AuthResult",
    "CredentialLookup",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestClient",
    "PrecomputedHA1",
    "compute_ha1",
    "format_digest",
    "parse_challenge",
    "parse_digest_params",
]

# --- header value codec (RFC 3261 25.1: challenge / credentials, RFC 7616 3.3-3.4) ------------

_TOKEN_CHARS = r"!%'*+\-.0-9A-Za-z_`~"
_TOKEN_RE = re.compile(rf"[{_TOKEN_CHARS}]++")
# One auth-param: name EQUAL (token / quoted-string), with the LWS around it. Possessive
# quantifiers and alternatives that start with distinct characters: no backtracking.
# qdtext excludes controls other than HTAB (a header layer has unfolded CRLF already), and so
# does a quoted-pair: a value never unquotes to a control character.
_PARAM_RE = re.compile(
    r"[ \t]*+"
    rf"([{_TOKEN_CHARS}]++)"
    r"[ \t]*+=[ \t]*+"
    r'(?:"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*+)"'
    rf"|([{_TOKEN_CHARS}]++))"
    r"[ \t]*+"
)
_SCHEME_RE = re.compile(rf"[ \t]*+([{_TOKEN_CHARS}]++)(?:[ \t]++|\Z)")
_COMMAS_RE = re.compile(r"(?:[ \t]*+,)++")
_END_RE = re.compile(r"[ \t]*+\Z")
_BACKSLASH_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 7616 3.3/3.4: these are tokens on the wire; everything else we send is a quoted-string.
_BARE_PARAMS = frozenset({"algorithm", "nc", "stale"})


def parse_digest_params(value: str) -> tuple[str, dict[str, str]]:
    """Split a challenge or credentials header value into its scheme and auth-params.

    Parameter names are lower-cased; quoted values are unquoted (so ``qop="auth"`` and
    ``qop=auth`` read the same, which tolerates the many UAs that quote what should be bare).
    Empty list elements (``a=1,,b=2``) are skipped. A repeated parameter is an error: two
    ``realm`` values would let the two ends disagree about what was signed.
    """
    if not isinstance(value, str):
        raise AuthenticationError("auth header value must be a str")
    scheme_match = _SCHEME_RE.match(value)
    if scheme_match is None:
        raise AuthenticationError("auth header value does not start with a scheme token")
    scheme = scheme_match.group(1)
    params: dict[str, str] = {}
    pos = scheme_match.end()
    end = len(value)
    while True:
        commas = _COMMAS_RE.match(value, pos)
        if commas is not None:
            pos = commas.end()
        if _END_RE.match(value, pos) is not None:
            break
        match = _PARAM_RE.match(value, pos)
        if match is None:
            raise AuthenticationError(f"malformed auth-param at offset {pos}")
        name = match.group(1).lower()
        if name in params:
            raise AuthenticationError(f"auth-param {name!r} given twice")
        quoted = match.group(2)
        if quoted is None:
            params[name] = match.group(3)
        elif "\\" in quoted:
            params[name] = _BACKSLASH_PAIR_RE.sub(r"\1", quoted)
        else:
            params[name] = quoted
        pos = match.end()
        if pos < end and value[pos] != ",":
            raise AuthenticationError(f"expected ',' between auth-params at offset {pos}")
    return scheme, params


def _quote(text: str) -> str:
    if _CONTROL_RE.search(text):
        # A CR or LF here would let a value inject header lines.
        raise AuthenticationError("control character in auth-param value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_digest(scheme: str, params: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Build a challenge or credentials header value, quoting as RFC 7616 asks.

    ``algorithm``, ``nc`` and ``stale`` are bare tokens. ``qop`` is a quoted list in a
    challenge and a bare token in credentials, which are recognised by their ``response``
    parameter. Every other value is a quoted-string.
    """
    items = list(params.items() if isinstance(params, Mapping) else params)
    if not _TOKEN_RE.fullmatch(scheme):
        raise AuthenticationError("auth scheme must be a token")
    is_credentials = any(name.lower() == "response" for name, _ in items)
    parts = []
    for name, value in items:
        if not _TOKEN_RE.fullmatch(name):
            raise AuthenticationError("auth-param name must be a token")
        lname = name.lower()
        if lname in _BARE_PARAMS or (lname == "qop" and is_credentials):
            if not _TOKEN_RE.fullmatch(value):
                raise AuthenticationError(f"auth-param {lname!r} must be a token")
            parts.append(f"{name}={value}")
        else:
            parts.append(f"{name}={_quote(value)}")
    return f"{scheme} " + ", ".join(parts) if parts else scheme


# --- algorithms ---------------------------------------------------------------------------------


def _hash_available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:  # e.g. an OpenSSL build without SHA-512/256
        return False
    return True


# Canonical name -> (hashlib name, strength rank). Strongest is preferred by the client.
_ALGORITHMS: dict[str, tuple[str, int]] = {
    name: spec
    for name, spec in {
        "MD5": ("md5", 1),
        "SHA-256": ("sha256", 2),
        "SHA-512-256": ("sha512_256", 3),
    }.items()
    if _hash_available(spec[0])
}
_HEX_LENGTH = {name: hashlib.new(spec[0]).digest_size * 2 for name, spec in _ALGORITHMS.items()}
_SESS = "-sess"

SUPPORTED_ALGORITHMS: tuple[str, ...] = tuple(
    name for base in _ALGORITHMS for name in (base, base + _SESS)
)
"""Every ``algorithm`` value this module can compute, in canonical spelling."""

_CANONICAL = {name.upper(): name for name in SUPPORTED_ALGORITHMS}


def _canonical_algorithm(token: str | None) -> str | None:
    """Canonical spelling of an ``algorithm`` value (absent means MD5), or None if unknown."""
    if token is None:
        return "MD5"
    return _CANONICAL.get(token.upper())


def _split_sess(algorithm: str) -> tuple[str, bool]:
    if algorithm.endswith(_SESS):
        return algorithm[: -len(_SESS)], True
    return algorithm, False


def _h(base: str, text: str) -> str:
    return hashlib.new(_ALGORITHMS[base][0], text.encode("utf-8", "surrogatepass")).hexdigest()


def _h_bytes(base: str, data: bytes) -> str:
    return hashlib.new(_ALGORITHMS[base][0], data).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """``H(username ":" realm ":" password)`` in hex: what a server may store, not the password.

    For a ``-sess`` algorithm this is the stored part; the per-session step happens at
    verification. Raises :class:`AuthenticationError` for an unknown algorithm.
    """
    canonical = _canonical_algorithm(algorithm)
    if canonical is None:
        raise AuthenticationError(f"unsupported digest algorithm {algorithm!r}")
    base, _ = _split_sess(canonical)
    return _h(base, f"{username}:{realm}:{password}")


def _response(
    algorithm: str,
    ha1: str,
    *,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    """RFC 7616 3.4.1-3.4.3 (RFC 2069 form when ``qop`` is None), from a stored HA1."""
    base, sess = _split_sess(algorithm)
    if sess:
        ha1 = _h(base, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _h(base, f"{method}:{uri}:{_h_bytes(base, body)}")
    else:
        ha2 = _h(base, f"{method}:{uri}")
    if qop is None:
        return _h(base, f"{ha1}:{nonce}:{ha2}")
    return _h(base, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _split_qop(value: str) -> tuple[str, ...]:
    return tuple(item.strip(" \t").lower() for item in value.split(",") if item.strip(" \t"))


# --- parsed challenge ---------------------------------------------------------------------------


@attrs.frozen
class DigestChallenge:
    """One Digest challenge (a ``WWW-Authenticate`` / ``Proxy-Authenticate`` value).

    ``algorithm`` is the value exactly as sent (None when absent, meaning MD5), because the
    answer must echo it; ``qop`` is the offered list, lower-cased (empty for an RFC 2069
    challenge).
    """

    realm: str
    nonce: str
    algorithm: str | None = None
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False

    @property
    def canonical_algorithm(self) -> str | None:
        """The algorithm in canonical spelling, or None if this module does not know it."""
        return _canonical_algorithm(self.algorithm)


def parse_challenge(value: str) -> DigestChallenge:
    """Parse one Digest challenge value; raises :class:`AuthenticationError` if it is not one."""
    return _challenge_from(*parse_digest_params(value))


def _challenge_from(scheme: str, params: dict[str, str]) -> DigestChallenge:
    if scheme.lower() != "digest":
        raise AuthenticationError(f"not a Digest challenge (scheme {scheme!r})")
    realm = params.get("realm")
    nonce = params.get("nonce")
    if realm is None or nonce is None:
        raise AuthenticationError("Digest challenge without realm or nonce")
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=params.get("algorithm"),
        qop=_split_qop(params["qop"]) if "qop" in params else (),
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
    )


# --- server side ---------------------------------------------------------------------------------


class AuthOutcome(enum.Enum):
    """What :meth:`DigestAuthenticator.verify` concluded, and what the caller should answer."""

    OK = "ok"
    """Credentials are valid; ``AuthResult.username`` is authenticated."""
    STALE = "stale"
    """Right password, but the nonce is expired or not ours: re-challenge with ``stale=True``."""
    FAILURE = "failure"
    """Wrong or unusable credentials: answer a fresh challenge (or 403)."""
    REPLAY = "replay"
    """A nonce-count already seen for this nonce: answer a fresh challenge."""
    RATE_LIMITED = "rate-limited"
    """Too many failures from this source: answer 403 without looking at the credentials."""


@attrs.frozen
class AuthResult:
    """The verdict on one set of credentials.

    ``username`` is the name the credentials claim (None if unreadable); it is authenticated
    only when :attr:`ok`. ``reason`` is for logs and never contains a secret. ``retry_after`` is set for
    ``RATE_LIMITED``: seconds until the source may try again (for a ``Retry-After``).
    """

    outcome: AuthOutcome
    username: str | None = None
    reason: str = ""
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


@attrs.frozen
class PrecomputedHA1:
    """Stored HA1 digests (``H(username:realm:password)``, hex) instead of a password.

    One per base algorithm; credentials using an algorithm whose HA1 is missing fail.
    """

    md5: str | None = attrs.field(default=None, repr=False)
    sha256: str | None = attrs.field(default=None, repr=False)
    sha512_256: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_password(cls, username: str, realm: str, password: str) -> PrecomputedHA1:
        """All the HA1 values this module can compute, for provisioning a user store."""
        return cls(
            **{
                field: compute_ha1(base, username, realm, password)
                for base, field in _HA1_FIELDS.items()
                if base in _ALGORITHMS
            }
        )

    def for_algorithm(self, base: str) -> str | None:
        value: str | None = getattr(self, _HA1_FIELDS[base])
        return value.lower() if value is not None else None


_HA1_FIELDS = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}

CredentialLookup = Callable[[str], "str | PrecomputedHA1 | None"]
"""``username -> password``, a :class:`PrecomputedHA1`, or None for an unknown user."""

# A nonce is urlsafe-base64 of: issue time (IEEE double) | 8 random bytes | 16-byte HMAC tag.
_NONCE_STRUCT = struct.Struct(">d8s")
_NONCE_TAG_SIZE = 16
_NONCE_LEN = 43  # base64 of 32 bytes, unpadded
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}")
_HEX_RE = re.compile(r"[0-9A-Fa-f]++")
# Nonces issued up to this far "in the future" are accepted: servers sharing a secret may
# disagree a little about the time.
_CLOCK_SKEW = 5.0
# How many nonce-counts below the highest seen still count as new: requests sent close
# together (or over several connections) can arrive out of order.
_NC_WINDOW = 64


@attrs.define
class _NonceUse:
    expires: float
    highest_nc: int
    seen: int  # bit i set: highest_nc - i was used


@attrs.define
class _SourceFailures:
    window_start: float
    count: int = 0
    blocked_until: float = -math.inf


def _algorithm_list(names: Iterable[str]) -> tuple[str, ...]:
    canonical = []
    for name in names:
        algorithm = _canonical_algorithm(name)
        if algorithm is None:
            raise AuthenticationError(f"unsupported digest algorithm {name!r}")
        canonical.append(algorithm)
    if not canonical:
        raise AuthenticationError("at least one digest algorithm is needed")
    return tuple(canonical)


def _qop_list(names: Iterable[str]) -> tuple[str, ...]:
    qop = tuple(name.lower() for name in names)
    if not qop or not set(qop) <= {"auth", "auth-int"}:
        raise AuthenticationError("qop must be a non-empty subset of ('auth', 'auth-int')")
    return qop


@attrs.define
class DigestAuthenticator:
    """The server end of Digest authentication for one realm.

    ``credential_lookup(username)`` returns the user's password, a :class:`PrecomputedHA1`,
    or None for an unknown user. Call :meth:`challenge` to build the ``WWW-Authenticate`` (UAS,
    registrar) or ``Proxy-Authenticate`` (proxy) values of a 401/407, and :meth:`verify` on the
    ``Authorization`` / ``Proxy-Authorization`` values of the retried request.

    ``max_failures_per_source`` failures from one host within ``failure_window`` seconds block
    that host for ``block_duration`` seconds. Both internal tables are bounded
    (``max_tracked_nonces``, ``max_tracked_sources``); when the nonce table is full, the
    longest-unused nonce is forgotten and anything older is answered ``STALE``, so forgetting
    never lets a replay through.
    """

    realm: str
    credential_lookup: CredentialLookup = attrs.field(repr=False)
    algorithms: tuple[str, ...] = attrs.field(
        default=("SHA-256", "MD5"), converter=_algorithm_list
    )
    qop: tuple[str, ...] = attrs.field(default=("auth",), converter=_qop_list)
    nonce_lifetime: float = 300.0
    max_failures_per_source: int = 10
    failure_window: float = 60.0
    block_duration: float = 300.0
    allow_rfc2069: bool = False
    max_tracked_nonces: int = 50_000
    max_tracked_sources: int = 10_000
    secret: bytes | None = attrs.field(default=None, repr=False)
    _key: bytes = attrs.field(init=False, repr=False)
    _opaque: str = attrs.field(init=False, repr=False)
    _dummy_ha1: str = attrs.field(init=False, repr=False)
    # Insertion order is (roughly) age order, so pruning pops from the front.
    _nonce_uses: dict[str, _NonceUse] = attrs.field(init=False, factory=dict, repr=False)
    # Nonces issued at or before this time and absent from _nonce_uses may have been evicted.
    _forgotten_before: float = attrs.field(init=False, default=-math.inf, repr=False)
    _failures: dict[str, _SourceFailures] = attrs.field(init=False, factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.realm or _CONTROL_RE.search(self.realm):
            raise AuthenticationError("realm must be a non-empty string without control characters")
        # Without a shared secret, nonces are only good for this instance's lifetime.
        self._key = self.secret if self.secret is not None else secrets.token_bytes(32)
        self._opaque = self._b64(self._mac(b"opaque")[:12])
        self._dummy_ha1 = secrets.token_hex(32)

    # -- challenges --

    def challenge(self, now: float, *, stale: bool = False) -> list[str]:
        """Header values for a 401/407: one challenge per algorithm, most preferred first."""
        nonce = self._new_nonce(now)
        values = []
        for algorithm in self.algorithms:
            params = [
                ("realm", self.realm),
                ("nonce", nonce),
                ("opaque", self._opaque),
                ("algorithm", algorithm),
                ("qop", ",".join(self.qop)),
            ]
            if stale:
                params.append(("stale", "TRUE"))
            values.append(format_digest("Digest", params))
        return values

    def rechallenge(self, result: AuthResult, now: float) -> list[str]:
        """The challenge values to answer a failed :meth:`verify` with (in a 401/407).

        ``STALE`` gets ``stale=TRUE`` so the UA retries without asking its user; ``FAILURE``
        and ``REPLAY`` get a fresh challenge. ``OK`` and ``RATE_LIMITED`` get none: the
        latter should be answered 403 (with ``Retry-After`` if wanted).
        """
        if result.outcome in (AuthOutcome.OK, AuthOutcome.RATE_LIMITED):
            return []
        return self.challenge(now, stale=result.outcome is AuthOutcome.STALE)

    # -- verification --

    def verify(
        self,
        method: str,
        credentials: str | Sequence[str],
        now: float,
        *,
        source: tuple[str, int] | None,
        request_uri: str | None = None,
        body: bytes = b"",
    ) -> AuthResult:
        """Check ``Authorization`` / ``Proxy-Authorization`` value(s) of a request.

        ``credentials`` may be every such value of the request: the one for this realm is
        used (RFC 3261 22.3: a request may carry credentials for several proxies). ``source``
        is the request's (host, port), for rate limiting (None: no limit, e.g. a trusted
        peer). When ``request_uri`` is given the credentials' ``uri`` must equal it. ``body``
        is needed only for ``qop=auth-int``.
        """
        host = source[0] if source is not None else None
        if host is not None:
            retry_after = self._blocked_for(host, now)
            if retry_after is not None:
                return AuthResult(
                    AuthOutcome.RATE_LIMITED,
                    reason="too many failed attempts from this source",
                    retry_after=retry_after,
                )
        result = self._check(method, credentials, now, request_uri, body)
        if result.outcome is AuthOutcome.FAILURE and host is not None:
            self._record_failure(host, now)
        return result

    def _check(
        self,
        method: str,
        credentials: str | Sequence[str],
        now: float,
        request_uri: str | None,
        body: bytes,
    ) -> AuthResult:
        try:
            params = self._select_credentials(credentials)
        except AuthenticationError as exc:
            return AuthResult(AuthOutcome.FAILURE, reason=str(exc))
        username = params.get("username")

        def failure(reason: str) -> AuthResult:
            return AuthResult(AuthOutcome.FAILURE, username=username, reason=reason)

        if username is None:
            return failure("credentials without username")
        for required in ("nonce", "uri", "response"):
            if required not in params:
                return failure(f"credentials without {required}")
        nonce, uri, response = params["nonce"], params["uri"], params["response"]
        if request_uri is not None and uri != request_uri:
            return failure("digest uri does not match the Request-URI")
        algorithm = _canonical_algorithm(params.get("algorithm"))
        if algorithm is None or algorithm not in self.algorithms:
            return failure("algorithm not offered")
        if params.get("userhash", "false").lower() != "false":
            return failure("userhash is not supported")

        qop = params.get("qop")
        nc_value = 0
        if qop is None:
            if not (self.allow_rfc2069 and algorithm == "MD5"):
                return failure("credentials without qop (RFC 2069) are not accepted")
            if "cnonce" in params or "nc" in params:
                return failure("cnonce or nc without qop")
            cnonce = nc = ""
        else:
            qop = qop.lower()
            if qop not in self.qop:
                return failure("qop not offered")
            cnonce = params.get("cnonce", "")
            nc = params.get("nc", "")
            if not cnonce:
                return failure("qop without cnonce")
            if _NC_RE.fullmatch(nc) is None or (nc_value := int(nc, 16)) == 0:
                return failure("malformed nonce-count")
        base, _ = _split_sess(algorithm)
        if len(response) != _HEX_LENGTH[base] or _HEX_RE.fullmatch(response) is None:
            return failure("malformed response digest")

        stored = self.credential_lookup(username)
        if stored is None:
            ha1, known = self._dummy_ha1, False  # hash anyway: no timing hint about who exists
        elif isinstance(stored, PrecomputedHA1):
            stored_ha1 = stored.for_algorithm(base)
            if stored_ha1 is None:
                return failure(f"no stored HA1 for {base}")
            ha1, known = stored_ha1, True
        else:
            ha1, known = compute_ha1(base, username, self.realm, stored), True
        expected = _response(
            algorithm, ha1, method=method, uri=uri, nonce=nonce,
            qop=qop, nc=nc, cnonce=cnonce, body=body,
        )
        matches = hmac.compare_digest(expected.encode(), response.lower().encode())
        if not known:
            return failure("unknown user")
        if not matches:
            return failure("wrong response (bad password?)")

        issued = self._nonce_issued(nonce)
        if issued is None:
            return AuthResult(AuthOutcome.STALE, username=username, reason="nonce not issued here")
        # Checked only for our own nonces: a nonce from before a restart came with another
        # opaque. A missing opaque is tolerated, since it protects nothing here.
        if "opaque" in params and params["opaque"] != self._opaque:
            return failure("opaque does not match")
        if now - issued > self.nonce_lifetime:
            return AuthResult(AuthOutcome.STALE, username=username, reason="nonce expired")
        if issued - now > _CLOCK_SKEW:
            return AuthResult(
                AuthOutcome.STALE, username=username, reason="nonce issued in the future"
            )
        if qop is None:
            return AuthResult(AuthOutcome.OK, username=username)
        return self._use_nonce(nonce, issued, nc_value, username, now)

    def _select_credentials(self, credentials: str | Sequence[str]) -> dict[str, str]:
        values = [credentials] if isinstance(credentials, str) else list(credentials)
        problem = "no Digest credentials"
        for value in values:
            try:
                scheme, params = parse_digest_params(value)
            except AuthenticationError as exc:
                problem = str(exc)
                continue
            if scheme.lower() != "digest":
                continue
            if params.get("realm") == self.realm:
                return params
            problem = "realm mismatch"
        raise AuthenticationError(problem)

    def _use_nonce(
        self, nonce: str, issued: float, nc: int, username: str, now: float
    ) -> AuthResult:
        use = self._nonce_uses.get(nonce)
        if use is None:
            if issued <= self._forgotten_before:
                return AuthResult(
                    AuthOutcome.STALE, username=username, reason="nonce no longer tracked"
                )
            self._prune_nonces(now)
            self._nonce_uses[nonce] = _NonceUse(
                expires=issued + self.nonce_lifetime, highest_nc=nc, seen=1
            )
            return AuthResult(AuthOutcome.OK, username=username)
        if nc > use.highest_nc:
            shift = nc - use.highest_nc
            use.seen = ((use.seen << shift) | 1) & ((1 << _NC_WINDOW) - 1)
            use.highest_nc = nc
            return AuthResult(AuthOutcome.OK, username=username)
        offset = use.highest_nc - nc
        if offset >= _NC_WINDOW or use.seen & (1 << offset):
            return AuthResult(
                AuthOutcome.REPLAY, username=username, reason="nonce-count already used"
            )
        use.seen |= 1 << offset
        return AuthResult(AuthOutcome.OK, username=username)

    def _prune_nonces(self, now: float) -> None:
        table = self._nonce_uses
        while table:
            nonce, use = next(iter(table.items()))
            if use.expires < now:
                del table[nonce]
            elif len(table) >= self.max_tracked_nonces:
                del table[nonce]
                self._forgotten_before = max(
                    self._forgotten_before, use.expires - self.nonce_lifetime
                )
            else:
                break

    # -- nonces --

    def _mac(self, data: bytes) -> bytes:
        message = b"trio-voip digest\0" + self.realm.encode("utf-8", "surrogatepass") + b"\0"
        return hmac.digest(self._key, message + data, "sha256")

    @staticmethod
    def _b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    def _new_nonce(self, now: float) -> str:
        body = _NONCE_STRUCT.pack(float(now), secrets.token_bytes(8))
        return self._b64(body + self._mac(b"nonce" + body)[:_NONCE_TAG_SIZE])

    def _nonce_issued(self, nonce: str) -> float | None:
        """The issue time of a nonce we made, or None for anything else."""
        if len(nonce) != _NONCE_LEN or _NONCE_RE.fullmatch(nonce) is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce + "=")
        except (binascii.Error, ValueError):
            return None
        body, tag = raw[: _NONCE_STRUCT.size], raw[_NONCE_STRUCT.size :]
        if not hmac.compare_digest(tag, self._mac(b"nonce" + body)[:_NONCE_TAG_SIZE]):
            return None
        issued: float = _NONCE_STRUCT.unpack(body)[0]
        return issued if math.isfinite(issued) else None

    # -- rate limiting --

    def _blocked_for(self, host: str, now: float) -> float | None:
        state = self._failures.get(host)
        if state is None or state.blocked_until <= now:
            return None
        return state.blocked_until - now

    def _record_failure(self, host: str, now: float) -> None:
        table = self._failures
        state = table.pop(host, None)  # re-inserted at the end: the table stays in activity order
        if state is None or now - state.window_start > self.failure_window:
            state = _SourceFailures(window_start=now)
        state.count += 1
        if state.count >= self.max_failures_per_source:
            state.blocked_until = now + self.block_duration
            state.count = 0
            state.window_start = now
        while table:
            oldest_host, oldest = next(iter(table.items()))
            idle = (
                now - oldest.window_start > self.failure_window and oldest.blocked_until <= now
            )
            if idle or len(table) >= self.max_tracked_sources:
                del table[oldest_host]
            else:
                break
        table[host] = state


# --- client side ---------------------------------------------------------------------------------


def _new_cnonce() -> str:
    return secrets.token_urlsafe(16)


@attrs.define
class DigestClient:
    """The UAC end: answers 401/407 challenges with credentials.

    Keeps a nonce-count per nonce (for the last ``max_nonces`` nonces), so credentials built
    again for the same nonce (e.g. reusing it on the next REGISTER) count up.
    ``cnonce_factory`` exists for test vectors; the default is 128 random bits.
    """

    username: str
    password: str = attrs.field(repr=False)
    cnonce_factory: Callable[[], str] = attrs.field(default=_new_cnonce, repr=False)
    max_nonces: int = 32
    _nonce_counts: dict[str, int] = attrs.field(init=False, factory=dict, repr=False)

    def authorize(
        self, method: str, uri: str, challenges: str | Sequence[str], body: bytes = b""
    ) -> str:
        """The ``Authorization`` / ``Proxy-Authorization`` value answering the strongest
        supported Digest challenge among ``challenges`` (all the challenge values of one
        response). ``uri`` is the Request-URI of the retried request; ``body`` its body, used
        only if the server insists on ``qop=auth-int``.
        """
        return self._answer(method, uri, self._best(self._usable(challenges)), body)

    def authorize_all(
        self, method: str, uri: str, challenges: str | Sequence[str], body: bytes = b""
    ) -> list[str]:
        """One credentials value per realm challenged (RFC 3261 22.3: a forked request can
        collect challenges from several proxies), each for the strongest algorithm offered.
        """
        by_realm: dict[str, list[DigestChallenge]] = {}
        for challenge in self._usable(challenges):
            by_realm.setdefault(challenge.realm, []).append(challenge)
        return [self._answer(method, uri, self._best(group), body) for group in by_realm.values()]

    @staticmethod
    def _usable(challenges: str | Sequence[str]) -> list[DigestChallenge]:
        values = [challenges] if isinstance(challenges, str) else list(challenges)
        usable = []
        for value in values:
            try:
                challenge = parse_challenge(value)
            except AuthenticationError:
                continue  # another scheme, or a value we cannot read: others may do
            if challenge.canonical_algorithm is None:
                continue
            if challenge.qop and not {"auth", "auth-int"} & set(challenge.qop):
                continue
            usable.append(challenge)
        if not usable:
            raise AuthenticationError("no Digest challenge with a supported algorithm and qop")
        return usable

    @staticmethod
    def _best(challenges: list[DigestChallenge]) -> DigestChallenge:
        # max() keeps the first of equals: the server's order decides between equal strengths.
        def strength(challenge: DigestChallenge) -> int:
            base, _ = _split_sess(challenge.canonical_algorithm or "MD5")
            return _ALGORITHMS[base][1]

        return max(challenges, key=strength)

    def _answer(self, method: str, uri: str, challenge: DigestChallenge, body: bytes) -> str:
        algorithm = challenge.canonical_algorithm
        assert algorithm is not None  # filtered by _usable
        base, _ = _split_sess(algorithm)
        if not challenge.qop:
            qop, cnonce, nc = None, "", ""
        else:
            qop = "auth" if "auth" in challenge.qop else "auth-int"
            cnonce = self.cnonce_factory()
            nc = f"{self._next_count(challenge.nonce):08x}"
        response = _response(
            algorithm,
            compute_ha1(base, self.username, challenge.realm, self.password),
            method=method, uri=uri, nonce=challenge.nonce,
            qop=qop, nc=nc, cnonce=cnonce, body=body,
        )
        params = [
            ("username", self.username),
            ("realm", challenge.realm),
            ("nonce", challenge.nonce),
            ("uri", uri),
            ("response", response),
        ]
        if challenge.algorithm is not None:
            params.append(("algorithm", challenge.algorithm))
        if qop is not None:
            params += [("cnonce", cnonce), ("qop", qop), ("nc", nc)]
        if challenge.opaque is not None:
            params.append(("opaque", challenge.opaque))
        return format_digest("Digest", params)

    def _next_count(self, nonce: str) -> int:
        count = self._nonce_counts.pop(nonce, 0) + 1
        while len(self._nonce_counts) >= self.max_nonces:
            del self._nonce_counts[next(iter(self._nonce_counts))]
        self._nonce_counts[nonce] = count
        return count
