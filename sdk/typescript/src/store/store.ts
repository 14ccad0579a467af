// ChatStore: a live store of users, chats and messages over one Client.
// Actions map to protocol ops; server events and watch results keep the
// state current (core.ts); subscribe() and getSnapshot() hand out
// immutable snapshots, so any UI framework can wrap it (React's
// useSyncExternalStore, Vue's shallowRef, Svelte's readable).

import { Client } from "../client.js";
import { SwitchboardError } from "../errors.js";
import type {
  Channel,
  ChannelCreateArgs,
  ChannelsQueryArgs,
  ChannelsQueryResult,
  FileInfo,
  JSONObject,
  Member,
  MessageSendArgs,
  Role,
  User,
  UserUpdateArgs,
} from "../types.js";
import { asError, StoreCore, type LoginInput, type StoreOptions } from "./core.js";
import { ChatData, type Chat, type ChatMessage } from "./state.js";

export type { LoginInput, StoreOptions } from "./core.js";

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

/**
 * A live chat store: login() connects and loads the user's chats; the
 * actions below send ops; subscribe() and getSnapshot() follow the state.
 */
export class ChatStore extends StoreCore {
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

  // ---- events ----

}

function attachmentType(files: FileInfo[]): "image" | "video" | "audio" | "file" {
  const t = files[0]?.type;
  return t === "image" || t === "video" || t === "audio" ? t : "file";
}

/** Creates a store; call login() to connect. */
export function createChatStore(opts: StoreOptions = {}): ChatStore {
  return new ChatStore(opts);
}
