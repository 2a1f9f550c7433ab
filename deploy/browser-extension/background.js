// The service worker: polls serve's /api/alerts on a chrome.alarms
// schedule, sets the badge, and shows one notification per new alert id
// (cleared when the alert is resolved). Everything it must remember lives
// in chrome.storage.local, because Chrome stops an idle worker:
//   config   {url, token, interval}       written by the options page
//   state    the last poll: alerts, counts, error, times (the popup reads it)
//   notified {alert id: {nid, link, at}}  alerts already notified
//   events   [{at, what, id}]              notifications created/cleared (last 200)

import { COLORS, alertsUrl, badgeFor, counts, linkFor, loadConfig } from "./common.js";

const ALARM = "ubackup-poll";
const NOTIFICATION_PREFIX = "ubackup:";
const MAX_EVENTS = 200;
const FETCH_TIMEOUT_MS = 20000;

async function schedule() {
  const cfg = await loadConfig();
  await chrome.alarms.clear(ALARM);
  if (!cfg.url) return;
  // Chrome runs a packed extension's alarms at most every 30 s; an
  // unpacked one as often as asked
  const minutes = cfg.interval / 60;
  await chrome.alarms.create(ALARM, { delayInMinutes: minutes, periodInMinutes: minutes });
}

async function fetchReport(cfg) {
  const headers = { Accept: "application/json" };
  // serve does not check it; a reverse proxy in front of serve can
  if (cfg.token) headers.Authorization = `Bearer ${cfg.token}`;
  const url = alertsUrl(cfg.url);
  const r = await fetch(url, {
    headers,
    cache: "no-store",
    credentials: "omit",
    // a hung connection must not stop the polling
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (!r.ok) {
    let why = "";
    try {
      const body = await r.json();
      if (Array.isArray(body.errors)) why = ": " + body.errors.join("; ");
    } catch (_) {
      // not JSON: the status says enough
    }
    throw new Error(`HTTP ${r.status} from ${url}${why}`);
  }
  const report = await r.json();
  if (!report || !Array.isArray(report.alerts)) {
    throw new Error(`${url} did not answer with an alert report`);
  }
  return report;
}

async function logEvents(list) {
  if (list.length === 0) return;
  const { events = [] } = await chrome.storage.local.get("events");
  events.push(...list);
  await chrome.storage.local.set({ events: events.slice(-MAX_EVENTS) });
}

async function showBadge(text, color, title) {
  await chrome.action.setBadgeText({ text });
  await chrome.action.setBadgeBackgroundColor({ color });
  await chrome.action.setTitle({ title });
}

function notificationFor(a) {
  const sev = String(a.severity || "").toUpperCase();
  return {
    type: "basic",
    iconUrl: "icons/icon128.png",
    title: `ubackup ${sev}: ${a.kind}`,
    message: a.subject,
    contextMessage: String(a.reason || "").slice(0, 200),
    priority: a.severity === "critical" ? 2 : 1,
    // it stays until dismissed or the alert is resolved
    requireInteraction: true,
  };
}

/**
 * Notifies each alert not notified yet; clears the notification of each
 * notified alert that is gone (only when the report evaluated its kind:
 * with the catalog unreadable, serve neither raises nor resolves the
 * instance kinds).
 */
async function notify(cfg, report) {
  const { notified = {} } = await chrome.storage.local.get("notified");
  const now = Date.now();
  const current = new Map(report.alerts.map((a) => [a.id, a]));
  const evaluated = Array.isArray(report.evaluated) ? new Set(report.evaluated) : null;
  const events = [];
  for (const a of report.alerts) {
    if (notified[a.id]) continue;
    const nid = NOTIFICATION_PREFIX + a.id;
    notified[a.id] = { nid, kind: a.kind, link: linkFor(cfg.url, a), at: now };
    await chrome.notifications.create(nid, notificationFor(a));
    events.push({ at: now, what: "created", id: a.id });
  }
  for (const [id, n] of Object.entries(notified)) {
    if (current.has(id)) continue;
    if (evaluated && n.kind && !evaluated.has(n.kind)) continue;
    await chrome.notifications.clear(n.nid);
    delete notified[id];
    events.push({ at: now, what: "cleared", id });
  }
  await chrome.storage.local.set({ notified });
  await logEvents(events);
}

async function pollOnce() {
  const cfg = await loadConfig();
  const checked = Date.now();
  if (!cfg.url) {
    await chrome.storage.local.set({ state: { configured: false, checked_ms: checked } });
    await showBadge("", COLORS.error, "ubackup alerts: not configured (open the options)");
    return;
  }
  let report;
  try {
    report = await fetchReport(cfg);
  } catch (e) {
    // an unreachable serve resolves nothing: the notifications stay
    const { state = {} } = await chrome.storage.local.get("state");
    const error = e && e.message ? e.message : String(e);
    await chrome.storage.local.set({
      state: { ...state, configured: true, url: cfg.url, error, checked_ms: checked },
    });
    await showBadge("?", COLORS.error, `ubackup alerts: cannot read ${cfg.url}: ${error}`);
    return;
  }
  const n = counts(report.alerts);
  const badge = badgeFor(n);
  await chrome.storage.local.set({
    state: {
      configured: true,
      url: cfg.url,
      error: null,
      checked_ms: checked,
      generated_ms: report.generated_ms,
      status: report.status,
      summary: report.summary,
      errors: report.errors || [],
      counts: n,
      badge: badge.text,
      alerts: report.alerts,
    },
  });
  await showBadge(
    badge.text,
    badge.color,
    `ubackup: ${n.critical} critical, ${n.warning} warning\n${report.summary || ""}`,
  );
  await notify(cfg, report);
}

// One poll at a time: an alarm, a configuration change and the popup's
// "Refresh" may ask at once.
let running = null;
let again = false;
async function poll() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    do {
      again = false;
      try {
        await pollOnce();
      } catch (e) {
        console.error("ubackup poll failed", e);
      }
    } while (again);
  })().finally(() => {
    running = null;
  });
  return running;
}

/** A new serve URL is another cluster: forget what was notified. */
async function reset() {
  const { notified = {} } = await chrome.storage.local.get("notified");
  for (const n of Object.values(notified)) await chrome.notifications.clear(n.nid);
  await chrome.storage.local.remove(["notified", "state"]);
}

chrome.runtime.onInstalled.addListener(() => schedule().then(poll));
chrome.runtime.onStartup.addListener(() => schedule().then(poll));
chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === ALARM) poll();
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area !== "local" || !changes.config) return;
  const before = (changes.config.oldValue || {}).url || "";
  const after = (changes.config.newValue || {}).url || "";
  (before !== after ? reset() : Promise.resolve()).then(schedule).then(poll);
});

chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  if (msg && msg.type === "poll") {
    poll().then(() => reply({ ok: true }));
    return true;
  }
  return false;
});

chrome.notifications.onClicked.addListener(async (nid) => {
  const { notified = {} } = await chrome.storage.local.get("notified");
  const n = Object.values(notified).find((x) => x.nid === nid);
  if (n) await chrome.tabs.create({ url: n.link });
  await chrome.notifications.clear(nid);
});
