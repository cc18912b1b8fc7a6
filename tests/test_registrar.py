"""Registrar and location service (RFC 3261 section 10), RFC 4475 REGISTER verdicts, and the
registration client."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trio_voip.errors import RegistrarError
from trio_voip.sip import Contact, parse_message
from trio_voip.sip.digest import DigestAuthenticator, DigestClient
from trio_voip.sip.grammar import RFC1123_DATE
from trio_voip.sip.headers import parse_contact
from trio_voip.sip.message import Request, Response
from trio_voip.sip.registrar import (
    Binding,
    BindingExpired,
    LocationService,
    Registrar,
    RegistrationClient,
    RegistrationFailed,
    RegistrationState,
    RegistrationSucceeded,
    Source,
    Unregistered,
    canonical_aor,
    refresh_delay,
)
from trio_voip.sip.uri import SipUri, parse_uri
from trio_voip.testing.strategies import contacts, sip_uris

TORTURE = Path(__file__).parent / "data" / "torture"
SOURCE = Source("UDP", "192.0.2.10", 5062)
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def register(
    *contacts: str,
    aor: str = "sip:alice@example.com",
    ruri: str = "sip:example.com",
    call_id: str = "c1@ua",
    cseq: int = 1,
    expires: int | None = None,
    extra: tuple[str, ...] = (),
) -> Request:
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKreg" + str(cseq),
        "Max-Forwards: 70",
        f"From: <{aor}>;tag=ft",
        f"To: <{aor}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += list(extra)
    lines.append("Content-Length: 0")
    message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def contact_values(response: Response) -> list[str]:
    return response.headers.get_all("Contact")


def contact_expiries(response: Response) -> dict[str, int]:
    return {str(c.uri): c.expires for c in response.contacts}


def torture(name: str) -> Request:
    message = parse_message((TORTURE / f"{name}.dat").read_bytes())
    assert isinstance(message, Request)
    return message


def authenticator() -> DigestAuthenticator:
    return DigestAuthenticator("example.com", PASSWORDS.get)


# --- AOR canonical form ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:alice@EXAMPLE.com", "sip:alice@example.com"),
        ("sip:alice@example.com:5060;transport=tcp;user=phone", "sip:alice@example.com"),
        ("sip:alice:secret@example.com.", "sip:alice@example.com"),
        ("sip:%61lice@example.com", "sip:alice@example.com"),
        ("sip:alice@example.com:5080", "sip:alice@example.com:5080"),
        ("sips:alice@example.com:5061", "sips:alice@example.com"),
        ("sip:alice@example.com?Subject=hi", "sip:alice@example.com"),
        ("sip:Alice@example.com", "sip:Alice@example.com"),
    ],
)
def test_canonical_aor(uri, aor):
    assert canonical_aor(parse_uri(uri)) == aor


@given(sip_uris())
def test_canonical_aor_is_idempotent_and_ignores_what_does_not_name_the_aor(uri):
    aor = canonical_aor(uri)
    assert canonical_aor(parse_uri(aor)) == aor
    assert canonical_aor(parse_uri(str(uri))) == aor
    variant = SipUri(
        scheme=uri.scheme,
        user=uri.user,
        host=uri.host.upper(),
        port=uri.port,
        params=(("transport", "tcp"),),
        headers=(("Subject", "x"),),
    )
    assert canonical_aor(variant) == aor
    hostport = aor.rpartition("@")[2] if uri.user is not None else aor.partition(":")[2]
    assert "?" not in hostport and ";" not in hostport


def test_canonical_aor_refuses_other_schemes():
    with pytest.raises(RegistrarError) as info:
        canonical_aor(parse_uri("tel:+15551234"))
    assert info.value.status == 400


# --- RFC 4475 -----------------------------------------------------------------------------------


def test_cparam01_contact_param_is_stored_as_a_header_param():
    registrar = Registrar("example.com")
    response = registrar.process(torture("cparam01"), 0.0, SOURCE)
    assert response.status == 200
    [binding] = registrar.location.lookup("sip:watson@example.com", 1.0)
    assert binding.contact.has_param("unknownparam")
    assert isinstance(binding.uri, SipUri) and binding.uri.params == ()
    assert contact_values(response) == [
        "<sip:+19725552222@gw1.example.net>;unknownparam;expires=3600"
    ]


def test_cparam02_url_parameter_is_kept_in_the_uri():
    registrar = Registrar("example.com")
    response = registrar.process(torture("cparam02"), 0.0, SOURCE)
    assert response.status == 200
    [binding] = registrar.location.lookup("sip:watson@example.com", 1.0)
    assert isinstance(binding.uri, SipUri) and binding.uri.has_param("unknownparam")
    assert binding.contact.params == ()
    assert contact_values(response) == [
        "<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"
    ]


def test_regescrt_escaped_header_is_stored_and_returned_as_is():
    registrar = Registrar("example.com")
    response = registrar.process(torture("regescrt"), 0.0, SOURCE)
    assert response.status == 200
    assert contact_values(response) == [
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"
    ]
    [binding] = registrar.location.lookup("sip:user@example.com", 1.0)
    assert isinstance(binding.uri, SipUri)
    assert binding.uri.headers == (("Route", "<sip:sip.example.com>"),)


def test_regaut01_unknown_scheme_gets_our_digest_challenge():
    auth = authenticator()
    registrar = Registrar("example.com", authenticator=auth)
    response = registrar.process(torture("regaut01"), 0.0, SOURCE)
    assert response.status == 401
    challenges = response.headers.get_all("WWW-Authenticate")
    assert challenges and all(c.startswith("Digest ") for c in challenges)
    assert 'realm="example.com"' in challenges[0]
    # The unknown scheme is not a failed attempt: no source gets blocked by sending it.
    for _ in range(auth.max_failures_per_source + 1):
        assert registrar.process(torture("regaut01"), 1.0, SOURCE).status == 401


def test_regaut01_without_authentication_is_a_query():
    # A registrar that does not authenticate ignores the header (RFC 4475 3.3.7).
    response = Registrar("example.com").process(torture("regaut01"), 0.0, SOURCE)
    assert response.status == 200 and contact_values(response) == []


def test_unksm2_isbn_aor_is_refused_with_400():
    registrar = Registrar("example.com")
    response = registrar.process(torture("unksm2"), 0.0, SOURCE)
    assert response.status == 400
    assert registrar.location.count == 0


@settings(max_examples=200, deadline=None)
@given(contacts())
def test_any_contact_is_stored_and_returned_as_registered(contact):
    registrar = Registrar("example.com", min_expires=60, max_expires=3600)
    response = registrar.process(register(str(contact)), 0, SOURCE)
    requested = 3600 if contact.expires is None else contact.expires
    if 0 < requested < 60:
        assert response.status == 423
        return
    assert response.status == 200
    if requested == 0:
        assert response.contacts == [] and registrar.location.count == 0
        return
    [returned] = response.contacts
    assert returned.uri == contact.uri
    assert returned.display_name == contact.display_name
    without = [p for p in returned.params if p[0] != "expires"]
    assert without == [p for p in contact.params if p[0] != "expires"]
    assert returned.expires == min(requested, 3600)


# --- 10.3 steps 1-5 ---------------------------------------------------------------------------


def test_foreign_request_uri_domain_is_404():
    registrar = Registrar(["example.com", "example.org"])
    assert registrar.process(register("<sip:a@h>", ruri="sip:example.net"), 0, SOURCE).status == 404
    assert registrar.process(register("<sip:a@h>", ruri="sip:EXAMPLE.org"), 0, SOURCE).status == 200


def test_non_sip_request_uri_is_416():
    response = Registrar("example.com").process(register("<sip:a@h>", ruri="tel:+1555"), 0, SOURCE)
    assert response.status == 416


def test_unknown_require_is_420_but_path_and_outbound_are_fine():
    registrar = Registrar("example.com")
    response = registrar.process(
        register("<sip:a@h>", extra=("Require: path, foo",)), 0, SOURCE
    )
    assert response.status == 420
    assert response.headers.get_all("Unsupported") == ["foo"]
    assert registrar.location.count == 0
    response = registrar.process(register("<sip:a@h>", extra=("Require: path",)), 0, SOURCE)
    assert response.status == 200


def test_to_in_foreign_domain_or_unknown_user_is_404():
    registrar = Registrar("example.com", users=lambda aor: aor == "sip:alice@example.com")
    for aor, status in [
        ("sip:alice@other.com", 404),
        ("sip:carol@example.com", 404),
        ("sip:alice@example.com", 200),
    ]:
        assert registrar.process(register("<sip:a@h>", aor=aor), 0, SOURCE).status == status


def test_missing_required_header_is_400():
    request = register("<sip:a@h>")
    request.headers.remove("From")
    response = Registrar("example.com").process(request, 0, SOURCE)
    assert response.status == 400


def test_other_methods_are_a_programming_error():
    request = parse_message(
        b"OPTIONS sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n"
        b"CSeq: 1 OPTIONS\r\n\r\n"
    )
    with pytest.raises(RegistrarError):
        Registrar("example.com").process(request, 0, SOURCE)


def test_responses_carry_a_to_tag():
    response = Registrar("example.com").process(register("<sip:a@h>"), 0, SOURCE)
    assert response.to.tag is not None


# --- authentication ----------------------------------------------------------------------------


def authorized(request: Request, challenge: Response, client: DigestClient) -> Request:
    value = client.authorize(
        "REGISTER", str(request.uri), challenges(challenge)
    )
    request.headers.add("Authorization", value)
    return request


def answer(
    registrar: Registrar, challenge: Response, client: DigestClient, cseq: int, now: float
) -> Response:
    """The registrar's response to a REGISTER answering ``challenge`` with ``client``."""
    request = authorized(register("<sip:a@h>", cseq=cseq), challenge, client)
    return registrar.process(request, now, SOURCE)


