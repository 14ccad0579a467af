// The chat store's core: its state, change notification (subscribe and
// immutable snapshots), and how server events and watch results keep the
// state current. ChatStore (store.ts) adds the actions.

import type { Client, ClientOptions, ConnectionStatus, WatchEvent } from "../client.js";
import { SwitchboardError } from "../errors.js";
import type { Channel, Member, Message, ServerEvent, User, WatchResult } from "../types.js";
import { ChatData, placeholderUser, type Chat, type ChatMessage, type ChatState } from "./state.js";

/** How to sign in: a session token (or a function for fresh ones), or a user id in development auth. */
export interface LoginInput {
  token?: string | (() => string | Promise<string>);
  userId?: string;
  name?: string;
}

export interface StoreOptions {
  /** Connection options used by login (urls, WebSocket, timeouts…). */
  connection?: Omit<ClientOptions, "token" | "userId" | "name">;
  /** An already created client to use instead (login then only opens it). */
  client?: Client;
  /** Most chats watched live at once (default 200); others load when opened. */
  watchLimit?: number;
  /** A typing indicator not renewed for this long disappears (default 10 000 ms). */
  typingTimeoutMs?: number;
  /** How often typing() renews typing.start while the user types (default 2500 ms). */
  typingRenewMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** State, notification and event handling, shared by ChatStore's actions. */
export class StoreCore {
  protected readonly opts: StoreOptions;
  protected clientValue: Client | null;
  protected unsubs: Array<() => void> = [];
  protected readonly chats = new Map<string, ChatData>();
  protected users: Record<string, User> = {};
  protected invites: Channel[] = [];
  protected me: User | null = null;
  protected status: ConnectionStatus = "offline";
  protected fetching = false;
  protected error: SwitchboardError | null = null;
  protected state: ChatState | null = null;
  protected readonly listeners = new Set<() => void>();
  protected notifyQueued = false;
  protected presenceQueue = new Set<string>();
  protected readonly presenceAsked = new Set<string>();
  protected presenceFlush: Promise<void> | null = null;
  protected typingTimer: ReturnType<typeof setTimeout> | null = null;
  protected readonly typingSent = new Map<string, number>();
  protected readonly now: () => number;

  constructor(opts: StoreOptions = {}) {
    this.opts = opts;
    this.clientValue = opts.client ?? null;
    this.now = opts.now ?? Date.now;
  }

  /** The client, once logged in. */
  get client(): Client {
    if (!this.clientValue) throw new SwitchboardError("not_connected", "switchboard: not logged in");
    return this.clientValue;
  }

  /** Calls listener after every change (batched: at most once per microtask). Returns the unsubscribe function. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** The current state: an immutable snapshot, the same object until something changes. */
  getSnapshot = (): ChatState => {
    if (this.state) return this.state;
    const chats: Record<string, Chat> = {};
    for (const [id, c] of this.chats) chats[id] = c.snapshot(this.me);
    const chatIds = Object.keys(chats).sort((a, b) => {
      const x = chats[a]!.channel.last_activity;
      const y = chats[b]!.channel.last_activity;
      return x === y ? (a < b ? -1 : 1) : x < y ? 1 : -1;
    });
    this.state = {
      status: this.status,
      isLoggedIn: this.me !== null,
      me: this.me,
      users: this.users,
      chats,
      chatIds,
      invites: this.invites,
      fetching: this.fetching,
      error: this.error,
    };
    return this.state;
  };

  /** The chat a join, watch or create just loaded (its result was applied before the call resolved). */
  protected loaded(id: string): Chat {
    const c = this.chat(id);
    if (!c) throw new SwitchboardError("internal", `switchboard: ${id} was not loaded into the store`);
    return c;
  }

  /** A chat's timeline (top-level messages, then outgoing ones); empty for an unknown chat. */
  messages(chatId: string): readonly ChatMessage[] {
    return this.chat(chatId)?.messages ?? [];
  }

  /** The replies known so far to a message (see loadThread); empty when none. */
  replies(chatId: string, messageId: string): readonly ChatMessage[] {
    return this.chat(chatId)?.threads[messageId]?.messages ?? [];
  }

  /** One chat's snapshot. */
  chat(id: string): Chat | undefined {
    return this.getSnapshot().chats[id];
  }

