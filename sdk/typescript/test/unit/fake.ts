// An in-memory stand-in for a gateway, so the client's logic (matching,
// ordering, resuming, resending) can be driven step by step without a
// network. The integration tests run the same paths against a real node.

import type { WebSocketConstructor, WebSocketLike } from "../../src/transport.js";
import { CONNECT_SUBPROTOCOL_PREFIX, CONNECTED_SUBPROTOCOL, SUBPROTOCOL, type Channel, type ConnectResult, type Limits, type Member, type Message, type User } from "../../src/types.js";

export interface Request {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

/** What a handler answers: a result, an error, or nothing (answer later with sock.reply). */
export type Answer = { result: unknown } | { error: { code: string; message: string; retry_after_ms?: number } } | undefined;

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly requests: Request[] = [];
  /** The subprotocols the client offered; protocol is the one selected. */
  protocols: string[] = [];
  protocol = "";
  /** The connect taken from the offer in the upgrade (server.takesConnect), not sent as a frame. */
  offered: Request | undefined;
  /** Every frame of the offer: the connect, then the requests packed after it. */
  offeredAll: Request[] = [];
  /** While true, replies and events are held back (a connection that went quiet). */
  silent = false;

  constructor(
    readonly server: FakeServer,
    readonly url: string,
  ) {}

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("not open");
    for (const line of data.split("\n")) {
      const f = JSON.parse(line) as Request;
      this.requests.push(f);
      this.server.receive(this, f);
    }
  }

  close(code?: number, reason?: string): void {
    if (this.readyState === 3) return;
    const connecting = this.readyState === 0;
    this.readyState = 3;
    const cb = this.onclose;
    if (connecting) {
      // As Node's ws package does: an error event, which with no handler
      // is thrown where nothing catches it.
      queueMicrotask(() => {
        const onerror = this.onerror;
        if (onerror) onerror({ message: CLOSED_CONNECTING });
        else this.server.uncaught.push(CLOSED_CONNECTING);
      });
    }
    queueMicrotask(() => cb?.({ code: code ?? 1005, reason: reason ?? "" }));
  }

  /** Server side: sends frames packed into one message. */
  push(...frames: unknown[]): void {
    if (this.readyState !== 1 || this.silent) return;
    this.onmessage?.({ data: frames.map((f) => JSON.stringify(f)).join("\n") });
  }

  reply(id: number, a: Answer): void {
    if (a) this.push({ id, ...a });
  }

  /** Server side: the connection drops (code 1006), or the server closes it with code. */
  kill(code = 1006, reason = ""): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

export const limits: Limits = {
  max_frame_bytes: 65536, max_text_len: 4000, max_data_bytes: 8192, max_tags: 16, max_id_len: 128, max_name_len: 200,
  max_history_limit: 100, default_history_limit: 25, max_inflight: 64, max_events_per_replay: 500, max_mentions: 50,
  max_attachments: 10, max_reaction_name_len: 64, max_reaction_kinds: 32, max_file_bytes: 26214400, max_presence_watch: 1000,
};

export function user(id: string, status: "online" | "offline" = "online"): User {
  return { id, name: id, description: "", image: "", metadata: null, status, last_seen: null, created_at: T0, updated_at: T0 };
}

export const T0 = "2026-01-01T00:00:00.000Z";

export function channel(id: string, over: Partial<Channel> = {}): Channel {
  return {
    id, type: "standard", name: id, description: "", image: "", metadata: null, tags: [], public: true, distinct: false,
    member_count: 2, message_count: 0, last_segment: 0, last_message: null, muted_until: null, rate_limit: null,
    slow_mode_ms: 0, auto_delete_flags: 0, attached_to: null, typing_events: true, created_by: "alice",
    created_at: T0, updated_at: T0, last_activity: T0, deleted: false, ...over,
  };
}

