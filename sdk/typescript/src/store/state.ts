// The chat store's state: the immutable snapshots it hands out (ChatState,
// Chat, ChatMessage, Thread) and ChatData, the mutable record of one chat
// the store keeps behind each Chat snapshot.

import type { SwitchboardError } from "../errors.js";
import type { ConnectionStatus } from "../client.js";
import type { Channel, Member, Message, User } from "../types.js";

/** A chat's load state: loading (first page on its way), ready, reloading (the server reset it). */
export type ChatStatus = "loading" | "ready" | "reloading";
/** Whether a chat is up to date: synced, syncing (a resume is on its way), stale (disconnected: events may be missing). */
export type SyncStatus = "synced" | "syncing" | "stale";
/** An outgoing message's state. Every message from the server is `sent`. */
export type MessageStatus = "sending" | "sent" | "failed";

/** A message as the store holds it. */
export interface ChatMessage extends Message {
  status: MessageStatus;
  /** Why a failed message failed. */
  error?: SwitchboardError;
}

/** A thread: the replies to one top-level message known so far. */
export interface Thread {
  parentId: string;
  /** Replies in segment order, then outgoing replies. */
  messages: readonly ChatMessage[];
  /** Older replies exist than those loaded (after loadThread). */
  hasMore: boolean;
  /** loadThread completed at least once. */
  loaded: boolean;
  loading: boolean;
}

/** One chat (channel, DM, group) the user is in. */
export interface Chat {
  id: string;
  channel: Channel;
  /** Your own member record (roles, restrictions, read position). */
  member: Member | null;
  status: ChatStatus;
  sync: SyncStatus;
  unread: number;
  /** You were mentioned after your read position. */
  mentioned: boolean;
  /** Users typing now (not you). */
  typing: readonly string[];
  /** The member list, once loadMembers ran (kept up to date by events). */
  members: readonly Member[] | null;
  lastMessage: Message | null;
  /** The timeline: top-level messages in segment order, then outgoing ones. */
  messages: readonly ChatMessage[];
  /** Older messages exist than those loaded (see loadOlder). */
  hasMore: boolean;
  loadingOlder: boolean;
  /** Threads by parent message id. */
  threads: Readonly<Record<string, Thread>>;
  /** Messages being sent or failed, top-level and replies. */
  outgoing: readonly ChatMessage[];
  /** Read positions of other users heard since load (read events): user → segment. */
  readBy: Readonly<Record<string, number>>;
  /** You moderate this chat (owner, moderator, or a global admin). */
  canModerate: boolean;
  /** The last error loading or resuming the chat. */
  error: SwitchboardError | null;
}

/** The whole store, as one immutable snapshot. */
export interface ChatState {
  status: ConnectionStatus;
  isLoggedIn: boolean;
  me: User | null;
  /** Users by id: profiles and presence, as far as they were fetched. */
  users: Readonly<Record<string, User>>;
  /** Chats by id. */
  chats: Readonly<Record<string, Chat>>;
  /** Chat ids, newest activity first. */
  chatIds: readonly string[];
  /** Channels you are invited to: accept with join, decline with leave. */
  invites: readonly Channel[];
  /** chats.list is loading. */
  fetching: boolean;
  /** The last error of login or load. */
  error: SwitchboardError | null;
}

interface ThreadState {
  hasMore: boolean;
  loaded: boolean;
  loading: boolean;
}

/** The mutable record of one chat; snapshot() builds its Chat. */
export class ChatData {
  readonly id: string;
  channel: Channel;
  member: Member | null;
  status: ChatStatus = "loading";
  sync: SyncStatus = "syncing";
  lastSegment: number;
  readSegment: number;
  lastMentioned: number;
  /** Server messages by id, and in segment order. */
  private readonly byId = new Map<string, ChatMessage>();
  private sorted: ChatMessage[] = [];
  /** Outgoing messages by client_id. */
  readonly pending = new Map<string, ChatMessage>();
  hasMore = false;
  loadingOlder = false;
  readonly threads = new Map<string, ThreadState>();
  /** Typing users and when their indicator expires. */
  readonly typing = new Map<string, number>();
  readonly readBy = new Map<string, number>();
  /** Members by user id, once loaded (null before). */
  private memberMap: Map<string, Member> | null = null;
  /** The sorted member list of the last snapshot, kept while the members are unchanged. */
  private memberList: readonly Member[] | null = null;
  error: SwitchboardError | null = null;
  private cached: Chat | null = null;

  constructor(channel: Channel, member: Member | null) {
    this.id = channel.id;
    this.channel = channel;
    this.member = member;
    this.lastSegment = channel.last_segment;
    this.readSegment = member?.read_segment ?? channel.last_segment;
    this.lastMentioned = member?.last_mentioned_segment ?? 0;
  }

  /** Marks the chat changed: the next snapshot() rebuilds it. */
  touch(): void {
    this.cached = null;
  }

  message(id: string): ChatMessage | undefined {
    return this.byId.get(id);
  }

  get membersLoaded(): boolean {
    return this.memberMap !== null;
  }

  memberOf(user: string): Member | undefined {
    return this.memberMap?.get(user);
  }

  /** Replaces the member list (members.list). */
  setMembers(list: readonly Member[]): void {
    this.memberMap = new Map(list.map((m) => [m.user, m]));
    this.memberList = null;
    this.touch();
  }