def challenges(response: Response) -> list[str]:
    return response.headers.get_all("WWW-Authenticate")


def test_digest_round_trip_registers():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("alice", "wonderland")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    assert challenge.status == 401
    assert registrar.location.count == 0
    response = answer(registrar, challenge, client, 2, 1)
    assert response.status == 200
    assert registrar.location.count == 1


def test_digest_scheme_is_case_insensitive():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("alice", "wonderland")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    value = client.authorize("REGISTER", "sip:example.com", challenges(challenge))
    lowered = value.replace("Digest ", "digest\t", 1)
    request = register("<sip:a@h>", cseq=2, extra=(f"Authorization: {lowered}",))
    assert registrar.process(request, 1, SOURCE).status == 200


def test_wrong_password_gets_a_fresh_challenge_then_403_when_rate_limited():
    auth = DigestAuthenticator("example.com", PASSWORDS.get, max_failures_per_source=2)
    registrar = Registrar("example.com", authenticator=auth)
    client = DigestClient("alice", "wrong")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    first = answer(registrar, challenge, client, 2, 1)
    assert first.status == 401
    assert "stale" not in first.headers.get("WWW-Authenticate").lower()
    second = answer(registrar, first, client, 3, 2)
    assert second.status == 401
    blocked = answer(registrar, second, client, 4, 3)
    assert blocked.status == 403
    assert int(blocked.headers.get("Retry-After")) > 0
    assert registrar.location.count == 0


