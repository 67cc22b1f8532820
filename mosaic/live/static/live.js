// Mosaic's live page: asks the server for bounded, aggregated JSON every few seconds and draws it
// with Vega-Lite (specs built by Altair on the server, Vega from the installed vl-convert).
"use strict";
(function () {
  const SPECS = JSON.parse(document.getElementById("specs").textContent);
  const EMBED = { renderer: "svg", actions: false };
  const COLORS = { "done": "#2e9e4f", "running": "#3b7dd8", "pending": "#c3c9d5", "error": "#d6402e",
    "system failure": "#8e1b10", "stopped": "#9a8c5a", "interrupted": "#e39b2d", "paused": "#b07bd6" };
  const LABELS = { "pending": "queued" };
  const STATES = ["", "active", "failed", "done", "running", "pending", "error", "system failure", "stopped", "interrupted", "paused"];
  const RUN_SORTS = ["run", "dataset", "model", "state", "epoch", "train_loss", "test_loss", "best", "worker", "updated"];
  const hash = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  const state = {
    sweep: query.get("sweep") || "", sort: "mean", desc: false, dataset: "",
    runs: { offset: 0, limit: 50, sort: "run", desc: false, state: "", q: "", dataset: "", model: "" },
    run: hash.get("run"), finished: false,
  };
  const views = { curves: null, curvesKey: null, curvesData: null, run: null, runKey: null };
  let timer = null;

  // -- small helpers ---------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "onclick") node.addEventListener("click", value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function fmt(x) {
    if (x === null || x === undefined || Number.isNaN(x)) return "";
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x) && Math.abs(x) < 1e6) return String(x);
    return Number(x.toPrecision(4)).toString();
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? `${h} h ${String(m).padStart(2, "0")} min` : m ? `${m} min ${String(r).padStart(2, "0")} s` : `${r} s`;
  }
  function qs(params) {
    const kept = Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined && v !== false);
    return new URLSearchParams(kept.map(([k, v]) => [k, v === true ? "1" : String(v)])).toString();
  }
  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(`${url.split("?")[0]}: HTTP ${response.status}`);
    return response.json();
  }
  function table(node, columns, rows, options) {
    // columns: [key, title, kind ("text"|"num"), sortable]; options: {sort, desc, onSort, onRow, selected, cell}
    options = options || {};
    node.replaceChildren();
    const head = el("tr");
    for (const [key, title, kind, sortable] of columns) {
      const cls = [kind === "text" ? "text" : "", sortable ? "sortable" : "", options.sort === key ? "sorted" : "",
        options.sort === key && options.desc ? "desc" : ""].filter(Boolean).join(" ");
      head.append(el("th", { class: cls || null, onclick: sortable && options.onSort ? () => options.onSort(key) : null, text: title }));
    }
    node.append(el("thead", {}, head));
    const body = el("tbody");
    for (const row of rows) {
      const tr = el("tr", { class: [options.onRow ? "click" : "", options.selected && options.selected(row) ? "selected" : ""].filter(Boolean).join(" ") || null,
        onclick: options.onRow ? () => options.onRow(row) : null });
      for (const [key, , kind] of columns) {
        const custom = options.cell && options.cell(key, row);
        tr.append(custom || el("td", { class: kind === "text" ? "text" : kind === "err" ? "err" : null, text: kind === "text" || kind === "err" ? (row[key] ?? "") : fmt(row[key]) }));
      }
      body.append(tr);
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty text", colspan: columns.length, text: "nothing yet" })));
    node.append(body);
  }

  // -- the header ------------------------------------------------------------------------------
  function renderHeader(h, sweeps) {
    const where = h.store ? `${h.store}` : `sweep ${h.sweep ?? "?"}${h.kind ? ` (${h.kind})` : ""}`;
    $("subtitle").textContent = where + (h.config ? ` · ${h.config}` : "");
    document.title = `Mosaic · ${where}`;
    const started = h.started ? new Date(h.started * 1000).toLocaleString() : "–";
    const facts = [["sweep", h.sweep ?? "–"], ["started", started], ["elapsed", duration(h.elapsed)],
      ["ETA", h.finished ? "finished" : duration(h.eta)], ["runs", h.runs]];
    if (h.sweeps > 1) facts.splice(1, 0, ["sweeps", h.sweeps]);
    $("facts").replaceChildren(...facts.map(([k, v]) => el("span", {}, `${k} `, el("b", { text: String(v) }))));
    if (sweeps && sweeps.length > 1) {
      const select = el("select", { "aria-label": "sweep" });
      sweeps.forEach((s, i) => select.append(el("option", { value: s.id, selected: state.sweep ? s.id === state.sweep : i === 0, text: s.label })));
      select.addEventListener("change", () => { state.sweep = select.value; now(); });
      $("facts").append(select);
    }
    const counts = $("counts"), bar = $("bar");
    counts.replaceChildren(); bar.replaceChildren();
    for (const [status, n] of Object.entries(h.counts)) {
      const always = ["done", "running", "pending", "error", "system failure", "stopped"].includes(status);
      if (!n && !always) continue;
      counts.append(el("span", { class: "chip" }, el("i", { style: `background:${COLORS[status] || "#888"}` }), `${LABELS[status] || status} `, el("b", { text: String(n) })));
      if (n && h.runs) bar.append(el("div", { title: `${LABELS[status] || status}: ${n}`, style: `width:${(100 * n / h.runs).toFixed(3)}%;background:${COLORS[status] || "#888"}` }));
    }
    state.finished = h.finished;
  }

  // -- the dataset x model table -----------------------------------------------------------------
  function renderGroups(g) {
    $("models-note").textContent = g.total > g.rows.length ? `the first ${g.rows.length} of ${g.total} (dataset, model) pairs` : `${g.total} (dataset, model) pairs`;
    const columns = [["dataset", "dataset", "text", true], ["model", "model", "text", true], ["done", "replicates done / planned", "num", true],
      ["progress", "epochs", "num", true], ["running", "running", "num", true], ["failed", "failed", "num", true],
      ["stopped", "stopped", "num", true], ["best", "best test_loss", "num", true], ["mean", "mean test_loss", "num", true]];
    table($("groups"), columns, g.rows, {
      sort: g.sort, desc: g.desc,
      onSort: (key) => { state.desc = state.sort === key ? !state.desc : false; state.sort = key; now(); },
      onRow: (row) => { Object.assign(state.runs, { dataset: row.dataset, model: row.model, offset: 0 }); $("drill").open = true; renderRunControls(); refreshRuns(); $("runs-section").scrollIntoView(); },
      cell: (key, row) => {
        if (key === "done") return el("td", {}, `${row.done} / ${row.planned}`);
        if (key === "progress") {
          const p = row.progress ?? 0;
          return el("td", { title: `${row.epochs_done} of ${row.epochs_planned} epochs` }, el("span", { class: "prog" }, el("i", { style: `width:${(100 * p).toFixed(1)}%` })), `${Math.round(100 * p)}%`);
        }
        return null;
      },
    });
  }

  // -- curves --------------------------------------------------------------------------------------
  async function renderCurves(c) {
    const controls = $("curve-controls");
    if (c.dataset_count > 1) {
      const select = el("select", { "aria-label": "dataset" }, el("option", { value: "", text: `the first ${Math.min(4, c.dataset_count)} datasets` }));
      for (const name of c.all_datasets) select.append(el("option", { value: name, selected: name === state.dataset, text: name }));
      select.addEventListener("change", () => { state.dataset = select.value; now(); });
      controls.replaceChildren(el("label", {}, "dataset ", select));
    }
    const notes = c.datasets.map((d) => (c.models[d] > c.models_drawn ? `${d}: the best ${c.models_drawn} of ${c.models[d]} models` : null)).filter(Boolean);
    $("curves-note").textContent = c.rows.length ? notes.join("; ") : "no epoch has ended yet";
    const data = JSON.stringify(c.rows);
    if (!c.rows.length || data === views.curvesData) return;
    views.curvesData = data;
    const key = c.datasets.join("\n");
    if (views.curves && key === views.curvesKey) {
      try {
        await views.curves.change("curves", vega.changeset().remove(() => true).insert(c.rows)).runAsync();
        return;
      } catch (error) { /* draw it again below */ }
    }
    const spec = Object.assign({}, SPECS.curves, { datasets: { curves: c.rows } });
    if (views.curves) views.curves.finalize();
    views.curves = (await vegaEmbed($("curves"), spec, EMBED)).view;
    views.curvesKey = key;
  }

  // -- verdict, decisions, failures -----------------------------------------------------------------
  function renderVerdict(v) {
    const section = $("verdict-section"), box = $("verdict");
    section.hidden = !v;
    if (!v) return;
    box.replaceChildren();
    if (v.note) box.append(el("p", { class: "note", text: v.note }));
    box.append(el("p", { class: "note", text: `as of ${v.as_of} done runs: ${v.metric}, lower is better; intervals at level ${v.level}; the same statistics as mosaic verdict` + (v.dataset_count > v.datasets.length ? `; the first ${v.datasets.length} of ${v.dataset_count} datasets` : "") }));
    const columns = [["model", "model", "text"], ["n", "n"], ["mean", "mean"], ["ci_low", "low"], ["ci_high", "high"], ["rank", "rank"],
      ["p_vs_best", "p vs best"], ["verdict", "verdict", "text"], ["note", "note", "text"]];
    const verdictCell = (key, row) => (key === "verdict" ? el("td", { class: `text v-${row.verdict}`, text: row.verdict }) : null);
    for (const d of v.datasets) {
      const counts = Object.entries(d.counts).map(([k, n]) => `${n} ${k}`).join(", ");
      box.append(el("h3", {}, `${d.dataset} `, el("small", { class: "note", text: `${d.models} models: ${counts}` })));
      const t = el("table");
      table(t, columns, d.rows, { cell: verdictCell });
      box.append(t);
    }
    if (v.across) {
      box.append(el("h3", { text: "across datasets (average ranks, Friedman + Nemenyi)" }));
      const t = el("table");
      table(t, [["model", "model", "text"], ["datasets", "datasets"], ["mean_rank", "mean rank"], ["rank", "rank"], ["verdict", "verdict", "text"]], v.across, { cell: verdictCell });
      box.append(t);
    }
  }

  function renderDecisions(d) {
    $("decisions-section").hidden = !d;
    if (!d) return;
    $("decisions-note").textContent = d.total > d.rows.length ? `the latest ${d.rows.length} of ${d.total}` : `${d.total}`;
    table($("decisions"), [["dataset", "dataset", "text"], ["model", "model", "text"], ["rung", "rung"], ["metric", "metric", "text"],
      ["value", "value"], ["cutoff", "cutoff"], ["kept", "kept", "text"], ["rank", "rank"], ["pipelines", "of"], ["reason", "reason", "err"]], d.rows);
  }

  function renderFailures(f) {
    $("failures-section").hidden = !f.total;
    if (!f.total) return;
    $("failures-note").textContent = f.total > f.rows.length ? `the latest ${f.rows.length} of ${f.total}` : `${f.total}`;
    table($("failures"), [["run", "run"], ["dataset", "dataset", "text"], ["model", "model", "text"], ["state", "state", "text"],
      ["worker", "worker", "text"], ["error", "last line of the traceback", "err"], ["log", "log", "text"]], f.rows, {
      onRow: (row) => showRun(row.run, true),
      cell: (key, row) => (key === "log" ? el("td", { class: "text" }, row.log ? el("a", { href: row.log, target: "_blank", onclick: (e) => e.stopPropagation(), text: "log" }) : "") : null),
    });
  }

  // -- the drill-down ---------------------------------------------------------------------------------
  function renderRunControls() {
    const r = state.runs;
    const search = el("input", { type: "search", placeholder: "filter: id, dataset, model, worker, error", value: r.q });
    search.addEventListener("change", () => { r.q = search.value; r.offset = 0; refreshRuns(); });
    const status = el("select", { "aria-label": "state" });
    for (const s of STATES) status.append(el("option", { value: s, selected: s === r.state, text: s ? (LABELS[s] || s) : "every state" }));
    status.addEventListener("change", () => { r.state = status.value; r.offset = 0; refreshRuns(); });
    const sort = el("select", { "aria-label": "sort" });
    for (const s of RUN_SORTS) sort.append(el("option", { value: s, selected: s === r.sort, text: `sort: ${s}` }));
    sort.addEventListener("change", () => { r.sort = sort.value; refreshRuns(); });
    const desc = el("input", { type: "checkbox", checked: r.desc });
    desc.addEventListener("change", () => { r.desc = desc.checked; refreshRuns(); });
    const parts = [search, status, sort, el("label", {}, desc, " descending")];
    if (r.dataset || r.model) {
      parts.push(el("span", {}, `${r.dataset} · ${r.model} `, el("button", { onclick: () => { r.dataset = r.model = ""; r.offset = 0; renderRunControls(); refreshRuns(); }, text: "all runs" })));
    }
    parts.push(el("button", { id: "prev", onclick: () => { r.offset = Math.max(0, r.offset - r.limit); refreshRuns(); }, text: "◀" }),
      el("span", { id: "range" }), el("button", { id: "next", onclick: () => { r.offset += r.limit; refreshRuns(); }, text: "▶" }));
    $("run-controls").replaceChildren(...parts);
  }

  async function refreshRuns() {
    const r = state.runs;
    const page = await getJSON("mosaic.json?" + qs({ sweep: state.sweep, offset: r.offset, limit: r.limit, sort: r.sort, desc: r.desc, state: r.state, q: r.q, dataset: r.dataset, model: r.model }));
    $("range").textContent = page.total ? ` ${page.offset + 1}–${page.offset + page.runs.length} of ${page.total} ` : " no run ";
    const columns = [["run", "run"], ["dataset", "dataset", "text"], ["model", "model", "text"], ["state", "state", "text"], ["epoch", "epoch"],
      ["train_loss", "train_loss"], ["test_loss", "test_loss"], ["best", "best"], ["worker", "worker", "text"], ["error", "error", "err"]];
    table($("runs"), columns, page.runs, {
      sort: r.sort, desc: r.desc,
      onRow: (row) => showRun(row.run, true),
      selected: (row) => String(row.run) === String(state.run),
      cell: (key, row) => (key === "epoch" ? el("td", {}, row.epochs ? `${row.epoch}/${row.epochs}` : fmt(row.epoch)) : null),
    });
  }

  async function showRun(runId, scroll) {
    state.run = String(runId);
    history.replaceState(null, "", `#run=${runId}`);
    $("drill").open = true;
    const detail = await getJSON("mosaic/run.json?" + qs({ sweep: state.sweep, run: runId }));
    const row = detail.run;
    $("run-detail").hidden = false;
    $("run-title").replaceChildren(`run ${row.run}: ${row.dataset} · ${row.model} `,
      detail.log ? el("a", { href: detail.log, target: "_blank", text: "log" }) : "");
    $("run-facts").textContent = [`state ${row.state}`, `epoch ${row.epoch}${row.epochs ? "/" + row.epochs : ""}`,
      row.worker ? `worker ${row.worker}` : null, row.best !== null ? `best test_loss ${fmt(row.best)}` : null,
      detail.points ? `${detail.points}` : null, row.error ? `error: ${row.error}` : null].filter(Boolean).join(" · ");
    const key = JSON.stringify(detail.curve);
    if (key !== views.runKey) {
      views.runKey = key;
      if (views.run) views.run.finalize();
      views.run = null;
      if (detail.curve.length) {
        const spec = Object.assign({}, SPECS.run, { datasets: { run: detail.curve } });
        views.run = (await vegaEmbed($("run-chart"), spec, EMBED)).view;
      } else {
        $("run-chart").replaceChildren(el("p", { class: "empty", text: "no epoch yet" }));
      }
    }
    if (scroll) $("run-detail").scrollIntoView({ block: "nearest" });
  }

  // -- the loop ---------------------------------------------------------------------------------------
  function setStatus(text) { $("status").textContent = text; }

  async function refresh() {
    try {
      const s = await getJSON("mosaic/summary.json?" + qs({ sweep: state.sweep, sort: state.sort, desc: state.desc, dataset: state.dataset }));
      renderHeader(s.header, s.sweeps);
      renderGroups(s.groups);
      renderVerdict(s.verdict);
      renderDecisions(s.decisions);
      renderFailures(s.failures);
      await renderCurves(s.curves);
      if ($("drill").open) await refreshRuns();
      if (state.run !== null) {
        try {
          await showRun(state.run, false);
        } catch (error) { // a run this sweep does not have (an old link): forget it
          state.run = null;
          $("run-detail").hidden = true;
        }
      }
      setStatus("");
    } catch (error) {
      setStatus(`· ${error.message}; retrying`);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(tick, document.hidden ? 10000 : state.finished ? 8000 : 2000);
  }
  async function tick() { await refresh(); schedule(); }
  function now() { clearTimeout(timer); tick(); }

  $("drill").addEventListener("toggle", () => { if ($("drill").open) refreshRuns().catch((e) => setStatus(`· ${e.message}`)); });
  if (state.run !== null) $("drill").open = true;
  renderRunControls();
  tick();
})();
