// The Switchboard client protocol v1 as TypeScript types: every object,
// op (its args and result), event and error code of docs/protocol.md.
// This is the one file that states the wire contract; a test checks its
// op, event and error names against docs/protocol.md and the server.

/** An RFC 3339 time with milliseconds, in UTC: "2026-11-22T05:00:08.314Z". */
export type Time = string;

/** A JSON object (metadata, data): at most `max_data_bytes` encoded. */
export type JSONObject = { [key: string]: unknown };

// ---- Objects ---------------------------------------------------------------

export type PresenceStatus = "online" | "offline";

export interface User {
  id: string;
  name: string;
  description: string;
  image: string;
  metadata: JSONObject | null;
  status: PresenceStatus;
  last_seen: Time | null;
  /** Present, as true, only on your own user in an admin session. */
  admin?: boolean;
  /** Absent only in a connect result whose profile could not be read. */
  created_at?: Time;
  updated_at?: Time;
}

export type ChannelType = "standard" | "community" | "private" | "conversation" | "broadcast" | "live";

export interface RateLimit {
  count: number;
  window_ms: number;
}

export interface AttachedTo {
  stream_id?: string;
  room_id?: string;
  post_id?: string;
}

export interface Channel {
  id: string;
  type: ChannelType;
  name: string;
  description: string;
  image: string;
  metadata: JSONObject | null;
  tags: string[];
  public: boolean;
  distinct: boolean;
  member_count: number;
  message_count: number;
  last_segment: number;
  last_message: Message | null;
  muted_until: Time | null;
  rate_limit: RateLimit | null;
  slow_mode_ms: number;
  auto_delete_flags: number;
  attached_to: AttachedTo | null;
  typing_events: boolean;
  created_by: string;
  created_at: Time;
  updated_at: Time;
  last_activity: Time;
  deleted: boolean;
  /** Only in channels.list: your own record. */
  member?: Member;
  /** Only in channels.list. */
  unread_count?: number;
  /** Only in channels.list: mentioned after your read_segment. */
  mentioned?: boolean;
}

export type Membership = "member" | "viewer" | "invited" | "banned" | "none";
export type Role = "owner" | "moderator" | "member";

export interface Member {
  user: string;
  channel: string;
  membership: Membership;
  roles: Role[];
  muted_until: Time | null;
  mute_reason?: string;
  banned_until: Time | null;
  ban_reason?: string;
  read_segment: number;
  last_mentioned_segment: number;
  unread_count: number;
  created_at?: Time;
  last_activity?: Time;
}

export type MessageType = "text" | "image" | "video" | "file" | "audio" | "custom" | "json" | "system";

export type SystemKind =
  | "member_joined"
  | "member_left"
  | "member_added"
  | "member_removed"
  | "member_kicked"
  | "member_banned"
  | "channel_muted"
  | "channel_unmuted";

export interface SystemInfo {
  kind: SystemKind;
  user?: string;
  actor?: string;
  reason?: string;
  duration_min?: number;
}

export type FileType = "image" | "video" | "audio" | "file";

export interface FileInfo {
  id: string;
  /** Relative: /v1/files/{id}, fetched with the same Authorization. */
  url: string;
  type: FileType;
  name: string;
  size: number;
  mime: string;
}

export interface Message {
  id: string;
  channel: string;
  segment: number;
  user: string;
  type: MessageType;
  text: string;
  data: JSONObject | null;
  metadata: JSONObject | null;
  tags: string[];
  parent_id: string;
  reply_count: number;
  mentions: string[];
  attachments: FileInfo[];
  reactions: { [name: string]: number };
  /** In results, history and join/watch pages; never in events. */
  my_reactions?: string[];
  /** Yours; where my_reactions is. */
  favorite?: boolean;
  /** Only for moderators, where my_reactions is. */
  flag_count?: number;
  client_id: string;
  created_at: Time;
  edited_at: Time | null;
  deleted: boolean;
  system: SystemInfo | null;
}

export interface Limits {
  max_frame_bytes: number;
  max_text_len: number;
  max_data_bytes: number;
  max_tags: number;
  max_id_len: number;
  max_name_len: number;
  max_history_limit: number;
  default_history_limit: number;
  max_inflight: number;
  max_events_per_replay: number;
  max_mentions: number;
  max_attachments: number;
  max_reaction_name_len: number;
  max_reaction_kinds: number;
  max_file_bytes: number;
  max_presence_watch: number;
}

// ---- Op arguments and results ---------------------------------------------

