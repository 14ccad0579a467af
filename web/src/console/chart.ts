// A line chart in SVG: one line per series over a sliding time window.

const NS = "http://www.w3.org/2000/svg";

export interface Series {
  name: string;
  color: string;
  points: Array<{ t: number; v: number }>;
}

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** A tick of an axis: its value and its label, exact. */
export interface Tick {
  v: number;
  label: string;
}

/**
 * The y axis for values from 0 to max: a "nice" step (1, 2, 2.5 or 5 ×
 * 10^k) that splits the range into at most `count` intervals, the top (the
 * first multiple of the step at or above max, and at least 1), and the
 * ticks from 0 to the top with labels that show each value exactly (0,
 * 0.25, 0.5, 0.75, 1 — never 0.3 for 0.25).
 */
export function yAxis(max: number, count = 4): { top: number; ticks: Tick[] } {
  const span = Math.max(max, 1);
  const want = span / count;
  let k = Math.floor(Math.log10(want));
  let m = [1, 2, 2.5, 5, 10].find((m) => m * 10 ** k >= want * (1 - 1e-9)) ?? 10;
  if (m === 10) {
    m = 1;
    k += 1;
  }
  const step = m * 10 ** k;
  // The step's decimals are every tick's: 2.5 × 10^k has one more than 10^k.
  const decimals = Math.max(0, -k + (m === 2.5 ? 1 : 0));
  const n = Math.ceil(span / step - 1e-9);
  const ticks: Tick[] = [];
  for (let i = 0; i <= n; i++) {
    const v = Number((i * step).toFixed(decimals));
    ticks.push({ v, label: String(v) });
  }
  return { top: ticks[n]!.v, ticks };
}

export function drawChart(svg: SVGSVGElement, series: Series[], windowMs: number, now: number, unit: string): void {
  const W = 640;
  const H = 180;
  const L = 44;
  const R = 8;
  const T = 10;
  const B = 22;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const { top, ticks } = yAxis(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.v))));
  const x = (t: number) => L + ((t - (now - windowMs)) / windowMs) * (W - L - R);
  const y = (v: number) => T + (1 - v / top) * (H - T - B);
  for (const { v, label } of ticks) {
    svg.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    const text = el("text", { x: L - 6, y: y(v) + 4, class: "axis y-tick", "text-anchor": "end" });
    text.textContent = label;
    svg.append(text);
  }
  for (const s of [60, 120, 180].filter((s) => s * 1000 <= windowMs)) {
    const t = el("text", { x: x(now - s * 1000), y: H - 6, class: "axis", "text-anchor": "middle" });
    t.textContent = `-${s / 60} min`;
    svg.append(t);
  }
  for (const s of series) {
    const pts = s.points.filter((p) => p.t >= now - windowMs);
    if (pts.length < 2) continue;
    svg.append(el("polyline", { points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "), stroke: s.color, class: "line" }));
  }
  const title = el("title", {});
  title.textContent = `${series.map((s) => `${s.name}: ${(s.points.at(-1)?.v ?? 0).toFixed(1)} ${unit}`).join(", ")}`;
  svg.append(title);
}
