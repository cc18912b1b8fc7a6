"""A registrar and location service (RFC 3261 section 10), and a registration client, sans-IO.

:class:`LocationService` holds the bindings of each address-of-record (AOR);
:class:`Registrar` turns a REGISTER into a response, following RFC 3261 10.3 step by step;
:class:`RegistrationClient` is the UA end: it builds REGISTERs, answers challenges and says
when to refresh. None of them does I/O or reads a clock: time is the ``now`` argument, and
expiry is driven by ``next_deadline()`` / ``on_timer(now)``.

Choices:

* **AOR canonical form** (10.3 step 5): ``scheme:user@host`` with the host lower-cased (and
  without a trailing dot), the user part as written (userinfo is case-sensitive, 19.1.4), no
  password, no URI parameters or headers, and the port only when it is not the scheme's
  default (5060 for ``sip``, 5061 for ``sips``). ``sip:`` and ``sips:`` AORs differ (19.1.4:
  a SIP and a SIPS URI are never equivalent). Escaping is normalised, since URIs are stored
  unescaped and written back one way.
* **Step 1**, a Request-URI outside our domains: 404, which RFC 3261 21.4.5 gives for "the
  domain in the Request-URI does not match any of the domains handled by the recipient" (a
  proxy in front of the registrar forwards such requests before they get here). A
  Request-URI that is not SIP/SIPS: 416.
* **Step 5**, a To that is not a SIP/SIPS URI (RFC 4475 3.3.4, ``isbn:``): 400, as RFC 4475
  says. A To in a domain we do not serve, or an AOR ``users`` says does not exist: 404. The AOR
  is read before the authorization check (step 4 needs it), but a bad AOR is answered only
  after authentication, in the RFC's order.
* Authentication: a REGISTER without Digest credentials (none, or only unknown schemes, RFC
  4475 3.3.7) gets a 401 challenge without counting as a failure. Credentials whose ``uri``
  does not match the Request-URI get 400 (RFC 2617 3.2.2.5). ``STALE`` is answered with a
  ``stale=TRUE`` challenge, ``FAILURE``/``REPLAY`` with a fresh one, ``RATE_LIMITED`` with 403.
* A contact without ``q`` ranks as ``q=1.0``; equal ``q`` keep the order of first
  registration. Contacts of any URI scheme are accepted (RFC 3261 10.2.1).
* Limits: more contacts than ``max_contacts_per_aor`` for one AOR is refused with 403 (a
  policy answer: retrying does not help); a new AOR beyond ``max_aors`` with 503 (the server
  is full).
* RFC 5626 (outbound) basics: with ``Supported: outbound`` (or Require) in the REGISTER, a
  contact carrying both ``+sip.instance`` and ``reg-id`` is a flow: it replaces the binding of
  the same instance and reg-id whatever its URI, and the 200 carries ``Require: outbound``.
  Without the option tag, ``reg-id`` is ignored. More than one contact with ``reg-id``: 400.
  Not implemented: the 439 check of the edge proxy's Path, Flow-Timer, GRUU.
* RFC 3327 (Path): the Path of a REGISTER is stored with its bindings; it is echoed in the
  200 only when the UA said ``Supported: path``.
"""

from __future__ import annotations

import email.utils
import enum
import heapq
import math
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TypeAlias

import attrs

from trio_voip.errors import AuthenticationError, RegistrarError, SipParseError
from trio_voip.sip.digest import AuthOutcome, DigestAuthenticator, DigestClient
from trio_voip.sip.digest import parse_challenge, parse_digest_params
from trio_voip.sip.headers import Contact, Headers, NameAddr, parse_delta_seconds, parse_name_addr
from trio_voip.sip.message import Request, Response, make_response
from trio_voip.sip.transaction import new_branch
from trio_voip.sip.uri import SipUri, Uri, parse_uri

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "canonical_aor",
    "Source",
    "Binding",
    "BindingExpired",
    "LocationService",
    "Registrar",
    "RegistrationState",
    "RegistrationSucceeded",
    "RegistrationFailed",
    "Unregistered",
    "RegistrationEvent",
    "RegistrationClient",
    "refresh_delay",
]

