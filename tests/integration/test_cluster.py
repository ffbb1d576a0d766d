"""A three-node RabbitMQ cluster loses the node the bus is connected to: nothing accepted is lost.

The cluster is private (scripts/rabbitmq-cluster.sh: three nodes on loopback ports of their own,
data in a temporary directory); the node is stopped (or killed) for real, mid-stream, and the
tests count what went in (dossiers answered 202, messages confirmed) and what came out
(registrations at the partner simulator, delivered hops and status events in the store, messages
in the queue).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from bus.amqp import Broker, OutgoingMessage, connect_once
from bus.api.app import create_app
from bus.errors import BrokerUnavailable
from bus.settings import Settings
from bus.testing import serve_app
from bus.testing.cluster import CLUSTER_SCRIPT, RabbitNodes, rabbitmq_available
from bus.topology import Names
from tests.conftest import AUTH, make_settings
from tests.integration.conftest import Simulator
from tests.integration.helpers import (
    assert_exactly_once,
    push_dossiers,
    wait_until_applied,
    worker_process,
)

pytestmark = [
    pytest.mark.broker,
    pytest.mark.slow,
    pytest.mark.skipif(
        not rabbitmq_available(),
        reason="rabbitmq-server is not installed (apt-get install rabbitmq-server)",
    ),
]

#: Ports of this module's cluster: 5711-5713, clear of the shared broker and of the script's
#: default (5701), so a developer's own cluster can run beside the tests.
BASE_PORT = 5711


@pytest.fixture(scope="module")
def cluster_nodes() -> Iterator[RabbitNodes]:
    """Three clustered RabbitMQ nodes on loopback, their data in a temporary directory."""
    with RabbitNodes(3, base_port=BASE_PORT) as nodes:
        yield nodes


@pytest.fixture
def cluster(cluster_nodes: RabbitNodes) -> RabbitNodes:
    """The module's cluster with all three nodes up, whatever an earlier test left stopped."""
    cluster_nodes.start_stopped_nodes()
    return cluster_nodes


async def _wait_until(
    condition: Callable[[], object], what: str, timeout: float = 120.0, interval: float = 0.2
) -> float:
    """Poll a blocking ``condition`` (in a thread) until true; the seconds it took."""
    started = time.monotonic()
    while not await asyncio.to_thread(condition):
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(interval)
    return time.monotonic() - started


def _bus_queues(cluster: RabbitNodes, namespace: str, index: int) -> list[dict[str, object]]:
    return [q for q in cluster.queues(index) if str(q["name"]).startswith(f"{namespace}.")]


def _bus_connections(cluster: RabbitNodes, namespace: str, index: int) -> dict[str, int]:
    """The bus's connections (by name) and the AMQP port each is connected to, as node
    ``index`` lists them (the list covers the whole cluster)."""
    answer = cluster.ctl(
        index, "list_connections", "port", "client_properties", "--formatter", "json"
    )
    found = {}
    for connection in json.loads(answer or "[]"):
        properties = {str(p[0]): p[2] for p in connection["client_properties"]}
        name = str(properties.get("connection_name", ""))
        if name.endswith(f"@{namespace}"):
            found[name] = int(connection["port"])
    return found