def test_expired_nonce_gets_stale_challenge():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("alice", "wonderland")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    late = 10_000.0  # beyond the nonce lifetime
    response = answer(registrar, challenge, client, 2, late)
    assert response.status == 401
    assert "stale=TRUE" in response.headers.get("WWW-Authenticate")
    retry = answer(registrar, response, client, 3, late)
    assert retry.status == 200


def test_authenticated_user_may_register_only_their_own_aor():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("bob", "builder")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    response = answer(registrar, challenge, client, 2, 1)
    assert response.status == 403
    assert registrar.location.count == 0


def test_custom_authorization_rule():
    registrar = Registrar(
        "example.com",
        authenticator=authenticator(),
        authorize=lambda user, aor: user == "bob" and aor == "sip:alice@example.com",
    )
    client = DigestClient("bob", "builder")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    response = answer(registrar, challenge, client, 2, 1)
    assert response.status == 200


def test_digest_uri_must_match_the_request_uri():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("alice", "wonderland")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    request = register("<sip:a@h>", cseq=2)
    request.headers.add(
        "Authorization",
        client.authorize("REGISTER", "sip:other.example.com", challenges(challenge)),
    )
    assert registrar.process(request, 1, SOURCE).status == 400


def test_digest_uri_compared_as_uris_not_text():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = DigestClient("alice", "wonderland")
    challenge = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    request = register("<sip:a@h>", cseq=2)
    request.headers.add(
        "Authorization",
        client.authorize("REGISTER", "sip:EXAMPLE.COM", challenges(challenge)),
    )
    assert registrar.process(request, 1, SOURCE).status == 200


# --- contacts, expiry, ordering ---------------------------------------------------------------


def test_expires_from_param_then_header_then_default():
    registrar = Registrar("example.com", default_expires=1800)
    response = registrar.process(
        register("<sip:a@h1>;expires=120", "<sip:a@h2>", expires=300), 0, SOURCE
    )
    assert contact_expiries(response) == {"sip:a@h1": 120, "sip:a@h2": 300}
    response = registrar.process(register("<sip:a@h3>", call_id="c2"), 0, SOURCE)
    assert contact_expiries(response)["sip:a@h3"] == 1800


def test_expires_is_capped_at_max_expires():
    response = Registrar("example.com", max_expires=600).process(
        register("<sip:a@h>;expires=99999"), 0, SOURCE
    )
    assert contact_expiries(response) == {"sip:a@h": 600}


def test_interval_too_brief_is_423_with_min_expires_and_changes_nothing():
    registrar = Registrar("example.com", min_expires=60)
    response = registrar.process(register("<sip:a@h1>", "<sip:a@h2>;expires=30"), 0, SOURCE)
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert registrar.location.count == 0
    assert registrar.process(register("<sip:a@h1>;expires=60"), 0, SOURCE).status == 200


def test_remaining_expires_counts_down_and_bindings_expire():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>", expires=100), 0, SOURCE)
    response = registrar.process(register(cseq=2), 40, SOURCE)  # a query
    assert contact_expiries(response) == {"sip:a@h": 60}
    assert registrar.location.lookup("sip:alice@example.com", 99.5) != []
    assert registrar.location.lookup("sip:alice@example.com", 100) == []
    assert registrar.location.next_deadline() == 100
    events = registrar.location.on_timer(100)
    assert [e.binding.uri for e in events] == [parse_uri("sip:a@h")]
    assert registrar.location.count == 0
    assert registrar.location.next_deadline() is None


def test_bindings_listed_by_q_descending_with_absent_q_as_one():
    registrar = Registrar("example.com")
    registrar.process(
        register("<sip:a@low>;q=0.1", "<sip:a@none>", "<sip:a@mid>;q=0.5", "<sip:a@top>;q=1.0"),
        0,
        SOURCE,
    )
    hosts = [b.uri.host for b in registrar.location.lookup("sip:alice@example.com", 1)]
    assert hosts == ["none", "top", "mid", "low"]


