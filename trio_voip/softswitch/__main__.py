"""``trio-voip serve [--config FILE]`` (or ``python -m trio_voip.softswitch serve``): run the
softswitch until SIGINT/SIGTERM, then end the live calls (BYE) and exit 0.

``trio-voip check --config FILE`` only reads the configuration; ``trio-voip config`` prints
the defaults as a commented file to start from. A configuration mistake is one
line on stderr naming the key and its line, exit code 2; a softswitch that cannot start (a
port in use) is one line too, exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import trio

from trio_voip.errors import ConfigError, TrioVoipError
from trio_voip.softswitch.config import EXAMPLE_CONFIG, SoftswitchConfig, load_config
from trio_voip.softswitch.server import serve

__all__ = ["main", "run_until_signal"]


def _echo(line: str) -> None:
    print(line, flush=True)


async def run_until_signal(config: SoftswitchConfig) -> None:
    """Serve ``config`` until SIGINT or SIGTERM."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve, config)
            _echo("ready (Ctrl-C stops)")
            async for signum in signals:
                calls = len(running.softswitch.coordinator.calls)
                _echo(f"{signal.Signals(signum).name}: shutting down, ending {calls} call(s)")
                nursery.cancel_scope.cancel()
                break
    _echo("stopped")


def _cause(exc: BaseException) -> BaseException | None:
    """The error that stopped the start: an OSError or project error inside ``exc``."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _cause(inner)
            if found is not None:
                return found
        return None
    return exc if isinstance(exc, (OSError, TrioVoipError)) else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trio-voip", description="trio-voip softswitch")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the softswitch (embedded demo defaults)")
    serve_cmd.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve_cmd.add_argument("-v", "--verbose", action="store_true", help="log calls (INFO)")
    check_cmd = commands.add_parser("check", help="read a configuration and report mistakes")
    check_cmd.add_argument("--config", metavar="FILE", required=True)
    commands.add_parser("config", help="print the defaults as a commented TOML file")
    args = parser.parse_args(argv)
    if args.command == "config":
        print(EXAMPLE_CONFIG, end="")
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"trio-voip: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"{args.config}: OK")
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        trio.run(run_until_signal, config)
    except BaseException as exc:
        cause = _cause(exc)
        if cause is None:
            raise
        print(f"trio-voip: cannot run the softswitch: {cause}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
