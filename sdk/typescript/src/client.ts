// Client: one session with a Switchboard cluster, re-established across
// connection drops. It sends requests and matches their replies, delivers
// events in seq order, and — when the connection drops — reconnects (to
// the next gateway URL, with jittered backoff), resumes every watched
// channel from the last seq it delivered, and resends the requests that
// are safe to repeat (message.send keeps its client_id, so a resend never
// creates a second message).

import { Connection, type ClientOptions } from "./connection.js";
import { SwitchboardError } from "./errors.js";
import { Listeners } from "./listeners.js";
import { withFullMessage } from "./message.js";
import { jitter, OPEN, splitFrames, type WebSocketLike } from "./transport.js";
import {
  IDEMPOTENT_OPS,
  type ConnectResult,
  type FileInfo,
  type Member,
  type OpArgs,
  type OpName,
  type OpResult,
  type ServerEvent,
  type WatchResult,
  type WireError,
} from "./types.js";

export type { ClientOptions, ConnectionStatus } from "./connection.js";

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
 * out (after a reconnect: with its connect, or right after it). `done`:
 * a join, watch, create or resume result was applied, in order with the
 * events around it (its missed events were delivered
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
  /** The channel a watch, join or create names. */
  channel: string | undefined;
  since: number | undefined;
  resolve(v: unknown): void;
  reject(e: SwitchboardError): void;
}

/** A request waiting for a connection. */
interface Waiter {
  op: OpName;
  /** Sends it on the connection, or (with packGen) registers it for that connection being dialed and returns its frame; undefined when it is over already. */
  send(packGen?: number): string | undefined;
  /** Undoes send(packGen): the connection did not connect. */
  withdraw(): void;
}

/** Bounds on the requests packed with a connect: the upgrade's request head stays small. */
const MAX_PACKED = 8;
const MAX_PACKED_CHARS = 2048;

interface Watch {
  seq: number;
  resyncing: boolean;
  /** A resync's calls are running (tried again until they succeed). */
  inflight?: boolean;
  /** Its resync started while offline (reconnecting()): connected() tells listeners. */
  unannounced?: boolean;
  /**
   * The last watch of the channel given up on (its attempt timed out) while its reply may still come
   * (see abandonWatch): settles true once answered with a result, false once failed (with the
   * connection, or an error).
   */
  late?: Promise<boolean>;
}

const watchOps: ReadonlySet<string> = new Set(["channel.join", "channel.watch", "channel.create"]);

/** The longest rate_limited wait call() waits out itself before it sends a request again. */
export const MAX_RATE_WAIT_MS = 1000;

/** Failures of a resync that may pass if it is tried again. */
const TRANSIENT: ReadonlySet<string> = new Set(["timeout", "disconnected", "unavailable", "rate_limited", "internal"]);

/** A Switchboard session. Create it with {@link connect}, or construct it and call open(). */
export class Client extends Connection {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  /** The requests packed in the connection being dialed (see pack). */
  private packed: { gen: number; waiters: Waiter[] } | null = null;
  private readonly watched = new Map<string, Watch>();
  private readonly presenceWatched = new Set<string>();
  private readonly events = new Listeners<ServerEvent>();
  private readonly watchListeners = new Listeners<WatchEvent>();
  private readonly reconnects = new Listeners<ConnectResult>();

  /** Listens to every event, in seq order per channel. Returns the unsubscribe function. */
  onEvent(listener: (e: ServerEvent) => void): () => void {
    return this.events.add(listener);
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
   * Sends one request and resolves with its result. An error reply rejects
   * with a SwitchboardError carrying its code (and retryAfterMs). Requests
   * that are safe to repeat are retried through `unavailable` replies (with
   * backoff, never sooner than their retryAfterMs), `rate_limited` ones
   * asking for at most MAX_RATE_WAIT_MS (after that wait) and reconnects,
   * up to maxRetryMs; others reject with `disconnected` when the
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
        if (retry && err.code === "rate_limited") {
          // A short wait (a session's own request rate) is waited out; a
          // channel's slow mode or rate limit, usually seconds, goes to the caller.
          const wait = err.retryAfterMs ?? 0;
          if (wait <= 0 || wait > MAX_RATE_WAIT_MS || Date.now() + wait >= deadline) throw err;
          await sleep(wait);
          continue;
        }
        const wait = Math.max(jitter(backoff), err.retryAfterMs ?? 0);
        const again = retry && Date.now() + wait < deadline && (err.code === "unavailable" || err.code === "disconnected");
        if (!again) throw err;
        await sleep(wait);
      }
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

