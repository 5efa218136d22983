// The gateway's admin console: plain DOM code over the /admin API and /console/session.
// Every value from the server is set with textContent (never parsed as HTML), and the
// CSRF token lives in this page's memory only: nothing is kept in localStorage.
"use strict";

const PAGE_SIZE = 50;
const state = { csrf: null, keyPages: [null], keyPage: 0, keys: new Map(), current: null, usageOffset: 0 };
const USAGE_PAGE = 50;  // groups a page by key or model: the store sums, the page shows the top

// --- small DOM helpers -------------------------------------------------------------

const $ = (id) => document.getElementById(id);

/** An element with text and attributes; children appended as given. */
function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell === null || cell === undefined ? "" : String(cell);
    tr.append(td);
  }
  return tr;
}

function fact(list, term, value) {
  list.append(el("dt", term), el("dd", value === null || value === undefined ? "—" : value));
}

function notify(text, isError) {
  const notice = $("notice");
  notice.textContent = text;
  notice.classList.toggle("error", Boolean(isError));
  notice.hidden = !text;
}

const number = new Intl.NumberFormat("en-US");
const money = (v) => "$" + Number(v || 0).toFixed(Number(v) >= 100 ? 2 : 4);
const count = (v) => number.format(Number(v || 0));

function when(value) {
  if (value === null || value === undefined || value === "") return "never";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return isNaN(date) ? String(value) : date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// --- the API ------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || "HTTP " + status);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

/** A call to the gateway with the session cookie; a change carries the CSRF token. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = state.csrf || "";
  const options = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (_) { data = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !path.startsWith("/console/session")) signedOut("Your session has ended: sign in again.");
    throw error;
  }
  return data;
}

// --- session ------------------------------------------------------------------------

function signedIn(session) {
  state.csrf = session.csrf;
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  notify("");
  show(location.hash.slice(1) || "overview");
}

function signedOut(message) {
  state.csrf = null;
  state.keys.clear();
  for (const page of document.querySelectorAll(".page")) page.hidden = true;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("new-secret").hidden = true;
  $("new-secret-value").textContent = "";
  $("sign-in").hidden = false;
  notify(message || "", Boolean(message));
  $("master-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("master-key");
  $("sign-in-error").textContent = "";
  try {
    const session = await api("POST", "/console/session", { key: input.value });
    input.value = "";
    signedIn(session);
  } catch (error) {
    $("sign-in-error").textContent = error.status === 401 ? "That key is not the master key." : error.message;
  }
}

async function signOut() {
  try { await api("DELETE", "/console/session"); } catch (_) { /* signed out either way */ }
  signedOut("Signed out.");
}

// --- pages --------------------------------------------------------------------------

const PAGES = { overview: loadOverview, keys: loadKeys, usage: loadUsage, routes: loadRoutes, config: loadConfig };

function show(name) {
  if (!PAGES[name]) name = "overview";
  state.current = name;
  for (const page of document.querySelectorAll(".page")) page.hidden = page.id !== "page-" + name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  PAGES[name]().catch((error) => { if (error.status !== 401) notify(error.message, true); });
}

function cards(target, totals) {
  const items = [["Requests", count(totals.requests)], ["Errors", count(totals.errors)],
    ["Prompt tokens", count(totals.prompt_tokens)], ["Completion tokens", count(totals.completion_tokens)],
    ["Spend", money(totals.cost)]];
  target.replaceChildren(...items.map(([label, value]) => {
    const card = el("div", null, { class: "card" });
    card.append(el("span", label, { class: "label" }), el("span", value, { class: "value" }));
    return card;
  }));
}

async function loadOverview() {
  const data = await api("GET", "/admin/overview");
  cards($("overview-today"), data.today || {});
  cards($("overview-month"), data.month || {});
  const now = $("overview-now");
  now.replaceChildren();
  const config = data.config || {};
  fact(now, "Requests in flight", count(data.in_flight));
  fact(now, "Config file", config.path);
  fact(now, "Config hash", config.hash);
  fact(now, "Loaded at", when(config.loaded_at));
  const last = config.last_reload;
  fact(now, "Last reload", last ? when(last.at) + (last.ok ? ": applied" : ": refused") : "none since start");
  if (last && !last.ok && last.reason) fact(now, "Refused because", last.reason);
}

// Keys: one page at a time (GET /admin/keys?limit&after), so 10,000 keys stay fast.

