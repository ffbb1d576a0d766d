// Panel 1: the day's flow, dossiers received on the day per receiving and handling agency and
// the status each has now (GET /v1/flow).

import { getJson } from "./api.js";
import { barChart } from "./charts.js";
import { el, fill, table } from "./dom.js";
import { formatDay, formatNumber, statusLabel, t } from "./i18n.js";

export async function loadFlow(day) {
  return getJson("v1/flow", { day });
}

export function renderFlow(node, flow) {
  if (flow.rows.length === 0) {
    fill(node, el("p", { class: "muted" }, t("flowReceived", 0, formatDay(flow.day))));
    return;
  }
  const statuses = [...new Set(flow.rows.map((row) => row.status))].sort((a, b) => a - b);
  const byPair = new Map();
  for (const row of flow.rows) {
    const key = JSON.stringify([row.receiving_agency, row.handling_agency]);
    const pair = byPair.get(key) ?? {
      receiving: row.receiving_agency,
      handling: row.handling_agency,
      counts: new Map(),
    };
    pair.counts.set(row.status, (pair.counts.get(row.status) ?? 0) + row.dossiers);
    byPair.set(key, pair);
  }
  const totals = new Map(
    statuses.map((status) => [
      status,
      flow.rows.filter((row) => row.status === status).reduce((sum, row) => sum + row.dossiers, 0),
    ]),
  );

  const headers = [
    t("receivingAgency"),
    t("handlingAgency"),
    ...statuses.map((status) => ({ attributes: { "data-status": status }, content: statusLabel(status) })),
    t("total"),
  ];
  const rows = [...byPair.values()].map((pair) => ({
    attributes: { "data-receiving-agency": pair.receiving, "data-handling-agency": pair.handling },
    cells: [
      pair.receiving,
      pair.handling,
      ...statuses.map((status) => formatNumber(pair.counts.get(status) ?? 0)),
      formatNumber([...pair.counts.values()].reduce((a, b) => a + b, 0)),
    ],
  }));
  rows.push({
    attributes: { class: "total" },
    cells: [
      t("total"),
      "",
      ...statuses.map((status) => formatNumber(totals.get(status))),
      formatNumber(flow.received),
    ],
  });

  fill(
    node,
    el("p", { class: "summary" }, t("flowReceived", formatNumber(flow.received), formatDay(flow.day))),
    table(headers, rows, { class: "flow" }),
    el("h3", null, t("byStatus")),
    barChart({
      title: t("byStatus"),
      rows: statuses.map((status) => ({ label: statusLabel(status), values: [totals.get(status)] })),
      series: [{ name: t("received"), className: "bar count" }],
      max: Math.max(...totals.values()),
      format: (value) => formatNumber(value ?? 0),
    }),
  );
}
