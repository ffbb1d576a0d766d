// Hand-drawn SVG charts: horizontal bars, one row per group and one bar per series. No library,
// no network: the page draws what the API answered, values as text nodes (dom.js).

import { svg, el } from "./dom.js";

const LABEL_WIDTH = 190;
const BAR_WIDTH = 360;
const VALUE_WIDTH = 70;
const BAR_HEIGHT = 14;
const BAR_GAP = 3;
const ROW_GAP = 10;

/**
 * A bar chart.
 *
 * rows: [{label, values: [number | null, …]}], one value per series;
 * series: [{name, className}];
 * max: the value a full bar stands for (1 for rates);
 * format: value → text shown after the bar (null values show "—" and no bar).
 */
export function barChart({ title, rows, series, max, format }) {
  const rowHeight = series.length * (BAR_HEIGHT + BAR_GAP) - BAR_GAP + ROW_GAP;
  const legendHeight = series.length > 1 ? 24 : 0;
  const width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH;
  const height = legendHeight + rows.length * rowHeight;
  const scale = max > 0 ? BAR_WIDTH / max : 0;

  const chart = svg("svg", {
    class: "chart",
    role: "img",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    "aria-label": title,
  });
  chart.append(svg("title", null, title));

  if (legendHeight) {
    series.forEach((one, index) => {
      const x = LABEL_WIDTH + index * 160;
      chart.append(
        svg("rect", { x, y: 4, width: 12, height: 12, class: one.className }),
        svg("text", { x: x + 18, y: 14, class: "legend" }, one.name),
      );
    });
  }

  rows.forEach((row, rowIndex) => {
    const top = legendHeight + rowIndex * rowHeight;
    const middle = top + (series.length * (BAR_HEIGHT + BAR_GAP) - BAR_GAP) / 2;
    chart.append(
      svg("text", { x: LABEL_WIDTH - 8, y: middle + 4, class: "label" }, row.label),
    );
    series.forEach((one, index) => {
      const value = row.values[index];
      const y = top + index * (BAR_HEIGHT + BAR_GAP);
      const length = value === null || value === undefined ? 0 : Math.max(value * scale, 1);
      chart.append(
        svg("rect", { x: LABEL_WIDTH, y, width: BAR_WIDTH, height: BAR_HEIGHT, class: "track" }),
        svg(
          "rect",
          {
            x: LABEL_WIDTH,
            y,
            width: length,
            height: BAR_HEIGHT,
            class: one.className,
            "data-value": value ?? "",
          },
          svg("title", null, `${row.label} · ${one.name}: ${format(value)}`),
        ),
        svg(
          "text",
          { x: LABEL_WIDTH + BAR_WIDTH + 6, y: y + BAR_HEIGHT - 3, class: "value" },
          format(value),
        ),
      );
    });
  });
  return el("figure", { class: "chart-box" }, chart);
}
