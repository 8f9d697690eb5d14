// lbd's status page: /status.json every second, rendered without any library (a director
// has no CDN to reach). Rate charts keep the last 120 samples in the browser.
"use strict";

const HISTORY = 120;
const history = new Map();  // service key -> [{cps, inpps}]
let lastCounters = null, lastAt = 0;

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function human(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
  return String(Math.round(n));
}

function bytesRate(n) {
  if (n >= 1e9) return (n * 8 / 1e9).toFixed(2) + " Gbit/s";
  if (n >= 1e6) return (n * 8 / 1e6).toFixed(1) + " Mbit/s";
  if (n >= 1e3) return (n * 8 / 1e3).toFixed(0) + " kbit/s";
  return (n * 8).toFixed(0) + " bit/s";
}

function svcKey(s) { return `${s.protocol} ${s.address}:${s.port}`; }

function chart(samples) {
  const c = el("canvas", { width: "240", height: "40", title: "connections/s (line) and packets/s in (area), last 2 min" });
  const g = c.getContext("2d");
  const w = c.width, h = c.height;
  g.fillStyle = "#f1f4f8"; g.fillRect(0, 0, w, h);
  const maxP = Math.max(1, ...samples.map(s => s.inpps)), maxC = Math.max(1, ...samples.map(s => s.cps));
  const x = i => w - (samples.length - 1 - i) * (w / (HISTORY - 1));
  g.beginPath(); g.moveTo(x(0), h);
  samples.forEach((s, i) => g.lineTo(x(i), h - 2 - (h - 4) * s.inpps / maxP));
  g.lineTo(x(samples.length - 1), h); g.closePath(); g.fillStyle = "rgba(47,111,214,.25)"; g.fill();
  g.beginPath();
  samples.forEach((s, i) => { const y = h - 2 - (h - 4) * s.cps / maxC; i ? g.lineTo(x(i), y) : g.moveTo(x(i), y); });
  g.strokeStyle = "#1f8a4c"; g.lineWidth = 1.5; g.stroke();
  return c;
}

function card(k, v) { return el("div", { class: "card" }, el("div", { class: "v", text: v }), el("div", { class: "k", text: k })); }

