"""Test tools that ship with trio-voip: hypothesis strategies for SIP, SDP and RTP/RTCP, an in-memory
SIP network for deterministic tests, a stateful property test of the bridge API
(``BridgeMachine``), a bounded SIPp runner for interop tests, and ``register`` (a test phone
REGISTERs with Digest)."""

from trio_voip.testing.bridges import BridgeApi, BridgeMachine, BridgeSystem, TableBridgeSystem
from trio_voip.testing.network import (
    Impairments,
    MemoryNetwork,
    MemoryTransport,
    NetworkStats,
    Packet,
)
from trio_voip.testing.sdp_strategies import (
    audio_offers,
    media_descriptions,
    mutated_sdp_bytes,
    sdp_bytes,
    session_descriptions,
)
from trio_voip.testing.rtp_strategies import compounds as rtcp_compounds
from trio_voip.testing.rtp_strategies import rtp_packets
from trio_voip.testing.registration import register
from trio_voip.testing.sipp import SippResult, run_sipp
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
    "BridgeApi",
    "BridgeMachine",
    "BridgeSystem",
    "TableBridgeSystem",
    "Impairments",
    "MemoryNetwork",
    "MemoryTransport",
    "NetworkStats",
    "Packet",
    "rtcp_compounds",
    "rtp_packets",
    "SippResult",
    "register",
    "run_sipp",
    "audio_offers",
    "media_descriptions",
    "mutated_sdp_bytes",
    "sdp_bytes",
    "session_descriptions",
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