def test_200_lists_all_bindings_including_other_call_ids():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@desk>", call_id="desk"), 0, SOURCE)
    response = registrar.process(register("<sip:a@mobile>", call_id="mobile"), 10, SOURCE)
    assert contact_expiries(response) == {"sip:a@desk": 3590, "sip:a@mobile": 3600}


def test_refresh_with_higher_cseq_updates_in_place():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>", expires=100), 0, SOURCE)
    registrar.process(register("<sip:a@h>", cseq=2, expires=300), 50, SOURCE)
    [binding] = registrar.location.lookup("sip:alice@example.com", 60)
    assert binding.expires_at == 350 and binding.cseq == 2
    assert registrar.location.count == 1


@pytest.mark.parametrize("cseq", [1, 4])
def test_same_call_id_with_lower_or_equal_cseq_is_500(cseq):
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>", cseq=4, expires=100), 0, SOURCE)
    request = register("<sip:a@h>", "<sip:a@new>", cseq=cseq, expires=0)
    response = registrar.process(request, 1, SOURCE)
    assert response.status == 500
    [binding] = registrar.location.lookup("sip:alice@example.com", 2)
    assert binding.expires_at == 100  # nothing changed, not even the new contact


def test_different_call_id_replaces_regardless_of_cseq():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>", cseq=9), 0, SOURCE)
    request = register("<sip:a@h>", call_id="rebooted", cseq=1, expires=200)
    response = registrar.process(request, 1, SOURCE)
    assert response.status == 200
    [binding] = registrar.location.lookup("sip:alice@example.com", 2)
    assert binding.call_id == "rebooted" and binding.expires_at == 201


def test_contacts_matched_by_uri_equivalence():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@HOST;foo=1>"), 0, SOURCE)
    registrar.process(register("<sip:a@host>", cseq=2, expires=0), 1, SOURCE)
    assert registrar.location.count == 0


def test_expires_zero_removes_only_that_contact():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@one>", "<sip:a@two>"), 0, SOURCE)
    response = registrar.process(register("<sip:a@one>;expires=0", cseq=2), 1, SOURCE)
    assert list(contact_expiries(response)) == ["sip:a@two"]


def test_removing_an_unknown_contact_is_fine():
    registrar = Registrar("example.com")
    response = registrar.process(register("<sip:a@nowhere>", expires=0), 0, SOURCE)
    assert response.status == 200 and contact_values(response) == []


def test_star_removes_every_binding():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@one>", call_id="x"), 0, SOURCE)
    registrar.process(register("<sip:a@two>", call_id="y", cseq=7), 0, SOURCE)
    response = registrar.process(register("*", call_id="y", cseq=8, expires=0), 1, SOURCE)
    assert response.status == 200 and contact_values(response) == []
    assert registrar.location.count == 0 and registrar.location.aor_count == 0


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [(("*",), None), (("*",), 10), (("*", "<sip:a@h>"), 0)],
)
def test_star_needs_expires_zero_and_no_other_contact(contacts, expires):
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@one>", call_id="x"), 0, SOURCE)
    response = registrar.process(register(*contacts, call_id="y", expires=expires), 1, SOURCE)
    assert response.status == 400
    assert registrar.location.count == 1


def test_star_with_stale_cseq_is_500():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@one>", cseq=5), 0, SOURCE)
    assert registrar.process(register("*", cseq=5, expires=0), 1, SOURCE).status == 500
    assert registrar.location.count == 1


def test_query_returns_bindings_without_changing_them():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>;q=0.7", expires=100), 0, SOURCE)
    response = registrar.process(register(cseq=1, call_id="other"), 10, SOURCE)
    assert contact_values(response) == ["<sip:a@h>;q=0.7;expires=90"]
    assert registrar.location.lookup("sip:alice@example.com", 10)[0].expires_at == 100


def test_binding_records_source_user_agent_and_display_name():
    registrar = Registrar("example.com")
    registrar.process(
        register('"Desk" <sip:a@10.0.0.5:5060;transport=tcp>', extra=("User-Agent: phone/1.0",)),
        0,
        Source("TCP", "203.0.113.9", 40000),
    )
    [binding] = registrar.location.lookup("sip:alice@example.com", 1)
    assert binding.source == Source("TCP", "203.0.113.9", 40000)
    assert binding.user_agent == "phone/1.0"
    assert str(binding.contact) == '"Desk" <sip:a@10.0.0.5:5060;transport=tcp>'


def test_date_header_can_be_left_out():
    response = Registrar("example.com", date=None).process(register("<sip:a@h>"), 0, SOURCE)
    assert "Date" not in response.headers


def test_200_has_date_and_supported():
    registrar = Registrar("example.com", date=lambda: 1_700_000_000.0)
    response = registrar.process(register("<sip:a@h>"), 0, SOURCE)
    assert response.headers.get("Date") == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert RFC1123_DATE.fullmatch(response.headers.get("Date"))
    assert response.supported == ["path", "outbound"]
    # The response is a valid message on the wire.
    assert parse_message(bytes(response)).status == 200


