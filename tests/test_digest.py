"""Digest authentication: codec, RFC test vectors, client/server round trips, abuse handling."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_voip.errors import AuthenticationError, TrioVoipError
from trio_voip.sip.digest import (
    SUPPORTED_ALGORITHMS,
    AuthOutcome,
    DigestAuthenticator,
    DigestClient,
    PrecomputedHA1,
    compute_ha1,
    format_digest,
    parse_challenge,
    parse_digest_params,
)

# --- header value codec ---------------------------------------------------------------------------


def test_parse_challenge_with_escapes_commas_and_tokens() -> None:
    scheme, params = parse_digest_params(
        'Digest realm="a \\"quoted\\", realm", NONCE="y,z" ,qop="auth,auth-int",'
        " algorithm=SHA-256, stale=TRUE"
    )
    assert scheme == "Digest"
    assert params == {
        "realm": 'a "quoted", realm',
        "nonce": "y,z",
        "qop": "auth,auth-int",
        "algorithm": "SHA-256",
        "stale": "TRUE",
    }


def test_parse_tolerates_quoted_tokens_and_empty_list_elements() -> None:
    scheme, params = parse_digest_params('digest  , username="bob",, qop="auth", nc="00000001",')
    assert scheme == "digest"
    assert params == {"username": "bob", "qop": "auth", "nc": "00000001"}


def test_parse_scheme_without_params() -> None:
    assert parse_digest_params("Digest") == ("Digest", {})


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        'Digest realm="a", realm="b"',  # duplicate: which one was signed?
        'Digest realm="a", REALM="b"',
        'Digest realm="unterminated',
        "Digest realm",
        "Digest realm=",
        'Digest realm="a" nonce="b"',  # missing comma
        'Digest realm="a"x',
        "Digest realm=a/b",  # "/" is not a token character
        'Digest realm="a\nb"',
        'Digest realm="a\\\nb"',
        'Digest realm="a\x00"',
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",  # token68, not auth-params
        '"Digest" realm="a"',
        'Digest, realm="a"',
    ],
)
def test_parse_rejects_malformed(value: str) -> None:
    with pytest.raises(AuthenticationError):
        parse_digest_params(value)


def test_parse_rejects_non_str() -> None:
    with pytest.raises(AuthenticationError):
        parse_digest_params(b'Digest realm="a"')  # type: ignore[arg-type]


_NEAR_MISSES = st.text(alphabet=st.sampled_from('Digest rmnoc=",\\\t aq-\x00é\n'), max_size=60)


@settings(max_examples=400)
@given(_NEAR_MISSES | st.text())
def test_parse_raises_only_authentication_error(value: str) -> None:
    try:
        scheme, params = parse_digest_params(value)
    except AuthenticationError:
        return
    assert scheme and all(name == name.lower() for name in params)


_TOKEN = st.text(
    alphabet=st.sampled_from("abcXYZ019-.!%*_+`'~"), min_size=1, max_size=12
)
_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f")
    | st.just("\t"),
    max_size=30,
)


@given(st.dictionaries(_TOKEN.map(str.lower), _VALUE, max_size=8), _TOKEN)
def test_format_then_parse_round_trips(params: dict[str, str], scheme: str) -> None:
    # The bare parameters only hold tokens.
    params = {k: v for k, v in params.items() if k not in ("algorithm", "nc", "stale", "qop")}
    assert parse_digest_params(format_digest(scheme, params)) == (scheme, params)


def test_format_quoting_follows_rfc7616() -> None:
    challenge = format_digest(
        "Digest",
        {
            "realm": "r",
            "nonce": "n",
            "qop": "auth,auth-int",
            "algorithm": "SHA-256",
            "stale": "TRUE",
        },
    )
    assert challenge == (
        'Digest realm="r", nonce="n", qop="auth,auth-int", algorithm=SHA-256, stale=TRUE'
    )
    credentials = format_digest(
        "Digest",
        [("username", 'a"b\\c'), ("uri", "sip:x"), ("response", "ab"), ("qop", "auth"),
         ("nc", "00000001"), ("cnonce", "c"), ("opaque", "o")],
    )
    assert credentials == (
        'Digest username="a\\"b\\\\c", uri="sip:x", response="ab", qop=auth, nc=00000001,'
        ' cnonce="c", opaque="o"'
    )


@pytest.mark.parametrize(
    ("scheme", "params"),
    [
        ("Digest", {"realm": "a\r\nVia: injected"}),
        ("Digest", {"algorithm": "SHA 256"}),
        ("Digest", {"bad name": "x"}),
        ("Dig est", {"realm": "x"}),
        ("Digest", {"nc": ""}),
    ],
)
def test_format_refuses_what_cannot_be_written(scheme: str, params: dict[str, str]) -> None:
    with pytest.raises(AuthenticationError):
        format_digest(scheme, params)


def test_parse_challenge_reads_the_fields() -> None:
    challenge = parse_challenge(
        'Digest realm="r", nonce="n", opaque="o", algorithm=sha-256, qop="auth, auth-int",'
        ' stale=true'
    )
    assert challenge.realm == "r" and challenge.nonce == "n" and challenge.opaque == "o"
    assert challenge.algorithm == "sha-256"
    assert challenge.canonical_algorithm == "SHA-256"
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.stale
    legacy = parse_challenge('Digest realm="r", nonce="n"')
    assert legacy.canonical_algorithm == "MD5" and legacy.qop == () and not legacy.stale
    with pytest.raises(AuthenticationError):
        parse_challenge('Basic realm="r"')
    with pytest.raises(AuthenticationError):
        parse_challenge('Digest realm="r"')


# --- RFC test vectors ---------------------------------------------------------------------------

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def _rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm},'
        f' nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, response: str) -> None:
    client = DigestClient("Mufasa", "Circle of Life", cnonce_factory=lambda: RFC7616_CNONCE)
    value = client.authorize("GET", "/dir/index.html", _rfc7616_challenge(algorithm))
    scheme, params = parse_digest_params(value)
    assert scheme == "Digest"
    assert params == {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "uri": "/dir/index.html",
        "algorithm": algorithm,
        "nonce": RFC7616_NONCE,
        "nc": "00000001",
        "cnonce": RFC7616_CNONCE,
        "qop": "auth",
        "response": response,
        "opaque": RFC7616_OPAQUE,
    }
    assert f"algorithm={algorithm}," in value and "qop=auth," in value and "nc=00000001," in value


def test_rfc7616_section_3_9_2_with_real_sha512_256() -> None:
    # The RFC prints ae66e67d..., which is what SHA-512 truncated to 256 bits gives; SHA-512/256
    # (FIPS 180-4, other initial values) gives 3798d413..., the value of erratum 4897.
    # userhash=true is ignored (not used in SIP): the response does not depend on it.
    client = DigestClient(
        "J\u00e4s\u00f8n Doe",
        "Secret, or not?",
        cnonce_factory=lambda: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    )
    value = client.authorize(
        "GET",
        "/doe.json",
        'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256,'
        ' nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",'
        ' opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true',
    )
    _, params = parse_digest_params(value)
    assert params["response"] == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    assert params["username"] == "J\u00e4s\u00f8n Doe" and params["algorithm"] == "SHA-512-256"


def test_rfc2617_section_3_5() -> None:
    client = DigestClient("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    value = client.authorize(
        "GET",
        "/dir/index.html",
        'Digest realm="testrealm@host.com", qop="auth,auth-int",'
        ' nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"',
    )
    _, params = parse_digest_params(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["nc"] == "00000001" and params["qop"] == "auth"
    assert "algorithm" not in params  # not in the challenge, so not echoed


def test_rfc2069_challenge_is_answered_without_qop() -> None:
    client = DigestClient("Mufasa", "Circle Of Life")
    value = client.authorize(
        "GET",
        "/dir/index.html",
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"',
    )
    _, params = parse_digest_params(value)
    assert not {"qop", "nc", "cnonce"} & params.keys()
    # RFC 2069: H(HA1:nonce:HA2) with MD5.
    assert params["response"] == "670fd8c2df070c60b045671b8b24ff02"


def test_compute_ha1_matches_rfc7616() -> None:
    # HA1 of the RFC 7616 example, MD5: H("Mufasa:http-auth@example.org:Circle of Life").
    assert compute_ha1("md5", "Mufasa", "http-auth@example.org", "Circle of Life") == (
        "3d78807defe7de2157e2b0b6573a855f"
    )
    with pytest.raises(AuthenticationError):
        compute_ha1("SHA-1", "u", "r", "p")


# --- client/server round trips ------------------------------------------------------------------

REALM = "example.com"
URI = "sip:example.com"
SOURCE = ("192.0.2.10", 5060)
PASSWORDS = {"alice": "wonderland", "bob": "builder"}


def _server(**kwargs: object) -> DigestAuthenticator:
    return DigestAuthenticator(REALM, PASSWORDS.get, **kwargs)  # type: ignore[arg-type]


def test_challenge_lists_one_value_per_algorithm_in_preference_order() -> None:
    server = _server(algorithms=("SHA-512-256", "sha-256", "MD5"))
    values = server.challenge(0.0)
    challenges = [parse_challenge(v) for v in values]
    assert [c.algorithm for c in challenges] == ["SHA-512-256", "SHA-256", "MD5"]
    assert all(c.qop == ("auth",) and c.realm == REALM and not c.stale for c in challenges)
    assert all(c.opaque for c in challenges)
    assert 'qop="auth"' in values[0]
    assert parse_challenge(server.challenge(0.0, stale=True)[0]).stale
    assert server.challenge(0.0)[0] != server.challenge(0.0)[0]  # fresh nonce each time


@pytest.mark.parametrize("algorithm", SUPPORTED_ALGORITHMS)
def test_round_trip_each_algorithm(algorithm: str) -> None:
    server = _server(algorithms=(algorithm,))
    client = DigestClient("alice", "wonderland")
    challenges = server.challenge(10.0)
    first = client.authorize("REGISTER", URI, challenges)
    result = server.verify("REGISTER", first, 11.0, source=SOURCE, request_uri=URI)
    assert result.ok and result.username == "alice"
    # Reusing the nonce for the next request counts up and is accepted.
    second = client.authorize("REGISTER", URI, challenges)
    assert parse_digest_params(second)[1]["nc"] == "00000002"
    assert server.verify("REGISTER", second, 12.0, source=SOURCE).ok
    assert server.verify("REGISTER", second, 12.0, source=SOURCE).outcome is AuthOutcome.REPLAY


def test_client_prefers_the_strongest_algorithm_offered() -> None:
    server = _server(algorithms=("MD5", "SHA-256"))
    client = DigestClient("alice", "wonderland")
    value = client.authorize("INVITE", URI, server.challenge(0.0))
    assert parse_digest_params(value)[1]["algorithm"] == "SHA-256"
    assert server.verify("INVITE", value, 0.0, source=SOURCE).ok


def test_client_skips_what_it_cannot_use() -> None:
    client = DigestClient("alice", "wonderland")
    value = client.authorize(
        "INVITE",
        URI,
        [
            "Bearer abc==",
            'Digest realm="r", nonce="n", algorithm=SHA-1',
            'Digest realm="r", nonce="n", qop="auth-conf"',
            'Digest realm="r", nonce="n2", algorithm=MD5, qop="auth"',
        ],
    )
    assert parse_digest_params(value)[1]["nonce"] == "n2"
    with pytest.raises(AuthenticationError):
        client.authorize("INVITE", URI, 'Digest realm="r", nonce="n", algorithm=SHA-1')
    with pytest.raises(AuthenticationError):
        client.authorize("INVITE", URI, [])


def test_client_answers_each_realm() -> None:
    proxy_a = DigestAuthenticator("a.example", PASSWORDS.get)
    proxy_b = DigestAuthenticator("b.example", PASSWORDS.get, algorithms=("MD5",))
    client = DigestClient("bob", "builder")
    values = client.authorize_all("INVITE", URI, proxy_a.challenge(0.0) + proxy_b.challenge(0.0))
    assert [parse_digest_params(v)[1]["realm"] for v in values] == ["a.example", "b.example"]
    # Each proxy picks its own realm's credentials out of all of them (RFC 3261 22.3).
    assert proxy_a.verify("INVITE", values, 1.0, source=SOURCE).ok
    assert proxy_b.verify("INVITE", list(reversed(values)), 1.0, source=SOURCE).ok


def test_auth_int_covers_the_body() -> None:
    server = _server(qop=("auth-int",))
    client = DigestClient("alice", "wonderland")
    challenge = server.challenge(0.0)
    value = client.authorize("INVITE", URI, challenge, body=b"v=0\r\n")
    assert parse_digest_params(value)[1]["qop"] == "auth-int"
    assert server.verify("INVITE", value, 0.0, source=SOURCE, body=b"v=0\r\n").ok
    tampered = client.authorize("INVITE", URI, challenge, body=b"v=0\r\n")
    result = server.verify("INVITE", tampered, 0.0, source=SOURCE, body=b"v=1\r\n")
    assert result.outcome is AuthOutcome.FAILURE


def test_precomputed_ha1_verifies_like_the_password() -> None:
    stored = PrecomputedHA1.from_password("alice", REALM, "wonderland")
    server = DigestAuthenticator(
        REALM, {"alice": stored}.get, algorithms=("SHA-512-256", "SHA-256", "MD5-sess")
    )
    client = DigestClient("alice", "wonderland")
    for challenge in server.challenge(0.0):  # one nonce: the client counts up across them
        value = client.authorize("REGISTER", URI, challenge)
        assert server.verify("REGISTER", value, 0.0, source=SOURCE).ok
    md5_only = DigestAuthenticator(
        REALM, {"alice": PrecomputedHA1(md5=stored.md5)}.get, algorithms=("SHA-256", "MD5")
    )
    sha = DigestClient("alice", "wonderland").authorize("REGISTER", URI, md5_only.challenge(0.0))
    result = md5_only.verify("REGISTER", sha, 0.0, source=SOURCE)
    assert result.outcome is AuthOutcome.FAILURE and "SHA-256" in result.reason


def test_shared_secret_lets_servers_accept_each_others_nonces() -> None:
    one = _server(secret=b"k" * 32)
    two = _server(secret=b"k" * 32)
    value = DigestClient("alice", "wonderland").authorize("REGISTER", URI, one.challenge(5.0))
    assert two.verify("REGISTER", value, 6.0, source=SOURCE).ok


def test_values_interoperate_with_the_sip_header_layer() -> None:
    from trio_voip.sip import AuthValue, parse_auth

    server = _server()
    for value in server.challenge(0.0, stale=True):
        parsed = parse_auth(value)
        assert (parsed.scheme, dict(parsed.params)) == parse_digest_params(value)
    credentials = _fresh(server, DigestClient("alice", "wonderland"))
    scheme, params = parse_digest_params(credentials)
    rebuilt = str(AuthValue(scheme, tuple(params.items())))
    assert parse_digest_params(rebuilt) == (scheme, params)
    assert server.verify("REGISTER", rebuilt, 0.0, source=SOURCE).ok


# --- stale nonces ---------------------------------------------------------------------------------


def test_expired_nonce_with_right_password_is_stale_then_recovers() -> None:
    server = _server(nonce_lifetime=30.0)
    client = DigestClient("alice", "wonderland")
    value = client.authorize("REGISTER", URI, server.challenge(0.0))
    assert server.verify("REGISTER", value, 30.0, source=SOURCE).ok
    value = client.authorize("REGISTER", URI, server.challenge(0.0))
    result = server.verify("REGISTER", value, 30.5, source=SOURCE)
    assert result.outcome is AuthOutcome.STALE and result.username == "alice"
    again = server.challenge(30.5, stale=True)
    assert all(parse_challenge(v).stale for v in again)
    renewed = client.authorize("REGISTER", URI, again)
    assert server.verify("REGISTER", renewed, 31.0, source=SOURCE).ok


def test_nonce_from_the_future_is_stale() -> None:
    server = _server()
    value = DigestClient("alice", "wonderland").authorize("REGISTER", URI, server.challenge(100.0))
    result = server.verify("REGISTER", value, 0.0, source=SOURCE)
    assert result.outcome is AuthOutcome.STALE and "future" in result.reason


def test_expired_nonce_with_wrong_password_is_a_failure() -> None:
    server = _server(nonce_lifetime=30.0)
    value = DigestClient("alice", "guess").authorize("REGISTER", URI, server.challenge(0.0))
    assert server.verify("REGISTER", value, 100.0, source=SOURCE).outcome is AuthOutcome.FAILURE


def test_nonce_not_issued_here_is_stale_only_with_the_right_password() -> None:
    # E.g. a nonce from before a restart (new secret): the user should not be asked again.
    before = _server()
    after = _server()
    right = DigestClient("alice", "wonderland").authorize("REGISTER", URI, before.challenge(0.0))
    assert after.verify("REGISTER", right, 1.0, source=SOURCE).outcome is AuthOutcome.STALE
    wrong = DigestClient("alice", "guess").authorize("REGISTER", URI, before.challenge(0.0))
    assert after.verify("REGISTER", wrong, 1.0, source=SOURCE).outcome is AuthOutcome.FAILURE


def test_tampered_nonce_timestamp_is_not_trusted() -> None:
    server = _server(nonce_lifetime=30.0)
    old = parse_challenge(server.challenge(0.0)[0])
    recent = parse_challenge(server.challenge(1000.0)[0]).nonce
    # An expired nonce with its issue time (the leading bytes) made recent: the tag breaks.
    spliced = recent[:10] + old.nonce[10:]
    challenge = (
        f'Digest realm="{REALM}", nonce="{spliced}", algorithm=SHA-256, qop="auth",'
        f' opaque="{old.opaque}"'
    )
    value = DigestClient("alice", "wonderland").authorize("REGISTER", URI, challenge)
    assert server.verify("REGISTER", value, 1000.0, source=SOURCE).outcome is AuthOutcome.STALE


# --- replays ------------------------------------------------------------------------------------


def test_nonce_counts_may_arrive_out_of_order_but_not_twice() -> None:
    server = _server()
    client = DigestClient("alice", "wonderland")
    challenge = server.challenge(0.0)
    values = [client.authorize("OPTIONS", URI, challenge) for _ in range(3)]
    assert server.verify("OPTIONS", values[2], 1.0, source=SOURCE).ok
    assert server.verify("OPTIONS", values[0], 1.0, source=SOURCE).ok
    assert server.verify("OPTIONS", values[1], 1.0, source=SOURCE).ok
    for value in values:
        assert server.verify("OPTIONS", value, 1.0, source=SOURCE).outcome is AuthOutcome.REPLAY


def test_nonce_count_far_below_the_highest_is_a_replay() -> None:
    server = _server()
    client = DigestClient("alice", "wonderland")
    challenge = server.challenge(0.0)
    first = client.authorize("OPTIONS", URI, challenge)
    for _ in range(100):
        latest = client.authorize("OPTIONS", URI, challenge)
    assert server.verify("OPTIONS", latest, 1.0, source=SOURCE).ok
    assert server.verify("OPTIONS", first, 1.0, source=SOURCE).outcome is AuthOutcome.REPLAY


def test_replays_do_not_count_as_failures() -> None:
    server = _server(max_failures_per_source=2)
    value = DigestClient("alice", "wonderland").authorize("OPTIONS", URI, server.challenge(0.0))
    assert server.verify("OPTIONS", value, 1.0, source=SOURCE).ok
    for _ in range(5):
        assert server.verify("OPTIONS", value, 1.0, source=SOURCE).outcome is AuthOutcome.REPLAY


def test_nonce_table_is_bounded_and_forgetting_never_admits_a_replay() -> None:
    server = _server(max_tracked_nonces=3, nonce_lifetime=100.0)
    client = DigestClient("alice", "wonderland")
    used = []
    for i in range(10):
        value = client.authorize("OPTIONS", URI, server.challenge(float(i)))
        assert server.verify("OPTIONS", value, float(i), source=SOURCE).ok
        used.append(value)
        assert len(server._nonce_uses) <= 3
    for value in used:
        assert server.verify("OPTIONS", value, 10.0, source=SOURCE).outcome in (
            AuthOutcome.REPLAY,
            AuthOutcome.STALE,
        )


def test_nonce_table_drops_expired_nonces() -> None:
    server = _server(nonce_lifetime=10.0)
    client = DigestClient("alice", "wonderland")
    for i in range(5):
        value = client.authorize("OPTIONS", URI, server.challenge(float(i)))
        assert server.verify("OPTIONS", value, float(i), source=SOURCE).ok
    late = client.authorize("OPTIONS", URI, server.challenge(100.0))
    assert server.verify("OPTIONS", late, 100.0, source=SOURCE).ok
    assert len(server._nonce_uses) == 1


# --- failures -----------------------------------------------------------------------------------


def _fresh(server: DigestAuthenticator, client: DigestClient) -> str:
    return client.authorize("REGISTER", URI, server.challenge(0.0))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p | {"username": "carol"}, "unknown user"),
        (lambda p: p | {"realm": "other.example"}, "realm mismatch"),
        (lambda p: {k: v for k, v in p.items() if k != "username"}, "username"),
        (lambda p: {k: v for k, v in p.items() if k != "response"}, "response"),
        (lambda p: {k: v for k, v in p.items() if k != "cnonce"}, "cnonce"),
        (lambda p: p | {"nc": "0000001"}, "nonce-count"),
        (lambda p: p | {"nc": "00000000"}, "nonce-count"),
        (lambda p: p | {"qop": "auth-int"}, "qop"),
        (lambda p: p | {"algorithm": "SHA-512-256"}, "algorithm"),
        (lambda p: p | {"algorithm": "SHA-1"}, "algorithm"),
        (lambda p: p | {"opaque": "nope"}, "opaque"),
        (lambda p: p | {"response": "zz" * 32}, "malformed response"),
        (lambda p: p | {"response": "ab"}, "malformed response"),
        (lambda p: p | {"userhash": "true"}, "userhash"),
        (lambda p: p | {"uri": "sip:elsewhere.example"}, "uri"),
        (lambda p: {k: v for k, v in p.items() if k not in ("qop", "nc", "cnonce")}, "qop"),
    ],
)
def test_bad_credentials_fail_with_a_reason(
    mutate: Callable[[dict[str, str]], dict[str, str]], reason: str
) -> None:
    server = _server()
    _, params = parse_digest_params(_fresh(server, DigestClient("alice", "wonderland")))
    value = format_digest("Digest", mutate(params))
    result = server.verify("REGISTER", value, 1.0, source=SOURCE, request_uri=URI)
    assert result.outcome is AuthOutcome.FAILURE
    assert reason in result.reason


def test_wrong_password_fails() -> None:
    server = _server()
    value = _fresh(server, DigestClient("alice", "guess"))
    result = server.verify("REGISTER", value, 1.0, source=SOURCE)
    assert result.outcome is AuthOutcome.FAILURE and result.username == "alice"
    assert "wrong response" in result.reason


def test_wrong_method_fails() -> None:
    server = _server()
    value = _fresh(server, DigestClient("alice", "wonderland"))
    assert server.verify("INVITE", value, 1.0, source=SOURCE).outcome is AuthOutcome.FAILURE


@pytest.mark.parametrize(
    "value", ["", "Digest", 'Digest realm="x', "Basic Zm9vOmJhcg==", 'Bearer x="y"']
)
def test_malformed_or_foreign_credentials_fail(value: str) -> None:
    result = _server().verify("REGISTER", value, 1.0, source=SOURCE)
    assert result.outcome is AuthOutcome.FAILURE and result.reason


def test_rfc2069_credentials_need_the_flag_and_md5() -> None:
    def legacy(server: DigestAuthenticator, algorithm: str) -> str:
        challenge = parse_challenge(server.challenge(0.0)[0])
        return DigestClient("alice", "wonderland").authorize(
            "REGISTER",
            URI,
            f'Digest realm="{REALM}", nonce="{challenge.nonce}", algorithm={algorithm}',
        )

    strict = _server(algorithms=("MD5",))
    assert strict.verify("REGISTER", legacy(strict, "MD5"), 1.0, source=SOURCE).outcome is (
        AuthOutcome.FAILURE
    )
    lenient = _server(algorithms=("SHA-256", "MD5"), allow_rfc2069=True)
    assert lenient.verify("REGISTER", legacy(lenient, "MD5"), 1.0, source=SOURCE).ok
    result = lenient.verify("REGISTER", legacy(lenient, "SHA-256"), 1.0, source=SOURCE)
    assert result.outcome is AuthOutcome.FAILURE


@settings(max_examples=300)
@given(
    st.text(max_size=200)
    | st.text(alphabet=st.sampled_from('Digest usernamerlico=",\\ 0'), max_size=80)
)
def test_verify_never_raises_on_garbage(value: str) -> None:
    server = _server()
    result = server.verify("REGISTER", value, 1.0, source=None)
    assert result.outcome is AuthOutcome.FAILURE


_CREDENTIAL_FIELD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["auth", "auth-int", "MD5", "SHA-256", "00000001", "ffffffff", "alice", "example.com"]
    ),
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=64),
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(
            ["username", "realm", "nonce", "uri", "response", "algorithm", "qop", "nc",
             "cnonce", "opaque", "userhash"]
        ),
        _CREDENTIAL_FIELD,
    )
)
def test_verify_never_raises_on_near_miss_credentials(params: dict[str, str]) -> None:
    server = _server(allow_rfc2069=True)
    params = {"realm": REALM, **params}
    try:
        value = format_digest("Digest", params)
    except AuthenticationError:
        return  # not writable: a bare parameter that is not a token
    result = server.verify("REGISTER", value, 1.0, source=SOURCE)
    assert result.outcome is AuthOutcome.FAILURE and result.reason


@settings(max_examples=300)
@given(
    st.text(max_size=200)
    | st.builds(
        lambda realm, nonce, alg, qop: (
            f'Digest realm="{realm}", nonce="{nonce}", algorithm={alg}, qop="{qop}"'
        ),
        st.text(max_size=10),
        st.text(max_size=10),
        st.sampled_from(["MD5", "SHA-256", "x", ""]),
        st.text(max_size=10),
    )
)
def test_client_raises_only_authentication_error(value: str) -> None:
    try:
        credentials = DigestClient("alice", "wonderland").authorize("INVITE", URI, value)
    except AuthenticationError:
        return
    assert parse_digest_params(credentials)[0] == "Digest"


# --- rate limiting --------------------------------------------------------------------------------


def test_repeated_failures_block_the_source_for_a_while() -> None:
    server = _server(max_failures_per_source=3, failure_window=60.0, block_duration=120.0)
    good = DigestClient("alice", "wonderland")
    bad = DigestClient("alice", "guess")
    for t in (0.0, 1.0, 2.0):
        assert server.verify("REGISTER", _fresh(server, bad), t, source=SOURCE).outcome is (
            AuthOutcome.FAILURE
        )
    # Even right credentials are refused now, without being looked at.
    blocked = server.verify("REGISTER", _fresh(server, good), 3.0, source=SOURCE)
    assert blocked.outcome is AuthOutcome.RATE_LIMITED
    assert blocked.retry_after == pytest.approx(119.0)
    assert blocked.username is None
    # The block is per host (any port); other hosts and unlimited callers are unaffected.
    other_port = server.verify("REGISTER", _fresh(server, good), 3.0, source=(SOURCE[0], 5070))
    assert other_port.outcome is AuthOutcome.RATE_LIMITED
    assert server.verify("REGISTER", _fresh(server, good), 3.0, source=("192.0.2.11", 5060)).ok
    assert server.verify("REGISTER", _fresh(server, good), 3.0, source=None).ok
    # The block ends.
    assert server.verify("REGISTER", _fresh(server, good), 122.5, source=SOURCE).ok


def test_stale_and_replayed_credentials_never_block() -> None:
    server = _server(max_failures_per_source=1, nonce_lifetime=10.0)
    client = DigestClient("alice", "wonderland")
    value = _fresh(server, client)
    assert server.verify("REGISTER", value, 1.0, source=SOURCE).ok
    for t in (2.0, 3.0):
        assert server.verify("REGISTER", value, t, source=SOURCE).outcome is AuthOutcome.REPLAY
    for t in (50.0, 60.0):
        assert server.verify("REGISTER", _fresh(server, client), t, source=SOURCE).outcome is (
            AuthOutcome.STALE
        )
    renewed = client.authorize("REGISTER", URI, server.challenge(70.0))
    assert server.verify("REGISTER", renewed, 70.0, source=SOURCE).ok


def test_failures_spread_beyond_the_window_do_not_block() -> None:
    server = _server(max_failures_per_source=3, failure_window=10.0)
    bad = DigestClient("alice", "guess")
    for t in (0.0, 5.0, 11.0, 16.0, 22.0, 27.0):
        result = server.verify("REGISTER", _fresh(server, bad), t, source=SOURCE)
        assert result.outcome is AuthOutcome.FAILURE


def test_malformed_credentials_count_as_failures() -> None:
    server = _server(max_failures_per_source=2)
    server.verify("REGISTER", "garbage", 0.0, source=SOURCE)
    server.verify("REGISTER", "Digest", 0.0, source=SOURCE)
    assert server.verify("REGISTER", "x", 0.0, source=SOURCE).outcome is AuthOutcome.RATE_LIMITED


def test_failure_table_is_bounded() -> None:
    server = _server(max_tracked_sources=5, max_failures_per_source=100)
    for i in range(50):
        server.verify("REGISTER", "garbage", 0.0, source=(f"198.51.100.{i}", 5060))
        assert len(server._failures) <= 5


# --- secrets stay secret --------------------------------------------------------------------------


def test_no_secret_in_reprs_or_reasons() -> None:
    password = "wonderland"
    stored = PrecomputedHA1.from_password("alice", REALM, password)
    ha1s = [stored.md5, stored.sha256, stored.sha512_256]
    server = DigestAuthenticator(REALM, {"alice": password}.get, secret=b"s3cr3t-key-bytes")
    client = DigestClient("alice", password)
    texts = [repr(server), repr(client), repr(stored)]
    for attempt in (client, DigestClient("alice", "guess"), DigestClient("carol", password)):
        texts.append(repr(server.verify("REGISTER", _fresh(server, attempt), 1.0, source=SOURCE)))
    for text in texts:
        assert password not in text and "s3cr3t" not in text
        assert not any(ha1 and ha1 in text for ha1 in ha1s)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"algorithms": ("SHA-1",)}, {"algorithms": ()}, {"qop": ("auth-conf",)}, {"qop": ()}],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(TrioVoipError):
        _server(**kwargs)
    with pytest.raises(AuthenticationError):
        DigestAuthenticator("a\r\nb", PASSWORDS.get)


def test_rechallenge_follows_the_outcome() -> None:
    server = _server(max_failures_per_source=1, nonce_lifetime=10.0)
    client = DigestClient("alice", "wonderland")
    ok = server.verify("REGISTER", _fresh(server, client), 1.0, source=SOURCE)
    assert server.rechallenge(ok, 1.0) == []
    stale = server.verify("REGISTER", _fresh(server, client), 50.0, source=SOURCE)
    assert [parse_challenge(v).stale for v in server.rechallenge(stale, 50.0)] == [True, True]
    failed = server.verify("REGISTER", "garbage", 51.0, source=SOURCE)
    fresh = server.rechallenge(failed, 51.0)
    assert len(fresh) == 2 and not any(parse_challenge(v).stale for v in fresh)
    limited = server.verify("REGISTER", "garbage", 52.0, source=SOURCE)
    assert limited.outcome is AuthOutcome.RATE_LIMITED
    assert server.rechallenge(limited, 52.0) == []
