"""A burst of hostile requests from its own process, as an attacker's machine would send them.

``python -m tests.integration.burst URL SENDERS RATE NAME…`` sends the named items of the
hostile corpus (tests/integration/test_hostile_input.py), in turn, from SENDERS concurrent
connections at about RATE requests a second in all, until its standard input closes; it
prints ``ready`` once under way and, at the end, a JSON count of the answers by status code.

Its own process keeps the cost of *making* the requests (building 2 MiB bodies, the client's
share of the interpreter) off the bus under test, which would otherwise pay for both sides.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

import httpx

from tests.conftest import AUTH
from tests.integration.test_hostile_input import CORPUS


async def _burst(url: str, senders: int, rate: float, names: list[str]) -> Counter[int]:
    answers: Counter[int] = Counter()
    stop = asyncio.Event()
    pause = senders / rate

    async def sender(offset: int, http: httpx.AsyncClient) -> None:
        index = offset
        while not stop.is_set():
            answer = await CORPUS[names[index % len(names)]].send(http)
            answers[answer.status_code] += 1
            index += 1
            await asyncio.sleep(pause)

    async def wait_for_end_of_input() -> None:
        await asyncio.to_thread(sys.stdin.read)
        stop.set()

    limits = httpx.Limits(max_connections=senders)
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30, limits=limits) as http:
        tasks = [asyncio.create_task(sender(n, http)) for n in range(senders)]
        print("ready", flush=True)
        await wait_for_end_of_input()
        await asyncio.gather(*tasks)
    return answers


def main() -> None:
    """Run the burst the command line describes."""
    url, senders, rate, *names = sys.argv[1:]
    answers = asyncio.run(_burst(url, int(senders), float(rate), names))
    print(json.dumps(answers), flush=True)


if __name__ == "__main__":
    main()
