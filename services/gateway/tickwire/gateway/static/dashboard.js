// tickwire dashboard: EventSource for live state, /v1/bars for chart history.
// No build step, no third-party code. Query string: ?symbols=AAPL,MSFT (default: all).
// Shows each symbol's exchange session phase and trading halts (fields absent on older
// records: blank), marks a delayed stream (the gateway's `delayed` event), and replays
// the chart's last N minutes through `since=` on a second stream. The live stream asks
// for field-level deltas (`delta=1`, services/gateway/README.md): after a symbol's full
// state, its quotes come as `delta` events applied to the state held.
"use strict";

const params = new URLSearchParams(location.search);
const symbols = params.get("symbols") || "*";
const state = new Map();      // symbol -> latest TickerState (versions only grow)
const rows = new Map();       // symbol -> <tr>
const chart = { symbol: null, bars: new Map() };  // start -> bar
const replay = { source: null, updates: 0 };
let delayS = 0;  // the stream's delay, seconds (0: real time)
const log = [];               // [symbol, version] applied, for tests and debugging
const deltas = { applied: 0, resyncs: 0 };  // deltas applied; reconnects a base forced
let lastEventId = "";
let opened = 0;
let source = null;
let retryTimer = null;
window.tickwire = {
  state, log, chart, replay, deltas, delay: () => delayS, reconnects: () => Math.max(0, opened - 1),
};

const fmt = (v, digits = 2) => (v === undefined || v === null ? "" : Number(v).toFixed(digits));

function setConnection(kind, text) {
  const el = document.getElementById("connection");
  el.dataset.state = kind;
  document.getElementById("connection-text").textContent = text;
  document.getElementById("reconnects").textContent = String(Math.max(0, opened - 1));
}

function row(symbol) {
  let tr = rows.get(symbol);
  if (tr) return tr;
  tr = document.createElement("tr");
  tr.id = "row-" + symbol;
  const names = ["symbol", "last", "change", "change_pct", "bid", "ask", "volume", "session",
                 "status"];
  for (const name of names) {
    const td = document.createElement("td");
    td.className = name;
    tr.appendChild(td);
  }
  tr.firstChild.textContent = symbol;
  markDelayed(tr);
  tr.addEventListener("click", () => selectSymbol(symbol));
  const body = document.querySelector("#tickers tbody");
  const after = [...rows.keys()].sort().find((s) => s > symbol);
  body.insertBefore(tr, after ? rows.get(after) : null);
  rows.set(symbol, tr);
  if (!chart.symbol) selectSymbol(symbol);
  return tr;
}

function applyState(s, flash) {
  const held = state.get(s.symbol);
  if (held && s.version <= held.version) return;  // stale or repeated: drop
  state.set(s.symbol, s);
  log.push([s.symbol, s.version]);
  const tr = row(s.symbol);
  const cells = tr.children;
  cells[1].textContent = fmt(s.last);
  cells[2].textContent = fmt(s.change);
  cells[3].textContent = s.change_pct === undefined ? "" : fmt(s.change_pct) + "%";
  cells[4].textContent = fmt(s.bid);
  cells[5].textContent = fmt(s.ask);
  cells[6].textContent = fmt(s.volume, 0);
  for (const i of [2, 3]) {
    cells[i].className = cells[i].className.replace(/ (pos|neg)/, "") +
      ((s.change || 0) >= 0 ? " pos" : " neg");
  }
  showSession(tr, s.session);
  showStatus(tr, s.status);
  tr.dataset.version = String(s.version);
  if (flash && held && s.last !== undefined && held.last !== undefined && s.last !== held.last) {
    tr.classList.remove("flash-up", "flash-down");
    void tr.offsetWidth;  // restart the animation
    tr.classList.add(s.last > held.last ? "flash-up" : "flash-down");
  }
}

