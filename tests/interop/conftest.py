"""Interop tests run real third-party SIP tools on 127.0.0.1.

Outside CI a missing tool skips the test with the reason; under CI=true (where .ci/run installs
them) a missing tool is a failure, so a broken install step cannot pass silently.
"""

import os
import shutil

import pytest


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is not installed but CI=true (.ci/run installs {package})")
        pytest.skip(f"{name} not installed (Debian package {package}; .ci/run installs it)")
    return path


@pytest.fixture
def sipp() -> str:
    return require_tool("sipp", "sip-tester")


@pytest.fixture
def sipsak() -> str:
    return require_tool("sipsak", "sipsak")
