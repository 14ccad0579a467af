// The operator console: cluster members (roles, state, channels, users,
// sessions), messages and deliveries per second as live charts from each
// node's metrics, and draining a node. It reads /v1/cluster and
// /v1/cluster/metrics?node=NAME, and drains with POST
// /v1/cluster/drain?node=NAME, sending the operator API key it is given.

import { h } from "../shared/dom.js";
import { ago } from "../shared/format.js";
import { drawChart, type Series } from "./chart.js";
import { figures, parseMetrics, rate, type NodeFigures } from "./metrics.js";
import "./console.css";

interface Member {
  name: string;
  address: string;
  http?: string;
  remote: string;
  roles: string[];
  state: "alive" | "suspect" | "dead" | "left";
  draining?: boolean;
  disk_full?: boolean;
  channels: number | null;
  users?: number | null;
  since?: string;
  self?: boolean;
}
interface ClusterView {
  node: string;
  members: Member[];
  placement: string[];
}

const KEY = "switchboard.console.key";
const POLL_MS = 2000;
const WINDOW_MS = 3 * 60_000;
const COLORS = ["#5b5bd6", "#12a594", "#f76b15", "#d6409f", "#0090ff", "#e2a336", "#8e4ec6", "#30a46c"];

let apiKey = sessionStorage.getItem(KEY) ?? "";
let view: ClusterView | null = null;
const last = new Map<string, NodeFigures>();
const history = new Map<string, { sends: Array<{ t: number; v: number }>; deliveries: Array<{ t: number; v: number }> }>();
const color = new Map<string, string>();
let lastError = "";

const root = document.getElementById("root")!;
const keyInput = h("input", { type: "password", placeholder: "operator API key", autocomplete: "off", "aria-label": "Operator API key", value: apiKey }) as HTMLInputElement;
const nodeName = h("span", { class: "node-name" }, "…");
const errorBox = h("div", { class: "error", role: "alert", hidden: true });
const cards = h("div", { class: "cards" });
const sendsChart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
const delivChart = document.createElementNS("http://www.w3.org/2000/svg", "svg");
sendsChart.setAttribute("role", "img");
sendsChart.setAttribute("aria-label", "Messages per second");
delivChart.setAttribute("role", "img");
delivChart.setAttribute("aria-label", "Deliveries per second");
const legend = h("div", { class: "legend" });
const table = h("tbody");
const placement = h("p", { class: "placement muted" });
const toast = h("div", { class: "toast", role: "status", hidden: true });

root.append(
  h(
    "header",
    { class: "top" },
    h("div", { class: "brand" }, h("span", { class: "mark" }, "S"), h("span", null, "Switchboard console")),
    h("div", { class: "where" }, "Node ", nodeName),
    h("form", { class: "key", onsubmit: (e: Event) => {
      e.preventDefault();
      apiKey = keyInput.value.trim();
      if (apiKey) sessionStorage.setItem(KEY, apiKey);
      else sessionStorage.removeItem(KEY);
      void poll();
    } }, keyInput, h("button", { type: "submit" }, "Use key")),
    h("a", { href: "/", class: "open-chat" }, "Open chat"),
  ),
  h(
    "main",
    null,
    errorBox,
    cards,
    h(
      "section",
      { class: "charts" },
      h("figure", null, h("figcaption", null, "Messages per second"), sendsChart),
      h("figure", null, h("figcaption", null, "Deliveries per second"), delivChart),
    ),
    legend,
    h(
      "section",
      { class: "panel" },
      h("h2", null, "Members"),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { "aria-label": "Cluster members" },
          h("thead", null, h("tr", null, ["Node", "Roles", "State", "Address", "Channels", "Users", "Sessions", "Msgs/s", "Since", ""].map((c) => h("th", { scope: "col" }, c)))),
          table,
        ),
      ),
      placement,
    ),
  ),
  toast,
);