export interface ConnectArgs {
  token?: string;
  user_id?: string;
  name?: string;
}
export interface ConnectResult {
  session_id: string;
  user: User;
  server_time: Time;
  limits: Limits;
}
export type Empty = Record<string, never>;
export interface ChannelArgs {
  channel: string;
}
export interface UserUpdateArgs {
  name?: string;
  description?: string;
  image?: string;
  metadata?: JSONObject | null;
}
export interface UserResult {
  user: User;
}
export interface UsersArgs {
  users: string[];
}
export interface UsersGetArgs {
  ids: string[];
}
export interface UsersResult {
  users: User[];
}
export interface ChannelCreateArgs {
  id?: string;
  type: ChannelType;
  name?: string;
  description?: string;
  image?: string;
  metadata?: JSONObject;
  tags?: string[];
  public?: boolean;
  members?: string[];
  distinct?: boolean;
  attached_to?: AttachedTo;
  typing_events?: boolean;
}
export interface ChannelCreateResult {
  channel: Channel;
  member: Member;
  seq: number;
  /** Whether this call made the channel (false: a distinct conversation that existed). */
  created: boolean;
}
export interface ChannelUpdateArgs {
  channel: string;
  name?: string;
  description?: string;
  image?: string;
  metadata?: JSONObject | null;
  tags?: string[];
  public?: boolean;
  rate_limit?: RateLimit;
  slow_mode_ms?: number;
  auto_delete_flags?: number;
  attached_to?: AttachedTo | null;
  typing_events?: boolean;
}
export interface ChannelResult {
  channel: Channel;
  member?: Member;
}
export interface PageArgs {
  cursor?: string;
  limit?: number;
}
export interface ChannelsListResult {
  channels: Channel[];
  cursor?: string;
  /** Ids of your channels that could not answer just now (first page only). */
  unavailable?: string[];
}
export interface ChannelsQueryArgs extends PageArgs {
  tags?: string[];
  type?: ChannelType;
}
export interface ChannelsQueryResult {
  channels: Channel[];
  cursor?: string;
}
export interface JoinArgs {
  channel?: string;
  /** A join token (see docs/protocol.md, join tokens). */
  token?: string;
  since_seq?: number;
}
export interface WatchArgs {
  channel: string;
  since_seq?: number;
}
/** The result of channel.join and channel.watch. */
export interface WatchResult {
  channel: Channel;
  member: Member | null;
  messages: Message[];
  has_more: boolean;
  messages_has_more: boolean;
  seq: number;
  /** With since_seq: the persisted events after it, in seq order. */
  events?: ServerEvent[];
  events_has_more?: boolean;
  reset?: boolean;
}
export interface MessageSendArgs {
  channel: string;
  client_id: string;
  text?: string;
  type?: Exclude<MessageType, "system">;
  data?: JSONObject;
  metadata?: JSONObject;
  tags?: string[];
  parent_id?: string;
  mentions?: string[];
  attachments?: string[];
}
export interface MessageResult {
  message: Message;
  /** message.send only: the client_id was used before; this is the original and nothing was sent. */
  duplicate?: boolean;
}
export interface MessageEditArgs {
  channel: string;
  message_id: string;
  text?: string;
  data?: JSONObject | null;
  metadata?: JSONObject | null;
}
export interface MessageRefArgs {
  channel: string;
  message_id: string;
}
export interface HistoryArgs {
  channel: string;
  before?: number;
  after?: number;
  limit?: number;
  top_level?: boolean;
  parent_id?: string;
  search?: string;
}
export interface HistoryResult {
  messages: Message[];
  has_more: boolean;
  next_before?: number;
  next_after?: number;
}
export interface ReactionArgs {
  channel: string;
  message_id: string;
  name: string;
}
export interface FavoriteArgs {
  channel: string;
  message_id: string;
  on: boolean;
}
export interface FlagArgs {
  channel: string;
  message_id: string;
  reason?: string;
}
export interface ReadMarkArgs {
  channel: string;
  /** At most one of segment and message_id (default: the newest message). */
  segment?: number;
  /** Marks read up to this message (a "seen" receipt). */
  message_id?: string;
}
export interface MemberResult {
  member: Member;
}
export interface MembersListArgs extends PageArgs {
  channel: string;
}
export interface MembersListResult {
  members: Member[];
  cursor?: string;
}
export interface MembersArgs {
  channel: string;
  users: string[];
}
export interface MembersResult {
  members: Member[];
}
export interface MemberRestrictArgs {
  channel: string;
  user: string;
  /** Minutes from now, 0–5256000; 0 is permanent. */
  duration_min: number;
  reason?: string;
}
export interface MemberArgs {
  channel: string;
  user: string;
}
export interface MemberKickArgs {
  channel: string;
  user: string;
  reason?: string;
}
export interface MemberRolesArgs {
  channel: string;
  user: string;
  roles: Role[];
}
export interface MaybeMemberResult {
  member: Member | null;
}
export interface ChannelMuteArgs {
  channel: string;
  duration_min: number;
}
export interface ChannelMemberResult {
  channel: Channel;
  member?: Member;
}

