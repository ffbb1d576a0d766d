// Panel 3: dossiers overdue or at risk (GET /v1/alerts), those still open: an alert about a
// dossier finished since is history, not work.

import { getJson } from "./api.js";
import { el, fill, table } from "./dom.js";
import { formatDay, formatInstant, statusLabel, t } from "./i18n.js";

// Statuses still in the agencies' hands (contracts.OPEN_STATUSES).
const OPEN_STATUSES = new Set([1, 2, 4, 5, 6]);

export async function loadAlerts() {
  return getJson("v1/alerts", { limit: 200 });
}

export function renderAlerts(node, answer) {
  const open = answer.alerts.filter((alert) => OPEN_STATUSES.has(alert.status));
  const hidden = answer.alerts.length - open.length;
  const note = hidden ? el("p", { class: "muted" }, t("alertsHidden", hidden)) : null;
  if (open.length === 0) {
    fill(node, el("p", { class: "muted" }, t("none")), note);
    return;
  }
  const headers = [
    t("kind"),
    t("dossierCode"),
    t("procedure"),
    t("handlingAgency"),
    t("scope"),
    t("dueOn"),
    t("status"),
    t("raisedAt"),
  ];
  const rows = open.map((alert) => ({
    attributes: { "data-dossier-code": alert.dossier_code, class: `alert ${alert.kind}` },
    cells: [
      { attributes: { class: `badge ${alert.kind}` }, content: t(alert.kind) },
      alert.dossier_code,
      alert.procedure_code,
      alert.handling_agency,
      alert.scope === "step" ? t("step", alert.step) : t("wholeDossier"),
      formatDay(alert.due_on),
      statusLabel(alert.status),
      formatInstant(alert.raised_at),
    ],
  }));
  fill(node, table(headers, rows, { class: "alerts" }), note);
}
