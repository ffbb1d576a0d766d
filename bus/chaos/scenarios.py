"""The fault scenarios: each hurts a running bus one way and counts what went in and came out.

A scenario is a function of a :class:`~bus.chaos.rig.Rig` (simulator running, nothing else)
and a :class:`Size`, returning a :class:`~bus.chaos.rig.Tally`. It starts the processes it
needs, pushes dossiers, injects its fault for real (SIGKILL, a broker node stopped, the
partner's link cut, its fault switches), and settles. A scenario whose fault did not land where
it should (the worker finished before the kill, no commit went unanswered) fails with
:class:`FaultMissed`: a run that proves nothing must not pass.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from bus.chaos.rig import CONNECTOR, PUSHERS, Rig, Tally

__all__ = ["FULL", "SCENARIOS", "SIZES", "SMALL", "FaultMissed", "Scenario", "Size"]


class FaultMissed(RuntimeError):
    """The fault did not land where the scenario needs it: the run proves nothing."""


@dataclass(frozen=True)
class Size:
    """How much each scenario pushes and how long its outages last."""

    name: str
    dossiers: int
    broker_outage: float
    partner_outage: float
    #: Good dossiers the poison is hidden among.
    poison_among: int
    #: Longest wait for the bus to finish after the push, in seconds.
    settle_timeout: float


SMALL = Size(
    "small", dossiers=600, broker_outage=5.0, partner_outage=5.0, poison_among=1000,
    settle_timeout=240.0,
)  # fmt: skip
FULL = Size(
    "full", dossiers=10_000, broker_outage=30.0, partner_outage=60.0, poison_among=10_000,
    settle_timeout=1800.0,
)  # fmt: skip
SIZES = {size.name: size for size in (SMALL, FULL)}


async def worker_killed_mid_batch(rig: Rig, size: Size) -> Tally:
    """``kill -9`` the only worker once the partner has registered a fifth of the dossiers, with
    a prefetch of messages in hand and calls in flight; a new worker finishes the work."""
    api = await rig.start_api()
    first = await rig.start_worker()
    bodies = rig.dossiers(size.dossiers)
    started = time.monotonic()

    async def kill_mid_batch() -> str:
        await rig.wait_applied(len(bodies) // 5)
        code = await asyncio.to_thread(rig.kill, first)
        applied = (await rig.partner_stats()).applied
        if applied >= len(bodies):
            raise FaultMissed("the worker had registered every dossier before it was killed")
        await rig.start_worker()
        return f"worker killed (exit {code}) at {applied} of {len(bodies)} registered"

    pushed, note = await asyncio.gather(rig.push(bodies, [api]), kill_mid_batch())
    return await rig.settle(
        len(bodies),
        pushed,
        started=started,
        timeout=size.settle_timeout,
        notes=[note],
    )


async def api_killed_between_commit_and_publish(rig: Rig, size: Size) -> Tally:
    """An API process SIGKILLs itself right after a group commit, before it answers or wakes its
    relay; the one-stop system retries its unanswered dossiers on a second API (same
    ``Idempotency-Key``), and the dead process's outbox rows are published by another relay."""
    # Each commit holds at most the pushes in flight, so the push makes at least
    # dossiers / pushers commits: the fail point fires in the first third of it.
    kill_at = max(2, size.dossiers // PUSHERS // 3)
    doomed = await rig.start_api(failpoints=f"ingest.after_commit=kill@{kill_at}")
    spare = await rig.start_api()
    await rig.start_worker()
    bodies = rig.dossiers(size.dossiers)
    started = time.monotonic()
    pushed = await rig.push(bodies, [doomed, spare])
    code = await asyncio.to_thread(rig.reap, doomed, timeout=60)
    if code != -signal.SIGKILL:
        raise FaultMissed(f"the API was to kill itself at its commit {kill_at}; exit {code}")
    if not pushed.replayed:
        raise FaultMissed("no dossier was committed by the killed API and left unanswered")
    return await rig.settle(
        len(bodies),
        pushed,
        started=started,
        timeout=size.settle_timeout,
        notes=[
            f"API killed itself after commit {kill_at}; {len(pushed.replayed)} dossiers it had "
            "committed without answering were answered as replays by the other API"
        ],
    )


async def broker_stopped(rig: Rig, size: Size) -> Tally:
    """The only RabbitMQ node stops for the outage while a third of the dossiers are pushed:
    the API keeps answering 202 (its outbox holds the events), and publishing resumes when the
    node is back."""
    nodes = rig.broker_nodes()
    api = await rig.start_api()
    await rig.start_worker()
    third = size.dossiers // 3
    started = time.monotonic()
    pushed = await rig.push(rig.dossiers(third), [api])
    await asyncio.wait_for(asyncio.to_thread(nodes.stop_node, 0), 120)
    down = time.monotonic()

    async def outage() -> float:
        await asyncio.sleep(size.broker_outage)
        await asyncio.wait_for(asyncio.to_thread(nodes.start_node, 0), 300)
        return time.monotonic() - down

    restart = asyncio.create_task(outage())
    during = await rig.push(rig.dossiers(third, start=third), [api])
    failures = []
    if restart.done():
        failures.append("the API could not accept the dossiers pushed while the broker was down")
    elif during.retried:
        failures.append(f"{during.retried} pushes were refused while the broker was down")
    pushed.add(during)
    seconds_down = await restart
    pushed.add(await rig.push(rig.dossiers(size.dossiers - 2 * third, start=2 * third), [api]))
    return await rig.settle(
        size.dossiers,
        pushed,
        started=started,
        timeout=size.settle_timeout,
        notes=[
            f"broker down {seconds_down:.0f} s; {len(during.accepted)} dossiers answered 202 "
            "while it was down"
        ],
        failures=failures,
    )


async def cluster_node_stopped(rig: Rig, size: Size) -> Tally:
    """One node of a three-node RabbitMQ cluster stops while dossiers flow: the quorum queues
    carry on with the two others, the bus's processes fail over to them, and nothing is lost.
    The node is started again once the count is made."""
    nodes = rig.broker_nodes()
    api = await rig.start_api()
    await rig.start_worker()
    bodies = rig.dossiers(size.dossiers)
    half = len(bodies) // 2
    started = time.monotonic()
    # The node that leads the connector's queue: its loss forces an election as well as the
    # processes' failover (they all start on node 0, which declares the queues and so
    # usually leads them).
    queue = rig.names.connector_queue(CONNECTOR)
    listed = await asyncio.to_thread(nodes.queues, 0)
    leader = next((q.get("leader") for q in listed if q.get("name") == queue), None)
    names = [nodes.node_name(i) for i in range(3)]
    victim = names.index(leader) if leader in names else 0

    async def stop_mid_run() -> str:
        applied = await rig.wait_applied(len(bodies) // 5)
        await asyncio.wait_for(asyncio.to_thread(nodes.stop_node, victim), 120)
        return (
            f"node {victim} of 3 ({names[victim]}, leader of {queue}: {leader == names[victim]})"
            f" stopped at {applied} of {len(bodies)} registered"
        )

    pushed, note = await asyncio.gather(rig.push(bodies[:half], [api]), stop_mid_run())
    pushed.add(await rig.push(bodies[half:], [api]))
    tally = await rig.settle(
        len(bodies),
        pushed,
        started=started,
        timeout=size.settle_timeout,
        notes=[note, f"{len(bodies) - half} dossiers pushed while the node was down"],
    )
    await asyncio.wait_for(asyncio.to_thread(nodes.start_node, victim), 300)
    return tally


async def partner_down(rig: Rig, size: Size) -> Tally:
    """The partner's link is cut (connections reset, new ones refused) for the outage once a
    fifth of the dossiers are registered: deliveries wait behind the circuit breaker and the
    retry tiers, and each lands once when the partner is back."""
    api = await rig.start_api()
    await rig.start_worker()
    bodies = rig.dossiers(size.dossiers)
    started = time.monotonic()

    async def outage() -> str:
        await rig.wait_applied(len(bodies) // 5)
        await asyncio.to_thread(rig.cut_partner)
        at_cut = (await rig.partner_stats()).applied
        await asyncio.sleep(size.partner_outage)  # the outage is the scenario's length
        at_restore = (await rig.partner_stats()).applied
        rig.restore_partner()
        # Requests whose bytes had all arrived when the link was cut may still be registered.
        if at_restore - at_cut > rig.partner_slots:
            raise FaultMissed(f"{at_restore - at_cut} dossiers were registered through the cut")
        if at_restore >= len(bodies):
            raise FaultMissed("every dossier was registered before the partner came back")
        return (
            f"partner cut for {size.partner_outage:.0f} s at {at_cut} of {len(bodies)} "
            f"registered; circuit opened {rig.log_lines('worker', 'circuit open;')} times"
        )

    pushed, note = await asyncio.gather(rig.push(bodies, [api]), outage())
    return await rig.settle(
        len(bodies),
        pushed,
        started=started,
        timeout=size.settle_timeout,
        notes=[note],
    )


async def partner_flaky(rig: Rig, size: Size) -> Tally:
    """The partner answers one call in five with 503 throughout: every dossier is registered
    once, through the retry tiers."""
    api = await rig.start_api()
    await rig.start_worker()
    await rig.set_partner_faults(error_rate=0.2)
    bodies = rig.dossiers(size.dossiers)
    started = time.monotonic()
    pushed = await rig.push(bodies, [api])
    tally = await rig.settle(
        len(bodies),
        pushed,
        started=started,
        timeout=size.settle_timeout,
    )
    stats = await rig.partner_stats()
    busy = stats.requests - stats.applied - stats.duplicates
    return _with_notes(
        tally,
        f"{stats.requests} calls, about {busy} answered 503; "
        f"circuit opened {rig.log_lines('worker', 'circuit open;')} times",
    )


async def poison_among_good(rig: Rig, size: Size) -> Tally:
    """Two poison dossiers in the middle of the good ones: one the partner always refuses with
    503 (retried, then parked), one it cannot be sent at all (parked at once). Both are kept as
    dead letters with their reasons; every good one is registered once, none held up."""
    api = await rig.start_api()
    await rig.start_worker()
    good = rig.dossiers(size.poison_among)
    refused, unmappable = rig.dossiers(2, start=size.poison_among)
    del unmappable["form"]["child_full_name"]  # a valid dossier the partner's form cannot take
    await rig.set_partner_faults(failing_dossiers=[refused["code"]])
    half = len(good) // 2
    bodies = [*good[:half], refused, unmappable, *good[half:]]
    started = time.monotonic()
    pushed = await rig.push(bodies, [api])
    tally = await rig.settle(
        len(bodies),
        pushed,
        started=started,
        expected_parked={refused["code"], unmappable["code"]},
        timeout=size.settle_timeout,
    )
    parked = (await rig.ledger(pushed.accepted)).parked
    wrong = []
    for code, reason in (
        (refused["code"], "transient HTTP_503: retries exhausted"),
        (unmappable["code"], "permanent"),
    ):
        if not any(r.startswith(reason) for r in parked.get(code, [])):
            wrong.append(f"{code} not parked as {reason!r}: {parked.get(code)}")
    if "child_full_name" not in " ".join(parked.get(unmappable["code"], [])):
        wrong.append("the unmappable dossier's reason does not name the missing field")
    return _with_notes(tally, failures=wrong)


def _with_notes(tally: Tally, *notes: str, failures: Sequence[str] = ()) -> Tally:
    return replace(tally, notes=(*tally.notes, *notes), failures=(*tally.failures, *failures))


@dataclass(frozen=True)
class Scenario:
    """A scenario as the suite runs it: its function and the rig it needs."""

    #: Its name on the command line, and its row in the report.
    name: str
    title: str
    run: Callable[[Rig, Size], Awaitable[Tally]]
    #: Private RabbitMQ nodes it stops (``bus.testing.cluster.RabbitNodes``); 0: the shared
    #: broker, which no scenario may stop.
    nodes: int = 0
    #: The first AMQP port of those nodes, apart from other users of private nodes.
    base_port: int = 0
    #: The rig's retry tiers (``BUS_RETRY_DELAYS``), which the civil-status connector uses all.
    retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0, 30.0)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("worker-kill", "worker SIGKILL mid-batch", worker_killed_mid_batch),
        Scenario(
            "api-kill",
            "API killed between commit and publish",
            api_killed_between_commit_and_publish,
        ),
        Scenario(
            "broker-stop", "broker stopped, restarted", broker_stopped, nodes=1, base_port=5721
        ),
        Scenario(
            "node-stop",
            "1 of 3 cluster nodes stopped",
            cluster_node_stopped,
            nodes=3,
            base_port=5731,
        ),
        Scenario("partner-down", "partner down, then back", partner_down),
        # Fifteen attempts, sized from the odds: each call fails on its own draw, so a dossier
        # is parked with probability 0.2^attempts. Eight attempts left one run in 650 of 600
        # dossiers with a parked dossier (and one in 40 at full size); fifteen leave one in
        # 50 million (one in 3 million at full size). Tiers repeat so that the longest wait,
        # about two minutes, stays inside the settle timeout.
        Scenario(
            "partner-flaky",
            "partner answers 1 call in 5 with 503",
            partner_flaky,
            retry_delays=(0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 8.0, 8.0, 15.0, 15.0, 30.0, 30.0),
        ),
        # Short tiers: the refused poison is parked after its three retries, in seconds.
        Scenario(
            "poison",
            "poison message among good ones",
            poison_among_good,
            retry_delays=(0.5, 1.0, 2.0),
        ),
    )
}
