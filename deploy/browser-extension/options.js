// The options page: serve URL, read token, poll interval. Saving writes
// chrome.storage.local.config; the service worker sees the change and
// polls at once.

import { DEFAULT_INTERVAL_S, loadConfig, normalizeUrl, originPattern } from "./common.js";

const $ = (id) => document.getElementById(id);

async function fill() {
  const cfg = await loadConfig();
  $("url").value = cfg.url;
  $("token").value = cfg.token;
  $("interval").value = String(cfg.interval);
}

/**
 * Host access to the serve origin: granted at install (host_permissions),
 * but the user may have narrowed "Site access"; then ask for this origin
 * (this runs in the Save click, the user gesture Chrome wants).
 */
async function ensureAccess(url) {
  const origins = [originPattern(url)];
  if (await chrome.permissions.contains({ origins })) return true;
  return chrome.permissions.request({ origins });
}

async function save(ev) {
  ev.preventDefault();
  const status = $("status");
  let url;
  try {
    url = normalizeUrl($("url").value);
  } catch (e) {
    status.textContent = `Not saved: ${e.message}`;
    return;
  }
  const interval = Math.max(1, Math.round(Number($("interval").value) || DEFAULT_INTERVAL_S));
  let access = false;
  try {
    access = await ensureAccess(url);
  } catch (e) {
    status.textContent = `Not saved: ${e.message}`;
    return;
  }
  if (!access) {
    status.textContent = `Not saved: the extension may not read ${new URL(url).origin}`;
    return;
  }
  await chrome.storage.local.set({ config: { url, token: $("token").value, interval } });
  $("url").value = url;
  status.textContent = `Saved: polling ${url}/api/alerts every ${interval} s`;
}

document.addEventListener("DOMContentLoaded", () => {
  fill();
  $("form").addEventListener("submit", save);
});
