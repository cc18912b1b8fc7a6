import socket

import pytest


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unused_udp_port_pair() -> tuple[int, int]:
    """Two distinct loopback UDP ports that were free a moment ago (for external tools)."""
    a = _free_udp_port()
    b = _free_udp_port()
    while b == a:
        b = _free_udp_port()
    return a, b
