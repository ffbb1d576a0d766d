// Panel 4: each connector's health (GET /v1/connectors/health): the word, its last success,
// the last hour's deliveries, failures and retries, and dead letters still parked.

import { getJson } from "./api.js";
import { el, fill, table } from "./dom.js";
import { formatInstant, formatNumber, t } from "./i18n.js";

export async function loadConnectors() {
  return getJson("v1/connectors/health");
}

export function renderConnectors(node, answer) {
  if (answer.connectors.length === 0) {
    fill(node, el("p", { class: "muted" }, t("none")));
    return;
  }
  const headers = [
    t("connector"),
    t("health"),
    t("lastSuccess"),
    t("delivered"),
    t("failures"),
    t("retries"),
    t("parked"),
  ];
  const rows = answer.connectors.map((connector) => ({
    attributes: { "data-connector": connector.connector, "data-health": connector.health },
    cells: [
      connector.connector,
      { attributes: { class: `badge ${connector.health}` }, content: t(connector.health) },
      formatInstant(connector.last_success_at),
      formatNumber(connector.delivered),
      formatNumber(connector.failed),
      formatNumber(connector.retries),
      { attributes: { class: connector.parked ? "warn" : "" }, content: formatNumber(connector.parked) },
    ],
  }));
  fill(
    node,
    el("p", { class: "muted" }, t("connectorsWindow", Math.round(answer.window_seconds / 60))),
    table(headers, rows, { class: "connectors" }),
  );
}
