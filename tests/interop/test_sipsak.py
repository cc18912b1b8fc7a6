"""sipsak (a third-party SIP client) pinging examples/uas.py with OPTIONS over UDP and TCP."""

import subprocess

import trio

from .uas_fixture import start_uas


async def sipsak_run(sipsak: str, *args: str) -> subprocess.CompletedProcess:
    return await trio.run_process([sipsak, *args], capture_stdout=True, capture_stderr=True,
                                  check=False)


async def test_sipsak_options_ping(sipsak):
    async with trio.open_nursery() as nursery:
        uas, port = await start_uas(nursery)
        uri = f"sip:service@127.0.0.1:{port}"
        with trio.fail_after(30):
            single = await sipsak_run(sipsak, "--nagios-code", "-H", "127.0.0.1", "-s", uri)
            repeated = await sipsak_run(sipsak, "-A", "10", "-H", "127.0.0.1", "-s", uri)
            tcp = await sipsak_run(sipsak, "--nagios-code", "-E", "tcp", "-H", "127.0.0.1",
                                   "-s", uri)
        assert single.returncode == 0, single.stdout + single.stderr
        assert b"SIP ok" in single.stdout
        assert repeated.returncode == 0, repeated.stdout + repeated.stderr
        assert tcp.returncode == 0, tcp.stdout + tcp.stderr
        nursery.cancel_scope.cancel()
