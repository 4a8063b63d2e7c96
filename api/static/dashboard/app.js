// sluice dashboard: plain JavaScript, no dependencies, no build step.
// The API key lives in this tab's sessionStorage and travels only in the Authorization
// header: live updates are server-sent events read with fetch() streaming (EventSource
// cannot send headers), and downloads are fetched and handed over as blobs, so the key
// never appears in a URL. Every text from the server is set with textContent.
"use strict";

(() => {
  const ROOT = document.documentElement.dataset.root || "";
  const KEY_ITEM = "sluice.api_key";
  const LIST_PAGE = 50;
  const SVG = "http://www.w3.org/2000/svg";
  const TERMINAL = new Set(["completed", "failed", "cancelled", "expired"]);
  // What a cancel can still stop (a job already cancelling or finalizing is left as it is).
  const STOPPABLE = new Set(["validating", "queued", "in_progress"]);
  const CHUNK_ORDER = ["pending", "queued", "running", "done", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);

  let apiKey = null;
  let principal = null;
  let view = null; // {abort: AbortController, timers: []} of the view on screen

  // ---------- small helpers ----------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (name === "className") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("data-") || name === "href" || name === "title") node.setAttribute(name, value);
      else node[name] = value;
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function fmtInt(n) {
    return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
  }

  function fmtRate(r) {
    if (r === null || r === undefined) return "-";
    if (r === 0) return "0";
    return r >= 100 ? Math.round(r).toLocaleString("en-US") : Number(r).toFixed(r >= 10 ? 1 : 2);
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "-";
    let s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return `${m}m ${s}s`;
  }

  function fmtTime(ts) {
    return ts ? new Date(ts * 1000).toLocaleString() : "-";
  }

  function age(ts) {
    return fmtDuration(Date.now() / 1000 - ts);
  }

  function done(job) {
    return job.counts.completed + job.counts.failed;
  }

  function pct(x) {
    return `${(Math.max(0, Math.min(1, x)) * 100).toFixed(1)}%`;
  }

  // ---------- the API ----------

  class ApiError extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || `HTTP ${status}`);
      this.status = status;
      this.code = err.code;
    }
  }

  async function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {}, { Authorization: `Bearer ${apiKey}` });
    const response = await fetch(ROOT + path, Object.assign({}, options, { headers, cache: "no-store" }));
    if (response.status === 401 && apiKey) {
      signOut("The key was refused (revoked?). Sign in again.");
      throw new ApiError(401, null);
    }
    return response;
  }

  async function apiJSON(path, options) {
    const response = await api(path, options);
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // Server-sent events over fetch(): calls onEvent({event, data, id}) per event; resolves
  // with the HTTP status when the stream ends (or at once, for a non-200 answer).
  async function readEvents(path, signal, onEvent) {
    const response = await api(path, { signal, headers: { Accept: "text/event-stream" } });
    if (!response.ok || !response.body) return response.status;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done: ended } = await reader.read();
      if (ended) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const message = { event: "message", data: [], id: null };
        for (const line of block.split("\n")) {
          if (!line || line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "data") message.data.push(text);
          else if (field === "event") message.event = text;
          else if (field === "id") message.id = text;
        }
        if (message.data.length) {
          let data = message.data.join("\n");
          try { data = JSON.parse(data); } catch (_) { /* not JSON: kept as text */ }
          onEvent({ event: message.event, data, id: message.id });
        }
      }
    }
    return 200;
  }

  // Keep a stream open: reconnect after it ends or fails, backing off up to 15 s. A
  // refusal that retrying cannot mend (a 4xx other than 408 and 429) ends the loop, after
  // onRefused(status) when given (the job view falls back to long-polls on a 404 or 405:
  // a server without the per-job stream).
  async function keepStreaming(path, signal, onEvent, onRefused) {
    let backoff = 1000;
    while (!signal.aborted) {
      const started = Date.now();
      let status = 0;
      try {
        status = await readEvents(typeof path === "function" ? path() : path, signal, onEvent);
      } catch (err) {
        if (signal.aborted) return;
      }
      if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
        setLive(false);
        if (onRefused) onRefused(status);
        return;
      }
      setLive(false);
      if (status === 200 && Date.now() - started > 5000) backoff = 1000;
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function setLive(on) {
    $("live").hidden = false;
    $("live").classList.toggle("down", !on);
    $("live").textContent = on ? "live" : "reconnecting";
  }

  // ---------- sign in and out ----------

  function showOnly(id) {
    for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== id;
  }

  async function signIn(key) {
    apiKey = key;
    principal = await apiJSON("/v1/me");
    sessionStorage.setItem(KEY_ITEM, key);
    $("who").textContent = `${principal.tenant_name}${principal.is_admin ? " (admin)" : ""}`;
    document.body.classList.toggle("admin", principal.is_admin);
    $("f-tenant-wrap").hidden = !principal.is_admin;
    $("nav").hidden = false;
    $("signout").hidden = false;
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY_ITEM);
    apiKey = null;
    principal = null;
    stopView();
    $("who").textContent = "";
    $("nav").hidden = true;
    $("signout").hidden = true;
    $("live").hidden = true;
    document.body.classList.remove("admin");
    $("signin-error").textContent = message || "";
    showOnly("signin-view");
    $("api_key").focus();
  }

  $("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("api_key");
    const key = input.value.trim();
    $("signin-error").textContent = "";
    if (!key) return;
    try {
      await signIn(key);
      input.value = "";
      route();
    } catch (err) {
      apiKey = null;
      $("signin-error").textContent =
        err.status === 401 ? "That key was refused." : `Could not sign in: ${err.message}`;
    }
  });

  $("signout").addEventListener("click", () => signOut(""));

  // ---------- views ----------

  function stopView() {
    if (view) {
      view.abort.abort();
      for (const timer of view.timers) clearInterval(timer);
    }
    view = null;
  }

  function startView() {
    stopView();
    view = { abort: new AbortController(), timers: [] };
    return view;
  }

  function route() {
    if (!apiKey) return signOut("");
    const hash = location.hash || "#/jobs";
    const match = hash.match(/^#\/jobs\/([^/]+)$/);
    const name = match ? "job" : hash === "#/models" ? "models" : hash === "#/usage" ? "usage" : "jobs";
    for (const link of document.querySelectorAll("#nav a[data-view]")) {
      link.classList.toggle("active", link.dataset.view === (name === "job" ? "jobs" : name));
    }
    const current = startView();
    if (name === "job") showJob(decodeURIComponent(match[1]), current);
    else if (name === "models") showModels(current);
    else if (name === "usage") showUsage(current);
    else showJobs(current);
  }

  window.addEventListener("hashchange", route);

  // ---------- jobs list ----------

  const list = { jobs: new Map(), cursor: null, hasMore: false };

  function filters() {
    return {
      status: $("f-status").value,
      model: $("f-model").value,
      tenant: principal && principal.is_admin ? $("f-tenant").value.trim() : "",
    };
  }

  function matches(job, f) {
    return (!f.status || job.status === f.status) && (!f.model || job.model === f.model);
  }

  function listQuery(extra) {
    const f = filters();
    const q = new URLSearchParams(extra || {});
    if (f.status) q.set("status", f.status);
    if (f.model) q.set("model", f.model);
    if (f.tenant) q.set("tenant", f.tenant);
    return q;
  }

  function progressCell(job) {
    const total = job.counts.total;
    const bar = el("div", { className: "bar" });
    const failed = el("div", { className: "bar failed" });
    const okShare = total ? job.counts.completed / total : job.progress;
    const failShare = total ? job.counts.failed / total : 0;
    bar.style.width = pct(okShare);
    failed.style.left = pct(okShare);
    failed.style.width = pct(failShare);
    const text = `${pct(job.progress)} · ${fmtInt(done(job))} / ${fmtInt(total)}` +
      (job.counts.failed ? ` · ${fmtInt(job.counts.failed)} failed` : "");
    return el("td", { className: "progress-cell", "data-progress": String(job.progress) },
      el("div", { className: "progress" }, bar, failed),
      el("div", { className: "progress-text", text }));
  }

  function jobRow(job) {
    const link = el("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, text: job.id });
    return el("tr", { "data-job-id": job.id, "data-status": job.status },
      el("td", {}, el("code", {}, link)),
      el("td", { className: "admin-only", text: job.tenant_id || "" }),
      el("td", { text: job.model }),
      el("td", {}, el("span", { className: `badge ${job.status}`, text: job.status })),
      progressCell(job),
      el("td", { className: "num", text: fmtRate(job.throughput) }),
      el("td", { className: "num", text: TERMINAL.has(job.status) ? "-" : fmtDuration(job.eta_seconds) }),
      el("td", { className: "num", text: String(job.priority) }),
      el("td", { className: "num age", "data-created": String(job.created_at), text: age(job.created_at) }));
  }

  function renderList() {
    const body = document.querySelector("#jobs tbody");
    const rows = [...list.jobs.values()].sort(
      (a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
    body.replaceChildren(...rows.map(jobRow));
    $("jobs-empty").hidden = rows.length > 0;
    $("more").hidden = !list.hasMore;
  }

  function mergeSnapshot(snapshot) {
    const f = filters();
    const shown = [...list.jobs.values()];
    const oldest = shown.length ? Math.min(...shown.map((j) => j.created_at)) : -Infinity;
    let changed = false;
    for (const job of snapshot.jobs || []) {
      const known = list.jobs.has(job.id);
      if (!matches(job, f)) {
        if (known) { list.jobs.delete(job.id); changed = true; }
        continue;
      }
      // A job older than the last one shown belongs to a later page: left for "Load more".
      if (known || !list.hasMore || job.created_at >= oldest) {
        list.jobs.set(job.id, Object.assign({}, list.jobs.get(job.id) || {}, job));
        changed = true;
      }
    }
    if (changed) renderList();
  }

  async function loadJobs(current, append) {
    const q = listQuery({ limit: String(LIST_PAGE) });
    if (append && list.cursor) q.set("after", list.cursor);
    $("jobs-error").textContent = "";
    try {
      const page = await apiJSON(`/v1/jobs?${q}`, { signal: current.abort.signal });
      if (!append) list.jobs.clear();
      for (const job of page.data) list.jobs.set(job.id, job);
      list.cursor = page.next_cursor;
      list.hasMore = page.has_more;
      renderList();
    } catch (err) {
      if (!current.abort.signal.aborted) $("jobs-error").textContent = err.message;
    }
  }

  async function loadModelOptions() {
    const select = $("f-model");
    if (select.options.length > 1) return;
    try {
      const models = await apiJSON("/v1/models");
      for (const m of models.data) select.append(el("option", { value: m.id, text: m.id }));
    } catch (_) { /* the filter then offers "any" only */ }
  }

  function showJobs(current) {
    showOnly("jobs-view");
    loadModelOptions();
    loadJobs(current, false);
    const stream = () => {
      const tenant = filters().tenant;
      return `/v1/dashboard/events${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ""}`;
    };
    keepStreaming(stream, current.abort.signal, (message) => {
      if (message.event === "jobs") { setLive(true); mergeSnapshot(message.data); }
    });
    current.timers.push(setInterval(() => {
      for (const cell of document.querySelectorAll("#jobs td.age")) {
        cell.textContent = age(Number(cell.dataset.created));
      }
    }, 1000));
  }

  for (const id of ["f-status", "f-model", "f-tenant"]) {
    $(id).addEventListener("change", () => { if (apiKey) route(); });
  }
  $("more").addEventListener("click", () => { if (view) loadJobs(view, true); });

  // ---------- job detail ----------

  function fact(list, label, value) {
    list.append(el("div", {}, el("dt", { text: label }), el("dd", { text: value })));
  }

  // Whether this key may cancel the job: writes stay within the key's own tenant (an admin
  // key reads every tenant's jobs but cancels only its own tenant's), and only while
  // something can still stop. The server enforces the same; this only hides a button
  // that could not work.
  function mayCancel(job) {
    return Boolean(principal) && job.tenant_id === principal.tenant_id &&
      (principal.scopes || []).includes("submit") && STOPPABLE.has(job.status);
  }

  function showCancelConfirm(open) {
    $("d-cancel").hidden = open;
    $("d-cancel-confirm").hidden = !open;
    if (open) $("d-cancel-no").focus();
  }

  function renderActions(job) {
    const allowed = mayCancel(job);
    if (!allowed && !$("d-actions").hidden) showCancelConfirm(false);
    $("d-actions").hidden = !allowed;
    // "Cancel requested" holds until the job has ended; its badge then says how.
    if (TERMINAL.has(job.status)) $("d-cancel-note").textContent = "";
  }

  function renderJobHead(job) {
    renderActions(job);
    $("d-id").textContent = job.id;
    const badge = $("d-status");
    badge.textContent = job.status;
    badge.className = `badge ${job.status}`;
    $("d-bar").style.width = pct(job.progress);
    $("d-bar").dataset.progress = String(job.progress);
    const facts = $("d-facts");
    facts.replaceChildren();
    fact(facts, "Model", `${job.model} (${job.task})`);
    if (principal && principal.is_admin) fact(facts, "Tenant", job.tenant_id);
    fact(facts, "Progress", `${pct(job.progress)} · ${fmtInt(done(job))} / ${fmtInt(job.counts.total)}`);
    fact(facts, "Completed", fmtInt(job.counts.completed));
    fact(facts, "Failed", fmtInt(job.counts.failed));
    fact(facts, "Items/s", fmtRate(job.throughput));
    fact(facts, "ETA", TERMINAL.has(job.status) ? "-" : fmtDuration(job.eta_seconds));
    fact(facts, "Priority", String(job.priority));
    fact(facts, "Created", `${fmtTime(job.created_at)} (${age(job.created_at)} ago)`);
    fact(facts, "Started", fmtTime(job.started_at));
    fact(facts, "Finished", fmtTime(job.finished_at));
    fact(facts, "Expires", fmtTime(job.expires_at));
    for (const [k, v] of Object.entries(job.metadata || {})) fact(facts, `metadata.${k}`, String(v));
  }

  function renderChart(throughput) {
    const chart = $("d-chart");
    chart.replaceChildren();
    const points = throughput.points;
    const W = 640, H = 220, left = 48, right = 10, top = 24, bottom = 28;
    if (!points.length) {
      chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no chunk has finished yet"));
      $("d-chart-note").textContent = "";
      return;
    }
    const peak = Math.max(...points.map((p) => p.items_per_second), 1e-9);
    const plotW = W - left - right, plotH = H - top - bottom;
    const step = plotW / points.length;
    for (const frac of [0, 0.5, 1]) {
      const y = top + plotH * (1 - frac);
      chart.append(svg("line", { class: frac ? "grid-line" : "axis", x1: left, x2: W - right, y1: y, y2: y }));
      chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, fmtRate(peak * frac)));
    }
    points.forEach((p, i) => {
      const h = plotH * (p.items_per_second / peak);
      const bar = svg("rect", {
        class: "bar", x: (left + i * step + step * 0.1).toFixed(2), y: (top + plotH - h).toFixed(2),
        width: Math.max(step * 0.8, 1).toFixed(2), height: Math.max(h, 0).toFixed(2),
      });
      bar.append(svg("title", {},
        `${fmtTime(p.t)}: ${fmtRate(p.items_per_second)} items/s, ${fmtInt(p.items)} items finished`));
      chart.append(bar);
    });
    const first = points[0].t, last = points[points.length - 1].t + throughput.bucket_seconds;
    chart.append(svg("text", { x: left, y: H - 8 }, new Date(first * 1000).toLocaleTimeString()));
    chart.append(svg("text", { x: W - right, y: H - 8, "text-anchor": "end" }, new Date(last * 1000).toLocaleTimeString()));
    chart.append(svg("text", { x: left - 6, y: 12, "text-anchor": "end" }, "items/s"));
    $("d-chart-note").textContent =
      `Items processed per second, in ${points.length} bucket(s) of ` +
      `${fmtDuration(throughput.bucket_seconds)}, from the finished chunks.`;
  }

  function renderChunks(states) {
    const byStatus = new Map(states.map((s) => [s.status, s]));
    const total = states.reduce((sum, s) => sum + s.chunks, 0);
    const bar = $("d-chunk-bar");
    bar.replaceChildren();
    const rows = [];
    for (const status of CHUNK_ORDER) {
      const s = byStatus.get(status);
      if (!s) continue;
      const part = el("span", { className: `c-${status}`, title: `${status}: ${s.chunks}` });
      part.style.width = pct(total ? s.chunks / total : 0);
      bar.append(part);
      rows.push(el("tr", { "data-chunk-status": status },
        el("td", {}, el("span", { className: `swatch c-${status}` }), status),
        el("td", { className: "num", text: fmtInt(s.chunks) }),
        el("td", { className: "num", text: fmtInt(s.items) }),
        el("td", { className: "num", text: s.compute_seconds.toFixed(2) })));
    }
    if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 4, className: "note", text: "no chunks" })));
    document.querySelector("#d-chunks tbody").replaceChildren(...rows);
  }

  function renderUsage(usage) {
    const dl = $("d-usage");
    dl.replaceChildren();
    fact(dl, "Items", fmtInt(usage.items_total));
    fact(dl, "Completed", fmtInt(usage.items_completed));
    fact(dl, "Failed", fmtInt(usage.items_failed));
    fact(dl, "Prompt tokens", fmtInt(usage.prompt_tokens));
    fact(dl, "Completion tokens", fmtInt(usage.completion_tokens));
    fact(dl, "Compute", fmtDuration(usage.compute_seconds) + ` (${usage.compute_seconds.toFixed(1)} s)`);
  }

  async function download(path, filename, button) {
    const note = $("d-download-note");
    button.disabled = true;
    note.textContent = `Downloading ${filename}...`;
    try {
      const response = await api(path);
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const a = el("a", { href: url, download: filename });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 30000);
      note.textContent = `${filename}: ${fmtInt(blob.size)} bytes`;
    } catch (err) {
      note.textContent = `Download failed: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  }

  function renderDownloads(detail) {
    const box = $("d-downloads");
    if (box.dataset.job === detail.job.id) return;
    box.dataset.job = detail.job.id;
    box.replaceChildren();
    const entries = Object.entries(detail.downloads);
    entries.push(["failed items (jsonl)", `${detail.downloads.jsonl}&only=failed`]);
    for (const [name, path] of entries) {
      const ext = name.startsWith("failed") ? "failed.jsonl" : name;
      const button = el("button", { type: "button", "data-format": name, text: name.toUpperCase() });
      button.addEventListener("click", () => download(path, `${detail.job.id}.${ext}`, button));
      box.append(button);
    }
  }

  function errorGroup(group, lineKey) {
    const rows = group.examples.map((x) => el("tr", {},
      el("td", { className: "num", text: x[lineKey] === undefined || x[lineKey] === null ? "-" : String(x[lineKey]) }),
      lineKey === "index" ? el("td", {}, el("code", { text: x.custom_id === null ? "-" : String(x.custom_id) })) : null,
      el("td", { text: x.message })));
    const head = el("tr", {}, el("th", { className: "num", text: lineKey === "index" ? "Index" : "Line" }),
      lineKey === "index" ? el("th", { text: "custom_id" }) : null, el("th", { text: "Message" }));
    return el("div", { className: "error-group", "data-code": group.code },
      el("h3", {}, el("code", { text: group.code }), el("span", { className: "count", text: `${fmtInt(group.count)} item${group.count === 1 ? "" : "s"}` })),
      rows.length ? el("table", { className: "small" }, el("thead", {}, head), el("tbody", {}, ...rows)) : null);
  }

  function renderErrors(report) {
    const box = $("d-errors");
    box.replaceChildren();
    if (!report.groups.length && !report.validation) {
      box.append(el("p", { className: "note", text: "No failed items." }));
      return;
    }
    for (const group of report.groups) box.append(errorGroup(group, "index"));
    if (!report.complete) {
      box.append(el("p", { className: "note", text: `Counted from the first ${report.chunks_scanned} chunks with failures.` }));
    }
    if (report.validation) {
      const v = report.validation;
      box.append(el("h3", { text: `Validation: ${fmtInt(v.invalid_lines)} invalid line(s), ${fmtInt(v.duplicates)} duplicate id(s)` }));
      for (const group of v.groups) box.append(errorGroup(group, "line"));
    }
  }

  function showJob(jobId, current) {
    showOnly("job-view");
    $("job-error").textContent = "";
    $("d-downloads").dataset.job = "";
    $("d-errors").replaceChildren(el("p", { className: "note", text: "Loading..." }));
    const signal = current.abort.signal;
    const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
    let job = null;
    let lastErrorsAt = -1;
    let pending = null;

    async function refresh() {
      try {
        const detail = await apiJSON(`${path}/detail`, { signal });
        if (signal.aborted) return;
        job = detail.job;
        renderJobHead(job);
        renderChart(detail.throughput);
        renderChunks(detail.chunk_states);
        renderUsage(detail.usage);
        renderDownloads(detail);
        const failedNow = job.counts.failed + (job.errors ? 1 : 0);
        if (failedNow !== lastErrorsAt || TERMINAL.has(job.status)) {
          lastErrorsAt = failedNow;
          renderErrors(await apiJSON(`${path}/errors`, { signal }));
        }
      } catch (err) {
        if (!signal.aborted) $("job-error").textContent = err.message;
      }
    }

    // Detail reads (chart, chunks) at most every 2 s, however fast events come.
    function refreshSoon() {
      if (pending) return;
      pending = setTimeout(() => { pending = null; if (!signal.aborted) refresh(); }, 2000);
    }
    signal.addEventListener("abort", () => clearTimeout(pending));

    // Cancel: a button, then a confirm step; the answer shows at once, and the stream
    // (below) brings the rest (cancelling, then cancelled once running chunks stop).
    async function cancel() {
      const buttons = [$("d-cancel-yes"), $("d-cancel-no")];
      for (const b of buttons) b.disabled = true;
      $("d-cancel-note").textContent = "Cancelling...";
      try {
        job = await apiJSON(`${path}/cancel`, { method: "POST", signal });
        renderJobHead(job);
        if (!TERMINAL.has(job.status)) {
          $("d-cancel-note").textContent = "Cancel requested: running chunks stop at their next check.";
        }
      } catch (err) {
        if (!signal.aborted) $("d-cancel-note").textContent = `Cancel failed: ${err.message}`;
      } finally {
        for (const b of buttons) b.disabled = false;
        showCancelConfirm(false);
      }
    }
    showCancelConfirm(false);
    $("d-actions").hidden = true;
    $("d-cancel-note").textContent = "";
    $("d-download-note").textContent = "";  // another job's download is no news here
    $("d-cancel").addEventListener("click", () => showCancelConfirm(true), { signal });
    $("d-cancel-no").addEventListener("click", () => showCancelConfirm(false), { signal });
    $("d-cancel-yes").addEventListener("click", cancel, { signal });

    function onJobEvent(message) {
      setLive(true);
      const data = message.data;
      if (!job || !data || typeof data !== "object") return;
      if (message.event === "progress") {
        job = Object.assign({}, job, {
          status: data.status || job.status,
          counts: data.counts || job.counts,
          throughput: data.items_per_second ?? job.throughput,
          eta_seconds: data.eta_seconds ?? job.eta_seconds,
        });
        if (job.counts.total) job.progress = done(job) / job.counts.total;
        renderJobHead(job);
        refreshSoon();
      } else if (message.event === "status" || message.event === "end") {
        job = data.id ? data : job;
        renderJobHead(job);
        if (message.event === "end") refresh();
        else refreshSoon();
      }
    }

    // Without the per-job event stream (an older server): long-poll the job instead.
    async function poll() {
      while (!signal.aborted && job && !TERMINAL.has(job.status)) {
        try {
          const next = await apiJSON(`${path}?wait=25`, { signal });
          const changed = !job || next.status !== job.status || done(next) !== done(job);
          job = next;
          setLive(true);
          renderJobHead(job);
          if (changed) refreshSoon();
        } catch (err) {
          if (signal.aborted) return;
          setLive(false);
          await sleep(3000, signal);
        }
      }
      if (!signal.aborted) refresh();
    }

    refresh().then(() => {
      if (signal.aborted || !job || TERMINAL.has(job.status)) return;
      // The stream has its own switch: it stops at the job's end, the view stays.
      const stream = new AbortController();
      signal.addEventListener("abort", () => stream.abort(), { once: true });
      keepStreaming(`${path}/events`, stream.signal, (message) => {
        onJobEvent(message);
        if (message.event === "end") stream.abort();
      }, (status) => { if (status === 404 || status === 405) poll(); });
    });
  }

  // ---------- models ----------

  function workerRow(w) {
    const seen = w.last_heartbeat ? `${fmtDuration(Date.now() / 1000 - w.last_heartbeat)} ago` : "-";
    return el("tr", {},
      el("td", { text: w.name || "-" }), el("td", { text: w.host || "-" }),
      el("td", { text: w.device || "-" }), el("td", { text: w.dtype || "-" }),
      el("td", { className: "num", text: fmtRate(w.items_per_second) }),
      el("td", { className: "num", text: seen }));
  }

  function renderModelStatus(models) {
    const box = $("models");
    box.replaceChildren();
    for (const m of models) {
      const workers = m.workers || [];
      const head = el("tr", {}, ...["Worker", "Host", "Device", "Dtype", "Items/s", "Last heartbeat"].map(
        (t, i) => el("th", { className: i >= 4 ? "num" : "", text: t })));
      box.append(el("div", { className: "card model-card", "data-model": m.model },
        el("h2", {}, el("span", { text: m.model }), el("span", { className: "note", text: m.task || "" })),
        el("dl", { className: "facts" },
          el("div", {}, el("dt", { text: "Queue depth" }), el("dd", { text: fmtInt(m.queue_depth) })),
          el("div", {}, el("dt", { text: "Pending items" }), el("dd", { text: fmtInt(m.pending_items) })),
          el("div", {}, el("dt", { text: "Live workers" }), el("dd", { text: String(workers.length) }))),
        workers.length
          ? el("table", { className: "small" }, el("thead", {}, head), el("tbody", {}, ...workers.map(workerRow)))
          : el("p", { className: "note", text: "No live worker serves this model." })));
    }
  }

  function renderModelList(models) {
    const box = $("models");
    const head = el("tr", {}, ...["Model", "Task", "Dtype", "Chunk size", "Live workers"].map(
      (t) => el("th", { text: t })));
    box.replaceChildren(el("table", { className: "jobs" }, el("thead", {}, head), el("tbody", {},
      ...models.map((m) => el("tr", { "data-model": m.id },
        el("td", { text: m.id }), el("td", { text: m.task }), el("td", { text: m.dtype }),
        el("td", { text: String(m.chunk_size) }),
        el("td", { text: m.live_workers === null ? "-" : String(m.live_workers) }))))));
  }

  function showModels(current) {
    showOnly("models-view");
    const signal = current.abort.signal;
    let statusMissing = false;
    async function load() {
      $("models-error").textContent = "";
      try {
        if (!statusMissing) {
          const response = await api("/v1/models/status", { signal });
          if (response.status === 404) {
            statusMissing = true;
          } else {
            const body = await response.json();
            if (!response.ok) throw new ApiError(response.status, body);
            $("models-note").textContent = "Refreshed every 5 s.";
            renderModelStatus(body.data || body.models || body);
            return;
          }
        }
        const models = await apiJSON("/v1/models", { signal });
        $("models-note").textContent =
          "This server has no per-worker status (GET /v1/models/status): showing the registered models.";
        renderModelList(models.data);
      } catch (err) {
        if (!signal.aborted) $("models-error").textContent = err.message;
      }
    }
    load();
    current.timers.push(setInterval(load, 5000));
  }

  // ---------- usage ----------

  function fmtDevices(byKind) {
    const kinds = Object.keys(byKind || {}).sort();
    return kinds.length ? kinds.map((k) => `${k} ${fmtDuration(byKind[k])}`).join(", ") : "-";
  }

  function renderUsageTotals(totals) {
    const dl = $("usage-totals");
    dl.replaceChildren();
    fact(dl, "Items", fmtInt(totals.items));
    fact(dl, "Failed items", fmtInt(totals.failed_items));
    fact(dl, "Input tokens", fmtInt(totals.input_tokens));
    fact(dl, "Output tokens", fmtInt(totals.output_tokens));
    fact(dl, "Images", fmtInt(totals.images));
    fact(dl, "Device time", fmtDevices(totals.device_seconds));
    fact(dl, "Cache hits", fmtInt(totals.cache_hits));
  }

  // Rows of GET /v1/usage as a table keyed by `key` (day or model); an admin key's rows
  // are every tenant's, so they carry a tenant column.
  function renderUsageRows(box, page, key, label) {
    const everyTenant = page.tenant_id === null;
    const heads = [...(everyTenant ? ["Tenant"] : []), label,
      "Items", "Failed", "Input tokens", "Output tokens", "Images", "Device time"];
    const rows = page.data.map((r) => el("tr", { "data-key": r[key] },
      ...(everyTenant ? [el("td", { text: r.tenant_id })] : []),
      el("td", { text: r[key] }),
      ...[r.items, r.failed_items, r.input_tokens, r.output_tokens, r.images].map(
        (n) => el("td", { className: "num", text: fmtInt(n) })),
      el("td", { text: fmtDevices(r.device_seconds) })));
    box.replaceChildren(rows.length
      ? el("table", { className: "small" },
        el("thead", {}, el("tr", {}, ...heads.map((t) => el("th", { text: t })))),
        el("tbody", {}, ...rows))
      : el("p", { className: "note", text: "Nothing used in these days." }));
    if (page.has_more) box.append(el("p", { className: "note", text: "Showing the first 1,000 rows." }));
  }

  function showUsage(current) {
    showOnly("usage-view");
    const signal = current.abort.signal;
    async function load() {
      $("usage-error").textContent = "";
      try {
        const [byModel, byDay] = await Promise.all([
          apiJSON("/v1/usage?group_by=model&limit=1000", { signal }),
          apiJSON("/v1/usage?group_by=day&limit=1000", { signal }),
        ]);
        renderUsageTotals(byDay.totals);
        renderUsageRows($("usage-models"), byModel, "model", "Model");
        renderUsageRows($("usage-days"), byDay, "day", "Day (UTC)");
      } catch (err) {
        if (!signal.aborted) $("usage-error").textContent = err.message;
      }
    }
    load();
    current.timers.push(setInterval(load, 30000));
  }

  // ---------- start ----------

  (async () => {
    const saved = sessionStorage.getItem(KEY_ITEM);
    if (!saved) return signOut("");
    try {
      await signIn(saved);
      route();
    } catch (err) {
      signOut(err.status === 401 ? "" : `Could not reach the API: ${err.message}`);
    }
  })();
})();
