// goalkeeper dashboard: vanilla JS, no build step, no network access beyond this server.
// Data flow: REST for the initial state, then Server-Sent Events (/v1/stream for the goal list,
// /v1/goals/{id}/stream for the selected goal) for live updates. All text from the server is
// inserted with textContent, never as HTML.
"use strict";

(function () {
  const MAX_POINTS = 2000; // points kept in memory per goal (the chart and the log show these)
  const LOG_ROWS = 300;
  const state = {
    token: sessionStorage.getItem("goalkeeper.token") || "",
    goals: new Map(), // goal_id -> summary
    selected: null,
    points: [], // metric points of the selected goal, ascending seq
    events: new Map(), // event_id -> event (from the goal's event log)
    eventSeq: 0,
    suggestions: new Map(), // suggestion_id -> suggestion
    goalStream: null,
    listStream: null,
    fetchingEvents: false,
    eventsAgain: false,
  };
  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- HTTP helpers
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
    if (opts.body && typeof opts.body !== "string") {
      opts.body = JSON.stringify(opts.body);
      opts.headers["Content-Type"] = "application/json";
    }
    const res = await fetch(path, opts);
    if (res.status === 401) {
      askToken();
      throw new Error("unauthorized");
    }
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.message || res.statusText);
    return body;
  }

  function streamUrl(path, params) {
    const q = new URLSearchParams(params || {});
    if (state.token) q.set("access_token", state.token);
    const s = q.toString();
    return s ? path + "?" + s : path;
  }

  function askToken() {
    const dlg = $("token-dialog");
    if (!dlg.open) dlg.showModal();
  }
  $("token-form").addEventListener("submit", () => {
    state.token = $("token-input").value.trim();
    sessionStorage.setItem("goalkeeper.token", state.token);
    start();
  });

  function setConn(on, text) {
    $("conn").className = "conn " + (on ? "conn-on" : "conn-off");
    $("conn-text").textContent = text;
  }

  // ---------------------------------------------------------------- formatting
  const pct = (x) => (x == null || isNaN(x) ? "–" : Math.round(x * 100) + "%");
  const num = (x) => (x == null || isNaN(x) ? "–" : Number(x).toFixed(2));
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function timeOf(ts) {
    if (!ts) return "";
    const d = new Date(ts * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  }
  const isLoopFlag = (f) => f.startsWith("escalation:");
  function flagged(p) {
    return (p.flags || []).some(isLoopFlag) || p.loop_risk >= 0.5;
  }

  // ---------------------------------------------------------------- goal list
  function renderGoals() {
    const list = $("goal-list");
    const filter = $("status-filter").value;
    const goals = [...state.goals.values()]
      .filter((g) => !filter || g.status === filter)
      .sort((a, b) => b.updated_at - a.updated_at);
    list.replaceChildren();
    for (const g of goals) {
      const li = el("li", "goal-item" + (g.goal_id === state.selected ? " selected" : ""));
      li.dataset.goalId = g.goal_id;
      const row = el("div", "row");
      row.append(el("span", "gid", g.goal_id));
      const action = g.recommended_action || "continue";
      row.append(el("span", "action sm " + action, action));
      li.append(row);
      li.append(el("div", "gdesc", g.description || "(no goal text yet)"));
      const mini = el("div", "mini");
      const fill = el("div");
      fill.style.width = Math.round(((g.metrics && g.metrics.current_progress) || 0) * 100) + "%";
      mini.append(fill);
      li.append(mini);
      li.addEventListener("click", () => select(g.goal_id));
      if (g._flash) {
        li.classList.add("flash");
        g._flash = false;
      }
      list.append(li);
    }
    $("goal-count").textContent = goals.length;
    $("goal-empty").hidden = goals.length > 0;
  }

  async function loadGoals() {
    const body = await api("/v1/goals?limit=500");
    state.goals.clear();
    for (const g of body.goals) state.goals.set(g.goal_id, g);
    renderGoals();
  }

  function openListStream() {
    if (state.listStream) state.listStream.close();
    const es = new EventSource(streamUrl("/v1/stream"));
    state.listStream = es;
    es.onopen = () => setConn(true, "live");
    es.onerror = () => setConn(false, "reconnecting");
    es.addEventListener("goal", (ev) => {
      const g = JSON.parse(ev.data);
      g._flash = true;
      state.goals.set(g.goal_id, g);
      renderGoals();
      if (g.goal_id === state.selected) renderSummary(g);
    });
  }

  // ---------------------------------------------------------------- selected goal
  async function select(goalId) {
    if (state.goalStream) state.goalStream.close();
    state.selected = goalId;
    state.points = [];
    state.events = new Map();
    state.eventSeq = 0;
    state.suggestions = new Map();
    if (location.hash !== "#/goals/" + encodeURIComponent(goalId)) {
      history.replaceState(null, "", "#/goals/" + encodeURIComponent(goalId));
    }
    renderGoals();
    $("placeholder").hidden = true;
    $("detail").hidden = false;
    const id = encodeURIComponent(goalId);
    const [goal, metrics, suggestions] = await Promise.all([
      api("/v1/goals/" + id),
      api("/v1/goals/" + id + "/metrics?limit=" + MAX_POINTS),
      api("/v1/goals/" + id + "/suggestions?limit=200"),
    ]);
    if (state.selected !== goalId) return; // the user clicked elsewhere meanwhile
    renderSummary(goal);
    addPoints(metrics.points);
    for (const s of suggestions.suggestions) state.suggestions.set(s.suggestion_id, s);
    renderSuggestions();
    await fetchEvents();
    const lastSeq = state.points.length ? state.points[state.points.length - 1].seq : 0;
    let lastVersion = 0;
    for (const s of state.suggestions.values()) lastVersion = Math.max(lastVersion, s.version);
    const es = new EventSource(streamUrl("/v1/goals/" + id + "/stream", { last_event_id: lastSeq + "." + lastVersion }));
    state.goalStream = es;
    es.addEventListener("metrics", (ev) => {
      const p = JSON.parse(ev.data);
      addPoints([p]);
      liveSummary(p);
      if (!state.events.has(p.event_id)) fetchEvents();
    });
    es.addEventListener("suggestion", (ev) => {
      const s = JSON.parse(ev.data);
      s._new = !state.suggestions.has(s.suggestion_id);
      state.suggestions.set(s.suggestion_id, s);
      renderSuggestions();
    });
    es.addEventListener("goal", (ev) => renderSummary(JSON.parse(ev.data)));
  }

  async function fetchEvents() {
    if (!state.selected) return;
    if (state.fetchingEvents) {
      state.eventsAgain = true; // a commit arrived during the fetch: fetch once more afterwards
      return;
    }
    state.fetchingEvents = true;
    state.eventsAgain = false;
    const goalId = state.selected;
    try {
      for (;;) {
        const body = await api(
          "/v1/goals/" + encodeURIComponent(goalId) + "/events?limit=1000&after_seq=" + state.eventSeq
        );
        if (state.selected !== goalId) return;
        for (const e of body.events) state.events.set(e.event_id, e);
        state.eventSeq = body.next_after_seq;
        if (body.events.length < 1000) break;
      }
    } catch (err) {
      console.warn("event log", err);
    } finally {
      state.fetchingEvents = false;
    }
    renderLog();
    if (state.eventsAgain) fetchEvents();
  }

  function addPoints(points) {
    const known = state.points.length ? state.points[state.points.length - 1].seq : 0;
    for (const p of points) if (p.seq > known) state.points.push(p);
    if (state.points.length > MAX_POINTS) state.points.splice(0, state.points.length - MAX_POINTS);
    renderChart();
    renderLog();
  }

  function setKpi(id, value) {
    $("k-" + id).textContent = pct(value);
    $("k-" + id + "-bar").style.width = Math.round((value || 0) * 100) + "%";
  }

  function renderSummary(g) {
    $("d-id").textContent = g.goal_id;
    $("d-desc").textContent = g.description || "(no goal text yet)";
    const status = $("d-status");
    status.textContent = g.status;
    status.className = "badge " + g.status;
    $("d-version").textContent = "version " + g.version;
    const m = g.metrics || {};
    setKpi("progress", m.current_progress);
    setKpi("drift", m.drift_score);
    setKpi("loop", m.loop_risk);
    setAction(g.recommended_action, state.points.length || g.version, g.routing, m.escalation);
    const summary = state.goals.get(g.goal_id);
    if (summary) Object.assign(summary, { status: g.status, version: g.version });
  }

  function liveSummary(p) {
    setKpi("progress", p.progress);
    setKpi("drift", p.drift_score);
    setKpi("loop", p.loop_risk);
    const esc = (p.flags || []).filter(isLoopFlag).map((f) => f.split(":")[1])[0];
    setAction(p.action, state.points.length, p.routing, esc);
    const summary = state.goals.get(state.selected);
    if (summary) {
      summary.recommended_action = p.action;
      if (summary.metrics) summary.metrics.current_progress = p.progress;
      renderGoals();
    }
  }

  function setAction(action, events, routing, escalation) {
    const a = $("k-action");
    a.textContent = action || "–";
    a.className = "action " + (action || "");
    const parts = [];
    if (events != null) parts.push(events + " events");
    if (routing) parts.push(routing === "system2" ? "System 2" : "System 1");
    if (escalation && escalation !== "none") parts.push("loop: " + escalation);
    $("k-sub").textContent = parts.join(" · ");
  }

  // ---------------------------------------------------------------- chart (inline SVG)
  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  function renderChart() {
    const box = $("chart");
    box.replaceChildren();
    const pts = state.points;
    if (!pts.length) {
      box.append(el("div", "nodata", "No applied events yet"));
      return;
    }
    const W = Math.max(box.clientWidth - 24, 200);
    const H = Math.max(box.clientHeight - 12, 120);
    const m = { l: 38, r: 12, t: 10, b: 24 };
    const iw = W - m.l - m.r;
    const ih = H - m.t - m.b;
    const n = pts.length;
    const x = (i) => m.l + (n === 1 ? iw / 2 : (i / (n - 1)) * iw);
    const y = (v) => m.t + (1 - Math.max(0, Math.min(1, v || 0))) * ih;
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      root.append(svg("line", { class: "grid", x1: m.l, x2: W - m.r, y1: y(v), y2: y(v) }));
      const t = svg("text", { class: "axis", x: m.l - 6, y: y(v) + 4, "text-anchor": "end" });
      t.textContent = Math.round(v * 100) + "%";
      root.append(t);
    }
    const ticks = Math.min(n, Math.max(2, Math.floor(iw / 90)));
    const seen = new Set();
    for (let k = 0; k < ticks; k++) {
      const i = ticks === 1 ? 0 : Math.round((k / (ticks - 1)) * (n - 1));
      if (seen.has(i)) continue;
      seen.add(i);
      const anchor = i === 0 ? "start" : i === n - 1 ? "end" : "middle";
      const t = svg("text", { class: "axis", x: x(i), y: H - 6, "text-anchor": anchor });
      t.textContent = "#" + pts[i].seq;
      root.append(t);
    }
    const series = [
      ["progress", "var(--progress)"],
      ["drift_score", "var(--drift)"],
      ["loop_risk", "var(--loop)"],
    ];
    for (const [key, color] of series) {
      const d = pts.map((p, i) => (i ? "L" : "M") + x(i).toFixed(1) + " " + y(p[key]).toFixed(1)).join(" ");
      root.append(svg("path", { class: "line series-" + key, d: d, stroke: color }));
    }
    pts.forEach((p, i) => {
      if (p.action === "replan") {
        root.append(svg("rect", {
          class: "mark-replan", x: x(i) - 4, y: y(p.loop_risk) - 4, width: 8, height: 8,
          fill: "var(--replan)", transform: `rotate(45 ${x(i)} ${y(p.loop_risk)})`,
        }));
      } else if (p.action === "abort") {
        root.append(svg("rect", {
          class: "mark-abort", x: x(i) - 4, y: y(p.loop_risk) - 4, width: 8, height: 8, fill: "var(--abort)",
        }));
      }
    });
    const cursor = svg("line", { class: "grid", x1: 0, x2: 0, y1: m.t, y2: m.t + ih, stroke: "#94a3b8", visibility: "hidden" });
    root.append(cursor);
    box.append(root);
    const tip = el("div", "tip");
    tip.hidden = true;
    box.append(tip);
    root.addEventListener("mousemove", (ev) => {
      const r = root.getBoundingClientRect();
      const px = ((ev.clientX - r.left) / r.width) * W;
      const i = Math.max(0, Math.min(n - 1, Math.round(((px - m.l) / iw) * (n - 1))));
      const p = pts[i];
      cursor.setAttribute("x1", x(i));
      cursor.setAttribute("x2", x(i));
      cursor.setAttribute("visibility", "visible");
      tip.hidden = false;
      tip.textContent = "";
      const lines = [
        "#" + p.seq + " " + p.event_type + " · " + p.action,
        "progress " + pct(p.progress) + " · drift " + pct(p.drift_score) + " · loop " + pct(p.loop_risk),
      ];
      lines.forEach((line, k) => {
        if (k) tip.append(document.createElement("br"));
        tip.append(document.createTextNode(line));
      });
      const left = (x(i) / W) * r.width;
      tip.style.left = Math.min(left + 14, r.width - 240) + "px";
      tip.style.top = "12px";
    });
    root.addEventListener("mouseleave", () => {
      tip.hidden = true;
      cursor.setAttribute("visibility", "hidden");
    });
  }
  window.addEventListener("resize", () => renderChart());

  // ---------------------------------------------------------------- step log
  function describe(p) {
    const e = state.events.get(p.event_id);
    if (!e) return { text: p.event_type, error: null };
    switch (e.type) {
      case "step": {
        const args = e.args && Object.keys(e.args).length ? JSON.stringify(e.args) : "";
        const text = (e.tool || e.description || "step") + (args ? " " + args : "");
        return { text: text, error: e.error || null };
      }
      case "goal": return { text: e.description || "goal updated", error: null };
      case "message": return { text: e.role + ": " + e.content, error: null };
      case "metrics": return { text: JSON.stringify(e.values), error: null };
      case "subgoal": return { text: (e.id || e.description) + " → " + e.status, error: null };
      case "feedback": return { text: e.outcome + " " + e.suggestion_id.slice(0, 10), error: null };
      default: return { text: e.type, error: null };
    }
  }

  function renderLog() {
    const body = $("log-body");
    body.replaceChildren();
    const rows = state.points.slice(-LOG_ROWS).reverse();
    for (const p of rows) {
      const tr = el("tr", flagged(p) ? "flagged" : "");
      tr.append(el("td", "num", String(p.seq)));
      tr.append(el("td", "etype", p.event_type));
      const info = describe(p);
      const what = el("td", "what");
      what.title = info.text + (info.error ? "\nerror: " + info.error : "");
      what.append(document.createTextNode(info.text));
      if (info.error) what.append(el("span", "err", " ✗ " + info.error));
      for (const f of (p.flags || []).filter(isLoopFlag)) what.append(el("span", "flag", "loop " + f.split(":")[1]));
      tr.append(what);
      tr.append(el("td", "num", pct(p.progress)));
      tr.append(el("td", "num", pct(p.drift_score)));
      tr.append(el("td", "num", pct(p.loop_risk)));
      const act = el("td");
      act.append(el("span", "action sm " + p.action, p.action));
      tr.append(act);
      body.append(tr);
    }
    const flaggedCount = state.points.filter(flagged).length;
    $("log-count").textContent = state.points.length + " events" + (flaggedCount ? " · " + flaggedCount + " flagged" : "");
  }

  // ---------------------------------------------------------------- suggestions
  function renderSuggestions() {
    const list = $("suggestions");
    list.replaceChildren();
    const items = [...state.suggestions.values()].sort((a, b) => b.version - a.version || b.created_at - a.created_at);
    for (const s of items) {
      const li = el("li", "sugg" + (s._new ? " new" : ""));
      s._new = false;
      li.dataset.suggestionId = s.suggestion_id;
      const row = el("div", "row");
      row.append(el("span", "kind " + s.kind, s.kind.replace("_", " ")));
      if (s.rule) row.append(el("span", "muted", s.rule));
      row.append(el("span", "meta", "v" + s.version + " · " + timeOf(s.created_at)));
      li.append(row);
      li.append(el("div", "msg", s.message));
      const fb = el("div", "fb");
      for (const outcome of ["helped", "hurt", "rejected"]) {
        const b = el("button", null, outcome);
        b.type = "button";
        b.addEventListener("click", async () => {
          try {
            await api("/v1/suggestions/" + encodeURIComponent(s.suggestion_id) + "/feedback", {
              method: "POST",
              body: { outcome: outcome },
            });
            fb.replaceChildren(el("span", "sent", "feedback sent: " + outcome));
          } catch (err) {
            fb.replaceChildren(el("span", "err", String(err.message || err)));
          }
        });
        fb.append(b);
      }
      li.append(fb);
      list.append(li);
    }
    $("sugg-count").textContent = items.length ? String(items.length) : "";
    $("sugg-empty").hidden = items.length > 0;
  }

  // ---------------------------------------------------------------- start
  $("status-filter").addEventListener("change", renderGoals);

  async function start() {
    try {
      await loadGoals();
    } catch (err) {
      setConn(false, err.message === "unauthorized" ? "token required" : "offline");
      return;
    }
    openListStream();
    const m = location.hash.match(/^#\/goals\/(.+)$/);
    if (m) select(decodeURIComponent(m[1])).catch((err) => console.warn(err));
  }
  window.goalkeeperDashboard = { state: state, select: select };
  start();
})();