def test_path_stored_and_echoed_only_when_supported():
    registrar = Registrar("example.com")
    path = ("Path: <sip:p2.example.com;lr>", "Path: <sip:p1.example.net;lr>")
    response = registrar.process(register("<sip:a@h>", extra=path), 0, SOURCE)
    assert "Path" not in response.headers
    [binding] = registrar.location.lookup("sip:alice@example.com", 1)
    assert [str(p.uri) for p in binding.path] == ["sip:p2.example.com;lr", "sip:p1.example.net;lr"]
    response = registrar.process(
        register("<sip:a@h>", cseq=2, extra=(*path, "Supported: path")), 1, SOURCE
    )
    assert response.headers.get_all("Path") == [
        "<sip:p2.example.com;lr>",
        "<sip:p1.example.net;lr>",
    ]


def test_malformed_path_is_400():
    response = Registrar("example.com").process(
        register("<sip:a@h>", extra=("Path: <sip:p1 bad>",)), 0, SOURCE
    )
    assert response.status == 400


# --- RFC 5626 outbound ------------------------------------------------------------------------

INSTANCE = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'


def test_outbound_flow_replaced_by_instance_and_reg_id():
    registrar = Registrar("example.com")
    ob = ("Supported: outbound, path",)
    first = registrar.process(
        register(f"<sip:a@192.0.2.1:5060>;{INSTANCE};reg-id=1", extra=ob), 0, SOURCE
    )
    assert first.status == 200
    assert first.require == ["outbound"]
    flow2 = register(f"<sip:a@192.0.2.1:5060>;{INSTANCE};reg-id=2", call_id="c2", extra=ob)
    registrar.process(flow2, 0, SOURCE)
    assert registrar.location.count == 2  # two flows, same URI
    # The UA restarts flow 1 from a new address with a new Call-ID: it replaces the old flow.
    moved = register(f"<sip:a@198.51.100.7:6000>;{INSTANCE};reg-id=1", call_id="c3", extra=ob)
    registrar.process(moved, 1, SOURCE)
    bindings = registrar.location.lookup("sip:alice@example.com", 2)
    flows = sorted((b.reg_id, b.uri.host) for b in bindings)
    assert flows == [(1, "198.51.100.7"), (2, "192.0.2.1")]
    assert all(b.instance_id == "<urn:uuid:00000000-0000-1000-8000-000A95A0E128>" for b in bindings)


def test_reg_id_ignored_without_outbound_option_tag():
    registrar = Registrar("example.com")
    response = registrar.process(register(f"<sip:a@h>;{INSTANCE};reg-id=1"), 0, SOURCE)
    assert response.status == 200 and "Require" not in response.headers
    [binding] = registrar.location.lookup("sip:alice@example.com", 1)
    assert binding.reg_id is None and binding.flow is None
    assert binding.instance_id is not None


@pytest.mark.parametrize("reg_id", ["0", "x", "2147483648"])
def test_bad_reg_id_is_400(reg_id):
    response = Registrar("example.com").process(
        register(f"<sip:a@h>;{INSTANCE};reg-id={reg_id}", extra=("Supported: outbound",)), 0, SOURCE
    )
    assert response.status == 400


def test_two_contacts_with_reg_id_is_400():
    response = Registrar("example.com").process(
        register(f"<sip:a@h1>;{INSTANCE};reg-id=1", f"<sip:a@h2>;{INSTANCE};reg-id=2",
                 extra=("Supported: outbound",)),
        0,
        SOURCE,
    )
    assert response.status == 400


# --- limits ------------------------------------------------------------------------------------


def test_too_many_contacts_for_one_aor_is_403_and_nothing_grows():
    registrar = Registrar("example.com", location=LocationService(max_contacts_per_aor=2))
    registrar.process(register("<sip:a@one>", "<sip:a@two>"), 0, SOURCE)
    response = registrar.process(register("<sip:a@three>", call_id="z"), 0, SOURCE)
    assert response.status == 403
    assert registrar.location.count == 2
    # Replacing an existing contact is still fine.
    assert registrar.process(register("<sip:a@two>", cseq=2), 0, SOURCE).status == 200


def test_too_many_aors_is_503():
    registrar = Registrar("example.com", location=LocationService(max_aors=1))
    assert registrar.process(register("<sip:a@h>"), 0, SOURCE).status == 200
    response = registrar.process(register("<sip:b@h>", aor="sip:bob@example.com"), 0, SOURCE)
    assert response.status == 503
    assert registrar.location.aor_count == 1


def test_expired_bindings_do_not_count_against_the_limit_and_are_still_reported():
    registrar = Registrar("example.com", location=LocationService(max_contacts_per_aor=1))
    registrar.process(register("<sip:a@old>", expires=60), 0, SOURCE)
    assert registrar.process(register("<sip:a@new>", call_id="n"), 61, SOURCE).status == 200
    assert registrar.location.next_deadline() == 60
    events = registrar.location.on_timer(61)
    assert [e.binding.uri.host for e in events] == ["old"]
    assert registrar.location.on_timer(62) == []


def test_location_replace_checks_the_aor():
    location = LocationService()
    binding = Binding("sip:a@example.com", parse_contact("<sip:x@h>"), 10.0, "c", 1)
    with pytest.raises(RegistrarError):
        location.replace("sip:b@example.com", [binding], 0)


