// Shared by the service worker, the popup and the options page: the
// configuration, what the badge shows, and where an alert links to.
// Plain ES module, no libraries.

export const DEFAULT_INTERVAL_S = 60;

// Badge colours: critical, warning, and "cannot reach serve".
export const COLORS = {
  critical: "#c5221f",
  warning: "#e37400",
  error: "#5f6368",
};

/** The stored configuration: {url, token, interval} (url "" = not set). */
export async function loadConfig() {
  const { config } = await chrome.storage.local.get("config");
  const c = config || {};
  const interval = Number(c.interval);
  return {
    url: typeof c.url === "string" ? c.url : "",
    token: typeof c.token === "string" ? c.token : "",
    interval: Number.isFinite(interval) && interval > 0 ? interval : DEFAULT_INTERVAL_S,
  };
}

/**
 * The serve URL as typed, checked and without a trailing slash
 * ("http://host:8080" or "https://proxy/ubackup"). Throws on anything
 * that is not an http(s) URL.
 */
export function normalizeUrl(text) {
  const u = new URL(String(text).trim());
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new Error(`not an http(s) URL: ${text}`);
  }
  if (u.search || u.hash) {
    throw new Error("the serve URL takes no query or fragment");
  }
  return (u.origin + u.pathname).replace(/\/+$/, "");
}

/** The host permission pattern that covers the serve URL. */
export function originPattern(base) {
  return new URL(base).origin + "/*";
}

export function alertsUrl(base) {
  return `${base}/api/alerts`;
}

/** Percent-encodes everything but RFC 3986 unreserved characters (as serve's links do). */
export function segment(s) {
  return Array.from(new TextEncoder().encode(String(s)))
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9\-._~]/.test(c) ? c : "%" + b.toString(16).toUpperCase().padStart(2, "0");
    })
    .join("");
}

/**
 * Where an alert is looked at in serve's pages: an instance's history
 * (/instance/SERVER_ID/TYPE/INSTANCE), a node or dead-letter list on
 * /control, else the alerts page.
 */
export function linkFor(base, a) {
  if (a.instance) {
    const i = a.instance;
    return `${base}/instance/${i.server_id}/${segment(i.type)}/${i.instance}`;
  }
  if (a.node) {
    return `${base}/control#node-${segment(a.node)}`;
  }
  if (a.list && a.kind === "dead_letters") {
    return `${base}/control#dead-${segment(a.list)}`;
  }
  return `${base}/alerts`;
}

/** Alerts by severity: {critical, warning, unknown}. */
export function counts(alerts) {
  const n = { critical: 0, warning: 0, unknown: 0 };
  for (const a of alerts) {
    if (a.severity in n) n[a.severity] += 1;
  }
  return n;
}

function shown(n) {
  return n > 999 ? "999+" : String(n);
}

/**
 * The badge: the critical count on red, else the warning count on amber,
 * else nothing.
 */
export function badgeFor(n) {
  if (n.critical > 0) return { text: shown(n.critical), color: COLORS.critical };
  if (n.warning > 0) return { text: shown(n.warning), color: COLORS.warning };
  return { text: "", color: COLORS.warning };
}

/** "12 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function ago(ms, now = Date.now()) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min ago`;
  if (s < 36 * 3600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
