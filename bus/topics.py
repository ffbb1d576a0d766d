"""AMQP topic patterns outside the broker: which routing keys a webhook or SSE pattern selects.

The same rules as RabbitMQ's topic exchange, so a pattern means the same thing whether a portal
binds its own queue, registers a webhook or opens an event stream: a routing key is words
separated by dots, ``*`` stands for exactly one word and ``#`` for zero or more words
(https://www.rabbitmq.com/tutorials/amqp-concepts#exchange-topic).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Final

__all__ = [
    "TOPIC_PATTERN",
    "is_topic_pattern",
    "literal_prefix",
    "pattern_within",
    "topic_matches",
]

TOPIC_PATTERN: Final = r"^(?:\*|#|[A-Za-z0-9_-]+)(?:\.(?:\*|#|[A-Za-z0-9_-]+))*$"
"""What the bus accepts as a pattern: words of letters, digits, ``-`` and ``_``, or ``*``, ``#``."""

_PATTERN = re.compile(TOPIC_PATTERN)


def is_topic_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is a binding pattern the bus accepts (at most 255 characters)."""
    return len(pattern) <= 255 and _PATTERN.match(pattern) is not None


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether a topic exchange would route ``routing_key`` to a queue bound with ``pattern``."""
    words = routing_key.split(".")
    # The positions in ``words`` that the pattern read so far can end at (an NFA walk, so a
    # pattern of several ``#`` stays linear instead of backtracking).
    reachable = {0}
    for part in pattern.split("."):
        if part == "#":
            reachable = set(range(min(reachable), len(words) + 1))
        elif part == "*":
            reachable = {i + 1 for i in reachable if i < len(words)}
        else:
            reachable = {i + 1 for i in reachable if i < len(words) and words[i] == part}
        if not reachable:
            return False
    return len(words) in reachable


def literal_prefix(pattern: str) -> str:
    """The text every routing key that ``pattern`` matches starts with: a prefilter for scans.

    The words before the first wildcard: ``dossier.status.9.#`` → ``dossier.status.9``,
    ``#`` → ``""``. It over-selects (``dossier.status.90…``), never under-selects.
    """
    words: list[str] = []
    for part in pattern.split("."):
        if part in {"*", "#"}:
            break
        words.append(part)
    return ".".join(words)


def pattern_within(requested: str, allowed: str) -> bool:
    """Whether every routing key ``requested`` matches is also matched by ``allowed``.

    How a subscription is checked against a client's rights: ``dossier.status.9.#`` is within
    ``dossier.status.#``, ``dossier.#`` is not. RabbitMQ has no such test, and no library
    offers one; it is a walk over both patterns' words (memoized, so linear in their product).
    """
    wanted, granted = requested.split("."), allowed.split(".")

    @cache
    def covered(i: int, j: int) -> bool:
        # Does granted[j:] match every key that wanted[i:] matches?
        if j < len(granted) and granted[j] == "#":
            # ``#`` matches nothing more, or swallows the next word whatever it stands for.
            return covered(i, j + 1) or (i < len(wanted) and covered(i + 1, j))
        if i == len(wanted) or j == len(granted):
            return i == len(wanted) and j == len(granted)
        word, rule = wanted[i], granted[j]
        if word == "#":
            return False  # only a ``#`` covers any number of words
        if word == "*":
            return rule == "*" and covered(i + 1, j + 1)
        return rule in ("*", word) and covered(i + 1, j + 1)

    return covered(0, 0)