// A delta event: `set` maps a field path ("last", or "session.phase" one level down) to
// its new value, null meaning the field is gone; `version` replaces the held version.
// It applies only to the state of version `base`; null when this page holds another.
function applyDelta(held, delta) {
  if (!held || held.version !== delta.base) return null;
  const next = structuredClone(held);
  for (const [path, value] of Object.entries(delta.set)) {
    const dot = path.indexOf(".");
    const target = dot < 0 ? next : next[path.slice(0, dot)];
    if (typeof target !== "object" || target === null) return null;
    const key = dot < 0 ? path : path.slice(dot + 1);
    if (value === null) delete target[key];
    else target[key] = value;
  }
  next.version = delta.version;
  return next;
}

function showSession(tr, session) {
  const cell = tr.querySelector("td.session");
  if (!session) {  // older records carry no session: say nothing
    cell.textContent = "";
    delete tr.dataset.phase;
    return;
  }
  tr.dataset.phase = session.phase;
  cell.textContent = { pre: "pre-market", regular: "open", post: "after hours",
                       closed: "closed" }[session.phase] || session.phase;
  cell.title = `${session.exchange} ${session.date}` +
    (session.prev_close === null || session.prev_close === undefined
      ? "" : `, previous close ${fmt(session.prev_close)}`);
}

function showStatus(tr, status) {
  const cell = tr.querySelector("td.status");
  const halted = Boolean(status && status.state === "halted");
  tr.classList.toggle("halted", halted);
  cell.textContent = halted ? "HALTED" : "";
  cell.title = halted ? `halted since ${status.since}: ${status.reason || "no reason given"}` : "";
}

function markDelayed(tr) {
  tr.classList.toggle("delayed", delayS > 0);
  tr.title = delayS > 0 ? `delayed ${Math.round(delayS / 60)} min` : "";
}

function setDelay(seconds) {
  delayS = seconds;
  const badge = document.getElementById("delayed");
  badge.hidden = !(seconds > 0);
  badge.textContent = seconds >= 60 ? `delayed ${Math.round(seconds / 60)} min`
                                    : `delayed ${seconds} s`;
  for (const tr of rows.values()) markDelayed(tr);
}

function applyBar(bar) {
  if (bar.symbol !== chart.symbol || bar.interval !== "1m") return;
  const held = chart.bars.get(bar.start);
  if (held && held.version >= bar.version) return;
  chart.bars.set(bar.start, bar);
  drawChart();
}

function replayChart(minutes) {
  // the chart's symbol from `since` (its 1m bars as they were published), on a stream of
  // its own that closes at the `replayed` hand-over; the live stream goes on meanwhile
  if (!chart.symbol) return;
  if (replay.source) replay.source.close();
  const symbol = chart.symbol;
  const since = new Date(Date.now() - minutes * 60_000).toISOString();
  const status = document.getElementById("replay-status");
  status.textContent = `replaying ${minutes} min…`;
  status.dataset.state = "replaying";
  chart.bars = new Map();
  drawChart();
  replay.updates = 0;
  const url = `/v1/stream?symbols=${encodeURIComponent(symbol)}&bars=1m&since=` +
              encodeURIComponent(since);
  const source = replay.source = new EventSource(url, { withCredentials: true });
  source.addEventListener("bar", (event) => {
    replay.updates += 1;
    applyBar(JSON.parse(event.data));
  });
  source.addEventListener("quote", () => { replay.updates += 1; });
  source.addEventListener("replayed", () => {
    source.close();
    replay.source = null;
    status.dataset.state = "done";
    status.textContent = `replayed ${replay.updates} updates of the last ${minutes} min`;
  });
  source.onerror = () => {
    if (replay.source !== source) return;
    source.close();
    replay.source = null;
    status.dataset.state = "failed";
    status.textContent = "replay refused (too far back?)";
  };
}

document.getElementById("replay-form").addEventListener("submit", (event) => {
  event.preventDefault();
  replayChart(Number(document.getElementById("replay-minutes").value) || 15);
});