/** Every op: its args and its result. */
export interface Ops {
  connect: { args: ConnectArgs; result: ConnectResult };
  logout: { args: Empty; result: Empty };
  ping: { args: Empty; result: Empty };
  me: { args: Empty; result: UserResult };
  "user.update": { args: UserUpdateArgs; result: UserResult };
  "users.get": { args: UsersGetArgs; result: UsersResult };
  "presence.watch": { args: UsersArgs; result: UsersResult };
  "presence.unwatch": { args: UsersArgs; result: Empty };
  "channel.create": { args: ChannelCreateArgs; result: ChannelCreateResult };
  "channel.get": { args: ChannelArgs; result: ChannelResult };
  "channel.update": { args: ChannelUpdateArgs; result: ChannelResult };
  "channel.delete": { args: ChannelArgs; result: { channel: Channel } };
  "channels.list": { args: PageArgs; result: ChannelsListResult };
  "channels.query": { args: ChannelsQueryArgs; result: ChannelsQueryResult };
  "channel.join": { args: JoinArgs; result: WatchResult };
  "channel.watch": { args: WatchArgs; result: WatchResult };
  "channel.unwatch": { args: ChannelArgs; result: Empty };
  "channel.leave": { args: ChannelArgs; result: Empty };
  "message.send": { args: MessageSendArgs; result: MessageResult };
  "message.edit": { args: MessageEditArgs; result: MessageResult };
  "message.delete": { args: MessageRefArgs; result: MessageResult };
  "messages.history": { args: HistoryArgs; result: HistoryResult };
  "reaction.add": { args: ReactionArgs; result: MessageResult };
  "reaction.remove": { args: ReactionArgs; result: MessageResult };
  "message.favorite": { args: FavoriteArgs; result: Empty };
  "read.mark": { args: ReadMarkArgs; result: MemberResult };
  "typing.start": { args: ChannelArgs; result: Empty };
  "typing.stop": { args: ChannelArgs; result: Empty };
  "members.list": { args: MembersListArgs; result: MembersListResult };
  "members.add": { args: MembersArgs; result: MembersResult };
  "members.remove": { args: MembersArgs; result: MembersResult };
  "members.invite": { args: MembersArgs; result: MembersResult };
  "member.roles": { args: MemberRolesArgs; result: MemberResult };
  "member.mute": { args: MemberRestrictArgs; result: MemberResult };
  "member.unmute": { args: MemberArgs; result: MaybeMemberResult };
  "member.ban": { args: MemberRestrictArgs; result: MemberResult };
  "member.unban": { args: MemberArgs; result: MaybeMemberResult };
  "member.kick": { args: MemberKickArgs; result: Empty };
  "channel.mute": { args: ChannelMuteArgs; result: ChannelMemberResult };
  "channel.unmute": { args: ChannelArgs; result: ChannelMemberResult };
  "message.flag": { args: FlagArgs; result: Empty };
}

export type OpName = keyof Ops;
export type OpArgs<K extends OpName> = Ops[K]["args"];
export type OpResult<K extends OpName> = Ops[K]["result"];

/** Every op name, in the order of the Ops table. */
export const OP_NAMES = [
  "connect", "logout", "ping", "me", "user.update", "users.get", "presence.watch", "presence.unwatch",
  "channel.create", "channel.get", "channel.update", "channel.delete", "channels.list", "channels.query",
  "channel.join", "channel.watch", "channel.unwatch", "channel.leave",
  "message.send", "message.edit", "message.delete", "messages.history",
  "reaction.add", "reaction.remove", "message.favorite", "read.mark", "typing.start", "typing.stop",
  "members.list", "members.add", "members.remove", "members.invite",
  "member.roles", "member.mute", "member.unmute", "member.ban", "member.unban", "member.kick",
  "channel.mute", "channel.unmute", "message.flag",
] as const satisfies readonly OpName[];

/**
 * Ops that are safe to send again after a lost reply or a reconnect: a
 * repeat changes nothing more (message.send keeps its client_id; adding a
 * reaction one has, or removing one one has not, is a no-op).
 */
