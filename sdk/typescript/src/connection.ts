// Connection: the WebSocket under a Client — dialing the gateway URLs in
// turn with jittered backoff, sending connect, telling its status, and
// noticing drops. Client (client.ts) builds requests, events and resumes
// on it.

import { SwitchboardError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { base64url, globalWebSocket, httpOrigin, jitter, messageText, splitFrames } from "./transport.js";
import type { WebSocketConstructor, WebSocketLike } from "./transport.js";
import { CONNECT_SUBPROTOCOL_PREFIX, CONNECTED_SUBPROTOCOL, SUBPROTOCOL, type ConnectArgs, type ConnectResult, type User, type WireError } from "./types.js";

/** The state of the connection. */
export type ConnectionStatus = "connecting" | "online" | "reconnecting" | "offline";

export interface ClientOptions {
  /** Gateway WebSocket URLs (ws:// or wss://…/v1/ws). The client moves to the next on each reconnect. */
  urls: string | string[];
  /** A session token, or a function returning a fresh one for every connect. */
  token?: string | (() => string | Promise<string>);
  /** Development auth (a node without an auth key): the user id to connect as. */
  userId?: string;
  /** Display name sent with connect; replaces the profile's. */
  name?: string;
  /** The WebSocket constructor (default: the global one). In Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** Passed as the WebSocket constructor's third argument (e.g. `{ ca }` for the `ws` package). */
  webSocketOptions?: unknown;
  /**
   * Send connect as the first frame after the upgrade, not offered in the
   * upgrade itself (a subprotocol carrying it, which saves a round trip; a
   * server that does not take it gets the frame anyway). Default false.
   */
  connectFrame?: boolean;
  /** The fetch used for file uploads and downloads (default: the global one). */
  fetch?: typeof fetch;
  /** Bounds each attempt of a request, and each connection attempt (default 15 000 ms). */
  requestTimeoutMs?: number;
  /**
   * How long the connection may stay silent (no reply, no event) before the
   * client takes its gateway for stalled — a paused process or a network
   * that drops packets keeps the socket open — drops it and reconnects to
   * the next URL, resuming its watches (default 4000 ms; 0: never). After
   * half of it in silence the client sends a `ping` request, so an idle
   * connection to a live gateway is not dropped. A stall is noticed
   * between stallTimeoutMs and 1¼ × stallTimeoutMs after the last frame.
   * The first connection attempt to each gateway is bounded by it too
   * (later ones double it, up to requestTimeoutMs).
   */
  stallTimeoutMs?: number;
  /** Reconnect and retry delays (defaults 100 ms and 5000 ms), jittered. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long an idempotent request is retried through `unavailable` and reconnects (default 30 000 ms). */
  maxRetryMs?: number;
  /** How long connect() waits for the first connection before it gives up (default 15 000 ms; 0: forever). */
  initialTimeoutMs?: number;
  /** Where the client reports what it drops (undecodable frames, listener errors). Default: silent. */
  logger?: { warn(msg: string, ...args: unknown[]): void };
}

const defaults = {
  requestTimeoutMs: 15_000,
  stallTimeoutMs: 4_000,
  minBackoffMs: 100,
  maxBackoffMs: 5_000,
  maxRetryMs: 30_000,
  initialTimeoutMs: 15_000,
};

/** The connection a Client runs on; see Client. */
export abstract class Connection {
  readonly options: Readonly<ClientOptions>;
  protected readonly urls: string[];
  protected readonly cfg: typeof defaults;
  protected ws: WebSocketLike | null = null;
  /** Connection generation: events of an older connection are ignored. */
  protected gen = 0;
  protected urlIndex = 0;
  /** Messages received on the current connection (a request that saw none come back suspects it). */
  protected received = 0;
  protected statusValue: ConnectionStatus = "connecting";
  protected sessionValue: ConnectResult | null = null;
  protected closed = false;
  private started = false;
  protected lastErrorValue: SwitchboardError | null = null;
  private readonly statuses = new Listeners<ConnectionStatus>();
  private firstConnect: { resolve(r: ConnectResult): void; reject(e: SwitchboardError): void } | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private wake: (() => void) | null = null;
  private readonly onBrowserOnline = () => this.reconnectNow();
  /** The stall check of the current connection (see watchStall). */
  private stallTimer: ReturnType<typeof setInterval> | null = null;

  constructor(options: ClientOptions) {
    this.options = options;
    this.urls = typeof options.urls === "string" ? [options.urls] : [...options.urls];
    if (this.urls.length === 0) throw new SwitchboardError("bad_request", "switchboard: no gateway URL");
    for (const u of this.urls) {
      const p = new URL(u).protocol;
      if (p !== "ws:" && p !== "wss:") throw new SwitchboardError("bad_request", `switchboard: ${u} is not a ws:// or wss:// URL`);
    }
    this.cfg = {
      requestTimeoutMs: options.requestTimeoutMs ?? defaults.requestTimeoutMs,
      stallTimeoutMs: options.stallTimeoutMs ?? defaults.stallTimeoutMs,
      minBackoffMs: options.minBackoffMs ?? defaults.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? defaults.maxBackoffMs,
      maxRetryMs: options.maxRetryMs ?? defaults.maxRetryMs,
      initialTimeoutMs: options.initialTimeoutMs ?? defaults.initialTimeoutMs,
    };
  }

  /** A message (one or more frames) arrived on the current connection. */
  protected abstract receive(text: string): void;
  /** A connection is up (reconnecting: it replaces a lost one). */
  protected abstract connected(res: ConnectResult, reconnecting: boolean): void;
  /** The connection dropped; a new one is being dialed. */
  protected abstract lost(err: SwitchboardError): void;
  /**
   * A new connection replacing a lost one is about to be dialed: requests
   * queued now wait for it, and those that may go with its connect do
   * (pack).
   */
  protected abstract reconnecting(): void;
  /** The client closed for good. */
  protected abstract ended(err: SwitchboardError): void;
  /** Sends a `ping` request on ws, whose reply (any frame) shows the gateway is alive. */
  protected abstract probe(ws: WebSocketLike): void;
  /**
   * The request frames to pack after connect in the connection of
   * generation gen (the requests waiting for it that may go there).
   */
  protected abstract pack(gen: number): string[];
  /** The connection of generation gen did not connect: its packed requests wait again. */
  protected abstract unpack(gen: number): void;

  /** The connection's state. */
  get status(): ConnectionStatus {
    return this.statusValue;
  }

  /** The current (or last) connection's connect result. */
  get session(): ConnectResult | null {
    return this.sessionValue;
  }

  /** The signed-in user, as connect answered. */
  get user(): User | null {
    return this.sessionValue?.user ?? null;
  }

  /** Why the client went offline, or the last connect failure. */
  get lastError(): SwitchboardError | null {
    return this.lastErrorValue;
  }

  /** The HTTP origin of the gateway in use (for the files API). */
  get httpOrigin(): string {
    return httpOrigin(this.urls[this.urlIndex % this.urls.length]!);
  }

  /** Listens to status changes. */
  onStatus(listener: (s: ConnectionStatus) => void): () => void {
    return this.statuses.add(listener);
  }

  /**
   * Connects (retrying with backoff across the URLs) and resolves with the
   * connect result once online. Rejects on an auth error (token_invalid,
   * token_expired without a token function, unauthenticated), or when no
   * gateway answered within initialTimeoutMs; the client is then closed.
   */
  open(): Promise<ConnectResult> {
    if (this.closed) return Promise.reject(new SwitchboardError("closed", "switchboard: client closed"));
    if (this.sessionValue && this.statusValue === "online") return Promise.resolve(this.sessionValue);
    return new Promise<ConnectResult>((resolve, reject) => {
      const prev = this.firstConnect;
      this.firstConnect = {
        resolve: (r) => {
          prev?.resolve(r);
          resolve(r);
        },
        reject: (e) => {
          prev?.reject(e);
          reject(e);
        },
      };
      if (this.cfg.initialTimeoutMs > 0) {
        const timer = setTimeout(() => {
          if (this.firstConnect && this.statusValue !== "online") {
            const err = this.lastErrorValue ?? new SwitchboardError("unavailable", "switchboard: no gateway answered");
            this.fail(new SwitchboardError(err.code, `switchboard: could not connect: ${err.message}`));
          }
        }, this.cfg.initialTimeoutMs);
        const done = this.firstConnect;
        this.firstConnect = {
          resolve: (r) => {
            clearTimeout(timer);
            done.resolve(r);
          },
          reject: (e) => {
            clearTimeout(timer);
            done.reject(e);
          },
        };
      }
      if (!this.started) {
        this.started = true;
        // Browsers say when the network is back: try at once then.
        (globalThis as { addEventListener?: (t: string, f: () => void) => void }).addEventListener?.("online", this.onBrowserOnline);
        void this.connectLoop(false);
      }
    });
  }

  /** Closes the connection (1000) and fails what is outstanding with `closed`. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    (globalThis as { removeEventListener?: (t: string, f: () => void) => void }).removeEventListener?.("online", this.onBrowserOnline);
    this.reconnectNow();
    this.stopStallCheck();
    const ws = this.ws;
    this.ws = null;
    this.gen++;
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    const err = new SwitchboardError("closed", "switchboard: client closed");
    this.ended(err);
    this.firstConnect?.reject(err);
    this.firstConnect = null;
    this.setStatus("offline");
  }

  /** Ends the wait before the next connection attempt (e.g. when the network is back). */
  reconnectNow(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.wake?.();
  }

  /**
   * Drops the connection abruptly, as a network failure would: the client
   * then reconnects and resumes. For tests and for "reconnect now" buttons.
   */
  drop(): void {
    const ws = this.ws;
    if (ws) this.dropped(this.gen, ws, "dropped by the application");
  }

  protected setStatus(s: ConnectionStatus): void {
    if (this.statusValue === s) return;
    this.statusValue = s;
    this.statuses.emit(s, this.warn);
  }

  protected readonly warn = (msg: string, ...args: unknown[]): void => {
    this.options.logger?.warn(msg, ...args);
  };

  /** Dials until a connection is up (or a fatal error), then resumes. */
  protected async connectLoop(reconnecting: boolean): Promise<void> {
    let backoff = this.cfg.minBackoffMs;
    let authFailures = 0;
    // A gateway that accepts the TCP connection but never answers (a paused
    // process) is left after stallTimeoutMs; the bound doubles with each
    // failure, so gateways that are only slow are still reached.
    let timeoutMs = this.cfg.stallTimeoutMs > 0 ? Math.min(this.cfg.stallTimeoutMs, this.cfg.requestTimeoutMs) : this.cfg.requestTimeoutMs;
    this.setStatus(reconnecting ? "reconnecting" : "connecting");
    for (;;) {
      if (this.closed) return;
      const url = this.urls[this.urlIndex % this.urls.length]!;
      try {
        await this.dial(url, reconnecting, timeoutMs);
        return;
      } catch (err) {
        if (this.closed) return;
        const e = err instanceof SwitchboardError ? err : new SwitchboardError("unavailable", String(err));
        this.lastErrorValue = e;
        const refreshable = typeof this.options.token === "function" && (e.code === "token_expired" || e.code === "token_invalid");
        if (refreshable) authFailures++;
        const fatal =
          e.code === "unauthenticated" ||
          e.code === "bad_request" ||
          e.code === "too_long" ||
          ((e.code === "token_invalid" || e.code === "token_expired") && (!refreshable || authFailures >= 3));
        if (fatal) {
          this.fail(e);
          return;
        }
        this.urlIndex++;
        timeoutMs = Math.min(timeoutMs * 2, this.cfg.requestTimeoutMs);
      }
      await new Promise<void>((r) => {
        this.wake = r;
        this.reconnectTimer = setTimeout(r, jitter(backoff));
      });
      this.wake = null;
      backoff = Math.min(backoff * 2, this.cfg.maxBackoffMs);
    }
  }

  /** Goes offline for good with err. */
  protected fail(err: SwitchboardError): void {
    this.lastErrorValue = err;
    const first = this.firstConnect;
    this.firstConnect = null;
    this.close();
    first?.reject(err);
  }

  /** Opens one WebSocket and sends connect; resolves once connect succeeded. */
  protected async dial(url: string, reconnecting: boolean, timeoutMs: number): Promise<ConnectResult> {
    const WS = this.options.WebSocket ?? globalWebSocket();
    if (!WS) throw new SwitchboardError("bad_request", "switchboard: no WebSocket implementation: pass options.WebSocket (e.g. the ws package)");
    const args: ConnectArgs = {};
    if (typeof this.options.token === "function") args.token = await this.options.token();
    else if (this.options.token) args.token = this.options.token;
    else if (this.options.userId) args.user_id = this.options.userId;
    if (this.options.name) args.name = this.options.name;
    const gen = ++this.gen;
    // connect is the first frame, and the requests waiting that may go
    // with it follow it in the same message: offered in the upgrade
    // unless told otherwise.
    const frame = [JSON.stringify({ id: 0, op: "connect", args }), ...this.pack(gen)].join("\n");
    const protocols = this.options.connectFrame ? [SUBPROTOCOL] : [CONNECTED_SUBPROTOCOL, SUBPROTOCOL, CONNECT_SUBPROTOCOL_PREFIX + base64url(frame)];
    return new Promise<ConnectResult>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = this.options.webSocketOptions === undefined ? new WS(url, protocols) : new WS(url, protocols, this.options.webSocketOptions as never);
      } catch (err) {
        this.unpack(gen);
        reject(new SwitchboardError("bad_request", `switchboard: ${url}: ${String(err)}`));
        return;
      }
      let settled = false;
      const settle = (err: SwitchboardError | null, res?: ConnectResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          detach(ws);
          try {
            ws.close();
          } catch {
            // not open
          }
          this.unpack(gen);
          reject(err);
        } else resolve(res!);
      };
      const timer = setTimeout(() => settle(new SwitchboardError("timeout", `switchboard: ${url}: no connection within ${timeoutMs} ms`)), timeoutMs);
      ws.onopen = () => {
        if (ws.protocol !== CONNECTED_SUBPROTOCOL) ws.send(frame); // not taken in the upgrade
      };
      ws.onerror = () => {
        // onclose follows with the code
      };
      ws.onclose = (ev) => {
        settle(new SwitchboardError("unavailable", `switchboard: ${url}: connection closed (${ev.code}${ev.reason ? " " + ev.reason : ""})`));
      };
      ws.onmessage = (ev) => {
        const text = messageText(ev.data);
        if (text === undefined) return;
        if (!settled) {
          // connect is the first frame, and its reply the first the server sends.
          let first: Record<string, unknown> | undefined;
          splitFrames(text.split("\n", 1)[0] ?? "", (f) => (first = f));
          const rest = text.slice(text.indexOf("\n") + 1);
          if (!first || first["id"] !== 0) {
            settle(new SwitchboardError("internal", "switchboard: bad connect reply"));
            return;
          }
          if (first["error"]) {
            settle(SwitchboardError.fromWire(first["error"] as WireError, "connect"));
            return;
          }
          this.ws = ws;
          this.received++;
          ws.onclose = (cev) => this.dropped(gen, ws, `closed ${cev.code}${cev.reason ? " " + cev.reason : ""}`, cev.code);
          const res = first["result"] as ConnectResult;
          settle(null, res);
          this.watchStall(gen, ws);
          this.online(res, reconnecting);
          if (text.includes("\n")) this.receive(rest);
          return;
        }
        if (this.gen === gen) {
          this.received++;
          this.receive(text);
        }
      };
    });
  }

  /** A connection is up: flush waiting requests, resume watches. */
  protected online(res: ConnectResult, reconnecting: boolean): void {
    this.sessionValue = res;
    this.lastErrorValue = null;
    this.setStatus("online");
    this.connected(res, reconnecting);
    const first = this.firstConnect;
    this.firstConnect = null;
    first?.resolve(res);
  }

  /**
   * Checks the connection of generation gen for silence: every quarter of
   * stallTimeoutMs it looks whether a message arrived since its last look
   * (this.received moved). The second quiet look sends a `ping`; the
   * fourth drops the connection. Nothing is added to the receive path, and
   * a throttled timer (a background tab) only makes the check slower:
   * every look but the last is followed by a ping's reply on a live
   * connection.
   */
  private watchStall(gen: number, ws: WebSocketLike): void {
    this.stopStallCheck();
    const ms = this.cfg.stallTimeoutMs;
    if (ms <= 0) return;
    let heard = this.received;
    let quiet = 0;
    const timer = setInterval(() => {
      if (gen !== this.gen || this.ws !== ws) {
        clearInterval(timer);
        return;
      }
      if (this.received !== heard) {
        heard = this.received;
        quiet = 0;
        return;
      }
      quiet++;
      if (quiet >= 4) {
        this.dropped(gen, ws, `stalled: no frame for ${ms} ms`);
        return;
      }
      if (quiet === 2) this.probe(ws);
    }, ms / 4);
    // A check must not keep a Node process alive on its own.
    (timer as { unref?: () => void }).unref?.();
    this.stallTimer = timer;
  }

  private stopStallCheck(): void {
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.stallTimer = null;
  }

  /** The connection of generation gen failed: fail its requests and reconnect (unless closed or logged out). */
  protected dropped(gen: number, ws: WebSocketLike, why: string, code?: number): void {
    if (gen !== this.gen || this.ws !== ws) return;
    this.stopStallCheck();
    detach(ws);
    try {
      ws.close();
    } catch {
      // already closed
    }
    this.ws = null;
    this.gen++;
    this.urlIndex++;
    this.lastErrorValue = new SwitchboardError("disconnected", `switchboard: connection lost (${why})`);
    this.lost(new SwitchboardError("disconnected", "switchboard: connection lost; the request may or may not have been carried out"));
    if (this.closed) return;
    if (code === 1000) {
      // logout (or another normal close by the server): the session is over.
      this.close();
      return;
    }
    this.reconnecting();
    void this.connectLoop(true);
  }
}

/**
 * Stops a socket the client is done with from reaching it. Its error
 * handler stays, doing nothing: Node's ws package reports closing a
 * socket that is still connecting as an error event, which without a
 * handler is an uncaught exception in the application.
 */
export function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = ignore;
}

function ignore(): void {}