def test_lookup_accepts_any_form_of_the_aor():
    registrar = Registrar("example.com")
    registrar.process(register("<sip:a@h>"), 0, SOURCE)
    location = registrar.location
    assert len(location.lookup(parse_uri("sip:alice@EXAMPLE.COM:5060;user=phone"), 1)) == 1
    assert len(location.lookup("sip:alice@example.com;transport=tcp", 1)) == 1
    assert location.lookup("sips:alice@example.com", 1) == []


def test_many_refreshes_do_not_grow_the_timer_heap():
    registrar = Registrar("example.com")
    for seq in range(1, 2000):
        registrar.process(register("<sip:a@h>", cseq=seq), seq, SOURCE)
    assert len(registrar.location._deadlines) < 200
    assert registrar.location.next_deadline() == 1999 + 3600


# --- property: the location service stays consistent ------------------------------------------

AORS = ["alice", "bob", "carol"]
HOSTS = ["h1", "h2", "h3", "h4"]

operation = st.one_of(
    st.tuples(
        st.just("register"),
        st.sampled_from(AORS),
        st.lists(st.sampled_from(HOSTS), min_size=0, max_size=3),
        st.sampled_from(["c1", "c2"]),
        st.integers(1, 6),
        st.sampled_from([0, 0, 30, 60, 100, 500]),
        st.sampled_from([None, "0.1", "0.5", "1"]),
    ),
    st.tuples(st.just("wait"), st.integers(0, 200)),
    st.tuples(st.just("timer")),
    st.tuples(
        st.just("star"), st.sampled_from(AORS), st.sampled_from(["c1", "c2"]), st.integers(1, 6)
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=40))
# found by hypothesis: a binding dropped by a removal hid an earlier one's expiry deadline
@example([("register", "alice", ["h1"], "c1", 1, 60, None),
          ("register", "bob", ["h1"], "c1", 1, 100, None),
          ("wait", 100),
          ("register", "bob", ["h1"], "c1", 1, 0, None)])
def test_random_operations_keep_location_consistent(ops):
    location = LocationService(max_contacts_per_aor=2)
    registrar = Registrar("example.com", location=location, min_expires=60)
    # Reference model: aor -> {host: (call_id, cseq, expires_at, q)}
    model: dict[str, dict[str, tuple[str, int, float, str | None]]] = {a: {} for a in AORS}
    now = 0.0
    reported: list[BindingExpired] = []
    for op in ops:
        if op[0] == "register":
            _, user, hosts, call_id, cseq, expires, q = op
            qparam = f";q={q}" if q else ""
            request = register(
                *(f"<sip:u@{h}>{qparam}" for h in hosts),
                aor=f"sip:{user}@example.com", call_id=call_id, cseq=cseq, expires=expires,
            )
            status = registrar.process(request, now, SOURCE).status
            live = {h: v for h, v in model[user].items() if v[2] > now}
            if not hosts:
                expected = 200
            elif 0 < expires < 60:
                expected = 423
            elif any(h in live and live[h][0] == call_id and cseq <= live[h][1] for h in hosts):
                expected = 500
            else:
                after = dict(live)
                for h in hosts:
                    if expires == 0:
                        after.pop(h, None)
                    else:
                        after[h] = (call_id, cseq, now + expires, q)
                expected = 403 if len(after) > 2 else 200
                if expected == 200:
                    model[user] = after
            assert status == expected, (op, status, expected)
        elif op[0] == "star":
            _, user, call_id, cseq = op
            aor = f"sip:{user}@example.com"
            request = register("*", aor=aor, call_id=call_id, cseq=cseq, expires=0)
            status = registrar.process(request, now, SOURCE).status
            live = model[user]
            stale = any(v[0] == call_id and cseq <= v[1] and v[2] > now for v in live.values())
            assert status == (500 if stale else 200)
            if not stale:
                model[user] = {}
        elif op[0] == "wait":
            now += op[1]
        else:
            reported += location.on_timer(now)
        # Invariants.
        total = 0
        for user in AORS:
            aor = f"sip:{user}@example.com"
            found = location.lookup(aor, now)
            assert all(b.expires_at > now for b in found)
            qs = [1.0 if b.q is None else b.q for b in found]
            assert qs == sorted(qs, reverse=True)
            expected_live = {h: v for h, v in model[user].items() if v[2] > now}
            assert {b.uri.host: b.expires_at for b in found} == {
                h: v[2] for h, v in expected_live.items()
            }
            assert len(location.bindings(aor)) <= 2
            total += len(location.bindings(aor))
        assert location.count == total
        deadline = location.next_deadline()
        stored = [b.expires_at for a in location.aors() for b in location.bindings(a)]
        if stored:
            assert deadline is not None and deadline <= min(stored)
    # Every binding that expired is reported exactly once.
    reported += location.on_timer(now)
    keys = [(e.binding.aor, e.binding.uri.host, e.binding.expires_at) for e in reported]
    assert len(keys) == len(set(keys))
    assert all(e.binding.expires_at <= now for e in reported)
    assert location.count == sum(len(location.lookup(a, now)) for a in location.aors())


# --- registration client ----------------------------------------------------------------------


