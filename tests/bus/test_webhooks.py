"""Topic patterns and webhook signatures: what a subscription selects, how a receiver checks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import ExchangeType

from bus.topics import is_topic_pattern, literal_prefix, topic_matches
from bus.webhooks import new_secret, sign, verify_signature
from tests.conftest import AMQP_URL

STATUS_KEY = "dossier.status.9.000.00.10.H12"
SUBMITTED_KEY = "dossier.submitted.000.00.10.H12.1.001193"

MATCHING_CASES = [
    ("dossier.status.#", STATUS_KEY, True),
    ("dossier.status.#", SUBMITTED_KEY, False),
    ("dossier.#", SUBMITTED_KEY, True),
    ("#", STATUS_KEY, True),
    ("dossier.status.9.#", STATUS_KEY, True),
    ("dossier.status.9.#", "dossier.status.90.000.00.10.H12", False),
    ("dossier.status.*.000.00.10.H12", STATUS_KEY, True),
    ("dossier.status.*.000.00.10.H12", "dossier.status.9.000.00.10.H13", False),
    ("dossier.status.*.*.*.*.H12", STATUS_KEY, True),
    ("dossier.status.*", STATUS_KEY, False),
    ("dossier.status.*.#", STATUS_KEY, True),
    ("dossier.*.#", "dossier.status", True),
    ("dossier.status.#", "dossier.status", True),
    ("dossier.status.*", "dossier.status", False),
    ("#.H12", STATUS_KEY, True),
    ("#.H13", STATUS_KEY, False),
    ("#.000.#", STATUS_KEY, True),
    ("#.*.#.H12", STATUS_KEY, True),
    ("dossier.#.#.H12", STATUS_KEY, True),
    ("*.*.*.*.*.*.*", STATUS_KEY, True),
    ("*.*.*.*.*.*", STATUS_KEY, False),
    ("dossier.submitted.*.*.*.*.1.001193.#", SUBMITTED_KEY, True),
    ("dossier.submitted.*.*.*.*.1.001193.#", SUBMITTED_KEY + ".000.00.00.H38.02", True),
    ("dossier.submitted.*.*.*.*.1.001193.#", "dossier.submitted.000.00.10.H12.1.0011930", False),
    (STATUS_KEY, STATUS_KEY, True),
    ("Dossier.status.#", STATUS_KEY, False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), MATCHING_CASES)
def test_topic_patterns_select_routing_keys_like_a_topic_exchange(
    pattern: str, key: str, expected: bool
) -> None:
    """`*` is exactly one word, `#` zero or more, other words compare exactly (case counts)."""
    assert topic_matches(pattern, key) is expected


@pytest.mark.broker
async def test_topic_matching_agrees_with_rabbitmq() -> None:
    """For every case, the broker routes the key to a queue bound with the pattern iff we match."""
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange_name = f"t{uuid.uuid4().hex[:12]}.topics"
    try:
        exchange = await channel.declare_exchange(exchange_name, ExchangeType.TOPIC)
        patterns = sorted({pattern for pattern, _, _ in MATCHING_CASES})
        keys = sorted({key for _, key, _ in MATCHING_CASES})
        queues = {}
        for pattern in patterns:
            queue = await channel.declare_queue(exclusive=True)
            await queue.bind(exchange, routing_key=pattern)
            queues[pattern] = queue
        for key in keys:
            await exchange.publish(aio_pika.Message(body=key.encode()), routing_key=key)
        await asyncio.sleep(0.3)
        for pattern, queue in queues.items():
            routed = set()
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                routed.add(message.body.decode())
            assert routed == {k for k in keys if topic_matches(pattern, k)}, pattern
    finally:
        await channel.exchange_delete(exchange_name)
        await connection.close()


@pytest.mark.parametrize(
    "pattern", ["#", "dossier.status.#", "dossier.status.*.000.00.10.H12", "a-b.c_d.*"]
)
def test_well_formed_patterns_are_accepted(pattern: str) -> None:
    """Words of letters, digits, `-`, `_`, and the two wildcards make a pattern."""
    assert is_topic_pattern(pattern)


@pytest.mark.parametrize(
    "pattern", ["", "dossier..status", ".dossier", "dossier.", "dossier.sta#", "a b", "x" * 256]
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    """Empty words, wildcards inside a word, spaces and over-long patterns are refused."""
    assert not is_topic_pattern(pattern)


@pytest.mark.parametrize(("pattern", "key", "expected"), MATCHING_CASES)
def test_every_matched_key_starts_with_the_literal_prefix(
    pattern: str, key: str, expected: bool
) -> None:
    """The prefix used to narrow an outbox scan never excludes a key the pattern matches."""
    if topic_matches(pattern, key):
        assert key.startswith(literal_prefix(pattern))


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """`t=<t>,v1=<hex>` with hex = HMAC-SHA256(secret, "<t>." + body), as receivers recompute."""
    body = b'{"id":"e-1"}'
    expected = hmac.new(b"whsec_test", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_test", body, timestamp=1_700_000_000) == f"t=1700000000,v1={expected}"


def test_a_fresh_signature_verifies() -> None:
    """The receiver accepts a body signed just now with its secret."""
    secret = new_secret()
    assert verify_signature(secret, b"{}", sign(secret, b"{}"))


@pytest.mark.parametrize(
    ("secret", "body"), [("whsec_other", b'{"id":"e-1"}'), ("whsec_test", b'{"id":"e-2"}')]
)
def test_another_secret_or_a_changed_body_fails(secret: str, body: bytes) -> None:
    """A signature made with another secret, or over other bytes, is refused."""
    header = sign("whsec_test", b'{"id":"e-1"}')
    assert not verify_signature(secret, body, header)


@pytest.mark.parametrize("age", [-301, 301, 3600])
def test_a_stale_or_future_timestamp_is_refused(age: int) -> None:
    """Beyond the 5-minute tolerance a correctly signed body is refused (replay protection)."""
    now = time.time()
    header = sign("whsec_test", b"{}", timestamp=int(now) - age)
    assert not verify_signature("whsec_test", b"{}", header, now=now)
    assert verify_signature("whsec_test", b"{}", header, now=now, tolerance=abs(age) + 1)


@pytest.mark.parametrize("header", ["", "t=abc,v1=00", "v1=00", "t=1700000000", "garbage"])
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    """A header without a numeric timestamp and a v1 value never verifies."""
    assert not verify_signature("whsec_test", b"{}", header, now=1_700_000_000)


def test_any_of_several_v1_values_may_match() -> None:
    """During a secret rotation a header may carry two v1 values; one matching is enough."""
    valid = sign("whsec_new", b"{}", timestamp=1_700_000_000)
    header = f"t=1700000000,v1={'0' * 64},{valid.split(',')[1]}"
    assert verify_signature("whsec_new", b"{}", header, now=1_700_000_000)


def test_secrets_are_random_and_long() -> None:
    """Each subscription gets its own unguessable secret (32 random bytes)."""
    first, second = new_secret(), new_secret()
    assert first != second and first.startswith("whsec_") and len(first) >= 6 + 43


def _readme_verify() -> Callable[..., bool]:
    """The `verify` function of the README's webhook snippet, executed as written."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    [snippet] = [
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "def verify(" in block
    ]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_the_readme_snippet_verifies_what_the_bus_signs() -> None:
    """The receiver code in the README accepts a fresh signature and refuses tampering and age."""
    verify = _readme_verify()
    body = b'{"id":"e-1"}'
    assert verify("whsec_test", body, sign("whsec_test", body))
    assert not verify("whsec_test", body + b" ", sign("whsec_test", body))
    assert not verify(
        "whsec_test", body, sign("whsec_test", body, timestamp=int(time.time()) - 600)
    )