function headers(): HeadersInit {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

async function errorText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { message?: string } };
    if (body.error?.message) return body.error.message;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`;
}

function show(msg: string, bad = false): void {
  toast.textContent = msg;
  toast.className = `toast${bad ? " bad" : ""}`;
  toast.hidden = false;
  setTimeout(() => (toast.hidden = true), bad ? 7000 : 4000);
}

async function poll(): Promise<void> {
  try {
    const res = await fetch("/v1/cluster", { headers: headers(), cache: "no-store" });
    if (res.status === 401) {
      lastError = apiKey ? "The API key was refused: check it." : "This node requires the operator API key (--api-key): enter it above.";
      view = null;
    } else if (!res.ok) {
      lastError = `GET /v1/cluster: ${await errorText(res)}`;
    } else {
      view = (await res.json()) as ClusterView;
      lastError = "";
      await Promise.all(view.members.filter((m) => m.state === "alive").map((m) => sample(m.name)));
    }
  } catch (err) {
    lastError = `This node does not answer: ${String(err)}`;
  }
  render();
}

async function sample(name: string): Promise<void> {
  try {
    const res = await fetch(`/v1/cluster/metrics?node=${encodeURIComponent(name)}`, { headers: headers(), cache: "no-store" });
    if (!res.ok) return;
    const f = figures(parseMetrics(await res.text()), Date.now());
    const prev = last.get(name);
    last.set(name, f);
    if (!color.has(name)) color.set(name, COLORS[color.size % COLORS.length]!);
    let hst = history.get(name);
    if (!hst) {
      hst = { sends: [], deliveries: [] };
      history.set(name, hst);
    }
    if (prev) {
      const dt = f.t - prev.t;
      hst.sends.push({ t: f.t, v: rate(prev.sends, f.sends, dt) });
      hst.deliveries.push({ t: f.t, v: rate(prev.deliveries, f.deliveries, dt) });
      const cut = f.t - WINDOW_MS - POLL_MS;
      while (hst.sends.length && hst.sends[0]!.t < cut) hst.sends.shift();
      while (hst.deliveries.length && hst.deliveries[0]!.t < cut) hst.deliveries.shift();
    }
  } catch {
    // the node went away between the two requests
  }
}

function current(name: string, kind: "sends" | "deliveries"): number {
  return history.get(name)?.[kind].at(-1)?.v ?? 0;
}

function render(): void {
  errorBox.hidden = !lastError;
  errorBox.textContent = lastError;
  nodeName.textContent = view?.node ?? "unknown";
  document.title = view ? `${view.node} · Switchboard console` : "Switchboard console";
  const members = view?.members ?? [];
  const alive = members.filter((m) => m.state === "alive");
  const sum = (f: (m: Member) => number) => alive.reduce((n, m) => n + f(m), 0);
  const card = (label: string, value: string, sub?: string) => h("div", { class: "card" }, h("div", { class: "card-label" }, label), h("div", { class: "card-value" }, value), sub ? h("div", { class: "card-sub" }, sub) : null);
  cards.replaceChildren(
    card("Members", `${alive.length}/${members.length}`, "alive / known"),
    card("Channels", String(sum((m) => m.channels ?? 0)), "active on hosts"),
    card("Sessions", String(sum((m) => last.get(m.name)?.sessions ?? 0)), "open on gateways"),
    card("Messages/s", sum((m) => current(m.name, "sends")).toFixed(1), "accepted sends"),
    card("Deliveries/s", sum((m) => current(m.name, "deliveries")).toFixed(1), "events to sessions"),
  );
  const now = Date.now();
  const series = (kind: "sends" | "deliveries"): Series[] =>
    [...history.entries()].map(([name, hst]) => ({ name, color: color.get(name) ?? "#888", points: hst[kind] }));
  drawChart(sendsChart, series("sends"), WINDOW_MS, now, "msg/s");
  drawChart(delivChart, series("deliveries"), WINDOW_MS, now, "deliveries/s");
  legend.replaceChildren(...[...color.entries()].map(([name, c]) => h("span", { class: "key-item" }, h("i", { style: `background:${c}` }), name)));
  table.replaceChildren(
    ...members.map((m) => {
      const f = last.get(m.name);
      const state = m.state !== "alive" ? m.state : m.disk_full ? "disk-full" : m.draining ? "draining" : m.state;
      return h(
        "tr",
        { class: m.self ? "self" : "" },
        h("th", { scope: "row" }, h("i", { class: "dot", style: `background:${color.get(m.name) ?? "transparent"}` }), m.name, m.self ? h("span", { class: "you" }, "this node") : null),
        h("td", null, m.roles.map((r) => h("span", { class: "role" }, r))),
        h("td", null, h("span", { class: `state ${state}`, title: state === "disk-full" ? "its store refuses writes: it leads no shard until it has room" : "" }, state.replace("-", " "))),
        h("td", { class: "mono" }, m.http ?? m.address),
        h("td", { class: "num" }, m.channels == null ? "—" : String(m.channels)),
        h("td", { class: "num" }, m.users == null ? "—" : String(m.users)),
        h("td", { class: "num" }, f && m.state === "alive" ? String(f.sessions) : "—"),
        h("td", { class: "num" }, m.state === "alive" ? current(m.name, "sends").toFixed(1) : "—"),
        h("td", { class: "muted" }, m.since ? ago(m.since, now) : "—"),
        h("td", null, m.state === "alive" && !m.draining ? h("button", { type: "button", class: "drain", "aria-label": `Drain ${m.name}`, onclick: () => void drain(m.name) }, "Drain") : null),
      );
    }),
  );
  placement.textContent = view ? `Placement (hosts that own channels): ${view.placement.join(", ") || "none"}` : "";
}

async function drain(name: string): Promise<void> {
  if (!confirm(`Drain ${name}?\n\nIts sessions are told to reconnect to another gateway, its channels and users move to the other hosts, then it leaves the cluster and exits.`)) return;
  const res = await fetch(`/v1/cluster/drain?node=${encodeURIComponent(name)}`, { method: "POST", headers: headers() });
  if (res.status === 202) show(`${name} is draining; it exits when done.`);
  else show(`Could not drain ${name}: ${await errorText(res)}`, true);
  void poll();
}

void poll();
setInterval(() => void poll(), POLL_MS);
