// Panel 5, operators only: dead letters still parked (GET /v1/dead-letters), each replayed or
// discarded with a reason from its row. A client that is not an operator gets the 403's
// explanation instead of the list.

import { ApiError, getJson, postJson } from "./api.js";
import { el, fill, table } from "./dom.js";
import { formatInstant, formatNumber, t } from "./i18n.js";

export async function loadDeadLetters() {
  return getJson("v1/dead-letters", { limit: 100 });
}

export function renderForbidden(node, error) {
  fill(
    node,
    el(
      "div",
      { class: "forbidden", role: "note" },
      el("p", null, t("deadLettersOperators")),
      el("p", { class: "muted" }, error.detail),
    ),
  );
}

/** The list, with actions; ``reload`` is called after each action to show what is left. */
export function renderDeadLetters(node, page, reload) {
  const message = el("p", { class: "action-message", role: "status" });
  if (page.dead_letters.length === 0) {
    fill(node, el("p", { class: "muted" }, t("none")), message);
    return;
  }
  const act = async (letter, action, body) => {
    try {
      await postJson(`v1/dead-letters/${encodeURIComponent(letter.id)}/${action}`, body);
      await reload();
      fill(node.querySelector(".action-message") ?? message, t(action === "replay" ? "replayed" : "discarded", letter.id));
    } catch (error) {
      const detail = error instanceof ApiError ? error.detail : String(error);
      fill(message, el("span", { class: "error" }, t("actionFailed", detail)));
    }
  };
  const actions = (letter) => {
    const cell = el("div", { class: "actions" });
    const discardForm = () => {
      const reason = el("input", {
        class: "discard-reason",
        "aria-label": t("discardReason"),
        placeholder: t("discardReason"),
        minlength: 3,
        maxlength: 2000,
        required: true,
      });
      const form = el(
        "form",
        { class: "discard-form" },
        reason,
        el("button", { type: "submit", class: "confirm-discard" }, t("confirmDiscard")),
        el("button", { type: "button", class: "cancel", onclick: () => fill(cell, ...buttons()) }, t("cancel")),
      );
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        act(letter, "discard", { reason: reason.value });
      });
      return form;
    };
    const buttons = () => [
      el("button", { type: "button", class: "replay", onclick: () => act(letter, "replay") }, t("replay")),
      el("button", { type: "button", class: "discard", onclick: () => fill(cell, discardForm()) }, t("discard")),
    ];
    return fill(cell, ...buttons());
  };
  const headers = [
    t("dossierCode"),
    t("connector"),
    t("procedure"),
    t("fault"),
    t("reason"),
    t("attempts"),
    t("parkedAt"),
    t("actions"),
  ];
  const rows = page.dead_letters.map((letter) => ({
    attributes: { "data-dead-letter-id": letter.id, "data-dossier-code": letter.dossier_code ?? "" },
    cells: [
      letter.dossier_code,
      letter.connector,
      letter.procedure_code,
      letter.fault_code,
      { attributes: { class: "reason" }, content: letter.reason },
      formatNumber(letter.attempts),
      formatInstant(letter.parked_at),
      actions(letter),
    ],
  }));
  fill(
    node,
    el("p", { class: "summary" }, t("deadLettersTotal", formatNumber(page.total))),
    message,
    table(headers, rows, { class: "dead-letters" }),
  );
}