def make_client(**kwargs) -> RegistrationClient:
    defaults = dict(
        aor=parse_uri("sip:alice@example.com"),
        contact=parse_uri("sip:alice@192.0.2.10:5062"),
        registrar_uri=parse_uri("sip:example.com"),
        credentials=DigestClient("alice", "wonderland"),
    )
    defaults.update(kwargs)
    return RegistrationClient(**defaults)


def exchange(client: RegistrationClient, registrar: Registrar, request: Request, now: float):
    """Send ``request`` to ``registrar`` through the wire format; return what the client says."""
    wire = parse_message(bytes(request))
    response = registrar.process(wire, now, SOURCE)
    return client.on_response(parse_message(bytes(response)), now)


def test_client_registers_through_a_challenge_and_refreshes():
    auth = DigestAuthenticator("example.com", PASSWORDS.get, nonce_lifetime=3600)
    registrar = Registrar("example.com", authenticator=auth)
    client = make_client(expires=600)
    request = client.register()
    assert request.cseq.seq == 1 and request.expires == 600
    retry = exchange(client, registrar, request, 0)
    assert isinstance(retry, Request)
    assert retry.call_id == request.call_id and retry.cseq.seq == 2
    assert retry.headers.get("Authorization").startswith("Digest ")
    outcome = exchange(client, registrar, retry, 0)
    assert outcome == RegistrationSucceeded(
        600, (Contact(parse_uri("sip:alice@192.0.2.10:5062"), (("expires", "600"),)),)
    )
    assert client.state is RegistrationState.REGISTERED
    assert client.next_deadline() == 600 - 60
    assert client.on_timer(500) is None
    refresh = client.on_timer(540)
    assert refresh is not None and refresh.cseq.seq == 3 and refresh.call_id == request.call_id
    # The refresh answers the known nonce at once (nonce-count 2): no new challenge needed.
    assert "nc=00000002" in refresh.headers.get("Authorization")
    assert isinstance(exchange(client, registrar, refresh, 540), RegistrationSucceeded)
    [binding] = registrar.location.lookup("sip:alice@example.com", 541)
    assert binding.expires_at == 1140


def test_client_refresh_after_nonce_expiry_recovers_via_stale():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = make_client(expires=3600)
    retry = exchange(client, registrar, client.register(), 0)
    assert isinstance(exchange(client, registrar, retry, 0), RegistrationSucceeded)
    refresh = client.on_timer(client.next_deadline())
    stale_retry = exchange(client, registrar, refresh, 3240)
    assert isinstance(stale_retry, Request)
    assert isinstance(exchange(client, registrar, stale_retry, 3240), RegistrationSucceeded)


def test_client_gives_up_on_wrong_password():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = make_client(credentials=DigestClient("alice", "nope"))
    retry = exchange(client, registrar, client.register(), 0)
    assert isinstance(retry, Request)
    outcome = exchange(client, registrar, retry, 0)
    assert outcome == RegistrationFailed(401, "Unauthorized")
    assert client.state is RegistrationState.FAILED
    assert client.next_deadline() is None


def test_client_without_credentials_fails_on_challenge():
    registrar = Registrar("example.com", authenticator=authenticator())
    client = make_client(credentials=None)
    outcome = exchange(client, registrar, client.register(), 0)
    assert outcome == RegistrationFailed(401, "Unauthorized")


def test_client_stale_with_the_same_nonce_gives_up():
    client = make_client()
    request = client.register()
    challenge = challenge_value("n1")
    first = make_reply(request, 401, ("WWW-Authenticate", challenge))
    retry = client.on_response(first, 0)
    assert isinstance(retry, Request)
    again = make_reply(retry, 401, ("WWW-Authenticate", challenge + ", stale=TRUE"))
    assert isinstance(client.on_response(again, 0), RegistrationFailed)


def test_client_stale_with_a_new_nonce_retries_but_not_forever():
    client = make_client()
    request = client.register()
    retry = client.on_response(make_reply(request, 401, www("n0")), 0)
    for n in range(1, 4):
        assert isinstance(retry, Request)
        retry = client.on_response(
            make_reply(retry, 401, www(f"n{n}", stale=True)), 0
        )
    assert isinstance(retry, Request)
    outcome = client.on_response(
        make_reply(retry, 401, www("n9", stale=True)), 0
    )
    assert outcome == RegistrationFailed(401, "Unauthorized")


def test_client_refused_credentials_without_stale_fail_even_with_a_new_nonce():
    client = make_client()
    request = client.register()
    retry = client.on_response(make_reply(request, 401, www("n0")), 0)
    assert isinstance(retry, Request)
    outcome = client.on_response(make_reply(retry, 401, www("n1")), 0)
    assert isinstance(outcome, RegistrationFailed)


def test_client_answers_407_with_proxy_authorization():
    client = make_client()
    request = client.register()
    challenge = ("Proxy-Authenticate", challenge_value("p"))
    retry = client.on_response(make_reply(request, 407, challenge), 0)
    assert isinstance(retry, Request)
    assert retry.headers.get("Proxy-Authorization").startswith("Digest ")
    assert "Authorization" not in retry.headers


