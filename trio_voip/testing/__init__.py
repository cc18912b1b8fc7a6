"""Test tools that ship with trio-voip (hypothesis strategies for SIP values and messages)."""

from trio_voip.testing.strategies import (
    absolute_uris,
    call_ids,
    contacts,
    cseqs,
    display_names,
    header_texts,
    hosts,
    messages,
    name_addrs,
    requests,
    responses,
    sip_uris,
    tel_uris,
    tokens,
    uris,
    vias,
)

__all__ = [
    "absolute_uris",
    "call_ids",
    "contacts",
    "cseqs",
    "display_names",
    "header_texts",
    "hosts",
    "messages",
    "name_addrs",
    "requests",
    "responses",
    "sip_uris",
    "tel_uris",
    "tokens",
    "uris",
    "vias",
]
