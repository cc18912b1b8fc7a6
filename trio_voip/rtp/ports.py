"""Bookkeeping for the RTP port range: which ports a relay may bind next.

Pure: the allocator never opens a socket. The relay asks for a port, binds it (and port + 1 for
RTCP), and if the operating system says EADDRINUSE it calls :meth:`PortAllocator.mark_unusable`,
releases the allocation and asks again.
"""

from __future__ import annotations

import attrs

from trio_voip.errors import PortsExhausted, RtpError

__all__ = ["PortAllocator"]


@attrs.define
class PortAllocator:
    """Hands out RTP ports from ``start`` to ``end`` inclusive.

    :meth:`allocate` returns an even port; without rtcp-mux the odd port above it (RTCP,
    RFC 3550 11) is held too. Allocation walks the range round-robin from where it last stopped,
    so a port released a moment ago is the last to be reused and a late packet of an old call
    does not land in a new one.
    """

    start: int
    end: int
    # allocation's RTP port -> number of ports it holds (1 with rtcp-mux, else 2)
    _allocations: dict[int, int] = attrs.field(init=False, factory=dict)
    _held: set[int] = attrs.field(init=False, factory=set)
    _unusable: set[int] = attrs.field(init=False, factory=set)
    _first: int = attrs.field(init=False)
    _cursor: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.start <= self.end <= 65535:
            raise RtpError(f"bad RTP port range {self.start}-{self.end}")
        self._first = self.start + (self.start & 1)
        if self._first + 1 > self.end:
            raise RtpError(f"RTP port range {self.start}-{self.end} holds no even/odd port pair")
        self._cursor = self._first

    @property
    def in_use(self) -> int:
        """Ports currently held by allocations (a pair counts as two)."""
        return len(self._held)

    @property
    def allocations(self) -> int:
        return len(self._allocations)

    @property
    def capacity(self) -> int:
        """How many pairs the range holds, ignoring ports marked unusable."""
        return (self.end - self._first + 1) // 2

    def allocate(self, *, rtcp_mux: bool = False) -> int:
        """Reserve and return an even RTP port (and port + 1 unless ``rtcp_mux``).

        Raises PortsExhausted when no suitable even port is free.
        """
        size = 1 if rtcp_mux else 2
        pairs = self.capacity
        port = self._cursor
        for _ in range(pairs):
            if self._free(port, size):
                self._allocations[port] = size
                self._held.update(range(port, port + size))
                self._cursor = self._next(port)
                return port
            port = self._next(port)
        raise PortsExhausted(
            f"no free RTP port {'' if rtcp_mux else 'pair '}in {self.start}-{self.end}"
            f" ({len(self._held)} in use, {len(self._unusable)} unusable)"
        )

    def release(self, port: int) -> None:
        """Give back the allocation whose RTP port is ``port``."""
        size = self._allocations.pop(port, None)
        if size is None:
            raise RtpError(f"RTP port {port} is not allocated")
        self._held.difference_update(range(port, port + size))

    def mark_unusable(self, port: int) -> None:
        """Never hand out ``port`` again (something else has it bound).

        An allocation already holding it stays until released; only future allocations avoid it.
        """
        if not self.start <= port <= self.end:
            raise RtpError(f"port {port} is outside the RTP range {self.start}-{self.end}")
        self._unusable.add(port)

    def clear_unusable(self) -> None:
        """Forget every :meth:`mark_unusable` (e.g. after the other process went away)."""
        self._unusable.clear()

    def is_allocated(self, port: int) -> bool:
        """Whether ``port`` (RTP or RTCP) is held by some allocation."""
        return port in self._held

    def _free(self, port: int, size: int) -> bool:
        for candidate in range(port, port + size):
            if candidate in self._held or candidate in self._unusable:
                return False
        return True

    def _next(self, port: int) -> int:
        port += 2
        return self._first if port + 1 > self.end else port
