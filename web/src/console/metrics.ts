// Reading Prometheus text exposition, and turning counter samples into rates.

/** One sample: metric name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the text format (comments and malformed lines are skipped). */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const value = Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** The sum of a metric's samples whose labels include want. */
export function total(samples: Sample[], name: string, want: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** What the console reads from one node's metrics. */
export interface NodeFigures {
  t: number;
  sends: number;
  deliveries: number;
  sessions: number;
  channels: number;
}

export function figures(samples: Sample[], t: number): NodeFigures {
  return {
    t,
    sends: total(samples, "switchboard_request_duration_seconds_count", { op: "message.send", code: "ok" }),
    deliveries: total(samples, "switchboard_deliveries_total"),
    sessions: total(samples, "switchboard_sessions_open"),
    channels: total(samples, "switchboard_actors_active", { kind: "channel" }),
  };
}

/** Per-second rate of a counter between two samples (0 after a restart resets it). */
export function rate(prev: number, cur: number, dtMs: number): number {
  if (dtMs <= 0 || cur < prev) return 0;
  return ((cur - prev) * 1000) / dtMs;
}