function render(st) {
  const c = st.counters.counters;
  const now = performance.now();
  const dt = lastCounters ? (now - lastAt) / 1000 : 0;
  document.getElementById("host").textContent = `${st.hostname} · lbd ${st.version} · fast path ${st.counters.offload}`;
  let totalDrops = 0;
  for (const [k, v] of Object.entries(c)) if (k.startsWith("drop_")) totalDrops += v;
  const reals = st.listing.services.flatMap(s => s.reals);
  const down = reals.filter(r => r.state === "down").length;
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    card("services", st.listing.services.length),
    card("reals down / all", `${down} / ${reals.length}`),
    card("connections", human(c.conns_current || 0)),
    card("table capacity", human(st.capacity)),
    card("new connections/s", human(st.listing.services.reduce((a, s) => a + s.rates.cps, 0))),
    card("packets/s in", human(st.listing.services.reduce((a, s) => a + s.rates.inpps, 0))),
    card("drops", human(totalDrops)));

  const stall = document.getElementById("stall");
  stall.hidden = !st.health.stalled_ms;
  if (st.health.stalled_ms) stall.textContent = `Health checks stalled for ${(st.health.stalled_ms / 1000).toFixed(1)} s ${st.health.stalled_in ? "in the " + st.health.stalled_in : ""}: no real changes state until they run again.`;

  const health = new Map(st.health.reals.map(h => [`${h.service.protocol} ${h.service.address}:${h.service.port} ${h.address}:${h.port}`, h]));
  const box = document.getElementById("services");
  if (!st.listing.services.length) { box.replaceChildren(el("p", { class: "muted", text: "No virtual service (lbadm -A)." })); }
  else box.replaceChildren(...st.listing.services.map(s => {
    const key = svcKey(s);
    const h = history.get(key) || [];
    h.push({ cps: s.rates.cps, inpps: s.rates.inpps });
    while (h.length > HISTORY) h.shift();
    history.set(key, h);
    const flags = [s.scheduler, s.persistent ? `persistent ${s.persistent}` : null, s.health || "no check"].filter(Boolean).join(" · ");
    const head = el("div", { class: "svc-head" },
      el("span", { class: "name", text: key }), el("span", { class: "meta", text: flags }),
      el("span", { class: "meta", text: `${human(s.rates.cps)} conn/s · ${human(s.rates.inpps)} pkt/s · ${bytesRate(s.rates.inbps)} in · ${human(s.stats.conns)} connections` }),
      chart(h));
    const rows = s.reals.map(r => {
      const hv = health.get(`${key} ${r.address}:${r.port}`);
      const state = r.sorry_server ? "sorry" : r.state;
      let result = hv && hv.checked_by_engine ? (hv.result == null ? "no result yet" : `${hv.result} (${(hv.duration_s * 1000).toFixed(1)} ms, ${hv.checked_s.toFixed(1)} s ago)`) : "not checked";
      if (hv && hv.checked_by_engine && hv.state === "down" && hv.ok_in_a_row) result += `, ${hv.ok_in_a_row} ok in a row`;
      if (hv && hv.checked_by_engine && hv.state === "up" && hv.failed_in_a_row) result += `, ${hv.failed_in_a_row} failed in a row`;
      const since = hv && hv.checked_by_engine ? `${Math.floor(hv.since_s)} s` : "";
      return el("tr", { class: r.state, "data-real": `${r.address}:${r.port}` },
        el("td", { class: "addr", text: `${r.address}:${r.port}` }),
        el("td", { text: r.forward }),
        el("td", { class: "num", text: r.weight }),
        el("td", {}, el("span", { class: `state ${state}`, text: state.toUpperCase() })),
        el("td", { class: "num", text: since }),
        el("td", { class: "num", text: human(r.active_conns) }),
        el("td", { class: "num", text: human(r.inactive_conns) }),
        el("td", { class: "num", text: human(r.rates.cps) }),
        el("td", { class: "num", text: bytesRate(r.rates.inbps) }),
        el("td", { class: "result", text: result }));
    });
    const t = el("table", {}, el("thead", {}, el("tr", {}, ...["real", "forward", "weight", "state", "since", "active", "inactive", "conn/s", "in", "last check"]
      .map((x, i) => el("th", { class: i >= 2 && i <= 8 && i !== 3 ? "num" : "", text: x })))), el("tbody", {}, ...rows));
    return el("div", { class: "svc", "data-service": key }, head, t);
  }));

  const drops = Object.entries(c).filter(([k, v]) => k.startsWith("drop_") && v > 0);
  document.querySelector("#drops tbody").replaceChildren(...(drops.length ? drops.map(([k, v]) => el("tr", {},
    el("td", { text: k.slice(5) }), el("td", { class: "num", text: human(v) }),
    el("td", { class: "num", text: dt && lastCounters ? human(Math.max(0, v - (lastCounters[k] || 0)) / dt) : "" })))
    : [el("tr", {}, el("td", { class: "muted", colspan: "3", text: "none" }))]));
  const workers = [];
  for (let i = 0; `worker${i}_conns_current` in c; ++i)
    workers.push(el("tr", {}, el("td", { text: i }), el("td", { class: "num", text: human(c[`worker${i}_conns_current`]) }),
      el("td", { class: "num", text: human(c[`worker${i}_conns_created`]) }), el("td", { class: "num", text: human(c[`worker${i}_rx_frames`]) })));
  document.querySelector("#workers tbody").replaceChildren(...workers);
  lastCounters = c; lastAt = now;
}

async function tick() {
  const live = document.getElementById("live");
  try {
    const r = await fetch("/status.json", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json());
    live.textContent = "live · " + new Date().toLocaleTimeString();
    live.className = "pill ok";
  } catch (e) {
    live.textContent = "lbd unreachable: " + e.message;
    live.className = "pill bad";
  }
  setTimeout(tick, 1000);
}

tick();