SUPPORTED_EXTENSIONS = ("path", "outbound")
"""Option tags the registrar supports (a ``Require`` of anything else gets 420)."""

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
# The header fields a REGISTER needs before anything can be answered sensibly.
_REQUIRED = ("Via", "To", "From", "Call-ID", "CSeq")


def canonical_aor(uri: Uri) -> str:
    """The location-service key of an address-of-record (see the module docstring).

    Raises :class:`RegistrarError` (status 400) for a URI that is not SIP or SIPS.
    """
    if not isinstance(uri, SipUri):
        raise RegistrarError(
            f"an address-of-record must be a SIP or SIPS URI, not {uri.scheme!r}",
            status=400,
            reason="Address-of-record is not a SIP or SIPS URI",
        )
    port = None if uri.port == _DEFAULT_PORTS[uri.scheme] else uri.port
    host = uri.host.lower()
    if host.endswith(".") and len(host) > 1:
        host = host[:-1]
    return str(SipUri(scheme=uri.scheme, user=uri.user, host=host, port=port))


# --- location service ------------------------------------------------------------------------


@attrs.frozen
class Source:
    """Where a REGISTER came from: requests for a NATed UA are sent back there."""

    transport: str
    host: str
    port: int


@attrs.frozen
class Binding:
    """One contact registered for an AOR.

    ``contact`` is the Contact value as registered (display name, URI with its parameters and
    escaped headers, header parameters other than ``expires``). ``path`` is the Path of the
    REGISTER (RFC 3327), top first: the Route set towards the UA. ``instance_id`` is the
    ``+sip.instance`` value unquoted; ``reg_id`` is set only for an RFC 5626 flow.
    """

    aor: str
    contact: Contact
    expires_at: float
    call_id: str
    cseq: int
    q: float | None = None
    path: tuple[NameAddr, ...] = ()
    instance_id: str | None = None
    reg_id: int | None = None
    source: Source | None = None
    user_agent: str | None = None

    @property
    def uri(self) -> Uri:
        return self.contact.uri

    @property
    def flow(self) -> tuple[str, int] | None:
        """``(instance_id, reg_id)`` of an outbound flow, else None."""
        if self.instance_id is None or self.reg_id is None:
            return None
        return self.instance_id, self.reg_id

    def expires_in(self, now: float) -> int:
        """Whole seconds left (at least 1 while the binding is live, 0 once expired)."""
        left = self.expires_at - now
        return max(1, round(left)) if left > 0 else 0


def _rank(binding: Binding) -> float:
    return -(1.0 if binding.q is None else binding.q)


@attrs.frozen
class BindingExpired:
    """A binding reached its expiry time without being refreshed."""

    binding: Binding