  /** The channels this session watches, with the last seq delivered for each. */
  watches(): Map<string, number> {
    return new Map([...this.watched].map(([ch, w]) => [ch, w.seq]));
  }

  /** Forgets a channel's watch locally (after channel.unwatch or leave), so a reconnect does not resume it. */
  forget(channel: string): void {
    this.watched.delete(channel);
  }

  /** Uploads a file (POST /v1/files) and resolves with its file object, to send as an attachment. */
  async upload(file: Blob, name?: string): Promise<FileInfo> {
    const form = new FormData();
    form.append("file", file, name ?? ((file as { name?: string }).name || "file"));
    const res = await this.http("/v1/files", { method: "POST", body: form });
    const body = (await res.json()) as { file: FileInfo };
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

  // ---- the connection's hooks ----

  protected connected(_res: ConnectResult, reconnecting: boolean): void {
    this.packed = null;
    this.flushWaiters();
    if (!reconnecting) return;
    for (const [ch, w] of this.watched) {
      // A resync in flight goes on by itself on this connection (its call
      // went with the connect or is retried here): starting another would
      // replay the channel twice. One started offline starts now, as far
      // as listeners can tell: until the session was back, it was stale.
      if (w.inflight) {
        if (w.unannounced) this.watchListeners.emit({ channel: ch, phase: "start" }, this.warn);
        w.unannounced = false;
        continue;
      }
      w.resyncing = false;
      this.resync(ch);
    }
    void this.rewatchPresence();
    this.reconnects.emit(_res, this.warn);
  }

  protected reconnecting(): void {
    // Every watch's resume waits for the next connection from now, so the
    // first MAX_PACKED go with its connect, in the same round trip (pack);
    // connected() tells listeners they started.
    for (const [ch, w] of this.watched) {
      if (w.inflight) continue;
      w.resyncing = false;
      this.resync(ch, false);
      w.unannounced = w.inflight;
    }
  }

  protected probe(ws: WebSocketLike): void {
    // No pending entry: the reply is only a sign of life (Connection counts
    // every message), and a server without the op answers it too (an error).
    try {
      ws.send(JSON.stringify({ id: this.nextId++, op: "ping", args: {} }));
    } catch {
      // closing: the drop is noticed
    }
  }

  protected lost(err: SwitchboardError): void {
    this.failPending(err);
  }

  protected ended(err: SwitchboardError): void {
    this.failPending(err);
    this.flushWaiters();
  }

  private failPending(err: SwitchboardError): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) p.reject(new SwitchboardError(err.code, err.message, { op: p.op }));
  }

  private flushWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f.send();
  }

  /**
   * Takes the idempotent requests at the head of the waiting ones (in
   * their order: the first that is not idempotent stops it) for the
   * connection of generation gen: they go with its connect, in the same
   * round trip. Only requests safe to repeat are packed, so a connection
   * that fails leaves them to wait again, whatever the server did.
   */
  protected pack(gen: number): string[] {
    const frames: string[] = [];
    const taken: Waiter[] = [];
    let chars = 0;
    while (frames.length < MAX_PACKED && this.waiters.length > 0 && IDEMPOTENT_OPS.has(this.waiters[0]!.op)) {
      const w = this.waiters[0]!;
      const f = w.send(gen);
      if (f !== undefined && chars + f.length > MAX_PACKED_CHARS) {
        w.withdraw();
        break;
      }
      this.waiters.shift();
      if (f === undefined) continue; // over already (timed out)
      chars += f.length;
      frames.push(f);
      taken.push(w);
    }
    this.packed = { gen, waiters: taken };
    return frames;
  }

  protected unpack(gen: number): void {
    const p = this.packed;
    if (!p || p.gen !== gen) return;
    this.packed = null;
    for (const w of p.waiters) w.withdraw();
    this.waiters.unshift(...p.waiters);
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
        if (p?.watch) this.abandonWatch(p);
        else if (id) this.pending.delete(id);
        reject(new SwitchboardError("timeout", `switchboard: ${op}: no reply within ${timeoutMs} ms`, { op }));
        // Nothing at all came back since the request went out: the
        // connection is likely dead without having said so.
        if (p && p.gen === this.gen && this.received === p.sentAt && this.ws) this.dropped(this.gen, this.ws, "no reply");
      }, timeoutMs);
      const send = (packGen?: number): string | undefined => {
        if (done) return undefined;
        if (this.closed) {
          finish();
          reject(new SwitchboardError("closed", "switchboard: client closed", { op }));
          return undefined;
        }
        const ws = this.ws;
        if (packGen === undefined && (!ws || this.statusValue !== "online" || ws.readyState !== OPEN)) {
          this.waiters.push(waiter);
          return undefined;
        }
        id = this.nextId++;
        const watch = watchOps.has(op);
        const wa = watch ? (args as { channel?: string; id?: string; since_seq?: number }) : undefined;
        this.pending.set(id, {
          op,
          gen: packGen ?? this.gen,
          sentAt: this.received,
          watch,
          channel: wa ? (wa.channel ?? wa.id) : undefined,
          since: wa?.since_seq,
          resolve: (v) => {
            finish();
            resolve(v);
          },
          reject: (e) => {
            finish();
            reject(e);
          },
        });
        const frame = JSON.stringify({ id, op, args });
        if (packGen !== undefined) return frame;
        try {
          ws!.send(frame);
        } catch (err) {
          this.pending.delete(id);
          if (IDEMPOTENT_OPS.has(op)) {
            this.waiters.push(waiter); // the drop is noticed; wait for the next connection
            return undefined;
          }
          finish();
          reject(new SwitchboardError("disconnected", `switchboard: ${op}: ${String(err)}`, { op }));
        }
        return undefined;
      };
      const waiter: Waiter = {
        op,
        send,
        withdraw: () => {
          if (id) this.pending.delete(id);
          id = 0;
        },
      };
      send();
    });
  }

  // ---- frames and events ----

  protected receive(text: string): void {
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

  /**
   * Keeps a join or watch whose attempt timed out for its reply. The
   * gateway answers every request it took, and once it answers a watch it
   * sends the session the events after the reply's position: the reply's
   * missed events must still be taken (frame() does, answering no one), or
   * the channel would jump past them. The channel's resync waits for it
   * rather than ask a second time.
   */
  private abandonWatch(p: Pending): void {
    let settle!: (ok: boolean) => void;
    const late = new Promise<boolean>((r) => (settle = r));
    p.resolve = () => settle(true);
    p.reject = () => settle(false);
    const w = p.channel === undefined ? undefined : this.watched.get(p.channel);
    if (w) w.late = late;
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
    if (e.event === "channel.removed") this.watched.delete(e.data.channel);
  }

  private deliver(e: ServerEvent): void {
    this.events.emit(withFullMessage(e), this.warn);
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

  /**
   * Watches ch again from the last seq delivered, unless a resync is in
   * flight; announce tells listeners it started (reconnecting() leaves
   * that to connected()). A resync that fails for a reason that may pass
   * (its attempt timed out, the connection dropped, the host was
   * unavailable past maxRetryMs) is tried again, backing off, until it
   * succeeds, the channel is forgotten or the client closes: giving up
   * would leave a gap nothing fills. A refusal (not a member, banned) ends it.
   */
  private resync(ch: string, announce = true): void {
    const w = this.watched.get(ch);
    if (!w || w.resyncing) return;
    w.resyncing = true;
    w.inflight = true;
    if (announce) this.watchListeners.emit({ channel: ch, phase: "start" }, this.warn);
    void this.resyncCalls(ch, w);
  }

  private async resyncCalls(ch: string, w: Watch): Promise<void> {
    let backoff = this.cfg.minBackoffMs;
    for (;;) {
      const prior = w.late;
      try {
        await this.call("channel.watch", { channel: ch, since_seq: w.seq });
        w.inflight = false;
        return; // the reply's own handling ends the resync (or starts its next page)
      } catch (err) {
        const e = err instanceof SwitchboardError ? err : new SwitchboardError("internal", String(err));
        if (e.code === "timeout" && w.late && w.late !== prior && (await this.awaitLate(w.late))) {
          w.inflight = false;
          return; // given up on, then answered after all: watchResult took it
        }
        const again = TRANSIENT.has(e.code) && !this.closed && this.watched.get(ch) === w;
        if (!again) {
          w.resyncing = false;
          w.inflight = false;
          if (e.code === "not_member" || e.code === "banned" || e.code === "not_found" || e.code === "forbidden") this.watched.delete(ch);
          if (e.code !== "closed") this.watchListeners.emit({ channel: ch, phase: "failed", error: e }, this.warn);
          return;
        }
      }
      await sleep(jitter(backoff));
      backoff = Math.min(backoff * 2, this.cfg.maxBackoffMs);
    }
  }

  /** Waits, at most requestTimeoutMs, for a watch given up on; true if it was answered with a result (another sent meanwhile would have its events sent twice). */
  private async awaitLate(late: Promise<boolean>): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), this.cfg.requestTimeoutMs)));
    try {
      return await Promise.race([late, bound]);
    } finally {
      clearTimeout(timer);
    }
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

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Connects a client and resolves once it is online (see Client.open). */
export async function connect(options: ClientOptions): Promise<Client> {
  const c = new Client(options);
  await c.open();
  return c;
}