def test_the_script_and_the_handle_agree_on_the_urls(cluster: RabbitNodes) -> None:
    """``rabbitmq-cluster.sh url`` prints the list RabbitNodes.url hands to the bus."""
    printed = subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), "url"],
        env={
            **os.environ,
            "BUS_CLUSTER_BASE_PORT": str(BASE_PORT),
            "BUS_CLUSTER_DIR": str(cluster.workdir),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == cluster.url
    assert cluster.urls[0] == f"amqp://guest:guest@127.0.0.1:{BASE_PORT}/"


@pytest.mark.timeout(900)
async def test_stopping_the_node_the_bus_uses_loses_nothing(
    cluster: RabbitNodes,
    namespace: str,
    sqlite_url: str,
    simulator: Simulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Node 1 (the bus's connections, the queue leaders) stops while 600 dossiers flow: every
    one answered 202 is registered by the partner once, and the node rejoins afterwards."""
    caplog.set_level(logging.WARNING, logger="bus.amqp")
    settings: Settings = make_settings(
        namespace,
        sqlite_url,
        amqp_url=cluster.url,
        publish_timeout=2.0,
        connector_endpoints={"civil_status": simulator.url},
    )
    log = tmp_path / "worker.log"
    helpers: list[asyncio.Task[None]] = []
    with serve_app(create_app(settings), lifespan="on") as api:
        worker = await asyncio.to_thread(worker_process, settings, log)
        try:
            # Every queue of the bus is a quorum queue with a member on each node.
            queues = _bus_queues(cluster, namespace, 0)
            names = Names(namespace)
            assert {q["name"] for q in queues} >= {
                names.connector_queue("civil_status"),
                names.parking,
                names.webhooks,
                *(names.retry(d) for d in settings.retry_delays),
            }
            for queue in queues:
                assert queue["type"] == "quorum", queue
                assert sorted(queue["online"]) == sorted(cluster.node_name(i) for i in range(3))
            leaders = {str(q["name"]): q["leader"] for q in queues}
            # The API and the worker went to the first address: node 1.
            assert _bus_connections(cluster, namespace, 0) == {
                f"bus-api@{namespace}": cluster.ports[0],
                f"bus-worker@{namespace}": cluster.ports[0],
            }

            timings: dict[str, float] = {}
            # When the partner's count grew: the longest pause around the stop is the outage.
            progress: list[tuple[float, int]] = []

            async def watch_the_partner() -> None:
                while True:
                    applied = simulator.state.stats()["applied"]
                    if not progress or progress[-1][1] != applied:
                        progress.append((time.monotonic(), applied))
                    await asyncio.sleep(0.01)

            async def stop_node_one_when_busy() -> None:
                await _wait_until(
                    lambda: simulator.state.stats()["applied"] >= 150, "150 applied", 120, 0.01
                )
                timings["stop_began"] = time.monotonic()
                timings["applied_at_stop"] = simulator.state.stats()["applied"]
                await asyncio.to_thread(cluster.stop_node, 0)
                timings["stop_took"] = time.monotonic() - timings["stop_began"]
                timings["applied_when_stopped"] = simulator.state.stats()["applied"]
                timings["connections_moved"] = await _wait_until(
                    lambda: (
                        sorted(_bus_connections(cluster, namespace, 1))
                        == [f"bus-api@{namespace}", f"bus-worker@{namespace}"]
                        and cluster.ports[0] not in _bus_connections(cluster, namespace, 1).values()
                    ),
                    "the bus's connections on nodes 2 and 3",
                )

            helpers.append(asyncio.create_task(watch_the_partner()))
            stopper = asyncio.create_task(stop_node_one_when_busy())
            helpers.append(stopper)
            async with httpx.AsyncClient(base_url=api, timeout=60, headers=AUTH) as client:
                pushed = await push_dossiers(client, range(1, 601), concurrency=16)
            await asyncio.wait_for(stopper, 300)
            assert len(pushed.accepted) == 600, pushed.refused
            # The node went while dossiers were in flight. (Its shutdown closes the bus's
            # connections first and then takes its time, several seconds on a busy machine,
            # while the bus carries on through nodes 2 and 3: the count may reach 600 before
            # the shutdown ends.)
            assert timings["applied_at_stop"] < 600, "every dossier was applied before the stop"

            # Each queue lives on without node 1: a leader among the two nodes left.
            survivors = {cluster.node_name(1), cluster.node_name(2)}
            after = {str(q["name"]): q for q in _bus_queues(cluster, namespace, 1)}
            assert set(after) == set(leaders)
            for queue in after.values():
                assert queue["leader"] in survivors, queue

            await wait_until_applied(simulator.state, pushed.accepted, timeout=300)
            await assert_exactly_once(settings, simulator.state, pushed.accepted)
        finally:
            for task in helpers:
                task.cancel()
            worker.send_signal(signal.SIGTERM)
            await asyncio.to_thread(worker.wait, 60)
    assert worker.returncode == 0

    # Both processes said where they went: the API here, the worker in its log.
    moved = [
        r.getMessage() for r in caplog.records if "next attempt goes to node" in r.getMessage()
    ]
    assert any(f"bus-api@{namespace}" in line and "node 2 of 3" in line for line in moved), moved
    worker_log = log.read_text()
    assert "next attempt goes to node 2 of 3" in worker_log, worker_log[-3000:]
    assert ":guest@" not in worker_log

    # Node 1 comes back with its data, rejoins, and its queue members catch up.
    await asyncio.to_thread(cluster.start_node, 0)
    everyone = sorted(cluster.node_name(i) for i in range(3))
    await _wait_until(
        lambda: all(sorted(q["online"]) == everyone for q in _bus_queues(cluster, namespace, 0)),
        "every queue with a member online on each node again",
    )
    pause = max(
        later - earlier
        for (earlier, _), (later, _) in pairwise(progress)
        if later >= timings["stop_began"]
    )
    print(
        f"\n  cluster: node 1 stopped with {timings['applied_at_stop']:.0f} of 600 applied "
        f"(its shutdown took {timings['stop_took']:.1f}s, {timings['applied_when_stopped']:.0f} "
        "applied by then); the partner's longest wait for the "
        f"next dossier around the stop: {pause:.1f}s; queue leaders before: "
        f"{sorted(set(leaders.values()))}"
    )


@pytest.mark.timeout(300)
async def test_publishing_goes_on_when_a_queue_leaders_node_crashes(cluster: RabbitNodes) -> None:
    """Node 1, home of a quorum queue's leader, is killed (SIGKILL) just before the first publish
    of a broker on nodes 2-3: every publish is confirmed within seconds and is in the queue
    (a RabbitMQ 3.10 channel that keeps refusing the queue is replaced)."""
    name = f"t.crash.{uuid.uuid4().hex[:12]}"
    # A publisher on node 1, as the bus's processes were before their node went: it declares
    # the queue (so its leader is on node 1) and is still connected when the node dies.
    on_node_one = await connect_once(cluster.urls[0])
    channel = await on_node_one.channel()
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    [queue] = [q for q in cluster.queues(0) if q["name"] == name]
    assert queue["leader"] == cluster.node_name(0)

    broker = Broker(",".join(cluster.urls[1:]), name="test-crash", publish_timeout=5.0)
    await broker.connect()
    try:
        await asyncio.to_thread(cluster.kill_node, 0)
        deadline = time.monotonic() + 60
        for number in range(40):
            while True:
                try:
                    await broker.publish(
                        OutgoingMessage(
                            exchange="", routing_key=name, body=b"{}", message_id=f"m-{number}"
                        )
                    )
                    break
                except BrokerUnavailable:
                    assert time.monotonic() < deadline, f"message {number} never confirmed"
                    await asyncio.sleep(0.2)
        stored = await broker.channel.get_queue(name, ensure=False)
        arrived: set[str] = set()
        while (message := await stored.get(no_ack=True, fail=False)) is not None:
            arrived.add(message.message_id or "")
        assert arrived == {f"m-{number}" for number in range(40)}
    finally:
        await broker.close()
        await on_node_one.close()
        await asyncio.to_thread(cluster.start_node, 0)
