"""``make run``: the embedded bus on one machine, and a sample dossier followed hop by hop."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import httpx
import orjson
from rich.console import Console

from bus.amqp import connect_robust
from bus.api.auth import API_KEY_HEADER
from bus.dashboard import DASHBOARD_PATH
from bus.processes import Supervisor, ensure_port_free, python_module, wait_http
from bus.registry import ConnectorRegistry
from bus.security.clients import AgencyClient
from bus.security.demo import DemoClients, make_demo_clients
from bus.settings import Settings, broker_addresses
from bus.store.migrate import upgrade
from bus.topology import Names
from contracts import VN_TZ, Dossier, sample_birth_dossier, sample_death_dossier

#: Where ``bus run``'s first worker serves its metrics; the next ones take the next ports.
DEMO_WORKER_METRICS_PORT = 9101


def run_embedded(settings: Settings, *, demo: bool, workers: int, console: Console) -> int:
    """Start simulators, workers and the API as child processes; block until Ctrl-C."""
    registry = ConnectorRegistry.discover(settings.connector_endpoints)
    console.rule("[bold]Liên thông bus — embedded profile")
    console.print(f"store   {settings.database_url}")
    nodes = ", ".join(node.split("@")[-1] for node in broker_addresses(settings.amqp_url))
    console.print(f"broker  {nodes}  namespace '{settings.namespace}'")
    upgrade(settings.database_url)  # once, before several processes race to do it
    supervisor = Supervisor()
    _add_demo_environment(supervisor, registry, console)
    # Its children write to this terminal: text lines, unless the user asked for JSON.
    supervisor.env.setdefault("BUS_LOG_FORMAT", "text")
    clients = make_demo_clients(registry)
    supervisor.env["BUS_CLIENTS_FILE"] = str(clients.path)
    _print_credentials(clients, console)
    # A service manager stops us with SIGTERM: take the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for connector_id in registry.ids:
            registered = registry.get(connector_id)
            module = getattr(registered.factory, "simulator_module", None)
            if module is None:
                continue
            endpoint = urlsplit(str(registered.config.endpoint))
            ensure_port_free(
                endpoint.hostname or "127.0.0.1",
                endpoint.port or 80,
                f"the {connector_id} simulator",
            )
            supervisor.start(
                f"simulator:{connector_id}",
                python_module(
                    module,
                    "--host",
                    endpoint.hostname or "127.0.0.1",
                    "--port",
                    str(endpoint.port or 80),
                ),
            )
            wait_http(
                f"{str(registered.config.endpoint).rstrip('/')}/_sim/stats",
                timeout=30,
                supervisor=supervisor,
            )
            console.print(
                f"partner simulator [cyan]{connector_id}[/] at {registered.config.endpoint}"
            )
        for index in range(workers):
            metrics_port = DEMO_WORKER_METRICS_PORT + index
            ensure_port_free(
                settings.worker_metrics_host, metrics_port, f"worker {index + 1}'s metrics"
            )
            supervisor.start(
                f"worker-{index + 1}",
                python_module("bus.cli", "worker", "--metrics-port", str(metrics_port)),
            )
        ensure_port_free(settings.api_host, settings.api_port, "the API")
        supervisor.start("api", python_module("bus.cli", "api"))
        base_url = f"http://{settings.api_host}:{settings.api_port}"
        wait_http(f"{base_url}/readyz", timeout=60, supervisor=supervisor)
        console.print(f"API     [bold green]{base_url}[/]  (OpenAPI: {base_url}/docs)")
        console.print(
            f"page    [bold green]{base_url}{DASHBOARD_PATH}/[/]  "
            "(dashboard: sign in as demo-operator with its secret above)"
        )
        console.print(
            f"metrics [bold green]{base_url}/metrics[/] (with the operator's key); worker 1's at "
            f"http://{settings.worker_metrics_host}:{DEMO_WORKER_METRICS_PORT}/metrics, the next "
            "workers' on the next ports"
        )
        if demo:
            time.sleep(0.5)  # let the workers finish subscribing before the first dossier
            push_and_follow(settings, base_url, clients.one_stop_secret, console=console)
        console.print("\n[bold]The bus is running.[/] Press Ctrl-C to stop.")
        while (failure := supervisor.failed()) is None:
            time.sleep(0.5)
        console.print(f"[red]{failure}[/]; stopping the others")
        return 1
    except KeyboardInterrupt:
        console.print("\nstopping…")
        return 0
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]cannot start the bus:[/] {exc}")
        return 1
    finally:
        supervisor.stop()


def _print_credentials(clients: DemoClients, console: Console) -> None:
    """The demo's clients and their secrets, whole (they are copied from here): made for this
    run, shown once."""
    console.print(
        f"[bold]Demo clients[/] (fresh each run, hashes in {clients.path}); "
        "call the API with the header X-API-Key: <secret>"
    )
    for client in clients.directory.clients:
        console.print(f"  [cyan]{client.id}[/] ({client.agency}): {_rights(client)}")
        console.print(f"    {clients.secrets[client.id]}", markup=False, highlight=False)


def _rights(client: AgencyClient) -> str:
    if client.operator:
        return "everything (operator)"
    if client.connectors:
        return "push as " + ", ".join(client.connectors)
    if client.procedures:
        return "submit dossiers"
    return "read every dossier's progress"


def _add_demo_environment(
    supervisor: Supervisor, registry: ConnectorRegistry, console: Console
) -> None:
    """Give workers and simulators the demo secrets connectors declare, unless already set.

    A connector whose partner needs a secret names it by environment variable and, when it
    ships a simulator, may offer ``demo_environment``: the values its simulator accepts. Both
    the worker (which logs in) and the simulator (which checks) read the same variable, so one
    demo value set here makes them agree; a value already in the environment wins.
    """
    for connector_id in registry.ids:
        offered: Mapping[str, str] = getattr(
            registry.get(connector_id).factory, "demo_environment", {}
        )
        for name, value in offered.items():
            if not supervisor.env.get(name):
                supervisor.env[name] = value
                console.print(f"demo    {connector_id}: {name} set to its simulator's demo value")


def push_and_follow(
    settings: Settings, base_url: str, api_key: str, *, console: Console, timeout: float = 60.0
) -> int:
    """POST a sample birth and a sample death dossier as the client holding ``api_key``, then
    print each one's linkage run: its steps, every hop and the status events a portal
    receives."""
    return asyncio.run(_push_and_follow(settings, base_url, api_key, console, timeout))


async def _push_and_follow(
    settings: Settings, base_url: str, api_key: str, console: Console, timeout: float
) -> int:
    names = Names(settings.namespace)
    connection = await connect_robust(settings.amqp_url, name="bus-demo")
    try:
        # Listen as a portal would: a private queue bound to every status event.
        channel = await connection.channel()
        portal_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await portal_queue.bind(names.events, routing_key="dossier.status.#")
        received_at = datetime.now(VN_TZ).replace(microsecond=0)
        sequence = random.randint(1, 9000)
        samples = [
            ("birth", sample_birth_dossier(sequence=sequence, received_at=received_at)),
            ("death", sample_death_dossier(sequence=sequence + 1, received_at=received_at)),
        ]
        failures = 0
        headers = {API_KEY_HEADER: api_key}
        async with httpx.AsyncClient(base_url=base_url, timeout=10, headers=headers) as client:
            for kind, dossier in samples:
                failures += await _follow_one(client, portal_queue, kind, dossier, console, timeout)
        return 1 if failures else 0
    finally:
        await connection.close()


async def _follow_one(
    client: httpx.AsyncClient,
    portal_queue: aio_pika.abc.AbstractQueue,
    kind: str,
    dossier: Dossier,
    console: Console,
    timeout: float,
) -> int:
    """Push one dossier and print its journey; 0 when its linkage run finished."""
    body = dossier.model_dump(mode="json", exclude_none=True)
    console.rule(f"[bold]{kind.capitalize()} linkage — dossier {dossier.code}")
    console.print(
        f"procedure {dossier.procedure_code} ({dossier.procedure_name}) received by "
        f"{dossier.receiving_agency}, channel {dossier.channel.label_en.lower()}"
    )
    answer = await client.post(
        "/v1/dossiers", json=body, headers={"Idempotency-Key": f"demo-{dossier.code}"}
    )
    console.print(f"POST /v1/dossiers → [bold]{answer.status_code}[/] {answer.text}")
    if answer.status_code != 202:
        return 1
    code = answer.json()["dossier_code"]
    view = await _wait_finished(client, code, timeout)
    if view is None:
        console.print(f"[red]the dossier's linkage did not finish within {timeout}s[/]")
        return 1
    _print_linkage(console, view)
    _print_journey(console, view)
    status_events = await _events_about(portal_queue, code, len(view["events"]))
    console.print("\n[bold]A portal received over AMQP[/] (its own queue on dossier.status.#)")
    for routing_key, event in status_events:
        data = event["data"]
        console.print(
            f" • seq {event['dossierseq']} key={routing_key} source={event['source']} "
            f"status={data['status']} ref={data.get('partner_reference')}  {data.get('note', '')}"
        )
    return 0


async def _events_about(
    queue: aio_pika.abc.AbstractQueue, code: str, most: int
) -> list[tuple[str, dict[str, Any]]]:
    """The status events about ``code`` already in the queue (others are dropped)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for _ in range(most * 4):
        message = await queue.get(fail=False)
        if message is None:
            break
        await message.ack()
        event = orjson.loads(message.body)
        if event.get("subject") == code:
            found.append((message.routing_key or "", event))
    return found


