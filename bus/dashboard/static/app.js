// The dashboard's wiring: sign-in, the language switch, the day, and loading every panel.
// Each panel loads on its own, so one refused or failing route leaves the others shown.

import { ApiError, session, signIn, signOut } from "./api.js";
import { el, fill } from "./dom.js";
import {
  currentLanguage,
  formatDay,
  formatInstant,
  setLanguage,
  t,
  todayInVietnam,
  translatePage,
} from "./i18n.js";
import { loadAlerts, renderAlerts } from "./alerts.js";
import { loadConnectors, renderConnectors } from "./connectors.js";
import { loadDeadLetters, renderDeadLetters, renderForbidden } from "./dead-letters.js";
import { loadFlow, renderFlow } from "./flow.js";
import { loadStats, periodOf, renderStats } from "./stats.js";

const REFRESH_MS = 30_000;
const $ = (id) => document.getElementById(id);

let timer = null;
let updatedAt = null;
// The last answers, so a language switch redraws them without asking the bus again.
const shown = new Map();

function showError(node, error) {
  if (error instanceof ApiError && error.status === 403) {
    fill(node, el("p", { class: "error" }, t("forbidden", error.detail)));
  } else {
    fill(node, el("p", { class: "error" }, t("failed", error.detail ?? String(error))));
  }
}

const PANELS = [
  { node: "flow", load: (day) => loadFlow(day), render: renderFlow },
  { node: "stats-commune", load: (day) => loadStats(day, "commune"), render: renderStats },
  { node: "stats-agency", load: (day) => loadStats(day, "agency"), render: renderStats },
  { node: "alerts", load: () => loadAlerts(), render: renderAlerts },
  { node: "connectors", load: () => loadConnectors(), render: renderConnectors },
  {
    node: "dead-letters",
    load: () => loadDeadLetters(),
    render: (node, page) => renderDeadLetters(node, page, () => loadPanel(deadLetterPanel())),
    refused: renderForbidden,
  },
];

function deadLetterPanel() {
  return PANELS.find((panel) => panel.node === "dead-letters");
}

async function loadPanel(panel) {
  const node = $(panel.node);
  node.setAttribute("aria-busy", "true");
  try {
    // A cleared date field means today, not a query the API would refuse.
    const answer = await panel.load($("day").value || todayInVietnam());
    shown.set(panel.node, { ok: answer });
    panel.render(node, answer);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showSignIn(t("sessionExpired"));
      return;
    }
    shown.set(panel.node, { error });
    if (error instanceof ApiError && error.status === 403 && panel.refused) {
      panel.refused(node, error);
    } else {
      showError(node, error);
    }
  } finally {
    node.setAttribute("aria-busy", "false");
  }
}

function redraw() {
  translatePage();
  $("language").textContent = t("switchTo");
  $("language").lang = currentLanguage() === "vi" ? "en" : "vi";
  const current = session();
  $("who").textContent = current ? t("signedInAs", current.clientId) : "";
  const { from, to } = periodOf($("day").value || todayInVietnam());
  $("stats-period").textContent = t("statsPeriod", formatDay(from), formatDay(to));
  $("updated").textContent = updatedAt ? t("updatedAt", formatInstant(updatedAt)) : "";
  for (const panel of PANELS) {
    const last = shown.get(panel.node);
    if (!last) continue;
    if (last.ok !== undefined) panel.render($(panel.node), last.ok);
    else if (last.error.status === 403 && panel.refused) panel.refused($(panel.node), last.error);
    else showError($(panel.node), last.error);
  }
}

async function refresh() {
  if (session() === null) {
    showSignIn(t("sessionExpired"));
    return;
  }
  redraw();
  await Promise.all(PANELS.map(loadPanel));
  updatedAt = new Date().toISOString();
  $("updated").textContent = t("updatedAt", formatInstant(updatedAt));
  document.body.dataset.loaded = "true";
}

function showBoard() {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
  refresh();
}

function showSignIn(message = "") {
  clearInterval(timer);
  signOut();
  shown.clear();
  updatedAt = null;
  delete document.body.dataset.loaded;
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("who").textContent = "";
  $("sign-in-error").textContent = message;
}

async function onSignIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  const secret = $("client-secret");
  try {
    await signIn($("client-id").value.trim(), secret.value);
    secret.value = "";
    redraw();
    showBoard();
  } catch (error) {
    const bad = error instanceof ApiError && error.status === 401;
    $("sign-in-error").textContent = bad
      ? t("badCredentials")
      : t("signInFailed", error.detail ?? String(error));
  }
}

function start() {
  setLanguage(currentLanguage());
  $("day").value = todayInVietnam();
  $("sign-in-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => showSignIn());
  $("refresh").addEventListener("click", refresh);
  $("day").addEventListener("change", refresh);
  $("language").addEventListener("click", () => {
    setLanguage(currentLanguage() === "vi" ? "en" : "vi");
    redraw();
  });
  redraw();
  if (session() !== null) showBoard();
}

start();
