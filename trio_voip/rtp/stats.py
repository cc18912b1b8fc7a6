"""Receiver statistics for one RTP source, as RFC 3550 appendix A.1, A.3 and A.8 compute them.

Pure state: the caller feeds ``update(seq, timestamp, arrival_time, size)`` for every packet of
the source and asks for :meth:`ReceiverStats.report_block` when it sends an RTCP report.
"""

from __future__ import annotations

import attrs

from trio_voip.errors import RtpError
from trio_voip.rtp.packet import ReportBlock, SenderReport

__all__ = ["ReceiverStats", "MAX_DROPOUT", "MAX_MISORDER", "MIN_SEQUENTIAL"]

# RFC 3550 A.1's constants: how far a sequence number may jump ahead (dropout) or behind
# (misorder) before it counts as a restart of the source, and how many in-order packets a new
# source needs before it is believed.
MAX_DROPOUT = 3000
MAX_MISORDER = 100
MIN_SEQUENTIAL = 2

_SEQ_MOD = 1 << 16
# Remember this many packets behind the highest one: enough for any misorder A.1 accepts.
_WINDOW = 128
_WINDOW_MASK = (1 << _WINDOW) - 1

# What A.1's sequence check made of a packet.
_ACCEPT = object()
_DUPLICATE = object()
_REJECT = object()


@attrs.define
class ReceiverStats:
    """Statistics for one SSRC.

    ``received`` is A.1's count: it includes duplicates and late packets (which is why
    ``cumulative_lost`` can go negative). ``duplicates`` and ``out_of_order`` count them
    separately. ``packets`` / ``octets`` count everything fed in, valid or not. ``jitter`` is in
    RTP timestamp units, as the report carries it.
    """

    ssrc: int
    clock_rate: int = 8000
    packets: int = 0
    octets: int = 0
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    jitter: float = 0.0
    # A.1 source state.
    _max_seq: int = attrs.field(default=0, init=False, repr=False)
    _cycles: int = attrs.field(default=0, init=False, repr=False)
    _base_seq: int = attrs.field(default=0, init=False, repr=False)
    _bad_seq: int = attrs.field(default=_SEQ_MOD + 1, init=False, repr=False)
    _probation: int = attrs.field(default=MIN_SEQUENTIAL, init=False, repr=False)
    _started: bool = attrs.field(default=False, init=False, repr=False)
    _valid: bool = attrs.field(default=False, init=False, repr=False)
    _received_prior: int = attrs.field(default=0, init=False, repr=False)
    _expected_prior: int = attrs.field(default=0, init=False, repr=False)
    # Bit i set: extended sequence (highest - i) has been received; tells duplicates from late.
    _window: int = attrs.field(default=0, init=False, repr=False)
    # A.8 jitter state: last accepted packet's arrival (timestamp units) and RTP timestamp.
    _last_arrival: float | None = attrs.field(default=None, init=False, repr=False)
    _last_timestamp: int = attrs.field(default=0, init=False, repr=False)
    # Last SR heard from this source: its NTP middle word and when it arrived (seconds).
    _last_sr: int = attrs.field(default=0, init=False, repr=False)
    _last_sr_arrival: float | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.clock_rate <= 0:
            raise RtpError(f"clock rate must be positive, got {self.clock_rate}")

    @property
    def valid(self) -> bool:
        """Whether the source has passed probation (A.1) and its statistics mean something."""
        return self._valid

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        if not self._valid:
            return 0
        return self.extended_highest_sequence - self._base_seq + 1

    @property
    def cumulative_lost(self) -> int:
        """Packets expected minus received (A.3); negative when duplicates outnumber losses."""
        return self.expected - self.received

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._window = 1
        self._last_arrival = None

    def update(self, seq: int, timestamp: int, arrival_time: float, size: int) -> bool:
        """Account one packet; return whether A.1 accepts it as part of the source's stream.

        ``arrival_time`` is in seconds on any monotonic clock; ``size`` is what the caller wants
        counted as octets (typically the payload length, as an SR's octet count uses).
        """
        self.packets += 1
        self.octets += size
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self._max_seq = (seq - 1) % _SEQ_MOD
            self._probation = MIN_SEQUENTIAL
        verdict = self._update_seq(seq)
        if verdict is _REJECT:
            return False
        self.received += 1
        # A duplicate says nothing about network delay; letting it into A.8 would inflate jitter.
        if verdict is _ACCEPT:
            self._update_jitter(timestamp, arrival_time)
        return True

    def _update_seq(self, seq: int) -> object:
        max_seq = self._max_seq
        udelta = (seq - max_seq) % _SEQ_MOD
        if self._probation:
            # A new source is believed only after MIN_SEQUENTIAL packets in sequence.
            if seq == (max_seq + 1) % _SEQ_MOD:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._valid = True
                    return _ACCEPT
            else:
                self._probation = MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return _REJECT
        if udelta == 0:
            self.duplicates += 1
            return _DUPLICATE
        if udelta < MAX_DROPOUT:
            # In order, possibly with a gap.
            if seq < max_seq:
                self._cycles += _SEQ_MOD
            self._max_seq = seq
            self._window = ((self._window << udelta) | 1) & _WINDOW_MASK
            return _ACCEPT
        if udelta <= _SEQ_MOD - MAX_MISORDER:
            # A very large jump: twice in a row (seq, seq + 1) means the source restarted.
            if seq == self._bad_seq:
                self._init_seq(seq)
                return _ACCEPT
            self._bad_seq = (seq + 1) % _SEQ_MOD
            return _REJECT
        # Behind the highest sequence by less than MAX_MISORDER: late or duplicate.
        behind = _SEQ_MOD - udelta
        bit = 1 << behind
        if self._window & bit:
            self.duplicates += 1
            return _DUPLICATE
        self.out_of_order += 1
        self._window |= bit
        return _ACCEPT

    def _update_jitter(self, timestamp: int, arrival_time: float) -> None:
        arrival = arrival_time * self.clock_rate
        if self._last_arrival is not None:
            # A.8's D(i-1, i), with the RTP timestamp difference taken modulo 2**32 so a wrap
            # of the sender's clock is not a 13-hour jump.
            ts_delta = (timestamp - self._last_timestamp) & 0xFFFFFFFF
            if ts_delta & 0x80000000:
                ts_delta -= 1 << 32
            d = abs((arrival - self._last_arrival) - ts_delta)
            self.jitter += (d - self.jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = timestamp

    def record_sender_report(self, report: SenderReport, arrival_time: float) -> None:
        """Remember the source's latest SR so reports can carry LSR/DLSR (for its RTT)."""
        self._last_sr = report.ntp_middle
        self._last_sr_arrival = arrival_time

    def report_block(self, now: float) -> ReportBlock | None:
        """Build the RTCP report block for this source, and start a new reporting interval.

        Returns None while the source is still on probation (nothing valid to report yet).
        """
        if not self._valid:
            return None
        expected = self.expected
        lost = max(-0x800000, min(0x7FFFFF, expected - self.received))
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval == 0 or lost_interval <= 0:
            fraction = 0
        else:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = min(0xFFFFFFFF, max(0, int((now - self._last_sr_arrival) * 65536)))
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=min(fraction, 255),
            cumulative_lost=lost,
            highest_sequence=self.extended_highest_sequence & 0xFFFFFFFF,
            jitter=min(int(self.jitter), 0xFFFFFFFF),
            last_sr=self._last_sr,
            delay_since_last_sr=dlsr,
        )