export const IDEMPOTENT_OPS: ReadonlySet<OpName> = new Set<OpName>([
  "me", "users.get", "channel.get", "channels.list", "channels.query", "channel.join", "channel.watch",
  "channel.unwatch", "members.list", "message.send", "messages.history", "read.mark", "typing.start",
  "typing.stop", "message.favorite", "user.update", "channel.update", "message.edit", "presence.watch",
  "presence.unwatch", "reaction.add", "reaction.remove", "ping",
]);

// ---- Events ------------------------------------------------------------------

export interface EventData {
  "message.new": { message: Message };
  "message.updated": { message: Message; actor?: string };
  "message.deleted": { message: Message; actor?: string; reason?: "auto_delete_flags" };
  "reaction.updated": { message: Message; user: string; name: string; added: boolean };
  typing: { user: string; active: boolean };
  read: { user: string; segment: number };
  presence: { user: string; status: PresenceStatus; last_seen?: Time | null };
  "channel.updated": {
    channel: Channel;
    actor?: string;
    /** "imported": an import changed the channel's history wholesale; reload it. */
    reason?: "imported";
    imported?: { messages: number; members: number; from_segment?: number; to_segment?: number };
  };
  "channel.deleted": { channel: Channel; actor: string };
  "member.joined": { user: string; member: Member; actor?: string };
  "member.left": { user: string; actor?: string };
  "member.updated": { user: string; member: Member; actor: string; reason?: string };
  "member.kicked": { user: string; actor: string; reason?: string };
  "channel.unwatched": { error: { code: ErrorCode; message: string } };
  /** A notice (no seq, no top-level channel): you were put in a channel. */
  "channel.added": { channel: Channel; reason: "created" | "added" | "invited" | "joined" };
  /** A notice: you are no longer in a channel. */
  "channel.removed": { channel: string; reason: "left" | "removed" | "kicked" | "banned" | "deleted" };
}

export type EventName = keyof EventData;

/** One event frame. `seq` is set on persisted events; `channel` on all but presence and the notices (channel.added, channel.removed). */
export type ServerEvent = {
  [K in EventName]: { event: K; channel?: string; seq?: number; data: EventData[K] };
}[EventName];

/** The event frame of one event name. */
export type EventOf<K extends EventName> = Extract<ServerEvent, { event: K }>;

export const EVENT_NAMES = [
  "message.new", "message.updated", "message.deleted", "reaction.updated", "typing", "read", "presence",
  "channel.updated", "channel.deleted", "member.joined", "member.left", "member.updated", "member.kicked",
  "channel.unwatched", "channel.added", "channel.removed",
] as const satisfies readonly EventName[];

// ---- Errors ------------------------------------------------------------------

/** The server's error codes. */
export type ErrorCode =
  | "bad_request"
  | "unauthenticated"
  | "token_invalid"
  | "token_expired"
  | "forbidden"
  | "not_found"
  | "not_member"
  | "already_member"
  | "banned"
  | "muted"
  | "channel_muted"
  | "rate_limited"
  | "too_long"
  | "too_large"
  | "invalid_state"
  | "unavailable"
  | "internal";

export const ERROR_CODES = [
  "bad_request", "unauthenticated", "token_invalid", "token_expired", "forbidden", "not_found", "not_member",
  "already_member", "banned", "muted", "channel_muted", "rate_limited", "too_long", "too_large", "invalid_state",
  "unavailable", "internal",
] as const satisfies readonly ErrorCode[];

/** An error as the server sends it. */
export interface WireError {
  code: string;
  message: string;
  retry_after_ms?: number;
}

/** WebSocket close codes the server uses (docs/protocol.md, close codes). */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  pingTimeout: 1008,
  tooBig: 1009,
  writeFailed: 1011,
  slowConsumer: 4000,
  draining: 4001,
  lostStream: 4002,
  authTimeout: 4003,
} as const;

/** The WebSocket subprotocol the server speaks. */
export const SUBPROTOCOL = "switchboard.v1.json";

/**
 * Connect in the upgrade (docs/protocol.md): offered beside SUBPROTOCOL with
 * CONNECT_SUBPROTOCOL_PREFIX + the connect frame in base64url; a server that
 * took the frame selects CONNECTED_SUBPROTOCOL and answers it first.
 */
export const CONNECTED_SUBPROTOCOL = "switchboard.v1.json.connected";
export const CONNECT_SUBPROTOCOL_PREFIX = "switchboard.connect.";
