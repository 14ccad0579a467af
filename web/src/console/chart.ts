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

/** A round upper bound for the y axis. */
export function niceMax(v: number): number {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
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
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.v))));
  const x = (t: number) => L + ((t - (now - windowMs)) / windowMs) * (W - L - R);
  const y = (v: number) => T + (1 - v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    svg.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    const label = el("text", { x: L - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" });
    label.textContent = v >= 100 ? Math.round(v).toString() : String(Math.round(v * 10) / 10);
    svg.append(label);
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