function limitsText(limits) {
  const names = { requests_per_minute: "req/min", tokens_per_minute: "tok/min", in_flight: "in flight",
    tokens_per_day: "tok/day", tokens_per_month: "tok/month", budget_per_month: "$/month" };
  const parts = [];
  for (const [field, label] of Object.entries(names)) {
    if (limits && limits[field] !== undefined && limits[field] !== null) parts.push(count(limits[field]) + " " + label);
  }
  const perModel = limits && limits.models ? Object.keys(limits.models).length : 0;
  if (perModel) parts.push(perModel + " per-model");
  return parts.length ? parts.join(", ") : "none";
}

async function loadKeys() {
  const after = state.keyPages[state.keyPage];
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (after) query.set("after", after);
  const data = await api("GET", "/admin/keys?" + query);
  const body = $("keys-table").tBodies[0];
  state.keys.clear();
  body.replaceChildren(...data.data.map((key) => {
    state.keys.set(key.id, key);
    const actions = el("span", null, { class: "actions" });
    const fromConfig = key.source === "config";
    const edit = el("button", "Change", { type: "button", "data-action": "edit", "data-id": key.id });
    const revoke = el("button", "Revoke", { type: "button", class: "danger", "data-action": "revoke", "data-id": key.id });
    if (fromConfig) {
      edit.disabled = true;
      revoke.disabled = true;
      edit.title = revoke.title = "Declared in the config file: change it there.";
    }
    actions.append(edit, revoke);
    const tr = row([key.name, key.prefix, (key.models || []).join(", "), limitsText(key.limits),
      key.expires_at ? when(key.expires_at) : "never", when(key.last_used_at), actions]);
    tr.dataset.key = key.name;
    return tr;
  }));
  if (!data.data.length) body.append(row(["No keys yet."]));
  state.keyPages[state.keyPage + 1] = data.has_more ? data.next_after : undefined;
  $("keys-prev").disabled = state.keyPage === 0;
  $("keys-next").disabled = !data.has_more;
  $("keys-page").textContent = "Page " + (state.keyPage + 1);
}

function turnKeyPage(step) {
  state.keyPage = Math.max(0, state.keyPage + step);
  loadKeys().catch((error) => notify(error.message, true));
}

function formLimits(form, fields, removeEmpty) {
  const limits = {};
  for (const field of fields) {
    const value = form.elements[field].value.trim();
    if (value !== "") limits[field] = Number(value);
    else if (removeEmpty) limits[field] = null;
  }
  return limits;
}

function modelList(text) {
  return text.split(",").map((m) => m.trim()).filter(Boolean);
}

async function createKey(event) {
  event.preventDefault();
  const form = event.target;
  const error = form.querySelector(".error");
  error.textContent = "";
  const body = { name: form.elements.name.value.trim(),
    limits: formLimits(form, ["requests_per_minute", "tokens_per_minute", "budget_per_month"], false) };
  const models = modelList(form.elements.models.value);
  if (models.length) body.models = models;
  if (form.elements.expires_in.value.trim()) body.expires_in = form.elements.expires_in.value.trim();
  try {
    const created = await api("POST", "/admin/keys", body);
    form.reset();
    $("new-secret-value").textContent = created.key;
    $("new-secret").hidden = false;
    $("copy-secret").textContent = "Copy";
    if (created.warnings) notify(created.warnings.join("; "), true);
    state.keyPage = 0;
    await loadKeys();
  } catch (failure) {
    error.textContent = failure.message;
  }
}

