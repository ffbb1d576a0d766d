// Panel 2: the 766 indicators over the month up to the chosen day, per commune and per handling
// agency (GET /v1/stats), with the online share and the on-time rate drawn as bars.

import { getJson } from "./api.js";
import { barChart } from "./charts.js";
import { el, fill, table } from "./dom.js";
import { formatNumber, formatPercent, t } from "./i18n.js";

/** The report's period: the first day of ``day``'s month to ``day``. */
export function periodOf(day) {
  return { from: `${day.slice(0, 8)}01`, to: day };
}

export async function loadStats(day, groupBy) {
  return getJson("v1/stats", { ...periodOf(day), group_by: groupBy });
}

function onlineShare(indicators) {
  const received = indicators.received.total;
  return received ? indicators.received.online / received : null;
}

function groupLabel(groupBy, key) {
  return groupBy === "commune" && key === "unknown" ? t("unknownCommune") : key;
}

export function renderStats(node, report) {
  const groupBy = report.group_by;
  if (report.groups.length === 0) {
    fill(node, el("p", { class: "muted" }, t("none")));
    return;
  }
  const headers = [
    t(groupBy === "commune" ? "commune" : "agency"),
    t("received"),
    t("online"),
    t("onlineShare"),
    t("finished"),
    t("onTime"),
    t("late"),
    t("onTimeRate"),
    t("overdueNow"),
  ];
  const cells = (label, indicators) => [
    label,
    formatNumber(indicators.received.total),
    formatNumber(indicators.received.online),
    formatPercent(onlineShare(indicators)),
    formatNumber(indicators.finished),
    formatNumber(indicators.on_time),
    formatNumber(indicators.late),
    formatPercent(indicators.on_time_rate),
    formatNumber(indicators.overdue_now),
  ];
  const rows = report.groups.map((group) => ({
    attributes: { "data-key": group.key },
    cells: cells(groupLabel(groupBy, group.key), group),
  }));
  rows.push({ attributes: { class: "total" }, cells: cells(t("total"), report.total) });

  fill(
    node,
    table(headers, rows, { class: "stats", "data-group-by": groupBy }),
    barChart({
      title: `${t("chartTitle")} · ${t(groupBy === "commune" ? "byCommune" : "byAgency")}`,
      rows: report.groups.map((group) => ({
        label: groupLabel(groupBy, group.key),
        values: [onlineShare(group), group.on_time_rate],
      })),
      series: [
        { name: t("onlineShare"), className: "bar online" },
        { name: t("onTimeRate"), className: "bar on-time" },
      ],
      max: 1,
      format: formatPercent,
    }),
  );
}