  /** Adds or replaces a member (no-op before the list is loaded); a `none` record removes it. */
  putMember(m: Member): void {
    if (!this.memberMap) return;
    if (m.membership === "none") this.memberMap.delete(m.user);
    else this.memberMap.set(m.user, m);
    this.memberList = null;
    this.touch();
  }

  /** Removes a member; returns the record it had. */
  removeMember(user: string): Member | undefined {
    const had = this.memberMap?.get(user);
    if (had) {
      this.memberMap!.delete(user);
      this.memberList = null;
      this.touch();
    }
    return had;
  }

  /** A loaded server message of user with this client_id (newest first). */
  byClientId(clientId: string, user: string): ChatMessage | undefined {
    for (let i = this.sorted.length - 1; i >= 0; i--) {
      const m = this.sorted[i]!;
      if (m.client_id === clientId && m.user === user) return m;
    }
    return undefined;
  }

  /** The oldest loaded segment (0: none loaded). */
  get oldestSegment(): number {
    return this.sorted[0]?.segment ?? 0;
  }

  get count(): number {
    return this.sorted.length;
  }

  /**
   * Stores a message from the server. fromEvent: it carries no per-reader
   * fields, so the stored copy's my_reactions and favorite carry over.
   */
  upsert(m: Message, fromEvent: boolean): ChatMessage {
    const old = this.byId.get(m.id);
    const next: ChatMessage = { ...m, status: "sent" };
    if (fromEvent || m.my_reactions === undefined) {
      next.my_reactions = m.deleted ? [] : (old?.my_reactions ?? []);
      next.favorite = m.deleted ? false : (old?.favorite ?? false);
      if (old?.flag_count !== undefined) next.flag_count = old.flag_count;
    }
    this.byId.set(m.id, next);
    const i = this.indexOf(m.segment);
    if (i < this.sorted.length && this.sorted[i]!.segment === m.segment) this.sorted[i] = next;
    else this.sorted.splice(i, 0, next);
    if (m.client_id && this.pending.get(m.client_id)?.user === m.user) this.pending.delete(m.client_id);
    if (m.segment > this.lastSegment) this.lastSegment = m.segment;
    this.touch();
    return next;
  }

  /** Replaces every loaded message (a reset, or a first load). */
  replace(messages: readonly Message[], hasMore: boolean): void {
    const keep = new Map(this.byId);
    this.byId.clear();
    this.sorted = [];
    for (const m of messages) {
      const old = keep.get(m.id);
      this.upsert(m, false);
      if (old && m.my_reactions === undefined) this.byId.get(m.id)!.my_reactions = old.my_reactions ?? [];
    }
    this.hasMore = hasMore;
    this.touch();
  }

  private indexOf(segment: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]!.segment < segment) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  thread(parentId: string): ThreadState {
    let t = this.threads.get(parentId);
    if (!t) {
      t = { hasMore: true, loaded: false, loading: false };
      this.threads.set(parentId, t);
    }
    return t;
  }

  /** The oldest loaded reply of a thread (0: none). */
  oldestReply(parentId: string): number {
    for (const m of this.sorted) if (m.parent_id === parentId) return m.segment;
    return 0;
  }

  get unread(): number {
    if (this.member && this.member.membership !== "member" && this.member.membership !== "viewer") return 0;
    return Math.max(0, this.lastSegment - this.readSegment);
  }

  private members(): readonly Member[] | null {
    if (!this.memberMap) return null;
    this.memberList ??= [...this.memberMap.values()].sort((a, b) => (a.user < b.user ? -1 : 1));
    return this.memberList;
  }

  /** Builds (or returns the unchanged) snapshot. */
  snapshot(me: User | null): Chat {
    if (this.cached) return this.cached;
    const top: ChatMessage[] = [];
    const replies = new Map<string, ChatMessage[]>();
    for (const m of this.sorted) {
      if (!m.parent_id) top.push(m);
      else push(replies, m.parent_id, m);
    }
    const outgoing = [...this.pending.values()];
    for (const m of outgoing) {
      if (!m.parent_id) top.push(m);
      else push(replies, m.parent_id, m);
    }
    for (const id of this.threads.keys()) if (!replies.has(id)) replies.set(id, []);
    const threads: Record<string, Thread> = {};
    for (const [parentId, msgs] of replies) {
      const t = this.threads.get(parentId);
      threads[parentId] = {
        parentId,
        messages: msgs,
        hasMore: t ? t.hasMore : true,
        loaded: t?.loaded ?? false,
        loading: t?.loading ?? false,
      };
    }
    const roles = this.member?.roles ?? [];
    this.cached = {
      id: this.id,
      channel: this.channel,
      member: this.member,
      status: this.status,
      sync: this.sync,
      unread: this.unread,
      mentioned: this.lastMentioned > this.readSegment,
      typing: [...this.typing.keys()],
      members: this.members(),
      lastMessage: this.channel.last_message,
      messages: top,
      hasMore: this.hasMore,
      loadingOlder: this.loadingOlder,
      threads,
      outgoing,
      readBy: Object.fromEntries(this.readBy),
      canModerate: !!me?.admin || roles.includes("owner") || roles.includes("moderator"),
      error: this.error,
    };
    return this.cached;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const a = m.get(k);
  if (a) a.push(v);
  else m.set(k, [v]);
}

/** A user known only by id (before their profile arrives). */
export function placeholderUser(id: string): User {
  return { id, name: "", description: "", image: "", metadata: null, status: "offline", last_seen: null };
}