def challenge_value(nonce: str) -> str:
    return f'Digest realm="example.com", nonce="{nonce}", qop="auth", algorithm=MD5'


def www(nonce: str, *, stale: bool = False) -> tuple[str, str]:
    return "WWW-Authenticate", challenge_value(nonce) + (", stale=TRUE" if stale else "")


def make_reply(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    from trio_voip.sip.message import make_response

    response = make_response(parse_message(bytes(request)), status, to_tag="rt")
    for name, value in headers:
        response.headers.add(name, value)
    return response


def test_client_retries_423_with_min_expires():
    registrar = Registrar("example.com", min_expires=300)
    client = make_client(expires=60, credentials=None)
    retry = exchange(client, registrar, client.register(), 0)
    assert isinstance(retry, Request) and retry.expires == 300
    outcome = exchange(client, registrar, retry, 0)
    assert isinstance(outcome, RegistrationSucceeded) and outcome.expires == 300
    assert client.expires == 300


def test_client_423_without_a_larger_min_expires_fails():
    client = make_client(expires=600)
    request = client.register()
    outcome = client.on_response(make_reply(request, 423, ("Min-Expires", "600")), 0)
    assert isinstance(outcome, RegistrationFailed) and outcome.status == 423


def test_client_uses_granted_expires_from_its_contact():
    registrar = Registrar("example.com", max_expires=120)
    client = make_client(expires=3600, credentials=None)
    outcome = exchange(client, registrar, client.register(), 0)
    assert isinstance(outcome, RegistrationSucceeded) and outcome.expires == 120
    assert client.next_deadline() == refresh_delay(120) == 108


def test_client_ignores_provisional_and_unrelated_responses():
    client = make_client()
    request = client.register()
    assert client.on_response(make_reply(request, 100), 0) is None
    other = make_reply(request, 200)
    other.headers.set("CSeq", "99 REGISTER")
    assert client.on_response(other, 0) is None
    assert client.state is RegistrationState.REGISTERING


def test_client_unregister():
    registrar = Registrar("example.com")
    client = make_client(credentials=None)
    exchange(client, registrar, client.register(), 0)
    request = client.unregister()
    assert request.contacts[0].expires == 0 and request.expires == 0
    assert exchange(client, registrar, request, 10) == Unregistered()
    assert registrar.location.count == 0
    assert client.state is RegistrationState.IDLE and client.next_deadline() is None


def test_client_failure_reports_retry_after_and_timeout():
    client = make_client()
    request = client.register()
    outcome = client.on_response(make_reply(request, 503, ("Retry-After", "30 (maintenance)")), 0)
    assert outcome == RegistrationFailed(503, "Service Unavailable", 30)
    client.register()
    assert client.on_timeout(1) == RegistrationFailed(408, "Request Timeout")
    with pytest.raises(RegistrarError):
        client.on_timeout(2)


def test_client_one_request_at_a_time():
    client = make_client()
    client.register()
    with pytest.raises(RegistrarError):
        client.register()
    with pytest.raises(RegistrarError):
        client.unregister()


@pytest.mark.parametrize("expires", [1, 8, 60, 600, 3600, 86400])
def test_refresh_delay_is_before_expiry_and_not_immediate(expires):
    delay = refresh_delay(expires)
    assert expires / 2 <= delay < expires
    assert delay <= expires - min(5, expires / 2)


client_step = st.tuples(
    st.sampled_from([100, 200, 401, 407, 423, 403, 503]),
    st.sampled_from(["n1", "n2", "n3"]),
    st.booleans(),
    st.sampled_from([None, "30", "1200", "x"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(client_step, max_size=25))
def test_client_survives_any_response_sequence(steps):
    client = make_client(expires=600)
    request: Request | None = client.register()
    seqs = [request.cseq.seq]
    retries = 0
    for status, nonce, stale, min_expires in steps:
        if request is None:
            if client.state is RegistrationState.REGISTERED:
                request = client.on_timer(client.next_deadline())
            else:
                request = client.register()
            assert request is not None
            seqs.append(request.cseq.seq)
            retries = 0
        headers = []
        if status == 401:
            headers.append(www(nonce, stale=stale))
        elif status == 407:
            headers.append(("Proxy-Authenticate", www(nonce, stale=stale)[1]))
        elif status == 423 and min_expires is not None:
            headers.append(("Min-Expires", min_expires))
        elif status == 200:
            headers.append(("Contact", "<sip:alice@192.0.2.10:5062>;expires=300"))
        outcome = client.on_response(make_reply(request, status, *headers), 0)
        if isinstance(outcome, Request):
            assert outcome.call_id == request.call_id
            seqs.append(outcome.cseq.seq)
            request = outcome
            retries += 1
            assert retries <= 4
        elif outcome is None:
            assert status == 100
        else:
            request = None
            if isinstance(outcome, RegistrationSucceeded):
                assert outcome.expires == 300
                assert client.state is RegistrationState.REGISTERED
                assert client.next_deadline() == refresh_delay(300)
            else:
                assert isinstance(outcome, RegistrationFailed) and outcome.status == status
                assert client.state is RegistrationState.FAILED
                assert client.next_deadline() is None
    assert seqs == sorted(set(seqs))