async function copySecret() {
  const value = $("new-secret-value").textContent;
  try {
    await navigator.clipboard.writeText(value);
    $("copy-secret").textContent = "Copied";
  } catch (_) {
    // No clipboard access (an http page, a denied permission): select it for a manual copy.
    const range = document.createRange();
    range.selectNodeContents($("new-secret-value"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    $("copy-secret").textContent = "Selected: press Ctrl+C";
  }
}

function hideSecret() {
  $("new-secret-value").textContent = "";
  $("new-secret").hidden = true;
}

const EDIT_FIELDS = ["requests_per_minute", "tokens_per_minute", "tokens_per_day", "budget_per_month"];

function openEdit(key) {
  const dialog = $("edit-dialog");
  const form = $("edit-form");
  form.dataset.id = key.id;
  $("edit-name").textContent = key.name;
  form.elements.models.value = (key.models || []).join(", ");
  for (const field of EDIT_FIELDS) {
    const value = key.limits ? key.limits[field] : undefined;
    form.elements[field].value = value === undefined || value === null ? "" : String(value);
  }
  form.querySelector(".error").textContent = "";
  dialog.showModal();
}

async function saveEdit(event) {
  event.preventDefault();
  const form = event.target;
  const body = { limits: formLimits(form, EDIT_FIELDS, true) };
  const models = modelList(form.elements.models.value);
  body.models = models.length ? models : ["*"];
  try {
    const updated = await api("PATCH", "/admin/keys/" + encodeURIComponent(form.dataset.id), body);
    $("edit-dialog").close();
    notify("Key " + updated.name + " changed.");
    await loadKeys();
  } catch (failure) {
    form.querySelector(".error").textContent = failure.message;
  }
}

function openRevoke(key) {
  const dialog = $("revoke-dialog");
  dialog.dataset.id = key.id;
  $("revoke-name").textContent = key.name;
  dialog.querySelector(".error").textContent = "";
  dialog.showModal();
}

async function confirmRevoke(event) {
  event.preventDefault();
  const dialog = $("revoke-dialog");
  try {
    const revoked = await api("DELETE", "/admin/keys/" + encodeURIComponent(dialog.dataset.id));
    dialog.close();
    notify("Key " + revoked.name + " revoked.");
    await loadKeys();
  } catch (failure) {
    dialog.querySelector(".error").textContent = failure.message;
  }
}

function keyAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const key = state.keys.get(button.dataset.id);
  if (!key) return;
  if (button.dataset.action === "edit") openEdit(key);
  else openRevoke(key);
}

// Usage: the store groups the rows (by day, key or model); the page draws them. By key or
// model the groups come largest first, a page of them; the CSV has every group.

function usageQuery() {
  const form = $("usage-form");
  const query = new URLSearchParams({ by: form.elements.by.value });
  for (const field of ["since", "until", "key", "model"]) {
    const value = form.elements[field].value.trim();
    if (value) query.set(field, value);
  }
  if (form.elements.by.value !== "day") query.set("sort", form.elements.metric.value);
  return query;
}

function metricOf(entry, metric) {
  if (metric === "cost") return Number(entry.cost || 0);
  if (metric === "tokens") return Number(entry.prompt_tokens || 0) + Number(entry.completion_tokens || 0);
  return Number(entry.requests || 0);
}

/** A bar chart in SVG: one bar per group, its label under it, the largest value on the axis. */
function drawChart(target, entries, labelOf, metric) {
  const width = 640, height = 220, left = 56, bottom = 44, top = 12;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "bars",
    "aria-label": "Usage by " + metric });
  const values = entries.map((e) => metricOf(e, metric));
  const most = Math.max(0, ...values);
  const format = metric === "cost" ? money : count;
  const plot = height - bottom - top;
  chart.append(svg("line", { x1: left, y1: top + plot, x2: width, y2: top + plot, class: "axis" }),
    svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "tick" }, format(most)),
    svg("text", { x: left - 6, y: top + plot, "text-anchor": "end", class: "tick" }, format(0)));
  if (!entries.length) {
    chart.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tick" }, "No usage in this range"));
  }
  const slot = (width - left) / Math.max(1, entries.length);
  const bar = Math.max(2, Math.min(48, slot * 0.7));
  const every = Math.ceil(entries.length / 12);  // at most 12 labels: they stay readable
  entries.forEach((entry, i) => {
    const h = most > 0 ? (values[i] / most) * plot : 0;
    const x = left + i * slot + (slot - bar) / 2;
    const rect = svg("rect", { x: x.toFixed(1), y: (top + plot - h).toFixed(1), width: bar.toFixed(1),
      height: Math.max(h, values[i] > 0 ? 1 : 0).toFixed(1), class: "bar" });
    rect.append(svg("title", {}, labelOf(entry) + ": " + format(values[i])));
    chart.append(rect);
    if (i % every === 0) {
      const label = String(labelOf(entry));
      chart.append(svg("text", { x: (x + bar / 2).toFixed(1), y: height - bottom + 16, "text-anchor": "middle",
        class: "tick" }, label.length > 12 ? label.slice(0, 11) + "…" : label));
    }
  });
  target.replaceChildren(chart);
}

async function loadUsage(event) {
  if (event) {
    event.preventDefault();
    state.usageOffset = 0;
  }
  const form = $("usage-form");
  const query = usageQuery();
  const paged = form.elements.by.value !== "day";
  if (paged) {
    query.set("limit", String(USAGE_PAGE));
    query.set("offset", String(state.usageOffset));
  }
  const data = await api("GET", "/admin/usage?" + query);
  const first = data.data.length ? state.usageOffset + 1 : 0;
  $("usage-page").textContent = paged
    ? `${count(first)}–${count(state.usageOffset + data.data.length)} of ${count(data.total_groups)}` : "";
  $("usage-prev").disabled = !paged || state.usageOffset === 0;
  $("usage-next").disabled = !paged || !data.has_more;
  if (!form.elements.since.value) form.elements.since.value = data.since;
  if (!form.elements.until.value) form.elements.until.value = data.until;
  const by = form.elements.by.value;
  const labelOf = (entry) => entry[by];
  $("usage-group").textContent = by[0].toUpperCase() + by.slice(1);
  const amounts = (e) => [count(e.requests), count(e.errors), count(e.prompt_tokens), count(e.completion_tokens), money(e.cost)];
  $("usage-table").tBodies[0].replaceChildren(...data.data.map((e) => row([labelOf(e), ...amounts(e)])));
  const total = row(["Total", ...amounts(data.totals || {})]);
  $("usage-table").tFoot.replaceChildren(total);
  drawChart($("usage-chart"), data.data, labelOf, form.elements.metric.value);
  const csv = usageQuery();
  csv.set("format", "csv");
  $("usage-csv").setAttribute("href", "/admin/usage?" + csv);
}

