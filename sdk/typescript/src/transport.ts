// The WebSocket the client runs on, and the framing of its messages.

/** The part of the WebSocket API the client uses (browsers' WebSocket and the `ws` package both have it). */
export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected (once open). */
  readonly protocol?: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/**
 * A WebSocket constructor: the browser's `WebSocket`, or the `ws` package's
 * in Node (whose third argument takes options such as `{ ca }` for wss://).
 */
export type WebSocketConstructor = new (url: string, protocols: string[], options?: never) => WebSocketLike;

/** The WebSocket readyState of an open connection. */
export const OPEN = 1;

/** The global WebSocket, where the runtime has one (browsers, Node 22+). */
export function globalWebSocket(): WebSocketConstructor | undefined {
  const ws = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ws === "function" ? (ws as WebSocketConstructor) : undefined;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** text's UTF-8 bytes in base64url without padding (an HTTP token). */
export function base64url(text: string): string {
  let bin = "";
  for (const b of encoder.encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A message's payload as text (ws delivers text frames as strings, some runtimes as bytes). */
export function messageText(data: unknown): string | undefined {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return decoder.decode(data);
  if (ArrayBuffer.isView(data)) return decoder.decode(data);
  return undefined;
}

/**
 * Splits a WebSocket message into frames: the server packs several frames
 * into one message, separated by newlines (a JSON object never holds a raw
 * newline). Lines that are not JSON objects are passed to onBad.
 */
export function splitFrames(text: string, onFrame: (f: Record<string, unknown>) => void, onBad?: (line: string, err: unknown) => void): void {
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      onBad?.(line, err);
      continue;
    }
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      onFrame(v as Record<string, unknown>);
    } else {
      onBad?.(line, new Error("frame is not a JSON object"));
    }
  }
}

/** The HTTP origin (http:// or https://) of a gateway WebSocket URL. */
export function httpOrigin(wsURL: string): string {
  const u = new URL(wsURL);
  const scheme = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  return `${scheme}//${u.host}`;
}

/**
 * A delay between half and all of d, so that many clients that lost their
 * connection at once do not all come back at once.
 */
export function jitter(d: number, random: () => number = Math.random): number {
  return d / 2 + random() * (d / 2);
}
