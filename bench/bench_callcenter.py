"""Load on the call engine: N agents, M customers a second for T seconds, over 127.0.0.1.

The softswitch (in process, media relayed) runs the call engine's driver on queue 6000. One
coordinator registers the N agents (each its own contact) and answers every offer; another
places the customers' calls (one a 1/M s), each staying ``--talk`` seconds once an agent has
answered it, and giving up after ``--patience`` seconds unanswered (abandoned). When all calls
are over it prints answered, abandoned, rejected and lost (customers the engine did not
account for, or calls that failed: must be 0), and the engine's own CPU per call (time spent
inside the engine's methods, not the SIP stack's).

    python bench/bench_callcenter.py [--agents 20] [--rate 10] [--secs 10] [--talk 1.0]
                                     [--patience 30] [--strategy longest-idle]
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any

import trio

from trio_voip import CallDecision, CallHandler, CallSession, CallState, SessionManagerBuilder
from trio_voip.callcenter import CallCenter
from trio_voip.errors import TrioVoipError
from trio_voip.sip.registrar import RegistrationSucceeded
from trio_voip.softswitch import HttpConfig, QueueConfig, RtpConfig, SipConfig, Softswitch
from trio_voip.softswitch.app import make_call_center
from trio_voip.softswitch.config import CallCenterConfig, SoftswitchConfig, UserConfig
from trio_voip.testing.registration import register

QUEUE = "6000"


class TimedEngine:
    """The engine, with the time spent in its methods added up (``seconds``)."""

    def __init__(self, engine: CallCenter) -> None:
        self._engine = engine
        self.seconds = 0.0
        self.by_method: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if not callable(attr):
            return attr

        @functools.wraps(attr)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.seconds += spent
                self.by_method[name] = self.by_method.get(name, 0.0) + spent

        return timed


class Agents(CallHandler):
    """Every agent's phone: answers at once and tells the customer it was answered."""

    def __init__(self) -> None:
        self.answered: dict[str, trio.Event] = {}

    async def on_incoming_call(self, call: CallSession) -> CallDecision:
        customer = getattr(call.remote_party.uri, "user", None)
        event = self.answered.get(customer or "")
        if event is not None:
            event.set()
        return CallDecision.accept()


async def bench(args: argparse.Namespace) -> int:
    users = tuple(UserConfig(str(2000 + i), f"pw{i}") for i in range(1, args.agents + 1))
    config = SoftswitchConfig(
        sip=SipConfig(port=0, transports=("udp",), auth_invite=False),
        rtp=RtpConfig(34000, 35999),
        http=HttpConfig(enabled=False),
        callcenter=CallCenterConfig(store=None),  # the engine's CPU, not the disk's
        users=users,
        queues=(QueueConfig(QUEUE, "bench", strategy=args.strategy,
                            members=tuple(u.name for u in users), wrap_up_time=args.wrap_up,
                            join_empty="ignore"),),
    )
    engine = TimedEngine(make_call_center(config))
    agents = Agents()
    outcome = {"answered": 0, "gave_up": 0, "failed": 0}
    async with trio.open_nursery() as nursery:
        # the timed engine stands in for the engine it wraps
        switch: Softswitch = await nursery.start(
            Softswitch(config, engine=engine).run  # type: ignore[arg-type]
        )
        port = switch.coordinator.port("UDP")
        agent_phone = (SessionManagerBuilder().listen("127.0.0.1", 0, transports=("UDP",))
                       .rtp_ports(36000, 37999).limits(max_calls=5000).handler(agents))
        customer_phone = (SessionManagerBuilder().listen("127.0.0.1", 0, transports=("UDP",))
                          .rtp_ports(38000, 39999).limits(max_calls=5000))
        async with agent_phone.build() as agent_side, customer_phone.build() as customers:
            for user in users:
                done = await register(agent_side, user.name, user.password, port, expires=600)
                if not isinstance(done, RegistrationSucceeded):
                    raise SystemExit(f"{user.name} could not register: {done}")
            while not all(engine.agent_status(u.name).logged_in for u in users):
                await trio.sleep(0.05)

            async def customer(n: int) -> None:
                name = f"c{n}"
                answered = agents.answered[name] = trio.Event()
                try:
                    call = await customers.make_call(f"sip:{QUEUE}@127.0.0.1:{port}",
                                                     from_user=name)
                    state = await call.wait_state(CallState.ACTIVE)
                    if state is not CallState.ACTIVE:
                        outcome["failed"] += 1
                        return
                    with trio.move_on_after(args.patience):
                        await answered.wait()
                    if answered.is_set():
                        await trio.sleep(args.talk)
                        outcome["answered"] += 1
                    else:
                        outcome["gave_up"] += 1
                    await call.hangup()
                except TrioVoipError:
                    outcome["failed"] += 1
                finally:
                    del agents.answered[name]

            total = int(args.rate * args.secs)
            started = time.perf_counter()
            async with trio.open_nursery() as calls:
                for n in range(total):
                    calls.start_soon(customer, n)
                    await trio.sleep_until(trio.current_time() + 1 / args.rate)
            elapsed = time.perf_counter() - started
            while switch.coordinator.calls or engine.live_calls():
                await trio.sleep(0.05)
        stats = engine.queue_stats(QUEUE, trio.current_time())
        nursery.cancel_scope.cancel()
    accounted = stats.answered + stats.abandoned + stats.overflowed + stats.rejected
    lost = (total - accounted) + outcome["failed"] + (stats.answered - outcome["answered"])
    print(f"agents {args.agents}, {args.rate}/s for {args.secs} s ({total} customers, "
          f"all over in {elapsed:.1f} s), strategy {args.strategy}, talk {args.talk} s")
    print(f"answered  {stats.answered}")
    print(f"abandoned {stats.abandoned}")
    print(f"rejected  {stats.rejected}")
    print(f"lost      {lost}")
    asa = stats.average_speed_of_answer
    print(f"average speed of answer {asa:.3f} s" if asa is not None else "no answers")
    print(f"engine CPU per call {engine.seconds / max(total, 1) * 1e6:.0f} us "
          f"({engine.seconds * 1e3:.1f} ms in all)")
    ranked = sorted(engine.by_method.items(), key=lambda item: -item[1])
    print("  by input: " + ", ".join(f"{name} {spent * 1e3:.1f} ms" for name, spent in ranked[:6]))
    return 0 if lost == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--secs", type=float, default=10.0)
    parser.add_argument("--talk", type=float, default=1.0)
    parser.add_argument("--patience", type=float, default=30.0)
    parser.add_argument("--wrap-up", type=float, default=0.0)
    parser.add_argument("--strategy", default="longest-idle")
    return trio.run(bench, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