function turnUsagePage(step) {
  state.usageOffset = Math.max(0, state.usageOffset + step * USAGE_PAGE);
  loadUsage().catch((error) => notify(error.message, true));
}

// Models and routes: each alias, its groups in order, each group's targets and health.

async function loadRoutes() {
  const aliases = await api("GET", "/admin/routes");
  const root = $("routes");
  root.replaceChildren(...aliases.map((route) => {
    const card = el("article", null, { class: "panel route" });
    card.append(el("h2", route.alias));
    (route.groups || []).forEach((group, i) => {
      card.append(el("h3", "Group " + (i + 1) + " · " + group.strategy));
      const table = el("table");
      const head = table.createTHead().insertRow();
      for (const title of ["Target", "Provider", "Model", "APIs", "Breaker", "Latency", "In flight", "vLLM load"]) {
        head.append(el("th", title));
      }
      const body = table.createTBody();
      for (const t of group.targets || []) {
        const breaker = el("span", t.breaker, { class: "badge " + (t.breaker || "") });
        const load = t.load ? `${t.load.running} running, ${t.load.waiting} waiting, KV ${Math.round(Number(t.load.kv_cache) * 100)}%` : "—";
        body.append(row([t.name, t.provider, t.model, (t.apis || []).join(", "), breaker,
          t.latency_ms === null || t.latency_ms === undefined ? "—" : Math.round(t.latency_ms) + " ms",
          count(t.in_flight), load]));
      }
      const scroll = el("div", null, { class: "scroll" });
      scroll.append(table);
      card.append(scroll);
    });
    return card;
  }));
  if (!aliases.length) root.append(el("p", "No models are configured."));
}

// Config: the file in force, and a reload that shows why a new one was refused.

async function loadConfig() {
  const data = await api("GET", "/admin/config");
  const facts = $("config-facts");
  facts.replaceChildren();
  fact(facts, "File", data.path);
  fact(facts, "Hash", data.hash);
  $("config-text").textContent = data.text;
}

async function reload() {
  const result = $("reload-result");
  result.replaceChildren(el("p", "Reloading…"));
  try {
    const data = await api("POST", "/admin/reload");
    result.replaceChildren(el("p", "Reloaded: config " + data.config + ", " + data.models + " models.", { class: "ok" }));
    await loadConfig();
  } catch (error) {
    const box = el("div", null, { class: "refusal" });
    box.append(el("p", "The new config was refused; the old one stays in force.", { class: "error" }));
    if (error.param) box.append(el("p", "At: " + error.param));
    box.append(el("pre", error.message, { class: "file" }));
    result.replaceChildren(box);
  }
}

// --- wiring -------------------------------------------------------------------------

function closeDialog(event) {
  if (event.target.closest("[data-close]")) event.target.closest("dialog").close();
}

function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("create-key-form").addEventListener("submit", createKey);
  $("copy-secret").addEventListener("click", copySecret);
  $("hide-secret").addEventListener("click", hideSecret);
  $("keys-table").addEventListener("click", keyAction);
  $("keys-prev").addEventListener("click", () => turnKeyPage(-1));
  $("keys-next").addEventListener("click", () => turnKeyPage(1));
  $("edit-form").addEventListener("submit", saveEdit);
  $("revoke-dialog").querySelector("form").addEventListener("submit", confirmRevoke);
  for (const dialog of document.querySelectorAll("dialog")) dialog.addEventListener("click", closeDialog);
  $("usage-form").addEventListener("submit", (event) => loadUsage(event).catch((e) => notify(e.message, true)));
  $("usage-prev").addEventListener("click", () => turnUsagePage(-1));
  $("usage-next").addEventListener("click", () => turnUsagePage(1));
  $("reload").addEventListener("click", reload);
  window.addEventListener("hashchange", () => { if (state.csrf) show(location.hash.slice(1)); });
  api("GET", "/console/session").then(signedIn, () => signedOut());
}

document.addEventListener("DOMContentLoaded", start);
