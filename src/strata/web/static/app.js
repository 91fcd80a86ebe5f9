/* Strata dashboards: sign in with an API key, pick a dashboard, draw its widgets.
 *
 * Plain JavaScript, no build step. Talks only to this server's /api/v1/analytics API with
 * the key as a Bearer header; the key lives in sessionStorage and never goes into a URL
 * sent to the server. A "#key=..." fragment prefills it (fragments are not sent to
 * servers) and is removed from the address bar at once.
 *
 * Every widget element carries data-widget-id; once drawn it gets data-drawn="true", or
 * data-error="<message>" when its data could not be fetched or drawn.
 */
(function () {
  "use strict";

  const API = "/api/v1/analytics";
  const KEY_STORAGE = "strata.apiKey";
  const MAX_BREAKDOWN_PERIODS = 12;
  const PALETTE = [
    "#1f4e79", "#e07b39", "#2e8b57", "#b3261e", "#7b52ab",
    "#0f8b8d", "#c9a227", "#5f6b7a", "#d45087", "#3f88c5",
  ];
  const WIDGET_TYPES = ["kpi", "timeseries", "breakdown", "funnel", "heatmap"];

  // ---------------------------------------------------------------- pure helpers

  const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const compactFormat = new Intl.NumberFormat(undefined, {
    notation: "compact",
    maximumFractionDigits: 1,
  });

  function formatNumber(value) {
    if (value === null || value === undefined || value === "") return "–";
    const n = Number(value);
    if (!Number.isFinite(n)) return String(value);
    return Math.abs(n) >= 1e6 ? compactFormat.format(n) : numberFormat.format(n);
  }

  /** A period as a short label: dates and midnight timestamps as YYYY-MM-DD. */
  function formatPeriod(period) {
    if (period === null || period === undefined) return "";
    const text = String(period);
    const midnight = /^(\d{4}-\d{2}-\d{2})([T ]00:00(:00(\.0+)?)?(Z|[+-]00(:?00)?)?)?$/;
    const match = midnight.exec(text);
    return match ? match[1] : text;
  }

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) {
      return "–";
    }
    let s = Math.max(0, Math.round(Number(seconds)));
    if (s < 60) return s + "s";
    const units = [["d", 86400], ["h", 3600], ["m", 60]];
    const parts = [];
    for (const [unit, size] of units) {
      if (s >= size) {
        parts.push(Math.floor(s / size) + unit);
        s %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  /** An ISO timestamp as "YYYY-MM-DD HH:MM UTC" (or as given when it is not one). */
  function formatTimestamp(text) {
    const raw = String(text);
    // A timestamp without a zone is the server's UTC.
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(raw) ? raw : raw.replace(" ", "T") + "Z";
    const date = new Date(zoned);
    if (Number.isNaN(date.getTime())) return raw;
    return date.toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function isoDate(date) {
    const pad = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }

  function isIsoDate(text) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(text || "")) return false;
    const date = new Date(text + "T00:00:00");
    return !Number.isNaN(date.getTime()) && isoDate(date) === text;
  }

  /** The last ``days`` days up to ``today`` (a Date), as ISO dates. */
  function presetRange(days, today) {
    const end = new Date(today.getFullYear(), today.getMonth(), today.getDate());
    const start = new Date(end);
    start.setDate(start.getDate() - days);
    return { start: isoDate(start), end: isoDate(end) };
  }

  function compareValues(a, b) {
    if (a === b) return 0;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    return a < b ? -1 : 1;
  }

  /** A column's name: the contract lists names; a {name, type} object is read too. */
  function columnName(column) {
    return column !== null && typeof column === "object" ? String(column.name) : String(column);
  }

  /** Indexes of a widget data answer's columns: period, value, previous value, groups.
   * ``groupBy`` (the widget's group_by) names the group columns; without it, every other
   * column but a KPI's "change" is one. */
  function shape(data, groupBy) {
    const columns = Array.isArray(data && data.columns) ? data.columns.map(columnName) : [];
    const rows = Array.isArray(data && data.rows) ? data.rows : [];
    const period = columns.indexOf("period");
    const value = columns.indexOf("value");
    let previous = columns.indexOf("previous_value");
    if (previous < 0) previous = columns.indexOf("previous");
    if (value < 0) throw new Error("the answer has no value column");
    let groups;
    if (Array.isArray(groupBy)) {
      groups = groupBy.map((name) => columns.indexOf(String(name))).filter((i) => i >= 0);
    } else {
      groups = [];
      columns.forEach((name, i) => {
        if (i !== period && i !== value && i !== previous && name !== "change") groups.push(i);
      });
    }
    return { columns, rows, period, value, previous, groups };
  }

  function groupLabel(s, row) {
    if (!s.groups.length) return "value";
    return s.groups
      .map((i) => (row[i] === null || row[i] === undefined ? "(none)" : String(row[i])))
      .join(" · ");
  }

  function distinct(values) {
    const seen = new Set();
    const out = [];
    for (const v of values) {
      const k = v === null || v === undefined ? "\u0000null" : String(v);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(v);
      }
    }
    return out;
  }

  function toNumber(v) {
    if (v === null || v === undefined || v === "") return null;
    const n = Number(v);
    return Number.isFinite(n) ? n : null;
  }

  /** KPI: the latest period's value and the one it is compared with. */
  function kpiModel(data, groupBy) {
    const s = shape(data, groupBy);
    if (!s.rows.length) return null;
    const rows = s.period >= 0
      ? s.rows.slice().sort((a, b) => compareValues(a[s.period], b[s.period]))
      : s.rows;
    const last = rows[rows.length - 1];
    const value = toNumber(last[s.value]);
    let previous = null;
    if (s.previous >= 0) previous = toNumber(last[s.previous]);
    else if (rows.length > 1) previous = toNumber(rows[rows.length - 2][s.value]);
    let delta = null;
    let ratio = null;
    if (value !== null && previous !== null) {
      delta = value - previous;
      ratio = previous !== 0 ? delta / Math.abs(previous) : null;
    }
    return {
      value,
      previous,
      delta,
      ratio,
      comparable: s.previous >= 0,
      period: s.period >= 0 ? formatPeriod(last[s.period]) : "",
    };
  }

  /** Time series: one line per group, over the sorted periods. */
  function seriesModel(data, groupBy) {
    const s = shape(data, groupBy);
    const periods = distinct(s.rows.map((r) => (s.period >= 0 ? r[s.period] : null))).sort(
      compareValues
    );
    const index = new Map(periods.map((p, i) => [String(p), i]));
    const series = new Map();
    for (const row of s.rows) {
      const label = groupLabel(s, row);
      if (!series.has(label)) series.set(label, new Array(periods.length).fill(null));
      const at = index.get(String(s.period >= 0 ? row[s.period] : null));
      series.get(label)[at] = toNumber(row[s.value]);
    }
    return {
      labels: periods.map(formatPeriod),
      datasets: Array.from(series, ([label, values]) => ({ label, data: values })),
    };
  }

  /** Breakdown: one bar per group; one set of bars per period (the latest few). */
  function breakdownModel(data, groupBy) {
    const s = shape(data, groupBy);
    if (!s.groups.length) {
      const series = seriesModel(data, groupBy);
      return { labels: series.labels, datasets: series.datasets, truncated: 0 };
    }
    const groups = distinct(s.rows.map((r) => groupLabel(s, r)));
    let periods = distinct(s.rows.map((r) => (s.period >= 0 ? r[s.period] : null))).sort(
      compareValues
    );
    const truncated = Math.max(0, periods.length - MAX_BREAKDOWN_PERIODS);
    periods = periods.slice(truncated);
    const datasets = periods.map((p) => ({
      label: p === null || p === undefined ? "value" : formatPeriod(p),
      data: new Array(groups.length).fill(null),
    }));
    const pIndex = new Map(periods.map((p, i) => [String(p), i]));
    const gIndex = new Map(groups.map((g, i) => [g, i]));
    for (const row of s.rows) {
      const p = pIndex.get(String(s.period >= 0 ? row[s.period] : null));
      if (p === undefined) continue;
      datasets[p].data[gIndex.get(groupLabel(s, row))] = toNumber(row[s.value]);
    }
    return { labels: groups, datasets, truncated };
  }

  /** Funnel: the steps in the order the answer gives them, for the latest period. */
  function funnelModel(data, groupBy) {
    const s = shape(data, groupBy);
    let rows = s.rows;
    let period = "";
    if (s.period >= 0 && rows.length) {
      const periods = distinct(rows.map((r) => r[s.period])).sort(compareValues);
      const latest = periods[periods.length - 1];
      if (periods.length > 1) period = formatPeriod(latest);
      rows = rows.filter((r) => String(r[s.period]) === String(latest));
    }
    const steps = rows.map((r) => ({ label: groupLabel(s, r), value: toNumber(r[s.value]) }));
    const first = steps.length ? steps[0].value : null;
    for (const step of steps) {
      step.share = first && step.value !== null ? step.value / first : null;
    }
    return { steps, period };
  }

  /** Heatmap: rows by the first group column, columns by period (or the second group). */
  function heatmapModel(data, groupBy) {
    const s = shape(data, groupBy);
    const rowKey = (r) => (s.groups.length ? String(r[s.groups[0]] ?? "(none)") : "value");
    let colKey;
    if (s.groups.length >= 2) {
      colKey = (r) => s.groups
        .slice(1)
        .map((i) => String(r[i] ?? "(none)"))
        .join(" · ");
    } else {
      colKey = (r) => (s.period >= 0 ? formatPeriod(r[s.period]) : "value");
    }
    const rowsSorted = s.period >= 0
      ? s.rows.slice().sort((a, b) => compareValues(a[s.period], b[s.period]))
      : s.rows;
    const rowLabels = distinct(rowsSorted.map(rowKey));
    const colLabels = distinct(rowsSorted.map(colKey));
    const cells = rowLabels.map(() => new Array(colLabels.length).fill(null));
    const ri = new Map(rowLabels.map((k, i) => [k, i]));
    const ci = new Map(colLabels.map((k, i) => [k, i]));
    let min = Infinity;
    let max = -Infinity;
    for (const r of rowsSorted) {
      const v = toNumber(r[s.value]);
      cells[ri.get(rowKey(r))][ci.get(colKey(r))] = v;
      if (v !== null) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
    }
    if (min === Infinity) {
      min = 0;
      max = 0;
    }
    return { rowLabels, colLabels, cells, min, max };
  }

  /** A colour from light to dark blue for t in [0, 1], with a readable text colour. */
  function heatColor(t) {
    const from = [232, 241, 250];
    const to = [31, 78, 121];
    const mix = from.map((f, i) => Math.round(f + (to[i] - f) * t));
    return { background: "rgb(" + mix.join(", ") + ")", ink: t > 0.55 ? "#ffffff" : "#1d2733" };
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function getKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch (e) {
      return state.memoryKey;
    }
  }

  function setKey(key) {
    state.memoryKey = key;
    try {
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) {
      /* storage refused (private mode): keep it in memory for this page only */
    }
  }

  async function api(path, params) {
    const query = params ? "?" + new URLSearchParams(params).toString() : "";
    let response;
    try {
      response = await fetch(API + path + query, {
        headers: { Authorization: "Bearer " + getKey(), Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiError(0, "network", "the server did not answer (" + e.message + ")");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new ApiError(
        response.status,
        error.code || "http_" + response.status,
        error.message || response.statusText || "request failed"
      );
    }
    if (body === null) throw new ApiError(response.status, "bad_answer", "the answer is not JSON");
    return body;
  }

  // ---------------------------------------------------------------- state and routing

  const state = {
    memoryKey: "",
    dashboards: [],
    dashboard: null,
    charts: new Map(), // widget id -> Chart
    generation: 0, // bumps on every (re)load: late answers of an older one are dropped
  };

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    return {
      key: params.get("key"),
      dashboard: params.get("dashboard"),
      start: params.get("start"),
      end: params.get("end"),
    };
  }

  function writeHash(values, replace) {
    const params = new URLSearchParams();
    for (const name of ["dashboard", "start", "end"]) {
      if (values[name]) params.set(name, values[name]);
    }
    const hash = params.toString();
    const url = location.pathname + location.search + (hash ? "#" + hash : "");
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }

  /** The range picked (in the fragment), or null: each widget's own default range. */
  function currentRange() {
    const hash = readHash();
    if (isIsoDate(hash.start) && isIsoDate(hash.end) && hash.start <= hash.end) {
      return { start: hash.start, end: hash.end };
    }
    return null;
  }

  function showRange(range) {
    $("range-start").value = range ? range.start : "";
    $("range-end").value = range ? range.end : "";
    $("range-mode").textContent = range ? "" : "Each widget shows its own default range.";
    $("range-defaults").setAttribute("aria-pressed", range ? "false" : "true");
  }

  function readDashboardShown() {
    return $("dashboard").hidden ? null : $("dashboard").getAttribute("data-dashboard-id");
  }

  function setStatus(message) {
    $("status").textContent = message || "";
  }

  // ---------------------------------------------------------------- sign in / out

  function showSignedIn(signedIn) {
    $("signin").hidden = signedIn;
    $("session").hidden = !signedIn;
    $("welcome").hidden = signedIn;
    if (!signedIn) {
      $("dashboard").hidden = true;
      $("dashboards").replaceChildren();
      destroyCharts();
    }
  }

  function signOut(message) {
    setKey("");
    state.dashboards = [];
    state.dashboard = null;
    state.generation += 1;
    showSignedIn(false);
    setStatus(message || "");
  }

  // ---------------------------------------------------------------- dashboards

  async function loadDashboards() {
    const generation = ++state.generation;
    setStatus("");
    let body;
    try {
      body = await api("/dashboards");
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) {
        signOut("The API key was refused: " + e.message);
      } else {
        setStatus("Could not list dashboards: " + e.message);
      }
      return;
    }
    if (generation !== state.generation) return;
    state.dashboards = Array.isArray(body.dashboards) ? body.dashboards : [];
    renderDashboardList();
    const wanted = readHash().dashboard;
    const chosen = state.dashboards.find((d) => String(d.id) === wanted) || state.dashboards[0];
    if (chosen) {
      if (String(chosen.id) !== wanted) {
        writeHash({ ...currentRange(), dashboard: String(chosen.id) }, true);
      }
      await loadDashboard(String(chosen.id));
    } else {
      $("dashboard").hidden = true;
      $("welcome").hidden = false;
      $("welcome").replaceChildren(
        el("h2", {}, "No dashboards yet"),
        el("p", {}, "This key's tenant has no dashboards, and the project declares none.")
      );
    }
  }

  function renderDashboardList() {
    const list = $("dashboards");
    const current = readHash().dashboard;
    if (!state.dashboards.length) {
      list.replaceChildren(el("li", { className: "empty" }, "None"));
      return;
    }
    list.replaceChildren(
      ...state.dashboards.map((d) => {
        const button = el(
          "button",
          {
            type: "button",
            "data-dashboard-id": d.id,
            "aria-current": String(d.id) === current ? "true" : null,
          },
          d.title || String(d.id),
          d.source ? el("span", { className: "source" }, d.source) : null
        );
        button.addEventListener("click", () => {
          writeHash({ ...currentRange(), dashboard: String(d.id) }, false);
          loadDashboard(String(d.id));
        });
        return el("li", {}, button);
      })
    );
  }

  async function loadDashboard(id) {
    const generation = ++state.generation;
    for (const button of $("dashboards").querySelectorAll("button[data-dashboard-id]")) {
      button.setAttribute("aria-current", button.dataset.dashboardId === id ? "true" : "false");
    }
    let body;
    try {
      body = await api("/dashboards/" + encodeURIComponent(id));
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) return signOut("The API key was refused: " + e.message);
      setStatus("Could not open dashboard " + id + ": " + e.message);
      return;
    }
    if (generation !== state.generation) return;
    state.dashboard = body;
    $("welcome").hidden = true;
    $("dashboard").hidden = false;
    $("dashboard").setAttribute("data-dashboard-id", id);
    $("dashboard-title").textContent = body.title || id;
    $("dashboard-description").textContent = body.description || "";
    const range = currentRange();
    showRange(range);
    renderWidgets(body.widgets || [], range, generation);
  }

  // ---------------------------------------------------------------- widgets

  function destroyCharts() {
    for (const chart of state.charts.values()) chart.destroy();
    state.charts.clear();
  }

  /** Widgets in reading order: by position (a number, or {y|row, x|col}), then as given. */
  function orderWidgets(widgets) {
    const key = (w, i) => {
      const p = w.position;
      if (typeof p === "number") return [p, 0, i];
      if (p && typeof p === "object") {
        return [Number(p.y ?? p.row ?? 0), Number(p.x ?? p.col ?? p.column ?? 0), i];
      }
      return [Infinity, 0, i];
    };
    return widgets
      .map((w, i) => ({ w, k: key(w, i) }))
      .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2])
      .map((x) => x.w);
  }

  function renderWidgets(widgets, range, generation) {
    destroyCharts();
    const container = $("widgets");
    const elements = orderWidgets(widgets).map((widget) => {
      const metric = widget.metric || {};
      const section = el(
        "section",
        {
          className: "widget",
          "data-widget-id": widget.id,
          "data-widget-type": widget.type,
          "aria-label": widget.title || widget.id,
        },
        el(
          "div",
          { className: "widget-head" },
          el("h3", { className: "widget-title" }, widget.title || String(widget.id)),
          metric.key
            ? el(
                "span",
                { className: "widget-metric" },
                metric.key + (metric.version ? " v" + metric.version : "")
              )
            : null
        ),
        el("div", { className: "widget-body" }, el("p", { className: "loading" }, "Loading…")),
        el("div", { className: "widget-foot" })
      );
      const p = widget.position;
      const span = p && typeof p === "object" ? Number(p.w ?? p.width) : NaN;
      if (Number.isInteger(span) && span >= 1 && span <= 12) {
        section.style.gridColumn = "span " + span;
      }
      return { widget, section };
    });
    container.replaceChildren(...elements.map((x) => x.section));
    if (!elements.length) {
      container.replaceChildren(el("p", { className: "empty-data" }, "This dashboard has no widgets."));
    }
    for (const { widget, section } of elements) loadWidget(widget, section, range, generation);
  }

  async function loadWidget(widget, section, range, generation) {
    section.removeAttribute("data-drawn");
    section.removeAttribute("data-error");
    section.setAttribute("data-loading", "true");
    let data;
    try {
      data = await api(
        "/widgets/" + encodeURIComponent(widget.id) + "/data",
        range ? { start: range.start, end: range.end } : null
      );
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) return signOut("The API key was refused: " + e.message);
      showWidgetError(section, e.code, e.message);
      return;
    }
    if (generation !== state.generation) return;
    try {
      drawWidget(widget, section, data);
    } catch (e) {
      showWidgetError(section, "draw_failed", e.message || String(e));
    }
  }

  function showWidgetError(section, code, message) {
    const id = section.getAttribute("data-widget-id");
    const chart = state.charts.get(id);
    if (chart) {
      chart.destroy();
      state.charts.delete(id);
    }
    section.removeAttribute("data-loading");
    section.removeAttribute("data-drawn");
    section.setAttribute("data-error", code ? code + ": " + message : message);
    section
      .querySelector(".widget-body")
      .replaceChildren(
        el("p", { className: "widget-error", role: "alert" }, el("strong", {}, code || "error"), message)
      );
  }

  function markDrawn(section, rows) {
    section.removeAttribute("data-loading");
    section.removeAttribute("data-error");
    section.setAttribute("data-rows", String(rows));
    section.setAttribute("data-drawn", "true");
  }

  function drawWidget(widget, section, data) {
    const type = (data.widget && data.widget.type) || widget.type;
    const groupBy = Array.isArray(widget.group_by) ? widget.group_by : undefined;
    if (!WIDGET_TYPES.includes(type)) throw new Error("unknown widget type " + JSON.stringify(type));
    const body = section.querySelector(".widget-body");
    renderFoot(section.querySelector(".widget-foot"), data);
    const rows = Array.isArray(data.rows) ? data.rows.length : 0;
    if (!rows) {
      body.replaceChildren(el("p", { className: "empty-data" }, "No data in this range."));
      section.setAttribute("data-empty", "true");
      markDrawn(section, 0);
      return;
    }
    section.removeAttribute("data-empty");
    if (type === "kpi") {
      drawKpi(body, data, groupBy);
      markDrawn(section, rows);
    } else if (type === "heatmap") {
      drawHeatmap(body, data, groupBy);
      markDrawn(section, rows);
    } else {
      const canvas = el("canvas", { role: "img", "aria-label": widget.title || widget.id });
      body.replaceChildren(el("div", { className: "chart" }, canvas));
      const chart = new window.Chart(canvas, chartConfig(type, data, groupBy));
      state.charts.set(String(widget.id), chart);
      chart.draw();
      if (!canvasPainted(canvas)) throw new Error("the chart drew nothing");
      markDrawn(section, rows);
    }
  }

  /** Whether any pixel of the canvas is painted (Chart.js draws on a transparent one). */
  function canvasPainted(canvas) {
    if (!canvas.width || !canvas.height) return false;
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) return true;
    return false;
  }

  function renderFoot(foot, data) {
    const parts = [];
    const f = data.freshness;
    if (f && typeof f === "object") {
      const status = String(f.status || "unknown");
      const lag = "lag " + formatDuration(f.lag_s) + (f.slo_s ? " / SLO " + formatDuration(f.slo_s) : "");
      const refreshed = f.last_refresh
        ? "refreshed " + formatTimestamp(f.last_refresh)
        : "never refreshed";
      parts.push(
        el(
          "span",
          { className: "badge " + status.replace(/[^a-z_]/gi, ""), "data-freshness": status },
          status.replace(/_/g, " ")
        ),
        el("span", {}, lag),
        el("span", {}, refreshed)
      );
    }
    if (data.start && data.end) {
      parts.push(el("span", { "data-range": data.start + ".." + data.end }, data.start + " → " + data.end));
    }
    if (data.grain) parts.push(el("span", {}, "by " + data.grain));
    if (data.cached) parts.push(el("span", { "data-cached": "true" }, "cached"));
    foot.replaceChildren(...parts);
  }

  function drawKpi(body, data, groupBy) {
    const model = kpiModel(data, groupBy);
    const children = [el("div", { className: "kpi-value" }, formatNumber(model.value))];
    if (model.delta !== null) {
      const direction = model.delta > 0 ? "up" : model.delta < 0 ? "down" : "flat";
      const arrow = { up: "▲", down: "▼", flat: "■" }[direction];
      const sign = model.delta > 0 ? "+" : "";
      const pct = model.ratio !== null ? " (" + sign + (model.ratio * 100).toFixed(1) + "%)" : "";
      children.push(
        el(
          "div",
          { className: "kpi-delta " + direction, "data-delta": String(model.delta) },
          arrow + " " + sign + formatNumber(model.delta) + pct + " vs " + formatNumber(model.previous)
        )
      );
    }
    else if (model.comparable) {
      children.push(el("div", { className: "kpi-delta flat" }, "no value for the previous range"));
    }
    if (model.period) children.push(el("div", { className: "kpi-period" }, model.period));
    body.replaceChildren(...children);
  }

  function drawHeatmap(body, data, groupBy) {
    const model = heatmapModel(data, groupBy);
    const span = model.max - model.min;
    const head = el(
      "tr",
      {},
      el("th", {}),
      model.colLabels.map((c) => el("th", { scope: "col" }, c))
    );
    const rows = model.rowLabels.map((label, r) =>
      el(
        "tr",
        {},
        el("th", { scope: "row" }, label),
        model.cells[r].map((v, c) => {
          const title = label + " · " + model.colLabels[c] + ": " + formatNumber(v);
          if (v === null) return el("td", { className: "missing", title });
          const color = heatColor(span > 0 ? (v - model.min) / span : 1);
          const cell = el("td", { title, "data-value": String(v) });
          cell.style.backgroundColor = color.background;
          cell.style.color = color.ink;
          return cell;
        })
      )
    );
    const table = el("table", { className: "heatmap" }, el("thead", {}, head), el("tbody", {}, rows));
    const legend = el(
      "div",
      { className: "heatmap-legend" },
      formatNumber(model.min),
      el("span", { className: "heatmap-scale" }),
      formatNumber(model.max)
    );
    body.replaceChildren(el("div", { className: "heatmap-wrap" }, table), legend);
  }

  function color(i, alpha) {
    const hex = PALETTE[i % PALETTE.length];
    if (alpha === undefined) return hex;
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + [(n >> 16) & 255, (n >> 8) & 255, n & 255, alpha].join(", ") + ")";
  }

  function chartConfig(type, data, groupBy) {
    const base = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { display: true, position: "bottom", labels: { boxWidth: 12 } },
        tooltip: { enabled: true },
      },
    };
    if (type === "timeseries") {
      const model = seriesModel(data, groupBy);
      base.plugins.legend.display = model.datasets.length > 1;
      return {
        type: "line",
        data: {
          labels: model.labels,
          datasets: model.datasets.map((d, i) => ({
            ...d,
            borderColor: color(i),
            backgroundColor: color(i, 0.15),
            pointRadius: model.labels.length > 60 ? 0 : 2,
            borderWidth: 2,
            tension: 0.2,
            spanGaps: true,
            fill: model.datasets.length === 1,
          })),
        },
        options: { ...base, scales: { y: { beginAtZero: true } } },
      };
    }
    if (type === "breakdown") {
      const model = breakdownModel(data, groupBy);
      base.plugins.legend.display = model.datasets.length > 1;
      if (model.truncated) {
        base.plugins.subtitle = {
          display: true,
          text: "latest " + model.datasets.length + " periods",
        };
      }
      return {
        type: "bar",
        data: {
          labels: model.labels,
          datasets: model.datasets.map((d, i) => ({
            ...d,
            backgroundColor: model.datasets.length === 1 ? color(0) : color(i),
            borderRadius: 3,
          })),
        },
        options: { ...base, scales: { y: { beginAtZero: true } } },
      };
    }
    // funnel: ordered horizontal bars, each labelled with its share of the first step
    const model = funnelModel(data, groupBy);
    base.plugins.legend.display = false;
    if (model.period) base.plugins.subtitle = { display: true, text: model.period };
    return {
      type: "bar",
      data: {
        labels: model.steps.map((s) =>
          s.share === null ? s.label : s.label + " (" + (s.share * 100).toFixed(1) + "%)"
        ),
        datasets: [
          {
            label: "value",
            data: model.steps.map((s) => s.value),
            backgroundColor: model.steps.map((_, i) =>
              color(0, Math.max(0.35, 1 - (0.6 * i) / Math.max(1, model.steps.length - 1)))
            ),
            borderRadius: 3,
            barPercentage: 0.9,
            categoryPercentage: 0.9,
          },
        ],
      },
      options: { ...base, indexAxis: "y", scales: { x: { beginAtZero: true } } },
    };
  }

  // ---------------------------------------------------------------- date range

  /** Re-fetch every widget over ``range`` (null: each widget's default range). */
  function applyRange(range) {
    $("range-error").textContent = "";
    if (range !== null) {
      if (!isIsoDate(range.start) || !isIsoDate(range.end)) {
        $("range-error").textContent = "Pick a start and an end date.";
        return;
      }
      if (range.start > range.end) {
        $("range-error").textContent = "The start date is after the end date.";
        return;
      }
    }
    showRange(range);
    const dashboard = readHash().dashboard;
    writeHash({ dashboard, start: range && range.start, end: range && range.end }, false);
    if (!state.dashboard) return;
    const generation = ++state.generation;
    const widgets = state.dashboard.widgets || [];
    for (const section of $("widgets").querySelectorAll(".widget[data-widget-id]")) {
      const widget = widgets.find((w) => String(w.id) === section.dataset.widgetId);
      if (widget) loadWidget(widget, section, range, generation);
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    if (!window.Chart) {
      setStatus("The chart library did not load; widgets other than KPIs and heatmaps cannot be drawn.");
    } else {
      window.Chart.defaults.animation = false;
    }
    const hash = readHash();
    if (hash.key) {
      setKey(hash.key);
      // Out of the address bar and the history at once: the key is a secret.
      writeHash(hash, true);
    }

    $("signin").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("api-key");
      const key = input.value.trim();
      input.value = "";
      if (!key) return;
      setKey(key);
      showSignedIn(true);
      loadDashboards();
    });
    $("signout").addEventListener("click", () => signOut("Signed out."));
    $("range").addEventListener("submit", (event) => {
      event.preventDefault();
      applyRange({ start: $("range-start").value, end: $("range-end").value });
    });
    $("range-defaults").addEventListener("click", () => applyRange(null));
    for (const button of document.querySelectorAll(".presets button[data-days]")) {
      button.addEventListener("click", () =>
        applyRange(presetRange(Number(button.dataset.days), new Date()))
      );
    }
    window.addEventListener("hashchange", () => {
      const hash = readHash();
      if (hash.key) {
        // A pasted "#key=..." link: take the key, then drop it from the address bar.
        setKey(hash.key);
        writeHash(hash, true);
        showSignedIn(true);
        loadDashboards();
      } else if (getKey() && hash.dashboard && hash.dashboard !== readDashboardShown()) {
        loadDashboard(hash.dashboard);
      }
    });
    window.addEventListener("popstate", () => {
      if (!getKey()) return;
      const wanted = readHash().dashboard;
      if (wanted) loadDashboard(wanted);
    });

    if (getKey()) {
      showSignedIn(true);
      loadDashboards();
    } else {
      showSignedIn(false);
    }
  }

  // Pure parts, for tests and the console.
  window.StrataDashboards = {
    formatNumber,
    formatPeriod,
    formatDuration,
    presetRange,
    isIsoDate,
    shape,
    kpiModel,
    seriesModel,
    breakdownModel,
    funnelModel,
    heatmapModel,
    orderWidgets,
  };

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
