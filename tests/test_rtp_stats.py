import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_voip.errors import RtpError
from trio_voip.rtp.packet import SenderReport
from trio_voip.rtp.stats import MAX_DROPOUT, ReceiverStats


def feed(stats: ReceiverStats, seqs, *, start_time: float = 0.0) -> list[bool]:
    """Packets 20 ms apart, timestamps following the sequence numbers (160 per packet)."""
    return [
        stats.update(seq % 65536, (seq * 160) % 2**32, start_time + i * 0.02, 172)
        for i, seq in enumerate(seqs)
    ]


def test_probation_then_clean_stream_across_wrap() -> None:
    stats = ReceiverStats(ssrc=1)
    accepted = feed(stats, range(65530, 65630))
    # A.1: the first packet only starts probation; the second validates the source.
    assert accepted == [False] + [True] * 99
    assert stats.valid
    assert stats.received == 99
    assert stats.extended_highest_sequence == 65536 + 93
    assert stats.expected == 99
    assert stats.cumulative_lost == 0
    assert stats.packets == 100 and stats.octets == 17200
    assert stats.jitter == pytest.approx(0.0, abs=1e-9)


def test_no_report_while_on_probation() -> None:
    stats = ReceiverStats(ssrc=1)
    feed(stats, [10, 500, 20000])  # never two in sequence
    assert not stats.valid
    assert stats.report_block(now=1.0) is None
    assert stats.expected == 0


def test_losses_and_fraction_lost_per_interval() -> None:
    stats = ReceiverStats(ssrc=9)
    first = [s for s in range(0, 101) if s % 10 != 5]  # 10 of 100 after base seq 1 lost
    feed(stats, first)
    block = stats.report_block(now=2.0)
    assert block is not None
    assert block.ssrc == 9
    assert block.cumulative_lost == 10
    assert block.fraction_lost == (10 << 8) // 100
    assert block.highest_sequence == 100
    feed(stats, range(101, 201), start_time=2.02)
    block = stats.report_block(now=4.0)
    assert block is not None
    assert block.fraction_lost == 0
    assert block.cumulative_lost == 10
    assert block.highest_sequence == 200


def test_duplicates_and_reordering_are_told_apart() -> None:
    stats = ReceiverStats(ssrc=1)
    feed(stats, [0, 1, 2, 4, 3, 3, 4, 5, 5])
    assert stats.out_of_order == 1  # 3 came after 4
    assert stats.duplicates == 3  # the second 3, the second 4 (behind), the second 5 (at max)
    # A.1 counts duplicates as received, so "lost" goes negative.
    assert stats.received == 8
    assert stats.expected == 5
    assert stats.cumulative_lost == -3
    block = stats.report_block(now=1.0)
    assert block is not None
    assert block.cumulative_lost == -3 and block.fraction_lost == 0


def test_big_jump_is_ignored_once_and_restarts_the_source_when_repeated() -> None:
    stats = ReceiverStats(ssrc=1)
    feed(stats, range(0, 50))
    jump = 49 + MAX_DROPOUT + 10
    assert stats.update(jump, 0, 5.0, 100) is False
    assert stats.extended_highest_sequence == 49
    assert stats.update(jump + 1, 160, 5.02, 100) is True
    assert stats.extended_highest_sequence == jump + 1
    assert stats.received == 1
    assert stats.expected == 1


def test_jitter_of_alternating_delay_converges_to_the_delay_step() -> None:
    stats = ReceiverStats(ssrc=1, clock_rate=8000)
    for i in range(400):
        wobble = 0.01 if i % 2 else 0.0  # every other packet 10 ms late: D = 80 units
        stats.update(i, i * 160, i * 0.02 + wobble, 160)
    assert stats.jitter == pytest.approx(80, rel=1e-3)
    assert stats.jitter_seconds == pytest.approx(0.01, rel=1e-3)
    block = stats.report_block(now=9.0)
    assert block is not None and block.jitter == 79


def test_jitter_survives_rtp_timestamp_wrap() -> None:
    stats = ReceiverStats(ssrc=1)
    base = 2**32 - 800
    for i in range(20):
        stats.update(i, (base + i * 160) % 2**32, i * 0.02, 160)
    assert stats.jitter < 1e-6


def test_duplicates_do_not_feed_jitter() -> None:
    stats = ReceiverStats(ssrc=1)
    feed(stats, range(10))
    stats.update(9, 9 * 160, 5.0, 160)  # a duplicate arriving seconds later
    assert stats.duplicates == 1
    assert stats.jitter == 0.0


def test_lsr_and_dlsr_come_from_the_last_sender_report() -> None:
    stats = ReceiverStats(ssrc=1)
    feed(stats, range(5))
    sr = SenderReport(1, (0x12345678 << 32) | 0x9ABC0000, 0, 5, 800)
    stats.record_sender_report(sr, arrival_time=10.0)
    block = stats.report_block(now=10.5)
    assert block is not None
    assert block.last_sr == 0x56789ABC
    assert block.delay_since_last_sr == 32768


def test_bad_clock_rate() -> None:
    with pytest.raises(RtpError):
        ReceiverStats(ssrc=1, clock_rate=0)


@given(
    start=st.integers(0, 65535),
    length=st.integers(3, 400),
    drops=st.sets(st.integers(2, 399)),
    swaps=st.sets(st.integers(2, 398)),
)
def test_cumulative_loss_counts_the_missing_packets(
    start: int, length: int, drops: set[int], swaps: set[int]
) -> None:
    offsets = [i for i in range(length) if i not in drops]
    # Swap some neighbours so packets arrive late (never the first two: they validate the source).
    # Swaps never chain, so no packet is more than one place late (well inside MAX_MISORDER).
    last = -2
    for i in sorted(swaps):
        if i + 1 < len(offsets) and i > last + 1:
            offsets[i], offsets[i + 1] = offsets[i + 1], offsets[i]
            last = i
    stats = ReceiverStats(ssrc=1)
    feed(stats, [start + o for o in offsets])
    highest = max(offsets)
    missing = sum(1 for i in range(1, highest + 1) if i not in offsets)
    assert stats.cumulative_lost == missing
    assert stats.extended_highest_sequence % 65536 == (start + highest) % 65536
    assert stats.expected == highest  # offsets 1..highest; offset 0 was the probation packet
    assert stats.duplicates == 0
    late = sum(1 for i, o in enumerate(offsets) if o < max(offsets[: i + 1]))
    assert stats.out_of_order == late
