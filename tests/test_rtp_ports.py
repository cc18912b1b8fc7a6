import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from trio_voip.errors import PortsExhausted, RtpError
from trio_voip.rtp.ports import PortAllocator


def test_pairs_are_even_with_rtcp_above() -> None:
    ports = PortAllocator(10001, 10008)  # odd start: the first pair is 10002/10003
    got = [ports.allocate() for _ in range(3)]
    assert got == [10002, 10004, 10006]
    assert ports.in_use == 6 and ports.allocations == 3
    assert ports.is_allocated(10003) and not ports.is_allocated(10008)
    with pytest.raises(PortsExhausted):
        ports.allocate()  # 10008 has no 10009 inside the range


def test_rtcp_mux_holds_one_port() -> None:
    ports = PortAllocator(20000, 20003)
    assert ports.allocate(rtcp_mux=True) == 20000
    assert ports.in_use == 1 and not ports.is_allocated(20001)


def test_release_returns_capacity_and_reuse_is_round_robin() -> None:
    ports = PortAllocator(10000, 10009)
    first = ports.allocate()
    second = ports.allocate()
    ports.release(first)
    assert ports.in_use == 2
    # The port released a moment ago is the last candidate, not the next.
    assert ports.allocate() == second + 2
    with pytest.raises(RtpError):
        ports.release(first)  # double release is a bug in the caller


def test_exhaustion_and_recovery() -> None:
    ports = PortAllocator(10000, 10005)
    held = [ports.allocate(), ports.allocate(), ports.allocate()]
    with pytest.raises(PortsExhausted, match="no free RTP port pair"):
        ports.allocate()
    ports.release(held[1])
    assert ports.allocate() == held[1]


def test_unusable_ports_are_skipped_until_cleared() -> None:
    ports = PortAllocator(10000, 10005)
    ports.mark_unusable(10001)  # someone else bound an RTCP port
    assert ports.allocate() == 10002
    assert ports.allocate() == 10004
    with pytest.raises(PortsExhausted):
        ports.allocate()
    ports.clear_unusable()
    assert ports.allocate() == 10000
    with pytest.raises(RtpError):
        ports.mark_unusable(9999)


@pytest.mark.parametrize("start, end", [(0, 10), (10, 9), (10000, 70000), (10001, 10002)])
def test_bad_ranges(start: int, end: int) -> None:
    with pytest.raises(RtpError):
        PortAllocator(start, end)


class AllocatorMachine(RuleBasedStateMachine):
    """Random allocate/release/mark_unusable against a model of which ports are held."""

    allocations = Bundle("allocations")

    def __init__(self) -> None:
        super().__init__()
        self.ports = PortAllocator(30000, 30015)
        self.held: dict[int, set[int]] = {}
        self.unusable: set[int] = set()

    def _model_has_room(self, size: int) -> bool:
        taken = set().union(*self.held.values()) | self.unusable
        return any(
            not {p, p + 1}.intersection(taken) if size == 2 else p not in taken
            for p in range(30000, 30016, 2)
        )

    @rule(target=allocations, mux=st.booleans())
    def allocate(self, mux: bool):
        size = 1 if mux else 2
        if not self._model_has_room(size):
            with pytest.raises(PortsExhausted):
                self.ports.allocate(rtcp_mux=mux)
            return None
        port = self.ports.allocate(rtcp_mux=mux)
        got = set(range(port, port + size))
        assert port % 2 == 0 and 30000 <= port and port + size - 1 <= 30015
        for other in self.held.values():
            assert not got & other
        assert not got & self.unusable
        self.held[port] = got
        return port

    @rule(port=consumes(allocations))
    def release(self, port):
        if port is None:
            return
        self.ports.release(port)
        del self.held[port]

    @rule(port=st.integers(30000, 30015))
    def mark_unusable(self, port: int) -> None:
        self.ports.mark_unusable(port)
        self.unusable.add(port)

    @rule()
    def clear_unusable(self) -> None:
        self.ports.clear_unusable()
        self.unusable.clear()

    @invariant()
    def counts_match(self) -> None:
        assert self.ports.in_use == sum(len(p) for p in self.held.values())
        assert self.ports.allocations == len(self.held)


TestAllocatorMachine = AllocatorMachine.TestCase
TestAllocatorMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
