"""UAS request inspection, RFC 3261 section 8.2, as a pure function.

A request that parsed can still be one a UAS must refuse: a method it does not know, a
Request-URI scheme it cannot serve, an extension it does not support, a body it cannot read.
``inspect_request`` returns the response to send in that case (or ``None`` to go on), in the
order of section 8.2, so every UAS built on trio-voip refuses the same things the same way.
"""

from __future__ import annotations

import attrs

from .message import Request, Response, make_response
from .uri import SipUri

__all__ = ["UasPolicy", "inspect_request"]

# Headers every request must carry (RFC 3261 8.1.1); a request without them gets 400.
REQUIRED_HEADERS = ("To", "From", "Call-ID", "CSeq", "Via")


@attrs.frozen
class UasPolicy:
    """What a UAS accepts. The defaults fit a voice UAS speaking SDP."""

    allowed_methods: frozenset[str] = frozenset(
        {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "REFER", "NOTIFY", "PRACK"}
    )
    supported_extensions: frozenset[str] = frozenset({"timer", "replaces", "norefersub"})
    accepted_content_types: frozenset[str] = frozenset({"application/sdp"})
    uri_schemes: frozenset[str] = frozenset({"sip", "sips"})

    def allow_header(self) -> str:
        return ", ".join(sorted(self.allowed_methods))


def _refuse(request: Request, status: int, reason: str | None = None, **headers: str) -> Response:
    response = make_response(request, status, reason)
    for name, value in headers.items():
        response.headers.add(name.replace("_", "-"), value)
    return response


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def inspect_request(request: Request, policy: UasPolicy = UasPolicy()) -> Response | None:
    """The response a UAS must answer ``request`` with before any application logic, or None.

    ACK is never answered (a stray ACK is simply dropped by the caller).
    """
    # The parser already validated these headers where present (and CSeq against the method).
    for name in REQUIRED_HEADERS:
        if name not in request.headers:
            return _refuse(request, 400, f"Missing {name} header")
    if request.method == "ACK":
        return None
    # 8.2.1 method inspection
    if request.method not in policy.allowed_methods:
        return _refuse(request, 405, None, Allow=policy.allow_header())
    # 8.2.2.1 Request-URI scheme
    uri = request.uri
    if not isinstance(uri, SipUri) or uri.scheme not in policy.uri_schemes:
        return _refuse(request, 416)
    # 8.2.2.3 Require (not applied to CANCEL; ACK returned above)
    if request.method != "CANCEL":
        unsupported = [
            tag for tag in request.headers.get_all("Require")
            if tag.strip().lower() not in policy.supported_extensions
        ]
        if unsupported:
            return _refuse(request, 420, None, Unsupported=", ".join(t.strip() for t in unsupported))
    # 8.2.3 content processing: a body we cannot read (Content-Disposition optional is ignorable)
    if request.body:
        content_type = request.content_type
        disposition = (request.headers.get("Content-Disposition") or "").lower()
        optional = "handling=optional" in disposition.replace(" ", "")
        if content_type is None or (
            _media_type(content_type) not in policy.accepted_content_types and not optional
        ):
            return _refuse(request, 415, None, Accept=", ".join(sorted(policy.accepted_content_types)))
    # RFC 3261 21.4.7: a request whose Accept excludes every body type we could answer with.
    if request.method == "INVITE":
        accept = [_media_type(a) for a in request.headers.get_all("Accept")]
        if accept and not any(
            a in policy.accepted_content_types or a in ("*/*", "application/*") for a in accept
        ):
            return _refuse(request, 406)
    return None
