"""Sans-IO media basics: RTP/RTCP packets, receiver statistics, G.711, DTMF, tones, port pool.

Nothing here touches a socket or awaits; the relay and media tasks drive these objects.
"""

from trio_voip.rtp.dtmf import (
    DTMF_EVENTS,
    DtmfDetector,
    DtmfDigit,
    TelephoneEvent,
    dtmf_packets,
    parse_telephone_event,
)
from trio_voip.rtp.g711 import (
    G711Law,
    alaw_decode,
    alaw_encode,
    mix,
    mix_minus,
    ulaw_decode,
    ulaw_encode,
)
from trio_voip.rtp.mixer import MixParticipant, Mixer, RtpPacketizer
from trio_voip.rtp.packet import (
    AppPacket,
    Goodbye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    RtcpUnknown,
    RtpHeaderExtension,
    RtpPacket,
    SdesChunk,
    SdesItem,
    SenderReport,
    SourceDescription,
    is_rtcp,
    parse_rtcp_compound,
    parse_rtp,
    rtp_header_fields,
    rewrite_rtp_header,
    rtp_payload_bounds,
    serialize_rtcp_compound,
)
from trio_voip.rtp.playback import (
    FrameListSource,
    FrameSource,
    ToneSource,
    WavSource,
    convert_frame,
)
from trio_voip.rtp.ports import PortAllocator
from trio_voip.rtp.relay import EndpointStats, MediaEndpoint, RtpRelay, SourceLatch
from trio_voip.rtp.stats import ReceiverStats
from trio_voip.rtp.ticker import MediaTicker, Playback, PlaybackEnd, StreamFormat, TickSchedule
from trio_voip.rtp.tones import busy_frames, dual_tone_frames, ringback_frames, tone_frames
from trio_voip.rtp.wav import frames_to_wav, read_wav, wav_to_frames, write_wav

__all__ = [
    "DTMF_EVENTS",
    "DtmfDetector",
    "DtmfDigit",
    "TelephoneEvent",
    "dtmf_packets",
    "parse_telephone_event",
    "G711Law",
    "alaw_decode",
    "alaw_encode",
    "mix",
    "mix_minus",
    "ulaw_decode",
    "ulaw_encode",
    "AppPacket",
    "Goodbye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "RtcpUnknown",
    "RtpHeaderExtension",
    "RtpPacket",
    "SdesChunk",
    "SdesItem",
    "SenderReport",
    "SourceDescription",
    "is_rtcp",
    "parse_rtcp_compound",
    "parse_rtp",
    "rtp_header_fields",
    "rtp_payload_bounds",
    "rewrite_rtp_header",
    "serialize_rtcp_compound",
    "PortAllocator",
    "ReceiverStats",
    "busy_frames",
    "dual_tone_frames",
    "ringback_frames",
    "tone_frames",
    "frames_to_wav",
    "read_wav",
    "wav_to_frames",
    "write_wav",
    "EndpointStats",
    "MediaEndpoint",
    "RtpRelay",
    "SourceLatch",
    "MixParticipant",
    "Mixer",
    "RtpPacketizer",
    "FrameListSource",
    "FrameSource",
    "ToneSource",
    "WavSource",
    "convert_frame",
    "MediaTicker",
    "Playback",
    "PlaybackEnd",
    "StreamFormat",
    "TickSchedule",
]
