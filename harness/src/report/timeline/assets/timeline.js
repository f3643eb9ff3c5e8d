// pinvm timeline: draws the data in #timeline-data (built by harness::report::timeline::model)
// as SVG. Every text from the data is set with textContent, never parsed as HTML. Marks are
// aggregated per lane and pixel bin, so a case with many thousands of records draws at most a
// few elements per pixel column.
"use strict";
(function () {
  const t_start = performance.now();
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => errors.push(String(e.reason)));
  const NS = "http://www.w3.org/2000/svg";
  const LABEL = 300, ROW = 22, LANE = 34, AXIS = 22, BIN = 3;
  const D = JSON.parse(document.getElementById("timeline-data").textContent);
  const box = document.getElementById("timeline");
  const detail = document.getElementById("detail");
  const counts = { lanes: 0, marks: 0, verdicts: 0, draws: 0 };
  let earliest = 0;
  for (const r of D.reqs) earliest = Math.min(earliest, r[1]);
  const full = [earliest, D.end + Math.max(1, (D.end - earliest) * 0.01)];
  let view = full.slice();
  const items = [];

  const ms = (t) => (t / 1e6).toFixed(3) + " ms";
  const trig = ["?", "burst", "rate", "writeback"];
  function el(tag, attrs, parent) {
    const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function txt(s, attrs, parent) { const t = el("text", attrs, parent); t.textContent = s; return t; }
  function reqText(i, page, sector, label, flags) {
    const r = D.reqs[i];
    const kind = ["OUT", "FLUSH", "OTHER"][r[6]];
    let s = `block ${kind} seq ${r[0]} · submitted +${ms(r[1])} → completed +${ms(r[2])} (took ${((r[2] - r[1]) / 1e3).toFixed(1)} µs)` +
      ` · status ${r[5] === 0 ? "OK" : r[5]}`;
    if (r[6] === 0) s += ` · sectors ${r[3]}..${r[3] + r[4] - 1} (${r[4]})`;
    if (label !== undefined) s += `\n  this page (${page}) at sector ${sector}: ${D.strings[label]}` +
      (flags & 1 ? "  ← TORN" : "") + (flags & 2 ? "  ← named by a verdict" : "");
    return s;
  }
  function pageName(lane, p) { const pg = lane.pages[p]; return pg ? "file offset " + pg.file_offset : "?"; }
  function dmaText(lane, d) {
    return `DMA write +${ms(d[0])} · generation ${d[1]} · ${pageName(lane, d[6])} · ${d[2]} bytes at page offset ${d[3]}` +
      ` · trigger ${trig[d[4]] || d[4]}` + (d[4] === 3 ? ` (while block seq ${d[5]} was copied)` : "");
  }
  function show(id, sticky) {
    const it = items[id];
    if (!it) return;
    const more = it.list.length > 6 ? `\n… ${it.list.length - 6} more here: zoom in (wheel) to separate them` : "";
    detail.textContent = (it.list.length > 1 ? `${it.list.length} records:\n` : "") + it.list.slice(0, 6).map(it.text).join("\n") + more;
    if (sticky) { box.querySelectorAll(".sel").forEach((e) => e.classList.remove("sel")); }
  }
  function item(list, text) { items.push({ list, text }); return items.length - 1; }
  function hook(e, id) {
    e.setAttribute("data-item", id);
    e.addEventListener("mouseenter", () => show(id, false));
    e.addEventListener("click", (ev) => { show(id, true); e.classList.add("sel"); ev.stopPropagation(); });
    counts.marks++;
  }

  // Aggregate instants (sorted by time) per pixel bin inside the view.
  function bins(list, t, x) {
    const out = [];
    let cur = null;
    for (const m of list) {
      const tm = t(m);
      if (tm < view[0] || tm > view[1]) continue;
      const b = Math.floor(x(tm) / BIN);
      if (cur && cur.b === b) cur.list.push(m); else { cur = { b, x: x(tm), list: [m] }; out.push(cur); }
    }
    return out;
  }
  // Merge spans whose pixel extents touch into one drawn span.
  function spans(list, t0, t1, x, overlapOnly) {
    const vis = list.filter((m) => t1(m) >= view[0] && t0(m) <= view[1]).sort((a, b) => t0(a) - t0(b));
    const out = [];
    let cur = null;
    for (const m of vis) {
      const a = x(Math.max(t0(m), view[0])), b = Math.max(a + 2, x(Math.min(t1(m), view[1])));
      if (cur && (overlapOnly ? a < cur.b - 1 : a <= cur.b + 1)) { cur.b = Math.max(cur.b, b); cur.list.push(m); } else { cur = { a, b, list: [m] }; out.push(cur); }
    }
    return out;
  }

  function draw() {
    const t_draw = performance.now();
    items.length = 0;
    counts.lanes = 0; counts.marks = 0; counts.verdicts = 0;
    const width = Math.max(900, box.clientWidth || 1200);
    const W = width - LABEL - 10;
    const x = (t) => LABEL + ((t - view[0]) / (view[1] - view[0])) * W;
    const height = AXIS + ROW * 3 + LANE * D.lanes.length + 8;
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
    axis(svg, x, W, height);
    let y = AXIS;
    y = stepsRow(svg, x, y);
    y = consoleRow(svg, x, y);
    y = diskRow(svg, x, y);
    D.lanes.forEach((lane, i) => { pageLane(svg, x, y, lane, i); y += LANE; });
    box.replaceChildren(svg);
    counts.draws++;
    document.getElementById("range").textContent = `view ${ms(view[0])} … ${ms(view[1])} from ${D.origin}`;
    return performance.now() - t_draw;
  }

  function axis(svg, x, W, height) {
    const g = el("g", { class: "axis" }, svg);
    const span = view[1] - view[0];
    const raw = span / 8;
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) || p * 10;
    for (let t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
      el("line", { x1: x(t), x2: x(t), y1: AXIS - 4, y2: height }, g);
      txt(ms(t), { x: x(t) + 2, y: 12 }, g);
    }
    txt("time from " + D.origin, { x: 4, y: 12 }, g);
  }

  function rowBg(svg, y, h, label, cls) {
    el("rect", { class: "lane-bg " + (cls || ""), x: 0, y, width: "100%", height: h }, svg);
    txt(label, { class: "lane-label " + (cls || ""), x: 4, y: y + h / 2 + 4 }, svg);
  }

  function stepsRow(svg, x, y) {
    rowBg(svg, y, ROW, "agent steps", "alt");
    for (const s of spans(D.steps, (m) => m.t0, (m) => m.t1, x, true)) {
      const m = s.list[s.list.length - 1];
      const cls = !m.ok ? "failed" : /sync/.test(m.op) ? "sync" : /pin|release/.test(m.op) ? "pin" : "";
      const r = el("rect", { class: "mark step " + cls, x: s.a, y: y + 3, width: s.b - s.a, height: ROW - 6 }, svg);
      hook(r, item(s.list, (m) => `step ${m.index} ${m.ok ? "ok" : "FAILED"}: ${m.line} → ${m.result} · +${ms(m.t0)} → +${ms(m.t1)}`));
      if (s.b - s.a > 34 && s.list.length === 1) txt(m.op, { class: "steplabel", x: s.a + 2, y: y + ROW / 2 + 3 }, svg);
    }
    return y + ROW;
  }

  function consoleRow(svg, x, y) {
    rowBg(svg, y, ROW, "console: kernel reports", D.console.length ? "flagged" : "");
    let lastLabel = -1e9;
    for (const b of bins(D.console, (m) => m.t, x)) {
      const p = `${b.x},${y + 3} ${b.x - 5},${y + ROW - 3} ${b.x + 5},${y + ROW - 3}`;
      const m = b.list[0];
      const e = el("polygon", { class: "mark console " + (m.approx ? "approx" : ""), points: p }, svg);
      hook(e, item(b.list, (m) => `${m.title} (${m.kind}) · console line ${m.line + 1} · +${ms(m.t)}${m.approx ? " (guest clock, approximate)" : ""}\n    ` + m.excerpt.join("\n    ")));
      if (b.x - lastLabel > 160) { txt(m.title + (b.list.length > 1 ? ` (+${b.list.length - 1})` : ""), { class: "ctitle", x: b.x + 7, y: y + ROW / 2 + 4 }, svg); lastLabel = b.x; }
    }
    return y + ROW;
  }

  function diskRow(svg, x, y) {
    rowBg(svg, y, ROW, `disk: flushes, other writes (${D.disk.other.length})`, "alt");
    for (const s of spans(D.disk.other, (i) => D.reqs[i][1], (i) => D.reqs[i][2], x)) {
      const r = el("rect", { class: "mark write other", x: s.a, y: y + 9, width: s.b - s.a, height: ROW - 12 }, svg);
      hook(r, item(s.list, (i) => reqText(i)));
    }
    for (const s of spans(D.disk.flushes, (i) => D.reqs[i][1], (i) => D.reqs[i][2], x)) {
      const r = el("rect", { class: "mark flushbox", x: s.a, y: y + 2, width: Math.max(3, s.b - s.a), height: 7 }, svg);
      hook(r, item(s.list, (i) => reqText(i)));
    }
    return y + ROW;
  }

  // "lost: the device's last generation 2 never reached the disk; its last write carried ..."
  function lostLabel(lane) {
    const last = lane.dma.length ? lane.dma[lane.dma.length - 1][1] : "?";
    const w = lane.writes.length ? D.strings[lane.writes[lane.writes.length - 1][2]] : "no write";
    return `lost: last DMA generation ${last} never reached the disk; last write of the page carried ${w}`;
  }
  function pageLane(svg, x, y, lane, i) {
    counts.lanes++;
    const flagged = lane.verdicts.length > 0;
    rowBg(svg, y, LANE, lane.label + (flagged ? "  [" + lane.verdicts.join(", ") + "]" : ""), flagged ? "flagged" : i % 2 ? "alt" : "");
    for (const s of spans(lane.marks, (m) => m.t0, (m) => m.t1, x)) {
      const k = s.list[0].kind;
      const cls = ["torn_block", "lost_write", "unstable_write", "stale_block"].includes(k) ? k : "other";
      const r = el("rect", { class: "mark hl hl-" + cls, x: s.a - 2, y: y + 1, width: s.b - s.a + 4, height: LANE - 2 }, svg);
      hook(r, item(s.list, (m) => `${m.kind}: ${m.text}`));
      counts.verdicts++;
      if (k === "lost_write" && s.b - s.a > 220) txt(lostLabel(lane), { class: "ctitle", x: s.a + 8, y: y + LANE / 2 - 3 }, svg);
    }
    const wr = spans(lane.writes, (w) => D.reqs[w[0]][1], (w) => D.reqs[w[0]][2], x);
    for (const s of wr) {
      let flags = 0, kind = "";
      for (const w of s.list) { flags |= w[3]; const l = D.strings[w[2]]; kind = kind || (l.startsWith("file") ? "file" : l.startsWith("gen") || l.startsWith("TORN") ? "" : "other"); }
      const cls = "mark write " + kind + (flags & 1 ? " torn" : "") + (flags & 2 ? " named" : "");
      const r = el("rect", { class: cls, x: s.a, y: y + LANE / 2, width: s.b - s.a, height: LANE / 2 - 3 }, svg);
      hook(r, item(s.list, (w) => reqText(w[0], pageName(lane, w[4]), w[1], w[2], w[3])));
      if (s.list.length === 1 && s.b - s.a > 16) {
        const g = /generation (\d+)/.exec(D.strings[s.list[0][2]]);
        const lbl = s.list[0][3] & 1 ? "torn" : g ? "g" + g[1] : "";
        if (lbl) txt(lbl, { class: "gen", x: s.a + 2, y: y + LANE - 6 }, svg);
      }
    }
    for (const b of bins(lane.dma, (d) => d[0], x)) {
      const wb = b.list.some((d) => d[4] === 3);
      const r = el("rect", { class: "mark dma" + (wb ? " wb" : ""), x: b.x - 1.5, y: y + 3, width: 3, height: LANE / 2 - 5 }, svg);
      hook(r, item(b.list, (d) => dmaText(lane, d)));
      if (b.list.length === 1 && BIN * 4 < x(b.list[0][0] + 1) - x(b.list[0][0]) + 12) {
        txt("g" + b.list[0][1], { class: "gen", x: b.x + 3, y: y + 11 }, svg);
      }
    }
  }

  // Interaction: wheel zooms around the pointer, drag pans, double click resets.
  function zoomTo(a, b) { view = [Math.max(full[0] - (full[1] - full[0]), a), Math.min(full[1] * 2 + 1, Math.max(b, a + 1000))]; draw(); }
  box.addEventListener("wheel", (e) => {
    e.preventDefault();
    const W = box.clientWidth - LABEL - 10, fx = Math.min(1, Math.max(0, (e.offsetX - LABEL) / W));
    const t = view[0] + fx * (view[1] - view[0]), k = e.deltaY > 0 ? 1.25 : 0.8;
    zoomTo(t - (t - view[0]) * k, t + (view[1] - t) * k);
  }, { passive: false });
  let drag = null;
  box.addEventListener("mousedown", (e) => { drag = { x: e.clientX, v: view.slice() }; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (e) => {
    if (!drag || e.buttons !== 1) return;
    const dt = ((e.clientX - drag.x) / (box.clientWidth - LABEL - 10)) * (drag.v[1] - drag.v[0]);
    if (Math.abs(e.clientX - drag.x) > 3) { view = [drag.v[0] - dt, drag.v[1] - dt]; draw(); }
  });
  box.addEventListener("dblclick", () => { view = full.slice(); draw(); });
  // The span of the verdicts' evidence and the kernel reports (a lost write counts at its
  // last DMA write: its band runs to the end).
  function verdictSpan() {
    const marks = D.lanes.flatMap((l) => l.marks).concat(D.global);
    const pts = marks.flatMap((m) => m.kind === "lost_write" ? [m.t0] : [m.t0, m.t1]).concat(D.console.map((c) => c.t));
    if (!pts.length) return null;
    const a = Math.min(...pts), b = Math.max(...pts);
    const pad = Math.max((b - a) * 0.3, 50000);
    return [a - pad, b + pad];
  }
  const bar = document.getElementById("toolbar");
  function button(label, f) { const b = document.createElement("button"); b.textContent = label; b.addEventListener("click", f); bar.appendChild(b); }
  button("whole run", () => { view = full.slice(); draw(); });
  button("zoom to the verdicts", () => { const s = verdictSpan(); if (s) zoomTo(s[0], s[1]); });
  button("zoom in", () => { const c = (view[0] + view[1]) / 2, h = (view[1] - view[0]) / 4; zoomTo(c - h, c + h); });
  button("zoom out", () => { const c = (view[0] + view[1]) / 2, h = view[1] - view[0]; zoomTo(c - h, c + h); });
  const range = document.createElement("span"); range.id = "range"; bar.appendChild(range);
  const legend = document.createElement("div"); legend.className = "legend";
  for (const [c, l] of [["#8250df", "DMA write (generation)"], ["#bf3989", "DMA during writeback"], ["#54aeff", "block write carrying the page"],
    ["#afb8c1", "block write of the file's old content"], ["#ff8182", "torn block"], ["#1a7f37", "flush"], ["#cf222e", "kernel report / verdict"]]) {
    const i = document.createElement("i"); i.style.background = c; legend.appendChild(i); legend.appendChild(document.createTextNode(l));
  }
  bar.after(legend);
  window.addEventListener("resize", draw);

  let drawMs = 0;
  const start = location.hash === "#verdicts" && verdictSpan();
  if (start) view = start;
  try { drawMs = draw(); } catch (e) { errors.push(String(e && e.stack || e)); }
  const check = document.getElementById("selfcheck");
  const total = performance.now() - t_start;
  check.setAttribute("data-status", errors.length ? "error" : "ok");
  check.textContent = `status=${errors.length ? "error" : "ok"} lanes=${counts.lanes} marks=${counts.marks} verdict_marks=${counts.verdicts} ` +
    `console=${D.console.length} steps=${D.steps.length} reqs=${D.reqs.length} draw_ms=${drawMs.toFixed(1)} script_ms=${total.toFixed(1)} errors=${JSON.stringify(errors)}`;
  setTimeout(() => { if (errors.length) check.textContent = check.textContent.replace(/status=ok/, "status=error") + " late_errors=" + JSON.stringify(errors); }, 0);
})();