  protected changed(chat?: ChatData): void {
    chat?.touch();
    this.state = null;
    if (this.notifyQueued) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      for (const l of [...this.listeners]) {
        try {
          l();
        } catch (err) {
          this.client_warn("switchboard: store listener threw", err);
        }
      }
    });
  }

  protected client_warn(msg: string, ...args: unknown[]): void {
    this.clientValue?.options.logger?.warn(msg, ...args);
  }

  /** Loads every member of a chat (up to 1000) and watches their presence. */
  async loadMembers(chatId: string): Promise<readonly Member[]> {
    const all: Member[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.client.call("members.list", { channel: chatId, limit: 100, ...(cursor ? { cursor } : {}) });
      all.push(...page.members);
      cursor = page.cursor;
    } while (cursor && all.length < 1000);
    const c = this.chats.get(chatId);
    if (c) {
      c.setMembers(all);
      this.changed(c);
    }
    this.watchUsers(all.map((m) => m.user));
    return all;
  }

  /**
   * Reloads a chat an import changed wholesale (channel.updated with
   * reason imported): its newest page of messages, and its members when
   * they were loaded.
   */
  protected reloadImported(c: ChatData): void {
    c.status = "reloading";
    this.changed(c);
    this.client.call("messages.history", { channel: c.id, limit: 25 }).then(
      (res) => {
        c.replace(res.messages, res.has_more);
        c.status = "ready";
        this.watchUsers(res.messages.map((m) => m.user));
        this.changed(c);
      },
      (err: unknown) => {
        c.status = "ready";
        c.sync = "stale";
        c.error = err instanceof SwitchboardError ? err : null;
        this.changed(c);
      },
    );
    if (c.membersLoaded) this.loadMembers(c.id).catch(() => {});
  }

  /** Fetches the profiles and watches the presence of users not yet known (batched). */
  watchUsers(ids: Iterable<string>): void {
    for (const id of ids) {
      if (!id || this.presenceAsked.has(id)) continue;
      this.presenceAsked.add(id);
      this.presenceQueue.add(id);
    }
    if (this.presenceQueue.size === 0 || this.presenceFlush) return;
    this.presenceFlush = Promise.resolve().then(async () => {
      const max = this.clientValue?.session?.limits.max_presence_watch ?? 1000;
      while (this.presenceQueue.size > 0 && this.clientValue) {
        const batch = [...this.presenceQueue].slice(0, 100);
        for (const u of batch) this.presenceQueue.delete(u);
        const room = max - (this.presenceAsked.size - this.presenceQueue.size - batch.length);
        const op = room >= batch.length ? "presence.watch" : "users.get";
        try {
          const users = op === "presence.watch" ? (await this.client.call("presence.watch", { users: batch })).users : (await this.client.call("users.get", { ids: batch })).users;
          const next = { ...this.users };
          for (const u of users) next[u.id] = u.id === this.me?.id && this.me ? { ...u, ...(this.me.admin ? { admin: true } : {}) } : u;
          this.users = next;
          this.changed();
        } catch {
          for (const u of batch) this.presenceAsked.delete(u);
        }
      }
      this.presenceFlush = null;
    });
  }

  /** A user's profile (a placeholder until fetched). */
  user(id: string): User {
    return this.getSnapshot().users[id] ?? placeholderUser(id);
  }

  protected onStatus(s: ConnectionStatus): void {
    this.status = s;
    if (s !== "online") {
      for (const c of this.chats.values()) {
        if (c.sync !== "stale") {
          c.sync = "stale";
          c.touch();
        }
      }
    }
    this.changed();
  }

  protected onWatch(e: WatchEvent): void {
    let c = this.chats.get(e.channel);
    if (e.phase === "start") {
      if (c) {
        c.sync = "syncing";
        this.changed(c);
      }
      return;
    }
    if (e.phase === "failed") {
      if (!c) return;
      const code = e.error?.code;
      if (code === "not_member" || code === "banned" || code === "not_found" || code === "forbidden") this.dropChat(c.id);
      else {
        c.sync = "stale";
        c.error = e.error ?? null;
      }
      this.changed(c);
      return;
    }
    // channel.create answers {channel, member, seq}: no page (a new channel has no messages).
    const r = e.result as WatchResult;
    const page = r.messages ?? [];
    if (!c) {
      c = new ChatData(r.channel, r.member);
      this.chats.set(c.id, c);
    }
    this.setChannel(c, r.channel);
    if (r.member) this.setMember(c, r.member);
    if (r.reset || c.status === "loading" || c.count === 0) {
      if (r.reset) c.status = "reloading";
      c.replace(page, r.messages_has_more ?? false);
    } else {
      for (const m of page) c.upsert(m, false);
    }
    c.lastSegment = Math.max(c.lastSegment, r.channel.last_segment);
    c.status = "ready";
    c.sync = "synced";
    c.error = null;
    this.invites = this.invites.filter((ch) => ch.id !== c.id);
    this.watchUsers(page.map((m) => m.user));
    if (r.channel.type === "conversation" && !c.membersLoaded) this.loadMembers(c.id).catch(() => {});
    this.changed(c);
  }

  protected onEvent(e: ServerEvent): void {
    if (e.event === "presence") {
      const u = this.users[e.data.user] ?? placeholderUser(e.data.user);
      this.users = { ...this.users, [u.id]: { ...u, status: e.data.status, last_seen: e.data.last_seen ?? u.last_seen } };
      this.changed();
      return;
    }
    if (e.event === "channel.added") {
      this.added(e.data.channel, e.data.reason);
      return;
    }
    if (e.event === "channel.removed") {
      this.dropChat(e.data.channel);
      this.invites = this.invites.filter((ch) => ch.id !== e.data.channel);
      this.changed();
      return;
    }
    const c = e.channel ? this.chats.get(e.channel) : undefined;
    if (!c) return;
    const me = this.me?.id;
    switch (e.event) {
      case "message.new": {
        const m = this.ingest(c, e.data.message, true);
        if (m.user === me) c.readSegment = Math.max(c.readSegment, m.segment);
        else if (me && m.mentions.includes(me)) c.lastMentioned = Math.max(c.lastMentioned, m.segment);
        c.typing.delete(m.user);
        this.setChannel(c, {
          ...c.channel,
          last_message: e.data.message,
          last_segment: Math.max(c.channel.last_segment, m.segment),
          last_activity: m.created_at > c.channel.last_activity ? m.created_at : c.channel.last_activity,
          message_count: c.channel.message_count + 1,
        });
        this.watchUsers([m.user]);
        break;
      }
      case "message.updated":
      case "message.deleted":
      case "reaction.updated": {
        const m = e.data.message;
        const stored = this.ingest(c, m, true);
        if (e.event === "reaction.updated" && e.data.user === me) {
          const mine = new Set(stored.my_reactions ?? []);
          if (e.data.added) mine.add(e.data.name);
          else mine.delete(e.data.name);
          stored.my_reactions = [...mine];
        }
        if (c.channel.last_message?.id === m.id) this.setChannel(c, { ...c.channel, last_message: m });
        break;
      }
      case "typing":
        if (e.data.user === me) break;
        if (e.data.active) c.typing.set(e.data.user, this.now() + (this.opts.typingTimeoutMs ?? 10_000));
        else c.typing.delete(e.data.user);
        this.scheduleTypingSweep();
        this.watchUsers([e.data.user]);
        break;
      case "read":
        if (e.data.user === me) c.readSegment = Math.max(c.readSegment, e.data.segment);
        else c.readBy.set(e.data.user, Math.max(c.readBy.get(e.data.user) ?? 0, e.data.segment));
        break;
      case "channel.updated":
        this.setChannel(c, e.data.channel);
        if (e.data.reason === "imported") this.reloadImported(c);
        break;
      case "channel.deleted":
        this.dropChat(c.id);
        break;
      case "member.joined":
        this.upsertMembers(c.id, [e.data.member], true);
        this.watchUsers([e.data.user]);
        break;
      case "member.updated":
        if (e.data.user === me && e.data.member.membership === "banned") {
          this.dropChat(c.id);
          break;
        }
        this.upsertMembers(c.id, [e.data.member]);
        break;
      case "member.left":
      case "member.kicked":
        if (e.data.user === me) {
          this.dropChat(c.id);
          break;
        }
        {
          // An invitee's decline leaves too, but invitations never counted.
          const was = c.removeMember(e.data.user);
          if (was?.membership !== "invited") this.setChannel(c, { ...c.channel, member_count: Math.max(0, c.channel.member_count - 1) });
        }
        break;
      case "channel.unwatched":
        c.sync = "stale";
        c.error = SwitchboardError.fromWire(e.data.error);
        break;
    }
    this.changed(c);
  }

  /**
   * A notice: the user was put in a channel — by someone else (a
   * conversation they started, members.add), or by another of the user's
   * sessions. A new chat is watched; an invitation joins the invites.
   */
  private added(ch: Channel, reason: string): void {
    if (reason === "invited") {
      if (!this.invites.some((c) => c.id === ch.id)) this.invites = [...this.invites, ch];
      this.changed();
      return;
    }
    this.invites = this.invites.filter((c) => c.id !== ch.id);
    const known = this.chats.get(ch.id);
    if (known) {
      this.setChannel(known, ch);
      this.changed(known);
      return;
    }
    const c = new ChatData(ch, null);
    this.chats.set(ch.id, c);
    this.changed(c);
    this.clientValue?.call("channel.watch", { channel: ch.id }).catch((err) => this.chatError(ch.id, err));
  }

  /** Stores a server message in a chat (replacing its outgoing copy). */
  protected ingest(c: ChatData, m: Message, fromEvent: boolean): ChatMessage {
    const stored = c.upsert(m, fromEvent);
    this.changed(c);
    return stored;
  }

  protected setChannel(c: ChatData, ch: Channel): void {
    const last = c.channel.last_message;
    c.channel = { ...ch, last_message: ch.last_message ?? last };
    delete c.channel.member;
    delete c.channel.unread_count;
    delete c.channel.mentioned;
    if (ch.last_segment > c.lastSegment) c.lastSegment = ch.last_segment;
    c.touch();
  }

  protected setMember(c: ChatData, m: Member): void {
    c.member = m;
    c.readSegment = Math.max(c.readSegment, m.read_segment);
    c.lastMentioned = Math.max(c.lastMentioned, m.last_mentioned_segment);
    c.putMember(m);
    c.touch();
  }

  protected upsertMembers(chatId: string, members: Member[], joined = false): void {
    const c = this.chats.get(chatId);
    if (!c) return;
    for (const m of members) {
      if (m.user === this.me?.id) this.setMember(c, m);
      else c.putMember(m);
      // member.joined is sent for a new member or viewer only (an invitee who accepts included).
      if (joined) this.setChannel(c, { ...c.channel, member_count: c.channel.member_count + 1 });
    }
    this.changed(c);
  }

  protected dropChat(id: string): void {
    if (this.chats.delete(id)) this.clientValue?.forget(id);
    this.changed();
  }

  protected chatError(id: string, err: unknown): void {
    const c = this.chats.get(id);
    if (!c) return;
    c.error = asError(err);
    c.status = "ready";
    c.sync = "stale";
    this.changed(c);
  }

  protected requireChat(id: string): ChatData {
    const c = this.chats.get(id);
    if (!c) throw new SwitchboardError("not_member", `switchboard: not in chat ${id}: join or watch it first`);
    return c;
  }

  private scheduleTypingSweep(): void {
    if (this.typingTimer) return;
    let next = Infinity;
    for (const c of this.chats.values()) for (const t of c.typing.values()) next = Math.min(next, t);
    if (next === Infinity) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = null;
      this.sweepTyping();
    }, Math.max(0, next - this.now()) + 50);
    // A pending sweep alone keeps no Node process alive.
    (this.typingTimer as { unref?: () => void }).unref?.();
  }

  /** Hides typing indicators not renewed in time (runs on a timer; tests call it with their clock). */
  sweepTyping(): void {
    const t = this.now();
    for (const c of this.chats.values()) {
      let changed = false;
      for (const [u, exp] of c.typing) {
        if (exp <= t) {
          c.typing.delete(u);
          changed = true;
        }
      }
      if (changed) this.changed(c);
    }
    this.scheduleTypingSweep();
  }
}

export function asError(err: unknown): SwitchboardError {
  return err instanceof SwitchboardError ? err : new SwitchboardError("internal", String(err));
}