export function member(user: string, ch: string, over: Partial<Member> = {}): Member {
  return {
    user, channel: ch, membership: "member", roles: ["member"], muted_until: null, banned_until: null,
    read_segment: 0, last_mentioned_segment: 0, unread_count: 0, created_at: T0, last_activity: T0, ...over,
  };
}

export function message(ch: string, segment: number, userId: string, text: string, over: Partial<Message> = {}): Message {
  return {
    id: `${segment}-m`, channel: ch, segment, user: userId, type: "text", text, data: null, metadata: null, tags: [],
    parent_id: "", reply_count: 0, mentions: [], attachments: [], reactions: {}, client_id: `c-${segment}`,
    created_at: `2026-01-01T00:00:${String(segment % 60).padStart(2, "0")}.000Z`, edited_at: null, deleted: false, system: null, ...over,
  };
}

/** A fake gateway: every socket it accepts is in sockets; handler answers requests. */
const CLOSED_CONNECTING = "WebSocket was closed before the connection was established";

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  /** URLs whose connections fail at once (a gateway that is down). */
  readonly down = new Set<string>();
  /** URLs whose upgrades never complete (a gateway that takes the TCP connection and says nothing). */
  readonly hung = new Set<string>();
  /** Errors a socket emitted with no handler: in Node, an uncaught exception. */
  readonly uncaught: string[] = [];
  /** Answers a request; the default answers connect as dev auth and {} to everything else. */
  handler: (req: Request, sock: FakeSocket) => Answer = (req) => this.defaultAnswer(req);
  /** Takes a connect offered in the upgrade, as a current gateway does (an older one does not). */
  takesConnect = false;
  private waiters: Array<() => void> = [];

  readonly WebSocket: WebSocketConstructor;

  constructor() {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string, protocols: string[]) {
        super(server, url);
        this.protocols = protocols;
        server.sockets.push(this);
        setTimeout(() => {
          if (this.readyState !== 0 || server.hung.has(url)) return;
          if (server.down.has(url)) {
            this.kill(1006);
            return;
          }
          this.readyState = 1;
          const offer = protocols.find((p) => p.startsWith(CONNECT_SUBPROTOCOL_PREFIX));
          if (server.takesConnect && offer && protocols.includes(CONNECTED_SUBPROTOCOL)) {
            this.protocol = CONNECTED_SUBPROTOCOL;
            const text = Buffer.from(offer.slice(CONNECT_SUBPROTOCOL_PREFIX.length), "base64url").toString();
            this.offeredAll = text.split("\n").map((l) => JSON.parse(l) as Request);
            this.offered = this.offeredAll[0];
            this.onopen?.({});
            for (const r of this.offeredAll) server.receive(this, r);
            return;
          }
          this.protocol = protocols.includes(SUBPROTOCOL) ? SUBPROTOCOL : "";
          this.onopen?.({});
        }, 0);
      }
    } as unknown as WebSocketConstructor;
  }

  defaultAnswer(req: Request): Answer {
    if (req.op === "connect") {
      const id = (req.args["user_id"] as string) ?? "token-user";
      const res: ConnectResult = { session_id: "s1", user: user(id), server_time: T0, limits };
      return { result: res };
    }
    return { result: {} };
  }

  /** The open socket (the newest). */
  get current(): FakeSocket {
    return this.sockets[this.sockets.length - 1]!;
  }

  receive(sock: FakeSocket, req: Request): void {
    const a = this.handler(req, sock);
    queueMicrotask(() => {
      sock.reply(req.id, a);
      this.notify();
    });
    this.notify();
  }

  private notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits until some socket received a request matching pred; returns it. */
  async request(pred: (r: Request) => boolean, timeoutMs = 2000): Promise<{ req: Request; sock: FakeSocket }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const s of this.sockets) {
        const r = s.requests.find(pred);
        if (r) return { req: r, sock: s };
      }
      if (Date.now() > deadline) throw new Error("no such request");
      await new Promise<void>((res) => {
        this.waiters.push(res);
        setTimeout(res, 20);
      });
    }
  }
}

/** Polls cond until true or the deadline. */
export async function until(cond: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