@attrs.define
class LocationService:
    """The bindings of every AOR, with their expiry.

    Expired bindings stay stored until :meth:`on_timer` reports them (or a registration of the
    same AOR drops them), but :meth:`lookup` never returns them. Every expired binding is
    reported exactly once, by :meth:`on_timer`.
    """

    max_contacts_per_aor: int = 10
    max_aors: int = 100_000
    _aors: dict[str, tuple[Binding, ...]] = attrs.field(init=False, factory=dict)
    _count: int = attrs.field(init=False, default=0)
    # (expires_at, aor) min-heap; an entry whose binding was refreshed or removed is stale and
    # skipped. Rebuilt when stale entries outnumber live ones, so refreshes cannot grow it.
    _deadlines: list[tuple[float, str]] = attrs.field(init=False, factory=list)
    # Expired bindings dropped by replace(), waiting for on_timer() to report them.
    _dropped: list[BindingExpired] = attrs.field(init=False, factory=list)

    @property
    def count(self) -> int:
        """Bindings stored (expired ones not yet reported by :meth:`on_timer` included)."""
        return self._count

    @property
    def aor_count(self) -> int:
        return len(self._aors)

    def aors(self) -> list[str]:
        return list(self._aors)

    def bindings(self, aor: str) -> tuple[Binding, ...]:
        """Every stored binding of a canonical AOR, expired or not, in registration order."""
        return self._aors.get(aor, ())

    def lookup(self, aor: str | SipUri, now: float) -> list[Binding]:
        """The live bindings of ``aor`` (a canonical AOR string, or any SIP URI of it), best
        ``q`` first."""
        return self._live(canonical_aor(aor if isinstance(aor, SipUri) else parse_uri(aor)), now)

    def _live(self, key: str, now: float) -> list[Binding]:
        live = [b for b in self._aors.get(key, ()) if b.expires_at > now]
        live.sort(key=_rank)
        return live

    def replace(self, aor: str, bindings: Iterable[Binding], now: float) -> None:
        """Make ``bindings`` the bindings of ``aor`` (none: forget the AOR).

        Raises :class:`RegistrarError` without changing anything if a limit would be passed
        (403: too many contacts for the AOR; 503: too many AORs).
        """
        new = tuple(bindings)
        for binding in new:
            if binding.aor != aor:
                raise RegistrarError(f"binding of {binding.aor!r} given for {aor!r}")
        if len(new) > self.max_contacts_per_aor:
            raise RegistrarError(
                f"{len(new)} contacts for {aor!r}, at most {self.max_contacts_per_aor} allowed",
                status=403,
                reason="Too Many Contacts",
            )
        old = self._aors.get(aor, ())
        if new and not old and len(self._aors) >= self.max_aors:
            raise RegistrarError("location service full", status=503)
        for binding in old:
            if binding.expires_at <= now and binding not in new:
                self._dropped.append(BindingExpired(binding))
        if new:
            self._aors[aor] = new
        elif old:
            del self._aors[aor]
        self._count += len(new) - len(old)
        for binding in new:
            if binding not in old:
                heapq.heappush(self._deadlines, (binding.expires_at, aor))
        if len(self._deadlines) > 2 * self._count + 64:
            self._deadlines = [(b.expires_at, a) for a, bs in self._aors.items() for b in bs]
            heapq.heapify(self._deadlines)

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` has something to do, or None."""
        dropped = min((e.binding.expires_at for e in self._dropped), default=None)
        heap = self._deadlines
        while heap:
            when, aor = heap[0]
            if any(b.expires_at == when for b in self._aors.get(aor, ())):
                # a binding still stored may have expired before one already dropped
                return when if dropped is None else min(when, dropped)
            heapq.heappop(heap)
        return dropped

    def on_timer(self, now: float) -> list[BindingExpired]:
        """Remove the bindings expired at ``now`` and report them."""
        events, self._dropped = self._dropped, []
        heap = self._deadlines
        while heap and heap[0][0] <= now:
            _, aor = heapq.heappop(heap)
            bindings = self._aors.get(aor)
            if bindings is None:
                continue
            keep = tuple(b for b in bindings if b.expires_at > now)
            if len(keep) == len(bindings):
                continue
            events.extend(BindingExpired(b) for b in bindings if b.expires_at <= now)
            self._count -= len(bindings) - len(keep)
            if keep:
                self._aors[aor] = keep
            else:
                del self._aors[aor]
        return events


# --- registrar ---------------------------------------------------------------------------------


def _domains(value: str | Iterable[str]) -> frozenset[str]:
    names = [value] if isinstance(value, str) else list(value)
    if not names:
        raise RegistrarError("a registrar needs at least one domain")
    return frozenset(name.lower().rstrip(".") for name in names)


def _has_tag(values: list[str], tag: str) -> bool:
    return any(v.lower() == tag for v in values)


@attrs.frozen
class _Update:
    """One Contact of a REGISTER, read and checked, before anything is stored."""

    contact: Contact
    expires: int
    flow: tuple[str, int] | None
    instance_id: str | None


@attrs.define
class Registrar:
    """RFC 3261 10.3 for the ``domains`` served, storing into ``location``.

    ``users(aor)`` says whether a canonical AOR exists (None: every AOR of our domains does).
    With an ``authenticator``, REGISTERs must carry valid Digest credentials, and
    ``authorize(username, aor)`` says whether that user may change the AOR's bindings (None:
    the username must equal the AOR's user part). ``date`` gives the wall-clock time for the
    Date header of a 200 (None: no Date header); it is separate from ``now``, which may come
    from a monotonic clock, and only ever used for that header.
    """

    domains: frozenset[str] = attrs.field(converter=_domains)
    location: LocationService = attrs.Factory(LocationService)
    authenticator: DigestAuthenticator | None = None
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    users: Callable[[str], bool] | None = None
    authorize: Callable[[str, str], bool] | None = None
    date: Callable[[], float] | None = time.time

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.min_expires <= self.max_expires or self.default_expires <= 0:
            raise RegistrarError(
                "need 0 <= min_expires <= max_expires and a positive default_expires"
            )

    def process(self, request: Request, now: float, source: Source | None) -> Response:
        """The response to a REGISTER (received from ``source``), bindings updated."""
        if request.method != "REGISTER":
            raise RegistrarError(f"a registrar processes REGISTER, not {request.method}")
        for name in _REQUIRED:
            if name not in request.headers:
                return _reply(request, 400, f"Missing {name} header")
        try:
            return self._process(request, now, source)
        except SipParseError as exc:  # a header parsed only now (Path, Require, ...)
            return _reply(request, exc.status, exc.reason)
        except RegistrarError as exc:
            return _reply(request, exc.status, exc.reason)

    def _process(self, request: Request, now: float, source: Source | None) -> Response:
        # Step 1: is the Request-URI a domain we hold bindings for?
        ruri = request.uri
        if not isinstance(ruri, SipUri):
            return _reply(request, 416)
        if ruri.host.lower().rstrip(".") not in self.domains:
            return _reply(request, 404, "Domain Not Served Here")
        # Step 2: Require.
        unsupported = [t for t in request.require if t.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported:
            response = _reply(request, 420)
            response.headers.add("Unsupported", ", ".join(unsupported))
            return response
        # Step 3: authentication.
        username = None
        if self.authenticator is not None:
            outcome = self._authenticate(self.authenticator, request, now, source)
            if isinstance(outcome, Response):
                return outcome
            username = outcome
        # Step 5 (read before 4, which needs it): the AOR, from To.
        to_uri = request.to.uri
        aor = canonical_aor(to_uri)
        assert isinstance(to_uri, SipUri)  # canonical_aor refuses anything else
        # Step 4: may this user change this AOR's bindings?
        if username is not None:
            allowed = (
                self.authorize(username, aor)
                if self.authorize is not None
                else username == to_uri.user
            )
            if not allowed:
                return _reply(request, 403, "Not Allowed To Register This Address")
        if to_uri.host.lower().rstrip(".") not in self.domains or (
            self.users is not None and not self.users(aor)
        ):
            return _reply(request, 404)
        # Steps 6-7: the contacts.
        outbound = _has_tag(request.supported, "outbound") or _has_tag(request.require, "outbound")
        contacts = request.contacts
        updates: list[_Update] = []
        if contacts:  # none: a query, answered with the current bindings
            checked = self._check_contacts(request, contacts, outbound)
            if isinstance(checked, Response):
                return checked
            updates = checked
            error = self._update(request, aor, updates, now, source)
            if error is not None:
                return error
        return self._ok(request, aor, now, any(u.flow is not None for u in updates))

    def _authenticate(
        self, auth: DigestAuthenticator, request: Request, now: float, source: Source | None
    ) -> str | Response:
        values = [v for v in request.headers.get_all("Authorization") if _is_digest(v)]
        if not values:
            return _challenge(request, auth.challenge(now))
        if not _digest_uri_matches(values, auth.realm, request.uri):
            return _reply(request, 400, "Digest URI Does Not Match Request-URI")
        result = auth.verify(
            "REGISTER",
            values,
            now,
            source=(source.host, source.port) if source is not None else None,
            body=request.body,
        )
        if result.outcome is AuthOutcome.RATE_LIMITED:
            response = _reply(request, 403, "Too Many Failed Attempts")
            if result.retry_after is not None:
                response.headers.add("Retry-After", str(math.ceil(result.retry_after)))
            return response
        if not result.ok or result.username is None:
            return _challenge(request, auth.rechallenge(result, now))
        return result.username

    def _check_contacts(
        self, request: Request, contacts: list[Contact], outbound: bool
    ) -> list[_Update] | Response:
        header_expires = request.expires
        if any(c.star for c in contacts):
            # 10.3 step 6: "*" only alone and with Expires: 0.
            if len(contacts) != 1 or header_expires != 0:
                return _reply(request, 400, "Wildcard Contact Needs Expires 0 And No Other")
            return [_Update(contacts[0], 0, None, None)]
        updates = []
        for contact in contacts:
            expires = contact.expires
            if expires is None:
                expires = header_expires if header_expires is not None else self.default_expires
            if 0 < expires < self.min_expires:
                response = _reply(request, 423)
                response.headers.add("Min-Expires", str(self.min_expires))
                return response
            expires = min(expires, self.max_expires)
            instance = contact.param("+sip.instance")
            updates.append(_Update(contact, expires, _flow_of(contact, outbound), instance))
        if outbound and sum(c.has_param("reg-id") for c in contacts) > 1:
            return _reply(request, 400, "More Than One Contact With reg-id")
        return updates

    def _update(
        self,
        request: Request,
        aor: str,
        updates: list[_Update],
        now: float,
        source: Source | None,
    ) -> Response | None:
        call_id = request.call_id
        cseq = request.cseq.seq
        current = [b for b in self.location.bindings(aor) if b.expires_at > now]
        if updates[0].contact.star:
            for binding in current:
                if binding.call_id == call_id and cseq <= binding.cseq:
                    return _out_of_order(request)
            self.location.replace(aor, (), now)
            return None
        path = tuple(parse_name_addr(v) for v in request.headers.get_all("Path"))
        user_agent = request.headers.get("User-Agent")
        result: list[Binding | None] = list(current)
        touched: set[int] = set()  # bindings this request already changed (a repeated contact)
        for update in updates:
            index = _find(result, update)
            if index is not None and index not in touched:
                old = result[index]
                assert old is not None  # removed entries are in touched
                # 10.3 step 7: same Call-ID needs a higher CSeq, else the request fails.
                if old.call_id == call_id and cseq <= old.cseq:
                    return _out_of_order(request)
            if update.expires == 0:
                if index is not None:
                    result[index] = None
                    touched.add(index)
                continue
            binding = Binding(
                aor=aor,
                contact=_without_expires(update.contact),
                expires_at=now + update.expires,
                call_id=call_id,
                cseq=cseq,
                q=update.contact.q,
                path=path,
                instance_id=update.instance_id,
                reg_id=update.flow[1] if update.flow is not None else None,
                source=source,
                user_agent=user_agent,
            )
            if index is None:
                touched.add(len(result))
                result.append(binding)
            else:
                touched.add(index)
                result[index] = binding
        self.location.replace(aor, [b for b in result if b is not None], now)
        return None

    def _ok(self, request: Request, aor: str, now: float, used_outbound: bool) -> Response:
        response = _reply(request, 200)
        headers = response.headers
        for binding in self.location._live(aor, now):
            expires = str(binding.expires_in(now))
            headers.add("Contact", str(binding.contact.with_param("expires", expires)))
        if self.date is not None:
            headers.add("Date", email.utils.formatdate(self.date(), usegmt=True))
        if _has_tag(request.supported, "path") or _has_tag(request.require, "path"):
            for value in request.headers.get_all("Path"):
                headers.add("Path", value)
        if used_outbound:
            headers.add("Require", "outbound")
        headers.add("Supported", ", ".join(SUPPORTED_EXTENSIONS))
        return response


def _flow_of(contact: Contact, outbound: bool) -> tuple[str, int] | None:
    if not outbound:
        return None
    instance = contact.param("+sip.instance")
    reg_id = contact.param("reg-id")
    if instance is None or reg_id is None:
        return None
    # reg-id = 1*DIGIT, 1 to 2**31-1 (RFC 5626 4.2).
    number = parse_delta_seconds(reg_id, "reg-id")
    if not 0 < number < 2**31:
        raise SipParseError(f"reg-id out of range: {number}")
    return instance, number


def _find(bindings: list[Binding | None], update: _Update) -> int | None:
    # RFC 5626: a flow is identified by instance and reg-id, whatever its URI (several flows
    # of one instance share a Contact URI). Otherwise RFC 3261 19.1.4 URI comparison.
    for i, binding in enumerate(bindings):
        if binding is None:
            continue
        if update.flow is not None:
            if binding.flow == update.flow:
                return i
        elif binding.flow is None and binding.uri.equivalent(update.contact.uri):
            return i
    return None


def _without_expires(contact: Contact) -> Contact:
    if not contact.has_param("expires"):
        return contact
    return attrs.evolve(contact, params=tuple(p for p in contact.params if p[0] != "expires"))


def _is_digest(value: str) -> bool:
    scheme = value.split(None, 1)
    return bool(scheme) and scheme[0].lower() == "digest"


def _digest_uri_matches(values: list[str], realm: str, request_uri: Uri) -> bool:
    """Whether the credentials for ``realm`` name the Request-URI (none for it: True, the
    authenticator then fails them itself)."""
    for value in values:
        try:
            _, params = parse_digest_params(value)
        except AuthenticationError:
            continue
        if params.get("realm") != realm or "uri" not in params:
            continue
        try:
            return parse_uri(params["uri"]).equivalent(request_uri)
        except SipParseError:
            return False
    return True


def _reply(request: Request, status: int, reason: str | None = None) -> Response:
    return make_response(request, status, reason, to_tag=secrets.token_hex(6))


def _challenge(request: Request, challenges: list[str]) -> Response:
    response = _reply(request, 401)
    for value in challenges:
        response.headers.add("WWW-Authenticate", value)
    return response


def _out_of_order(request: Request) -> Response:
    return _reply(request, 500, "CSeq Out Of Order")


# --- registration client -------------------------------------------------------------------


class RegistrationState(enum.Enum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"
    FAILED = "failed"


# What each user action may start from; anything else raises RegistrarError.
_STARTS = {
    "register": {RegistrationState.IDLE, RegistrationState.REGISTERED, RegistrationState.FAILED},
    "unregister": {
        RegistrationState.IDLE,
        RegistrationState.REGISTERED,
        RegistrationState.FAILED,
    },
}


@attrs.frozen
class RegistrationSucceeded:
    """The registrar accepted the binding for ``expires`` seconds; ``bindings`` are all the
    contacts it holds for the AOR (ours included)."""

    expires: int
    bindings: tuple[Contact, ...]


@attrs.frozen
class RegistrationFailed:
    """The registration (or removal) failed: the final status, or 408 for a timeout."""

    status: int
    reason: str
    retry_after: int | None = None


@attrs.frozen
class Unregistered:
    """The registrar removed our binding."""


RegistrationEvent: TypeAlias = RegistrationSucceeded | RegistrationFailed | Unregistered

# At most this many 401/407/423 retries for one register() or unregister().
_MAX_RETRIES = 4


def _as_name_addr(contact: NameAddr | Uri) -> NameAddr:
    return contact if isinstance(contact, NameAddr) else NameAddr(contact)


def refresh_delay(expires: int) -> float:
    """Seconds after a successful registration to refresh it: ``expires - max(5, expires/10)``,
    but no sooner than half the interval (a tiny grant must not be refreshed at once)."""
    return max(expires / 2, expires - max(5.0, expires / 10))


@attrs.define
class RegistrationClient:
    """The UA end of registration: one AOR, one contact, one registrar.

    Drive it with :meth:`register` / :meth:`unregister` (each returns the REGISTER to send),
    :meth:`on_response` for every response to it, :meth:`on_timeout` when its transaction
    times out, and :meth:`on_timer` at :meth:`next_deadline` (the refresh time). Every REGISTER
    shares one Call-ID; the CSeq counts up (RFC 3261 10.2.4). ``credentials`` answers 401/407:
    once per fresh challenge, and again only when the server says the nonce was stale.
    After a challenged success, refreshes carry credentials for the same nonce straight away.
    """

    aor: SipUri
    contact: NameAddr = attrs.field(converter=_as_name_addr)
    registrar_uri: SipUri
    credentials: DigestClient | None = None
    expires: int = 3600
    transport: str = "UDP"
    user_agent: str | None = None
    call_id: str = attrs.Factory(lambda: secrets.token_hex(16))
    from_tag: str = attrs.Factory(lambda: secrets.token_hex(6))
    _state: RegistrationState = attrs.field(init=False, default=RegistrationState.IDLE)
    _seq: int = attrs.field(init=False, default=0)
    _pending: Request | None = attrs.field(init=False, default=None)
    _pending_expires: int = attrs.field(init=False, default=0)
    _retries: int = attrs.field(init=False, default=0)
    # The pending request answers the challenge of the previous response (not preemptive).
    _answered: bool = attrs.field(init=False, default=False)
    _answered_nonces: frozenset[str] = attrs.field(init=False, default=frozenset())
    # (credentials header, challenge values) of the last challenge, reused on refresh.
    _challenge: tuple[str, tuple[str, ...]] | None = attrs.field(init=False, default=None)
    _refresh_at: float | None = attrs.field(init=False, default=None)

    @property
    def state(self) -> RegistrationState:
        return self._state

    def register(self) -> Request:
        """Start (or refresh) the registration: the REGISTER to send."""
        return self._start("register", RegistrationState.REGISTERING, self.expires)

    def unregister(self) -> Request:
        """Remove our binding: the REGISTER (``expires=0``) to send."""
        return self._start("unregister", RegistrationState.UNREGISTERING, 0)

    def next_deadline(self) -> float | None:
        return self._refresh_at

    def on_timer(self, now: float) -> Request | None:
        """The refresh REGISTER when it is due, else None."""
        if self._refresh_at is None or now < self._refresh_at:
            return None
        return self.register()

    def on_timeout(self, now: float) -> RegistrationFailed:
        """The transaction of the pending REGISTER timed out."""
        if self._pending is None:
            raise RegistrarError("no REGISTER is pending")
        return self._fail(408, "Request Timeout")

    def on_response(self, response: Response, now: float) -> Request | RegistrationEvent | None:
        """A retry to send (after 401/407/423), the outcome, or None (a provisional
        response, or one that does not answer the pending REGISTER)."""
        pending = self._pending
        if pending is None or response.status < 200:
            return None
        if response.call_id != self.call_id or response.cseq.seq != pending.cseq.seq:
            return None
        status = response.status
        if 200 <= status < 300:
            return self._succeeded(response, now)
        if status in (401, 407):
            return self._challenged(response)
        if status == 423:
            return self._too_brief(response)
        retry_after = response.headers.get("Retry-After")
        seconds = None
        if retry_after is not None:
            try:
                seconds = parse_delta_seconds(retry_after.partition(";")[0].split("(")[0])
            except SipParseError:
                seconds = None
        return self._fail(status, response.reason, seconds)

    # -- internals --

    def _start(self, action: str, state: RegistrationState, expires: int) -> Request:
        if self._state not in _STARTS[action]:
            raise RegistrarError(f"cannot {action} while {self._state.value}")
        self._state = state
        self._retries = 0
        self._refresh_at = None
        return self._send(expires, self._preemptive())

    def _preemptive(self) -> tuple[str, str] | None:
        """Credentials for the last challenge, sent before being asked (nonce-count + 1)."""
        self._answered = False
        self._answered_nonces = frozenset()
        if self._challenge is None or self.credentials is None:
            return None
        name, values = self._challenge
        try:
            value = self.credentials.authorize("REGISTER", str(self.registrar_uri), list(values))
        except AuthenticationError:
            self._challenge = None
            return None
        self._answered_nonces = self._nonces()
        return name, value

    def _nonces(self) -> frozenset[str]:
        if self._challenge is None:
            return frozenset()
        nonces = set()
        for value in self._challenge[1]:
            try:
                nonces.add(parse_challenge(value).nonce)
            except AuthenticationError:
                continue
        return frozenset(nonces)

    def _send(self, expires: int, credentials: tuple[str, str] | None) -> Request:
        self._seq += 1
        h = Headers()
        # The transport fills in sent-by; each REGISTER is a new transaction.
        h.add("Via", f"SIP/2.0/{self.transport} 0.0.0.0;branch={new_branch()}")
        h.add("Max-Forwards", "70")
        h.add("From", str(NameAddr(self.aor).with_tag(self.from_tag)))
        h.add("To", str(NameAddr(self.aor)))
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{self._seq} REGISTER")
        contact = self.contact.with_param("expires", "0") if expires == 0 else self.contact
        h.add("Contact", str(contact))
        h.add("Expires", str(expires))
        if credentials is not None:
            h.add(*credentials)
        if self.user_agent is not None:
            h.add("User-Agent", self.user_agent)
        request = Request("REGISTER", self.registrar_uri, h)
        self._pending = request
        self._pending_expires = expires
        return request

    def _retry(
        self, response: Response, credentials: tuple[str, str] | None
    ) -> Request | RegistrationFailed:
        self._retries += 1
        if self._retries > _MAX_RETRIES:  # e.g. a server that finds every nonce stale
            return self._fail(response.status, response.reason)
        return self._send(self._pending_expires, credentials)

    def _fail(
        self, status: int, reason: str, retry_after: int | None = None
    ) -> RegistrationFailed:
        self._pending = None
        self._refresh_at = None
        self._state = RegistrationState.FAILED
        return RegistrationFailed(status, reason, retry_after)

    def _succeeded(self, response: Response, now: float) -> RegistrationEvent:
        self._pending = None
        if self._pending_expires == 0:
            self._state = RegistrationState.IDLE
            self._refresh_at = None
            return Unregistered()
        bindings = tuple(response.contacts)
        granted: int | None = None
        for contact in bindings:
            if not contact.star and contact.uri.equivalent(self.contact.uri):
                granted = contact.expires
                break
        if granted is None:
            granted = response.expires if response.expires is not None else self._pending_expires
        if granted == 0:
            return self._fail(response.status, "Registrar Kept No Binding")
        self._state = RegistrationState.REGISTERED
        self._refresh_at = now + refresh_delay(granted)
        return RegistrationSucceeded(granted, bindings)

    def _challenged(self, response: Response) -> Request | RegistrationFailed:
        proxy = response.status == 407
        values = response.headers.get_all("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if self.credentials is None or not values:
            return self._fail(response.status, response.reason)
        challenges = []
        for value in values:
            try:
                challenges.append(parse_challenge(value))
            except AuthenticationError:
                continue
        stale = any(c.stale for c in challenges)
        nonces = frozenset(c.nonce for c in challenges)
        # Credentials answering a challenge were refused: wrong password, unless the server
        # only found the nonce stale (and gave a new one).
        if (self._answered and not stale) or (stale and nonces <= self._answered_nonces):
            return self._fail(response.status, response.reason)
        try:
            value = self.credentials.authorize("REGISTER", str(self.registrar_uri), values)
        except AuthenticationError:
            return self._fail(response.status, response.reason)
        name = "Proxy-Authorization" if proxy else "Authorization"
        self._challenge = (name, tuple(values))
        self._answered = True
        self._answered_nonces = nonces
        return self._retry(response, (name, value))

    def _too_brief(self, response: Response) -> Request | RegistrationFailed:
        value = response.headers.get("Min-Expires")
        try:
            minimum = parse_delta_seconds(value, "Min-Expires") if value is not None else None
        except SipParseError:
            minimum = None
        if minimum is None or minimum <= self._pending_expires:
            return self._fail(response.status, response.reason)
        self.expires = minimum
        self._pending_expires = minimum
        return self._retry(response, self._preemptive())
