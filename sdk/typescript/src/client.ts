// Client: one session with a Switchboard cluster, re-established across
// connection drops. It sends requests and matches their replies, delivers
// events in seq order, and — when the connection drops — reconnects (to
// the next gateway URL, with jittered backoff), resumes every watched
// channel from the last seq it delivered, and resends the requests that
// are safe to repeat (message.send keeps its client_id, so a resend never
// creates a second message).

import { SwitchboardError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { globalWebSocket, httpOrigin, jitter, messageText, OPEN, splitFrames } from "./transport.js";
import type { WebSocketConstructor, WebSocketLike } from "./transport.js";
import {
  IDEMPOTENT_OPS,
  SUBPROTOCOL,
  type ConnectArgs,
  type ConnectResult,
  type Member,
  type OpArgs,
  type OpName,
  type OpResult,
  type ServerEvent,
  type User,
  type WatchResult,
  type WireError,
} from "./types.js";

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
  /** The fetch used for file uploads and downloads (default: the global one). */
  fetch?: typeof fetch;
  /** Bounds each attempt of a request, and each connection attempt (default 15 000 ms). */
  requestTimeoutMs?: number;
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

/** Per-request options. */
export interface CallOptions {
  /** Bounds each attempt (default: the client's requestTimeoutMs). */
  timeoutMs?: number;
  /** Retry an idempotent request through unavailable and reconnects (default true). */
  retry?: boolean;
}

/**
 * What the client tells about a channel's watch. `start`: a resume
 * (channel.watch with since_seq, after a reconnect or a gap in seq) went
 * out. `done`: a join, watch, create or resume result was applied, in
 * order with the events around it (its missed events were delivered
 * just before); with `reset`, reload the channel from its messages.
 * `failed`: a resume failed (with not_member, banned, not_found or
 * forbidden the channel is no longer watched).
 */
export interface WatchEvent {
  channel: string;
  phase: "start" | "done" | "failed";
  result?: WatchResult;
  error?: SwitchboardError;
}

interface Pending {
  op: OpName;
  gen: number;
  /** this.received when it was sent. */
  sentAt: number;
  watch: boolean;
  since: number | undefined;
  resolve(v: unknown): void;
  reject(e: SwitchboardError): void;
}

interface Watch {
  seq: number;
  resyncing: boolean;
}

const defaults = {
  requestTimeoutMs: 15_000,
  minBackoffMs: 100,
  maxBackoffMs: 5_000,
  maxRetryMs: 30_000,
  initialTimeoutMs: 15_000,
};

const watchOps: ReadonlySet<string> = new Set(["channel.join", "channel.watch", "channel.create"]);

/** A Switchboard session. Create it with {@link connect}, or construct it and call open(). */
export class Client {
  readonly options: Readonly<ClientOptions>;
  private readonly urls: string[];
  private readonly cfg: typeof defaults;
  private ws: WebSocketLike | null = null;
  private gen = 0;
  private nextId = 1;
  private urlIndex = 0;
  /** Messages received on the current connection (a request that saw none come back suspects it). */
  private received = 0;
  private statusValue: ConnectionStatus = "connecting";
  private sessionValue: ConnectResult | null = null;
  private closed = false;
  private started = false;
  private lastErrorValue: SwitchboardError | null = null;
  private readonly pending = new Map<number, Pending>();
  private waiters: Array<() => void> = [];
  private readonly watched = new Map<string, Watch>();
  private readonly presenceWatched = new Set<string>();
  private readonly events = new Listeners<ServerEvent>();
  private readonly statuses = new Listeners<ConnectionStatus>();
  private readonly watchListeners = new Listeners<WatchEvent>();
  private readonly reconnects = new Listeners<ConnectResult>();
  private firstConnect: { resolve(r: ConnectResult): void; reject(e: SwitchboardError): void } | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private wake: (() => void) | null = null;
  private readonly onBrowserOnline = () => this.reconnectNow();

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
      minBackoffMs: options.minBackoffMs ?? defaults.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? defaults.maxBackoffMs,
      maxRetryMs: options.maxRetryMs ?? defaults.maxRetryMs,
      initialTimeoutMs: options.initialTimeoutMs ?? defaults.initialTimeoutMs,
    };
  }

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

  /** Listens to every event, in seq order per channel. Returns the unsubscribe function. */
  onEvent(listener: (e: ServerEvent) => void): () => void {
    return this.events.add(listener);
  }

  /** Listens to status changes. */
  onStatus(listener: (s: ConnectionStatus) => void): () => void {
    return this.statuses.add(listener);
  }

  /** Listens to watch results and channel resumes (see WatchEvent). */
  onWatch(listener: (e: WatchEvent) => void): () => void {
    return this.watchListeners.add(listener);
  }

  /** Listens to reconnections (not the first connection), once the session is back. */
  onReconnect(listener: (r: ConnectResult) => void): () => void {
    return this.reconnects.add(listener);
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

  /**
   * Sends one request and resolves with its result. An error reply rejects
   * with a SwitchboardError carrying its code (and retryAfterMs). Requests
   * that are safe to repeat are retried through `unavailable` replies and
   * reconnects, up to maxRetryMs; others reject with `disconnected` when the
   * connection drops before their reply.
   */
  async call<K extends OpName>(op: K, args: OpArgs<K>, opts: CallOptions = {}): Promise<OpResult<K>> {
    const deadline = Date.now() + this.cfg.maxRetryMs;
    let backoff = this.cfg.minBackoffMs;
    const retry = opts.retry !== false && IDEMPOTENT_OPS.has(op);
    for (;;) {
      try {
        const res = (await this.attempt(op, args, opts.timeoutMs ?? this.cfg.requestTimeoutMs)) as OpResult<K>;
        if (op === "presence.watch") for (const u of (res as OpResult<"presence.watch">).users) this.presenceWatched.add(u.id);
        if (op === "presence.unwatch") for (const u of (args as OpArgs<"presence.unwatch">).users) this.presenceWatched.delete(u);
        return res;
      } catch (err) {
        if (!(err instanceof SwitchboardError)) throw err;
        const again = retry && Date.now() < deadline && (err.code === "unavailable" || err.code === "disconnected");
        if (!again) throw err;
      }
      await sleep(jitter(backoff));
      backoff = Math.min(backoff * 2, this.cfg.maxBackoffMs);
    }
  }

  /** Ends the session: logout (the server forgets its watches), then offline. */
  async logout(): Promise<void> {
    try {
      if (this.statusValue === "online") await this.call("logout", {}, { retry: false, timeoutMs: 5000 });
    } catch {
      // closing anyway
    } finally {
      this.close();
    }
  }

  /** Closes the connection (1000) and fails what is outstanding with `closed`. Safe to call more than once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    (globalThis as { removeEventListener?: (t: string, f: () => void) => void }).removeEventListener?.("online", this.onBrowserOnline);
    this.reconnectNow();
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
    this.failPending(err);
    this.flushWaiters();
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

  /** The channels this session watches, with the last seq delivered for each. */
  watches(): Map<string, number> {
    return new Map([...this.watched].map(([ch, w]) => [ch, w.seq]));
  }

  /** Forgets a channel's watch locally (after channel.unwatch or leave), so a reconnect does not resume it. */
  forget(channel: string): void {
    this.watched.delete(channel);
  }

  /** Uploads a file (POST /v1/files) and resolves with its file object, to send as an attachment. */
  async upload(file: Blob, name?: string): Promise<import("./types.js").FileInfo> {
    const form = new FormData();
    form.append("file", file, name ?? ((file as { name?: string }).name || "file"));
    const res = await this.http("/v1/files", { method: "POST", body: form });
    const body = (await res.json()) as { file: import("./types.js").FileInfo };
    return body.file;
  }

  /** Downloads a file (a file object's url, or /v1/files/{id}) as a Blob. */
  async download(url: string): Promise<Blob> {
    const res = await this.http(url, { method: "GET" });
    return res.blob();
  }

  /** Fetches a path of the gateway with this session's credentials; a non-2xx answer rejects with its error code. */
  async http(path: string, init: RequestInit): Promise<Response> {
    const f = this.options.fetch ?? globalThis.fetch;
    const headers = new Headers(init.headers);
    headers.set("Authorization", await this.authorization());
    let res: Response;
    try {
      res = await f(new URL(path, this.httpOrigin).toString(), { ...init, headers });
    } catch (err) {
      throw new SwitchboardError("unavailable", `switchboard: ${init.method ?? "GET"} ${path}: ${String(err)}`);
    }
    if (!res.ok) {
      let wire: WireError = { code: res.status >= 500 ? "unavailable" : "bad_request", message: res.statusText };
      try {
        const body = (await res.json()) as { error?: WireError };
        if (body.error) wire = body.error;
      } catch {
        // not JSON
      }
      throw SwitchboardError.fromWire(wire);
    }
    return res;
  }

  private async authorization(): Promise<string> {
    const t = this.options.token;
    if (typeof t === "string") return `Bearer ${t}`;
    if (typeof t === "function") return `Bearer ${await t()}`;
    return `Dev ${this.sessionValue?.user.id ?? this.options.userId ?? ""}`;
  }

  // ---- connection ----

  private setStatus(s: ConnectionStatus): void {
    if (this.statusValue === s) return;
    this.statusValue = s;
    this.statuses.emit(s, this.warn);
  }

  private readonly warn = (msg: string, ...args: unknown[]): void => {
    this.options.logger?.warn(msg, ...args);
  };

  /** Dials until a connection is up (or a fatal error), then resumes. */
  private async connectLoop(reconnecting: boolean): Promise<void> {
    let backoff = this.cfg.minBackoffMs;
    let authFailures = 0;
    this.setStatus(reconnecting ? "reconnecting" : "connecting");
    for (;;) {
      if (this.closed) return;
      const url = this.urls[this.urlIndex % this.urls.length]!;
      try {
        await this.dial(url, reconnecting);
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
  private fail(err: SwitchboardError): void {
    this.lastErrorValue = err;
    const first = this.firstConnect;
    this.firstConnect = null;
    this.close();
    first?.reject(err);
  }

  /** Opens one WebSocket and sends connect; resolves once connect succeeded. */
  private async dial(url: string, reconnecting: boolean): Promise<ConnectResult> {
    const WS = this.options.WebSocket ?? globalWebSocket();
    if (!WS) throw new SwitchboardError("bad_request", "switchboard: no WebSocket implementation: pass options.WebSocket (e.g. the ws package)");
    const args: ConnectArgs = {};
    if (typeof this.options.token === "function") args.token = await this.options.token();
    else if (this.options.token) args.token = this.options.token;
    else if (this.options.userId) args.user_id = this.options.userId;
    if (this.options.name) args.name = this.options.name;
    const gen = ++this.gen;
    return new Promise<ConnectResult>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = this.options.webSocketOptions === undefined ? new WS(url, [SUBPROTOCOL]) : new WS(url, [SUBPROTOCOL], this.options.webSocketOptions as never);
      } catch (err) {
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
          reject(err);
        } else resolve(res!);
      };
      const timer = setTimeout(() => settle(new SwitchboardError("timeout", `switchboard: ${url}: no connection within ${this.cfg.requestTimeoutMs} ms`)), this.cfg.requestTimeoutMs);
      ws.onopen = () => {
        ws.send(JSON.stringify({ id: 0, op: "connect", args }));
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
          this.online(res, reconnecting);
          if (text.includes("\n")) this.receive(rest);
          return;
        }
        if (this.gen === gen) this.receive(text);
      };
    });
  }

  /** A connection is up: flush waiting requests, resume watches. */
  private online(res: ConnectResult, reconnecting: boolean): void {
    this.sessionValue = res;
    this.lastErrorValue = null;
    this.setStatus("online");
    this.flushWaiters();
    const first = this.firstConnect;
    this.firstConnect = null;
    first?.resolve(res);
    if (!reconnecting) return;
    for (const [ch, w] of this.watched) {
      w.resyncing = false;
      this.resync(ch);
    }
    void this.rewatchPresence();
    this.reconnects.emit(res, this.warn);
  }

  /** The connection of generation gen failed: fail its requests and reconnect (unless closed or logged out). */
  private dropped(gen: number, ws: WebSocketLike, why: string, code?: number): void {
    if (gen !== this.gen || this.ws !== ws) return;
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
    this.failPending(new SwitchboardError("disconnected", "switchboard: connection lost; the request may or may not have been carried out"));
    if (this.closed) return;
    if (code === 1000) {
      // logout (or another normal close by the server): the session is over.
      this.close();
      return;
    }
    void this.connectLoop(true);
  }

  private failPending(err: SwitchboardError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new SwitchboardError(err.code, err.message, { op: p.op }));
  }

  private flushWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Sends a request once (waiting for a connection) and waits for its reply. */
  private attempt(op: OpName, args: unknown, timeoutMs: number): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      let id = 0;
      let done = false;
      const finish = () => {
        done = true;
        clearTimeout(timer);
      };
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        const p = id ? this.pending.get(id) : undefined;
        if (id) this.pending.delete(id);
        reject(new SwitchboardError("timeout", `switchboard: ${op}: no reply within ${timeoutMs} ms`, { op }));
        // Nothing at all came back since the request went out: the
        // connection is likely dead without having said so.
        if (p && p.gen === this.gen && this.received === p.sentAt && this.ws) this.dropped(this.gen, this.ws, "no reply");
      }, timeoutMs);
      const send = () => {
        if (done) return;
        if (this.closed) {
          finish();
          reject(new SwitchboardError("closed", "switchboard: client closed", { op }));
          return;
        }
        const ws = this.ws;
        if (!ws || this.statusValue !== "online" || ws.readyState !== OPEN) {
          this.waiters.push(send);
          return;
        }
        id = this.nextId++;
        const since = watchOps.has(op) ? (args as { since_seq?: number }).since_seq : undefined;
        this.pending.set(id, {
          op,
          gen: this.gen,
          sentAt: this.received,
          watch: watchOps.has(op),
          since,
          resolve: (v) => {
            finish();
            resolve(v);
          },
          reject: (e) => {
            finish();
            reject(e);
          },
        });
        try {
          ws.send(JSON.stringify({ id, op, args }));
        } catch (err) {
          this.pending.delete(id);
          if (IDEMPOTENT_OPS.has(op)) {
            this.waiters.push(send); // the drop is noticed; wait for the next connection
            return;
          }
          finish();
          reject(new SwitchboardError("disconnected", `switchboard: ${op}: ${String(err)}`, { op }));
        }
      };
      send();
    });
  }

  // ---- frames and events ----

  private receive(text: string): void {
    this.received++;
    splitFrames(text, (f) => this.frame(f), (line, err) => this.warn("switchboard: undecodable frame", line.slice(0, 200), err));
  }

  private frame(f: Record<string, unknown>): void {
    if (typeof f["event"] === "string") {
      this.event(f as unknown as ServerEvent);
      return;
    }
    const id = f["id"];
    if (id === undefined || id === null) {
      if (f["error"]) this.warn("switchboard: error without id", f["error"]);
      return;
    }
    const p = typeof id === "number" ? this.pending.get(id) : undefined;
    if (!p) return;
    this.pending.delete(id as number);
    if (f["error"]) {
      p.reject(SwitchboardError.fromWire(f["error"] as WireError, p.op));
      return;
    }
    const result = f["result"];
    if (p.watch) this.watchResult(result as WatchResult, p.since);
    p.resolve(result);
  }

  /** Records a join, watch or create: delivers the missed events the result carries, then sets the channel's position. */
  private watchResult(r: WatchResult, since: number | undefined): void {
    const ch = r?.channel?.id;
    if (!ch) return;
    let w = this.watched.get(ch);
    if (!w) {
      w = { seq: 0, resyncing: false };
      this.watched.set(ch, w);
    }
    if (since !== undefined && since > w.seq && !r.reset) w.seq = since;
    for (const e of r.events ?? []) {
      if (e.seq !== undefined && e.seq > w.seq) {
        w.seq = e.seq;
        this.deliver(e);
      }
    }
    if (r.events_has_more) {
      w.resyncing = false;
      this.resync(ch);
      return;
    }
    if (r.seq > w.seq || r.reset) w.seq = r.seq;
    w.resyncing = false;
    this.watchListeners.emit({ channel: ch, phase: "done", result: r }, this.warn);
  }

  /** Delivers one event in seq order: repeats are dropped, a gap starts a resync. */
  private event(e: ServerEvent): void {
    const ch = e.channel;
    if (ch && e.seq) {
      const w = this.watched.get(ch);
      if (w) {
        if (e.seq <= w.seq) return;
        if (e.seq > w.seq + 1 || w.resyncing) {
          this.resync(ch);
          return;
        }
        w.seq = e.seq;
      }
    }
    this.deliver(e);
    if (ch && this.endsWatch(e)) this.watched.delete(ch);
  }

  private deliver(e: ServerEvent): void {
    this.events.emit(e, this.warn);
  }

  /**
   * Whether e stops this session receiving its channel: the channel was
   * deleted, this user left, was removed, kicked or banned, or the server
   * ended the watch.
   */
  private endsWatch(e: ServerEvent): boolean {
    const me = this.sessionValue?.user.id;
    switch (e.event) {
      case "channel.deleted":
      case "channel.unwatched":
        return true;
      case "member.left":
      case "member.kicked":
        return e.data.user === me;
      case "member.updated":
        return e.data.user === me && isBanned(e.data.member);
      default:
        return false;
    }
  }

  /** Watches ch again from the last seq delivered, unless a resync is in flight. */
  private resync(ch: string): void {
    const w = this.watched.get(ch);
    if (!w || w.resyncing) return;
    w.resyncing = true;
    const since = w.seq;
    this.watchListeners.emit({ channel: ch, phase: "start" }, this.warn);
    this.call("channel.watch", { channel: ch, since_seq: since }).then(
      () => {},
      (err: unknown) => {
        w.resyncing = false;
        const e = err instanceof SwitchboardError ? err : new SwitchboardError("internal", String(err));
        if (e.code === "not_member" || e.code === "banned" || e.code === "not_found" || e.code === "forbidden") this.watched.delete(ch);
        if (e.code !== "closed") this.watchListeners.emit({ channel: ch, phase: "failed", error: e }, this.warn);
      },
    );
  }

  /** Watches again, after a reconnect, the users whose presence was watched; their current status arrives as presence events. */
  private async rewatchPresence(): Promise<void> {
    const users = [...this.presenceWatched];
    for (let i = 0; i < users.length; i += 100) {
      try {
        const res = await this.call("presence.watch", { users: users.slice(i, i + 100) });
        for (const u of res.users) this.deliver({ event: "presence", data: { user: u.id, status: u.status, last_seen: u.last_seen } });
      } catch (err) {
        this.warn("switchboard: presence.watch after reconnect failed", err);
      }
    }
  }

}

function isBanned(m: Member | undefined): boolean {
  return !!m && m.membership === "banned";
}

function detach(ws: WebSocketLike): void {
  ws.onopen = null;
  ws.onmessage = null;
  ws.onclose = null;
  ws.onerror = null;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Connects a client and resolves once it is online (see Client.open). */
export async function connect(options: ClientOptions): Promise<Client> {
  const c = new Client(options);
  await c.open();
  return c;
}
