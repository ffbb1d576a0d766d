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

from bus.processes import Supervisor, ensure_port_free, python_module, wait_http
from bus.registry import ConnectorRegistry
from bus.settings import Settings
from bus.store.migrate import upgrade
from bus.topology import Names
from contracts import VN_TZ, sample_birth_dossier


def run_embedded(settings: Settings, *, demo: bool, workers: int, console: Console) -> int:
    """Start simulators, workers and the API as child processes; block until Ctrl-C."""
    registry = ConnectorRegistry.discover(settings.connector_endpoints)
    console.rule("[bold]Liên thông bus — embedded profile")
    console.print(f"store   {settings.database_url}")
    console.print(f"broker  {settings.amqp_url.split('@')[-1]}  namespace '{settings.namespace}'")
    upgrade(settings.database_url)  # once, before several processes race to do it
    supervisor = Supervisor()
    _add_demo_environment(supervisor, registry, console)
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
            supervisor.start(f"worker-{index + 1}", python_module("bus.cli", "worker"))
        ensure_port_free(settings.api_host, settings.api_port, "the API")
        supervisor.start("api", python_module("bus.cli", "api"))
        base_url = f"http://{settings.api_host}:{settings.api_port}"
        wait_http(f"{base_url}/readyz", timeout=60, supervisor=supervisor)
        console.print(f"API     [bold green]{base_url}[/]  (OpenAPI: {base_url}/docs)")
        if demo:
            time.sleep(0.5)  # let the workers finish subscribing before the first dossier
            push_and_follow(settings, base_url, console=console)
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
    settings: Settings, base_url: str, *, console: Console, timeout: float = 30.0
) -> int:
    """POST a sample dossier, then print each hop and the status event a portal receives."""
    return asyncio.run(_push_and_follow(settings, base_url, console, timeout))


async def _push_and_follow(
    settings: Settings, base_url: str, console: Console, timeout: float
) -> int:
    names = Names(settings.namespace)
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        # Listen as a portal would: a private queue bound to every status event.
        channel = await connection.channel()
        portal_queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await portal_queue.bind(names.events, routing_key="dossier.status.#")

        dossier = sample_birth_dossier(
            sequence=random.randint(1, 9999), received_at=datetime.now(VN_TZ).replace(microsecond=0)
        )
        body = dossier.model_dump(mode="json", exclude_none=True)
        console.rule(f"[bold]Dossier {dossier.code}")
        console.print(
            f"birth registration (procedure {dossier.procedure_code}) received by "
            f"{dossier.receiving_agency}, channel {dossier.channel.label_en.lower()}"
        )
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
            answer = await client.post(
                "/v1/dossiers", json=body, headers={"Idempotency-Key": f"demo-{dossier.code}"}
            )
            console.print(f"POST /v1/dossiers → [bold]{answer.status_code}[/] {answer.text}")
            if answer.status_code != 202:
                return 1
            code = answer.json()["dossier_code"]

            status_event = await _first_event_about(portal_queue, code, timeout)
            view = await _wait_delivered(client, code, timeout)
        if view is None:
            console.print(f"[red]the dossier did not complete its journey within {timeout}s[/]")
            return 1
        _print_journey(console, view)
        if status_event is not None:
            routing_key, event = status_event
            console.print(
                f"\nportal received over AMQP: [bold]{event['type']}[/] key={routing_key} "
                f"source={event['source']} subject={event['subject']} seq={event['dossierseq']} "
                f"status={event['data']['status']} ref={event['data'].get('partner_reference')}"
            )
        return 0
    finally:
        await connection.close()


async def _first_event_about(
    queue: aio_pika.abc.AbstractQueue, code: str, timeout: float
) -> tuple[str, dict[str, Any]] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        event = orjson.loads(message.body)
        if event.get("subject") == code:
            return message.routing_key or "", event
    return None


async def _wait_delivered(
    client: httpx.AsyncClient, code: str, timeout: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = (await client.get(f"/v1/dossiers/{code}")).json()
        delivered = any(
            h["kind"] == "deliver" and h["outcome"] == "delivered" for h in view["history"]
        )
        if delivered and all(e["sent_at"] for e in view["events"]):
            return dict(view)
        await asyncio.sleep(0.1)
    return None


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
