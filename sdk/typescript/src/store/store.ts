// ChatStore: a live store of users, chats and messages over one Client.
// Actions map to protocol ops; server events and watch results keep the
// state current; subscribe() and getSnapshot() hand out immutable
// snapshots, so any UI framework can wrap it (React's
// useSyncExternalStore, Vue's shallowRef, Svelte's readable).

import { Client, type ClientOptions, type ConnectionStatus, type WatchEvent } from "../client.js";
import { SwitchboardError } from "../errors.js";
import type {
  Channel,
  ChannelCreateArgs,
  ChannelsQueryArgs,
  ChannelsQueryResult,
  FileInfo,
  JSONObject,
  Member,
  Message,
  MessageSendArgs,
  Role,
  ServerEvent,
  User,
  UserUpdateArgs,
  WatchResult,
} from "../types.js";
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

/** What send() takes besides text. */
export interface SendOptions {
  parentId?: string;
  attachments?: FileInfo[];
  mentions?: string[];
  type?: MessageSendArgs["type"];
  data?: JSONObject;
  metadata?: JSONObject;
  tags?: string[];
  /** Reuse a client_id (an idempotent retry of your own). */
  clientId?: string;
}

const PAGE = 25;

/** A new random client_id for message.send. */
export function newClientId(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

export class ChatStore {
  private readonly opts: StoreOptions;
  private clientValue: Client | null;
  private unsubs: Array<() => void> = [];
  private readonly chats = new Map<string, ChatData>();
  private users: Record<string, User> = {};
  private invites: Channel[] = [];
  private me: User | null = null;
  private status: ConnectionStatus = "offline";
  private fetching = false;
  private error: SwitchboardError | null = null;
  private state: ChatState | null = null;
  private readonly listeners = new Set<() => void>();
  private notifyQueued = false;
  private presenceQueue = new Set<string>();
  private readonly presenceAsked = new Set<string>();
  private presenceFlush: Promise<void> | null = null;
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly typingSent = new Map<string, number>();
  private readonly now: () => number;

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

  // ---- change notification ----

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
  private loaded(id: string): Chat {
    const c = this.chat(id);
    if (!c) throw new SwitchboardError("internal", `switchboard: ${id} was not loaded into the store`);
    return c;
  }

  /** One chat's snapshot. */
  chat(id: string): Chat | undefined {
    return this.getSnapshot().chats[id];
  }

  private changed(chat?: ChatData): void {
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

  private client_warn(msg: string, ...args: unknown[]): void {
    this.clientValue?.options.logger?.warn(msg, ...args);
  }

  // ---- session ----

  /** Connects as a user (creating them on first login) and loads their chats. */
  async login(input: LoginInput = {}): Promise<User> {
    if (!this.clientValue) {
      if (!this.opts.connection) throw new SwitchboardError("bad_request", "switchboard: StoreOptions.connection or client is required");
      this.clientValue = new Client({ ...this.opts.connection, ...input });
    }
    const c = this.clientValue;
    this.unsubs.push(
      c.onEvent((e) => this.onEvent(e)),
      c.onWatch((e) => this.onWatch(e)),
      c.onStatus((s) => this.onStatus(s)),
      c.onReconnect(() => void this.refreshChats().catch(() => {})),
    );
    this.status = c.status;
    this.error = null;
    this.changed();
    try {
      const res = await c.open();
      this.me = res.user;
      this.users = { ...this.users, [res.user.id]: res.user };
      this.status = c.status;
      this.changed();
      await this.load();
      return res.user;
    } catch (err) {
      this.error = asError(err);
      this.changed();
      throw err;
    }
  }

  /** Fetches the current user and the chat list, and watches the chats. */
  async load(): Promise<void> {
    const { user } = await this.client.call("me", {});
    this.me = user;
    this.users = { ...this.users, [user.id]: user };
    this.changed();
    await this.refreshChats();
  }

  /** Logs out (the server ends the session) and resets the store. */
  async logout(): Promise<void> {
    const c = this.clientValue;
    if (c) await c.logout();
    this.reset();
  }

  /** Forgets everything (without telling the server). */
  reset(): void {
    for (const u of this.unsubs) u();
    this.unsubs = [];
    if (this.clientValue && !this.opts.client) this.clientValue.close();
    this.clientValue = this.opts.client ?? null;
    this.chats.clear();
    this.users = {};
    this.invites = [];
    this.me = null;
    this.status = "offline";
    this.presenceAsked.clear();
    this.presenceQueue.clear();
    this.typingSent.clear();
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.changed();
  }

  /** Updates your profile. */
  async updateProfile(args: UserUpdateArgs): Promise<User> {
    const { user } = await this.client.call("user.update", args);
    this.me = { ...user, ...(this.me?.admin ? { admin: true } : {}) };
    this.users = { ...this.users, [user.id]: this.me };
    this.changed();
    return user;
  }

  // ---- chats ----

  /** Reloads the chat list (channels.list, every page) and watches chats not yet watched. */
  async refreshChats(): Promise<void> {
    this.fetching = true;
    this.changed();
    try {
      const mine: Channel[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.client.call("channels.list", { limit: 100, ...(cursor ? { cursor } : {}) });
        mine.push(...page.channels);
        cursor = page.cursor;
      } while (cursor && mine.length < 1000);
      const invites: Channel[] = [];
      const toWatch: string[] = [];
      for (const ch of mine) {
        if (ch.member?.membership === "invited") {
          invites.push(ch);
          continue;
        }
        let c = this.chats.get(ch.id);
        if (!c) {
          c = new ChatData(ch, ch.member ?? null);
          this.chats.set(ch.id, c);
          toWatch.push(ch.id);
        } else {
          this.setChannel(c, ch);
          if (ch.member) this.setMember(c, ch.member);
        }
        this.changed(c);
      }
      this.invites = invites;
      await this.watchAll(toWatch.slice(0, this.opts.watchLimit ?? 200));
    } catch (err) {
      this.error = asError(err);
      throw err;
    } finally {
      this.fetching = false;
      this.changed();
    }
  }

  private async watchAll(ids: string[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++]!;
        await this.watch(id).catch(() => {});
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  /** Watches a chat (loading its newest page) without joining it. */
  async watch(chatId: string): Promise<Chat> {
    try {
      await this.client.call("channel.watch", { channel: chatId });
    } catch (err) {
      this.chatError(chatId, err);
      throw err;
    }
    return this.loaded(chatId);
  }

  /** Joins a channel (or accepts an invitation) and watches it. */
  async join(chatId: string): Promise<Chat> {
    await this.client.call("channel.join", { channel: chatId });
    this.invites = this.invites.filter((c) => c.id !== chatId);
    this.changed();
    return this.loaded(chatId);
  }

  /** Joins the channel a join token admits to. */
  async joinByToken(token: string): Promise<Chat> {
    const res = await this.client.call("channel.join", { token });
    return this.loaded(res.channel.id);
  }

  /** Leaves a chat (or declines an invitation): it leaves the store. */
  async leave(chatId: string): Promise<void> {
    await this.client.call("channel.leave", { channel: chatId });
    this.dropChat(chatId);
    this.invites = this.invites.filter((c) => c.id !== chatId);
    this.changed();
  }

  /** Creates a channel (you become its owner) and watches it. */
  async create(args: ChannelCreateArgs): Promise<Chat> {
    const res = await this.client.call("channel.create", args);
    return this.loaded(res.channel.id);
  }

  /** Opens the direct conversation with these users (creating it the first time). */
  async openDirect(userIds: string[]): Promise<Chat> {
    return this.create({ type: "conversation", distinct: true, members: userIds });
  }

  /** Invites users to a chat. */
  async invite(chatId: string, users: string[]): Promise<Member[]> {
    const res = await this.client.call("members.invite", { channel: chatId, users });
    this.upsertMembers(chatId, res.members);
    return res.members;
  }

  /** Public channels (channels.query), newest first. */
  async queryChannels(args: ChannelsQueryArgs = {}): Promise<ChannelsQueryResult> {
    return this.client.call("channels.query", args);
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
      c.members = new Map(all.map((m) => [m.user, m]));
      this.changed(c);
    }
    this.watchUsers(all.map((m) => m.user));
    return all;
  }

  // ---- messages ----

  /**
   * Sends a message. It shows at once in the chat with status `sending`,
   * becomes `sent` when the server has it on disk, or `failed` (with its
   * error) — then resend() sends it again with the same client_id, so the
   * server never stores it twice.
   */
  async send(chatId: string, text: string, opts: SendOptions = {}): Promise<ChatMessage> {
    const c = this.requireChat(chatId);
    const clientId = opts.clientId ?? newClientId();
    const local: ChatMessage = {
      id: `local:${clientId}`,
      channel: chatId,
      segment: 0,
      user: this.me?.id ?? "",
      type: opts.type ?? (opts.attachments?.length ? attachmentType(opts.attachments) : "text"),
      text,
      data: opts.data ?? null,
      metadata: opts.metadata ?? null,
      tags: opts.tags ?? [],
      parent_id: opts.parentId ?? "",
      reply_count: 0,
      mentions: opts.mentions ?? [],
      attachments: opts.attachments ?? [],
      reactions: {},
      my_reactions: [],
      favorite: false,
      client_id: clientId,
      created_at: new Date(this.now()).toISOString(),
      edited_at: null,
      deleted: false,
      system: null,
      status: "sending",
    };
    c.pending.set(clientId, local);
    this.typingSent.delete(chatId);
    this.changed(c);
    return this.deliverOutgoing(c, local);
  }

  /** Sends a failed message again, with its client_id. */
  async resend(message: ChatMessage | string): Promise<ChatMessage> {
    const clientId = typeof message === "string" ? message : message.client_id;
    for (const c of this.chats.values()) {
      const m = c.pending.get(clientId);
      if (!m) continue;
      if (m.status === "sending") return m;
      const again: ChatMessage = { ...m, status: "sending" };
      delete again.error;
      c.pending.set(clientId, again);
      this.changed(c);
      return this.deliverOutgoing(c, again);
    }
    throw new SwitchboardError("not_found", `switchboard: no failed message with client_id ${clientId}`);
  }

  /** Drops a failed message without sending it. */
  discard(message: ChatMessage): void {
    const c = this.chats.get(message.channel);
    if (c?.pending.get(message.client_id)?.status === "failed") {
      c.pending.delete(message.client_id);
      this.changed(c);
    }
  }

  private async deliverOutgoing(c: ChatData, m: ChatMessage): Promise<ChatMessage> {
    const args: MessageSendArgs = { channel: c.id, client_id: m.client_id };
    if (m.text) args.text = m.text;
    if (m.type !== "text" && m.type !== "system") args.type = m.type;
    if (m.parent_id) args.parent_id = m.parent_id;
    if (m.mentions.length) args.mentions = m.mentions;
    if (m.attachments.length) args.attachments = m.attachments.map((f) => f.id);
    if (m.data) args.data = m.data;
    if (m.metadata) args.metadata = m.metadata;
    if (m.tags.length) args.tags = m.tags;
    try {
      const { message } = await this.client.call("message.send", args);
      const stored = this.ingest(c, message, false);
      return stored;
    } catch (err) {
      const cur = c.pending.get(m.client_id);
      if (!cur) {
        // Its message.new arrived meanwhile: it was sent after all.
        const sent = c.byClientId(m.client_id, m.user);
        if (sent) return sent;
        throw err;
      }
      const failed: ChatMessage = { ...cur, status: "failed", error: asError(err) };
      c.pending.set(m.client_id, failed);
      this.changed(c);
      throw err;
    }
  }

  /** Edits your message's text. */
  async edit(chatId: string, messageId: string, text: string): Promise<ChatMessage> {
    const { message } = await this.client.call("message.edit", { channel: chatId, message_id: messageId, text });
    return this.ingest(this.requireChat(chatId), message, false);
  }

  /** Deletes a message (yours, or any as a moderator). */
  async delete(chatId: string, messageId: string): Promise<ChatMessage> {
    const { message } = await this.client.call("message.delete", { channel: chatId, message_id: messageId });
    return this.ingest(this.requireChat(chatId), message, false);
  }

  /** Adds or removes your reaction (on: default toggles). */
  async react(chatId: string, messageId: string, name: string, on?: boolean): Promise<ChatMessage> {
    const c = this.requireChat(chatId);
    const has = c.message(messageId)?.my_reactions?.includes(name) ?? false;
    const add = on ?? !has;
    const { message } = await this.client.call(add ? "reaction.add" : "reaction.remove", { channel: chatId, message_id: messageId, name });
    return this.ingest(c, message, false);
  }

  /** Marks or unmarks a message as a favorite of yours. */
  async favorite(chatId: string, messageId: string, on: boolean): Promise<void> {
    await this.client.call("message.favorite", { channel: chatId, message_id: messageId, on });
    const c = this.requireChat(chatId);
    const m = c.message(messageId);
    if (m) this.ingest(c, { ...m, favorite: on }, false);
  }

  /** Reports a message to the moderators. */
  async flag(chatId: string, messageId: string, reason?: string): Promise<void> {
    await this.client.call("message.flag", { channel: chatId, message_id: messageId, ...(reason ? { reason } : {}) });
  }

  /** Marks the chat read up to segment (default: its newest message). Does nothing when already read. */
  async markRead(chatId: string, segment?: number): Promise<void> {
    const c = this.chats.get(chatId);
    if (!c || !c.member || (c.member.membership !== "member" && c.member.membership !== "viewer")) return;
    const target = segment ?? c.lastSegment;
    if (target <= c.readSegment) return;
    c.readSegment = target; // at once: the badge clears while the request is on its way
    this.changed(c);
    const { member } = await this.client.call("read.mark", { channel: chatId, ...(segment !== undefined ? { segment } : {}) });
    this.setMember(c, member);
  }

  /** Loads the previous page (25 messages) of a chat's history. */
  async loadOlder(chatId: string): Promise<void> {
    const c = this.requireChat(chatId);
    if (!c.hasMore || c.loadingOlder) return;
    c.loadingOlder = true;
    this.changed(c);
    try {
      const before = c.oldestSegment;
      const res = await this.client.call("messages.history", { channel: chatId, limit: PAGE, ...(before ? { before } : {}) });
      for (const m of res.messages) c.upsert(m, false);
      c.hasMore = res.has_more;
      this.watchUsers(res.messages.map((m) => m.user));
    } finally {
      c.loadingOlder = false;
      this.changed(c);
    }
  }

  /** Loads a thread's replies, a page (25) at a time: the newest first, then older on each call. */
  async loadThread(chatId: string, parentId: string): Promise<void> {
    const c = this.requireChat(chatId);
    const t = c.thread(parentId);
    if (t.loading || (t.loaded && !t.hasMore)) return;
    t.loading = true;
    this.changed(c);
    try {
      const before = t.loaded ? c.oldestReply(parentId) : 0;
      const res = await this.client.call("messages.history", {
        channel: chatId,
        parent_id: parentId,
        limit: PAGE,
        ...(before ? { before } : {}),
      });
      for (const m of res.messages) c.upsert(m, false);
      t.hasMore = res.has_more;
      t.loaded = true;
      this.watchUsers(res.messages.map((m) => m.user));
    } finally {
      t.loading = false;
      this.changed(c);
    }
  }

  /**
   * Says you are typing: call it on every keystroke; typing.start goes out
   * at most every typingRenewMs. stopTyping (or sending) ends it.
   */
  typing(chatId: string): void {
    const last = this.typingSent.get(chatId) ?? 0;
    const t = this.now();
    if (t - last < (this.opts.typingRenewMs ?? 2500)) return;
    this.typingSent.set(chatId, t);
    this.client.call("typing.start", { channel: chatId }, { retry: false }).catch(() => this.typingSent.delete(chatId));
  }

  stopTyping(chatId: string): void {
    if (!this.typingSent.delete(chatId)) return;
    this.client.call("typing.stop", { channel: chatId }, { retry: false }).catch(() => {});
  }

  /** Uploads a file, to send as an attachment. */
  upload(file: Blob, name?: string): Promise<FileInfo> {
    return this.client.upload(file, name);
  }

  // ---- moderation ----

  async mute(chatId: string, user: string, durationMin: number, reason?: string): Promise<Member> {
    const { member } = await this.client.call("member.mute", { channel: chatId, user, duration_min: durationMin, ...(reason ? { reason } : {}) });
    this.upsertMembers(chatId, [member]);
    return member;
  }
  async unmute(chatId: string, user: string): Promise<Member | null> {
    const { member } = await this.client.call("member.unmute", { channel: chatId, user });
    if (member) this.upsertMembers(chatId, [member]);
    return member;
  }
  async ban(chatId: string, user: string, durationMin: number, reason?: string): Promise<Member> {
    const { member } = await this.client.call("member.ban", { channel: chatId, user, duration_min: durationMin, ...(reason ? { reason } : {}) });
    this.upsertMembers(chatId, [member]);
    return member;
  }
  async unban(chatId: string, user: string): Promise<Member | null> {
    const { member } = await this.client.call("member.unban", { channel: chatId, user });
    if (member) this.upsertMembers(chatId, [member]);
    return member;
  }
  async kick(chatId: string, user: string, reason?: string): Promise<void> {
    await this.client.call("member.kick", { channel: chatId, user, ...(reason ? { reason } : {}) });
  }
  async setRoles(chatId: string, user: string, roles: Role[]): Promise<Member> {
    const { member } = await this.client.call("member.roles", { channel: chatId, user, roles });
    this.upsertMembers(chatId, [member]);
    return member;
  }
  async muteChannel(chatId: string, durationMin: number): Promise<void> {
    const { channel } = await this.client.call("channel.mute", { channel: chatId, duration_min: durationMin });
    const c = this.chats.get(chatId);
    if (c) this.setChannel(c, channel);
  }
  async unmuteChannel(chatId: string): Promise<void> {
    const { channel } = await this.client.call("channel.unmute", { channel: chatId });
    const c = this.chats.get(chatId);
    if (c) this.setChannel(c, channel);
  }

  // ---- users and presence ----

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

  // ---- events ----

  private onStatus(s: ConnectionStatus): void {
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

  private onWatch(e: WatchEvent): void {
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
    if (r.channel.type === "conversation" && !c.members) this.loadMembers(c.id).catch(() => {});
    this.changed(c);
  }

  private onEvent(e: ServerEvent): void {
    if (e.event === "presence") {
      const u = this.users[e.data.user] ?? placeholderUser(e.data.user);
      this.users = { ...this.users, [u.id]: { ...u, status: e.data.status, last_seen: e.data.last_seen ?? u.last_seen } };
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
          const was = c.members?.get(e.data.user);
          c.members?.delete(e.data.user);
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

  /** Stores a server message in a chat (replacing its outgoing copy). */
  private ingest(c: ChatData, m: Message, fromEvent: boolean): ChatMessage {
    const stored = c.upsert(m, fromEvent);
    this.changed(c);
    return stored;
  }

  private setChannel(c: ChatData, ch: Channel): void {
    const last = c.channel.last_message;
    c.channel = { ...ch, last_message: ch.last_message ?? last };
    delete c.channel.member;
    delete c.channel.unread_count;
    delete c.channel.mentioned;
    if (ch.last_segment > c.lastSegment) c.lastSegment = ch.last_segment;
    c.touch();
  }

  private setMember(c: ChatData, m: Member): void {
    c.member = m;
    c.readSegment = Math.max(c.readSegment, m.read_segment);
    c.lastMentioned = Math.max(c.lastMentioned, m.last_mentioned_segment);
    if (c.members && m.membership !== "none") c.members.set(m.user, m);
    c.touch();
  }

  private upsertMembers(chatId: string, members: Member[], joined = false): void {
    const c = this.chats.get(chatId);
    if (!c) return;
    for (const m of members) {
      if (m.user === this.me?.id) this.setMember(c, m);
      // member.joined is sent for a new member or viewer only (an invitee who accepts included).
      if (joined) this.setChannel(c, { ...c.channel, member_count: c.channel.member_count + 1 });
      if (!c.members) continue;
      if (m.membership === "none") c.members.delete(m.user);
      else c.members.set(m.user, m);
    }
    this.changed(c);
  }

  private dropChat(id: string): void {
    if (this.chats.delete(id)) this.clientValue?.forget(id);
    this.changed();
  }

  private chatError(id: string, err: unknown): void {
    const c = this.chats.get(id);
    if (!c) return;
    c.error = asError(err);
    c.status = "ready";
    c.sync = "stale";
    this.changed(c);
  }

  private requireChat(id: string): ChatData {
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

function asError(err: unknown): SwitchboardError {
  return err instanceof SwitchboardError ? err : new SwitchboardError("internal", String(err));
}

function attachmentType(files: FileInfo[]): "image" | "video" | "audio" | "file" {
  const t = files[0]?.type;
  return t === "image" || t === "video" || t === "audio" ? t : "file";
}

/** Creates a store; call login() to connect. */
export function createChatStore(opts: StoreOptions = {}): ChatStore {
  return new ChatStore(opts);
}