async def _wait_finished(
    client: httpx.AsyncClient, code: str, timeout: float
) -> dict[str, Any] | None:
    """The dossier's view once its linkage run ended and every event was confirmed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = (await client.get(f"/v1/dossiers/{code}")).json()
        linkage = view.get("linkage")
        ended = linkage is not None and linkage["state"] != "open"
        if ended and all(e["sent_at"] for e in view["events"]):
            return dict(view)
        await asyncio.sleep(0.2)
    return None


def _print_linkage(console: Console, view: dict[str, Any]) -> None:
    linkage = view["linkage"]
    console.print(
        f"\n[bold]Linkage run[/] {linkage['bundle']}: [green]{linkage['state']}[/], "
        f"bundle due {linkage['due_on']}"
        + (f", stopped: {linkage['stopped_reason']}" if linkage["stopped_reason"] else "")
    )
    for step in linkage["steps"]:
        console.print(
            f" • {step['step']:<24} {step['connector']:<17} [green]{step['state']:<9}[/] "
            f"due {step['due_on']}  answer {step['result_status']} "
            f"ref {step['result_reference']}"
        )


def _clock(value: str | None) -> str:
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(VN_TZ).strftime("%H:%M:%S.%f")[:-3]


def _print_journey(console: Console, view: dict[str, Any]) -> None:
    console.print("\n[bold]Journey[/] (transaction log, one line per hop; times Asia/Ho_Chi_Minh)")
    for number, hop in enumerate(view["history"], 1):
        stamps = "  ".join(
            f"{label} {_clock(hop[key])}"
            for label, key in (
                ("received", "received_at"),
                ("sent", "sent_at"),
                ("answered", "answered_at"),
                ("done", "done_at"),
            )
            if hop[key]
        )
        mapping = f"  mapping {hop['mapping_version']}" if hop["mapping_version"] else ""
        fault = f"  fault {hop['fault_code']}" if hop["fault_code"] else ""
        console.print(
            f" {number}. [bold]{hop['kind']:<8}[/] {hop['sender']} → {hop['recipient']}: "
            f"[green]{hop['outcome']}[/]{fault}\n"
            f"    {stamps}\n"
            f"    request {hop['request_bytes']} B, answer {hop['response_bytes']} B, "
            f"attempt {hop['attempt']}{mapping}"
        )
    console.print("\n[bold]Events[/] (outbox → RabbitMQ, marked sent after the broker confirmed)")
    for event in view["events"]:
        console.print(
            f" • {event['routing_key']}  committed {_clock(event['created_at'])}"
            f"  confirmed {_clock(event['sent_at'])}  id {event['event_id']}"
        )
    state = view["state"]
    console.print(
        f"\nstate: status [bold]{state['status']} ({state['status_label']})[/], "
        f"sequence {state['sequence']}, partner reference {state['partner_reference']}"
    )