async function selectSymbol(symbol) {
  if (replay.source) replay.source.close();
  replay.source = null;
  chart.symbol = symbol;
  chart.bars = new Map();
  document.getElementById("chart-symbol").textContent = symbol;
  for (const [s, tr] of rows) tr.classList.toggle("selected", s === symbol);
  drawChart();
  try {
    const response = await fetch(`/v1/bars/${encodeURIComponent(symbol)}?interval=1m&limit=120`,
                                 { credentials: "same-origin" });
    if (!response.ok || chart.symbol !== symbol) return;
    for (const bar of (await response.json()).bars) {
      const held = chart.bars.get(bar.start);
      if (!held || held.version < bar.version) chart.bars.set(bar.start, bar);
    }
    drawChart();
  } catch (err) {
    console.warn("bars history", err);
  }
}

function drawChart() {
  const canvas = document.getElementById("chart");
  const ctx = canvas.getContext("2d");
  const bars = [...chart.bars.values()].sort((a, b) => (a.start < b.start ? -1 : 1)).slice(-120);
  canvas.dataset.bars = String(bars.length);
  canvas.dataset.first = bars.length ? bars[0].start : "";
  canvas.dataset.last = bars.length ? bars[bars.length - 1].start : "";
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!bars.length) return;
  const lo = Math.min(...bars.map((b) => b.low));
  const hi = Math.max(...bars.map((b) => b.high));
  const pad = 12;
  const span = hi - lo || 1;
  const y = (v) => pad + (canvas.height - 2 * pad) * (1 - (v - lo) / span);
  const step = (canvas.width - 2 * pad) / Math.max(bars.length, 20);
  bars.forEach((b, i) => {
    const x = pad + i * step + step / 2;
    ctx.strokeStyle = ctx.fillStyle = b.close >= b.open ? "#2ecc71" : "#e74c3c";
    ctx.beginPath();
    ctx.moveTo(x, y(b.high));
    ctx.lineTo(x, y(b.low));
    ctx.stroke();
    const top = y(Math.max(b.open, b.close));
    ctx.fillRect(x - step * 0.35, top, step * 0.7, Math.max(1, y(Math.min(b.open, b.close)) - top));
  });
  ctx.fillStyle = "#8a94a6";
  ctx.fillText(fmt(hi), 2, pad);
  ctx.fillText(fmt(lo), 2, canvas.height - 2);
}

function connect() {
  clearTimeout(retryTimer);
  let url = `/v1/stream?symbols=${encodeURIComponent(symbols)}&bars=1m&delta=1`;
  // the browser resends Last-Event-ID by itself on its own reconnects; after a
  // connection it gave up on, we reconnect and pass the cursor in the query
  if (lastEventId) url += `&last_event_id=${encodeURIComponent(lastEventId)}`;
  source = new EventSource(url, { withCredentials: true });
  source.onopen = () => {
    opened += 1;
    setConnection("live", "live");
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      setConnection("down", "disconnected, retrying");
      retryTimer = setTimeout(connect, 2000);
    } else {
      setConnection("connecting", "reconnecting");
    }
  };
  const track = (handler) => (event) => {
    if (event.lastEventId) lastEventId = event.lastEventId;
    handler(JSON.parse(event.data));
  };
  source.addEventListener("snapshot", track((s) => applyState(s, false)));
  source.addEventListener("quote", track((s) => applyState(s, true)));
  source.addEventListener("delta", (event) => {
    const delta = JSON.parse(event.data);
    const next = applyDelta(state.get(delta.symbol), delta);
    if (next === null) {
      // not the state it applies to: never guess, resume after the last event applied
      deltas.resyncs += 1;
      source.close();
      connect();
      return;
    }
    if (event.lastEventId) lastEventId = event.lastEventId;
    deltas.applied += 1;
    applyState(next, true);
  });
  source.addEventListener("bar", track(applyBar));
  source.addEventListener("delayed", (event) => setDelay(JSON.parse(event.data).delay_s));
  source.addEventListener("reset", track(() => {
    state.clear();  // fresh snapshots follow; versions start over from them
  }));
}

connect();
