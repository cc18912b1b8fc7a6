"""REGISTER a test phone (a :class:`~trio_voip.session.SessionCoordinator`) at a registrar on
127.0.0.1, answering its Digest challenge: the loop tests and benches share."""

from __future__ import annotations

import trio

from trio_voip.session import SessionCoordinator
from trio_voip.sip.digest import DigestClient
from trio_voip.sip.message import Request
from trio_voip.sip.registrar import RegistrationClient, RegistrationEvent
from trio_voip.sip.uri import SipUri

__all__ = ["register"]


async def register(
    phone: SessionCoordinator,
    user: str,
    password: str,
    port: int,
    *,
    transport: str = "UDP",
    expires: int = 300,
) -> RegistrationEvent | None:
    """Register ``user`` (Contact: ``phone``'s own address) at the registrar listening on
    127.0.0.1:``port``; the client's outcome (``RegistrationSucceeded``, a failure event, or
    None for a response it could not use)."""
    contact = SipUri(user=user, host="127.0.0.1", port=phone.port(transport))
    client = RegistrationClient(
        aor=SipUri(user=user, host="127.0.0.1"),
        contact=contact.with_param("transport", "tcp") if transport == "TCP" else contact,
        registrar_uri=SipUri(host="127.0.0.1"),
        credentials=DigestClient(user, password),
        expires=expires,
        transport=transport,
    )
    request = client.register()
    while True:
        handle = await phone.endpoint.request(request, "127.0.0.1", port, transport)
        outcome = client.on_response(await handle.final_response(), trio.current_time())
        if not isinstance(outcome, Request):
            return outcome
        request = outcome
