"""Wire-format messages for the dialog tests (every message goes through parse_message)."""

from __future__ import annotations

from collections.abc import Iterable

from trio_voip.sip.message import Request, Response, make_response, parse_message

CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"
ALICE_TAG = "1928301774"


def parse(text: str, body: bytes = b"") -> Request | Response:
    return parse_message(text.replace("\n", "\r\n").encode() + body)


def wire(message: Request | Response) -> Request | Response:
    """Round-trip through bytes, as the peer would see it."""
    return parse_message(bytes(message))


def invite(
    *,
    cseq: int = 314159,
    uri: str = "sip:bob@biloxi.example.com",
    record_route: Iterable[str] = (),
    extra: Iterable[str] = (),
    body: bytes = b"",
    method: str = "INVITE",
    from_tag: str | None = ALICE_TAG,
    contact: str | None = "<sip:alice@pc33.atlanta.example.com>",
) -> Request:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@biloxi.example.com>",
        "From: Alice <sip:alice@atlanta.example.com>" + (f";tag={from_tag}" if from_tag else ""),
        f"Call-ID: {CALL_ID}",
        f"CSeq: {cseq} {method}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += [f"Record-Route: {rr}" for rr in record_route]
    lines += list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    msg = parse("\n".join(lines) + "\n\n", body)
    assert isinstance(msg, Request)
    return msg


def answer(
    request: Request,
    status: int,
    to_tag: str | None,
    *,
    contact: str | None = "<sip:bob@192.0.2.4>",
    record_route: Iterable[str] = (),
    extra: Iterable[str] = (),
    body: bytes = b"",
) -> Response:
    """The response a remote UAS would send to ``request``."""
    response = make_response(request, status, to_tag=to_tag, body=body)
    if contact is not None:
        response.headers.add("Contact", contact)
    for rr in record_route:
        response.headers.add("Record-Route", rr)
    for line in extra:
        name, _, value = line.partition(":")
        response.headers.add(name.strip(), value.strip())
    if body:
        response.headers.add("Content-Type", "application/sdp")
    msg = wire(response)
    assert isinstance(msg, Response)
    return msg


def in_dialog(
    method: str,
    cseq: int,
    *,
    local_tag: str = "bobtag",
    remote_tag: str = ALICE_TAG,
    contact: str | None = None,
    extra: Iterable[str] = (),
    body: bytes = b"",
) -> Request:
    """A request the remote party (Alice) sends inside the dialog whose local tag is ours."""
    lines = [
        f"{method} sip:bob@192.0.2.4 SIP/2.0",
        f"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK{method.lower()}{cseq}",
        "Max-Forwards: 70",
        f"To: Bob <sip:bob@biloxi.example.com>;tag={local_tag}",
        f"From: Alice <sip:alice@atlanta.example.com>;tag={remote_tag}",
        f"Call-ID: {CALL_ID}",
        f"CSeq: {cseq} {method}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines += list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    msg = parse("\n".join(lines) + "\n\n", body)
    assert isinstance(msg, Request)
    return msg


def reply(request: Request, status: int, *, extra: Iterable[str] = (), contact: str | None = None,
          body: bytes = b"") -> Response:
    """The peer's response to a request we sent inside a dialog."""
    response = make_response(request, status, body=body)
    if contact is not None:
        response.headers.add("Contact", contact)
    for line in extra:
        name, _, value = line.partition(":")
        response.headers.add(name.strip(), value.strip())
    if body:
        response.headers.add("Content-Type", "application/sdp")
    msg = wire(response)
    assert isinstance(msg, Response)
    return msg
