// The popup: the last poll's alerts (from chrome.storage.local, written
// by the service worker), worst first, each linking to its page on serve.

import { ago, linkFor } from "./common.js";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

/** Opens `url` in a tab (a popup closes when it loses focus). */
function opener(url) {
  return (ev) => {
    ev.preventDefault();
    chrome.tabs.create({ url });
  };
}

function render(state) {
  const list = document.getElementById("alerts");
  const none = document.getElementById("none");
  const err = document.getElementById("error");
  const summary = document.getElementById("summary");
  const countsEl = document.getElementById("counts");
  const dash = document.getElementById("dashboard");
  list.replaceChildren();
  countsEl.replaceChildren();
  if (!state || !state.configured) {
    summary.textContent = "Not configured: set the serve URL in the options.";
    err.hidden = true;
    none.hidden = true;
    dash.hidden = true;
    return;
  }
  dash.hidden = false;
  dash.href = `${state.url}/alerts`;
  dash.onclick = opener(dash.href);
  const when = state.checked_ms ? `checked ${ago(state.checked_ms)}` : "";
  summary.textContent = [state.summary, when].filter(Boolean).join(" · ");
  const problems = [];
  if (state.error) problems.push(`Cannot read ${state.url}: ${state.error} (showing the last answer)`);
  for (const e of state.errors || []) problems.push(`serve could not evaluate: ${e}`);
  err.hidden = problems.length === 0;
  err.textContent = problems.join("\n");
  const n = state.counts || { critical: 0, warning: 0 };
  countsEl.append(
    el("span", { class: "pill critical", title: "critical" }, `${n.critical} critical`),
    el("span", { class: "pill warning", title: "warning" }, `${n.warning} warning`),
  );
  const alerts = state.alerts || [];
  none.hidden = alerts.length > 0;
  for (const a of alerts) {
    const href = linkFor(state.url, a);
    const link = el("a", { href, class: "subject" }, a.subject);
    link.onclick = opener(href);
    const since = a.since_ms ? ` · since ${ago(a.since_ms)}` : "";
    list.append(
      el(
        "li",
        { class: a.severity, "data-id": a.id },
        el("span", { class: `pill ${a.severity}` }, a.severity),
        " ",
        el("span", { class: "kind" }, a.kind),
        " ",
        link,
        el("div", { class: "reason" }, a.reason + since),
      ),
    );
  }
}

async function load() {
  const { state } = await chrome.storage.local.get("state");
  render(state);
}

document.addEventListener("DOMContentLoaded", () => {
  load();
  document.getElementById("refresh").addEventListener("click", () => {
    chrome.runtime.sendMessage({ type: "poll" });
  });
  document.getElementById("options").addEventListener("click", (ev) => {
    ev.preventDefault();
    chrome.runtime.openOptionsPage();
  });
  chrome.storage.onChanged.addListener((changes, area) => {
    if (area === "local" && changes.state) render(changes.state.newValue);
  });
});
