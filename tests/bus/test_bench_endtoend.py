"""``bus bench`` at a small size: every stage runs on real processes, counts every dossier, and
writes its JSON and PNG; the targets are judged from the figures, not assumed."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from bus.bench.breakdown import SEGMENTS
from bus.bench.suite import QUICK, run_bench, write_report
from bus.cli import app
from tests.conftest import AMQP_URL

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_a_small_run_measures_every_hop_and_accounts_for_every_dossier(
    tmp_path: Path,
) -> None:
    """Each hop moved every dossier, the latencies are ordered, each scale-out deployment
    applied every dossier once, the soak sampled each process, and the files hold it all."""
    plan = replace(
        QUICK,
        amqp_url=AMQP_URL,
        ceiling_messages=500,
        dossiers=120,
        latency_seconds=2.0,
        soak=150,
        workers=(1, 2),
        scale_dossiers=120,
    )
    report = await run_bench(plan, tmp_path, say=lambda _line: None)

    e2e = report.end_to_end
    assert [hop.hop for hop in e2e.hops] == ["ingest", "publish", "deliver", "announce"]
    assert all(hop.messages == 120 and hop.per_second > 0 for hop in e2e.hops)
    for load in e2e.latency:
        assert 0 < load.p50_ms <= load.p95_ms <= load.p99_ms <= load.max_ms
        # The 202 comes before the status event, and is part of its latency.
        assert 0 < load.answer_p50_ms <= load.p50_ms and load.answer_p99_ms <= load.max_ms
    peak, half, quarter, tenth = e2e.latency
    assert e2e.half_of_peak is half
    for load, share in ((half, 0.5), (quarter, 0.25), (tenth, 0.1)):
        assert load.offered_per_second == pytest.approx(peak.per_second * share)
        # Where the time went: every segment measured, and together they make the latency.
        assert [s.name for s in load.segments] == [name for name, _ in SEGMENTS]
        assert all(s.p50_ms <= s.p99_ms for s in load.segments)
        tail = sum(s.tail_ms for s in load.segments)
        # The segments are read on the wall clock, the latency on the monotonic one; a slewed
        # wall clock runs up to about 0.5 % apart.
        assert load.p99_ms * 0.98 - 1 <= tail <= load.max_ms * 1.02 + 1
        assert min(s.p50_ms for s in load.segments) > -5  # one clock: no segment runs backwards
    for load in e2e.latency:  # the machine's load beside each: this is Linux
        assert load.busy_cores is not None and 0 < load.busy_cores <= (os.cpu_count() or 1)
        assert load.steal_share is not None and 0 <= load.steal_share < 1
    # hops + peak + the steady loads + soak: all accepted, all applied once, none refused.
    steady = half.dossiers + quarter.dossiers + tenth.dossiers
    assert e2e.tally.accepted == 120 + 120 + steady + 150
    assert e2e.tally.applied == e2e.tally.accepted and e2e.tally.lost == 0
    assert e2e.tally.applied_twice == e2e.tally.delivered_twice == 0 and not e2e.tally.refused
    assert {"api-1", "worker-1", "simulator"} <= e2e.peak_rss_mib.keys()
    assert e2e.cpu_ms_per_dossier.keys() == {"api-1", "worker-1", "simulator", "bench"}
    assert e2e.cpu_ms_per_dossier["api-1"] > 0 and e2e.cpu_ms_per_dossier["worker-1"] > 0
    assert e2e.soak is not None and e2e.soak.series[-1]["dossiers"] == 150
    assert {"api-1", "worker-1"} <= e2e.soak.last_mib.keys()

    assert [(p.apis, p.workers) for p in report.scale_out] == [(1, 1), (1, 2)]
    for point in report.scale_out:
        assert point.tally.accepted == point.tally.applied == 120 + 120  # warm-up + measured
        assert point.tally.applied_twice == point.tally.delivered_twice == 0

    verdicts = {v.target: v for v in report.verdicts()}
    assert verdicts["every accepted dossier applied once"].met
    share = report.hop_shares()["ingest"]
    assert verdicts["ingest ≥ 50% of the raw ceiling"].met == (share >= 0.5)

    data, chart = write_report(report, tmp_path / "results")
    saved = orjson.loads(data.read_bytes())
    assert saved["ceiling"]["messages"] == 500
    assert saved["end_to_end"]["tally"]["lost"] == 0
    assert saved["end_to_end"]["latency"][1]["busy_cores"] == half.busy_cores
    assert len(saved["scale_out"]) == 2 and saved["verdicts"][-1]["met"] is True
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results" / "latest.json").read_bytes() == data.read_bytes()


def test_the_command_says_what_it_measures_and_refuses_bad_counts() -> None:
    """``bus bench --help`` names the stages; a malformed process count is refused before
    anything starts."""
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "--help"])
    assert shown.exit_code == 0 and "RabbitMQ alone" in shown.output
    refused = runner.invoke(app, ["bench", "--workers", "1,two"])
    assert refused.exit_code == 2 and "comma-separated list" in refused.output
