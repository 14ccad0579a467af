import assert from "node:assert/strict";
import { test } from "node:test";
import { ChatStore } from "../../src/store/store.js";
import type { ServerEvent, WatchResult } from "../../src/types.js";
import { channel, FakeServer, member, message, until, user, type Request } from "./fake.js";

const fast = { minBackoffMs: 5, maxBackoffMs: 20, requestTimeoutMs: 300, initialTimeoutMs: 2000 };

/** A server with one channel "g" where alice (the store's user) and bob are members; 3 messages, alice read 2. */
function setup(over: Partial<{ handler: (req: Request) => unknown }> = {}) {
  const srv = new FakeServer();
  const msgs = [message("g", 1, "bob", "one"), message("g", 2, "alice", "two"), message("g", 3, "bob", "three", { my_reactions: ["👍"], reactions: { "👍": 2 } })];
  const ch = channel("g", { last_segment: 3, last_message: msgs[2]! });
  let seq = 10;
  srv.handler = (req) => {
    const custom = over.handler?.(req);
    if (custom !== undefined) return custom as never;
    switch (req.op) {
      case "channels.list":
        return { result: { channels: [{ ...ch, member: member("alice", "g", { read_segment: 2 }), unread_count: 1, mentioned: false }] } };
      case "channel.watch": {
        const r: WatchResult = { channel: ch, member: member("alice", "g", { read_segment: 2 }), messages: msgs, has_more: true, messages_has_more: true, seq };
        return { result: r };
      }
      case "presence.watch":
        return { result: { users: (req.args["users"] as string[]).map((u) => user(u)) } };
      case "me":
        return { result: { user: user("alice") } };
      default:
        return srv.defaultAnswer(req);
    }
  };
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const store = new ChatStore({ connection: { urls: "ws://gw/v1/ws", WebSocket: srv.WebSocket, ...fast }, now: clock.now });
  const push = (e: ServerEvent) => srv.current.push(e);
  const nextSeq = () => ++seq;
  return { srv, store, clock, push, nextSeq };
}

test("login loads the chat list, watches each chat and reports its unread count and presence", async () => {
  const { store, srv } = setup();
  const notified: number[] = [];
  store.subscribe(() => notified.push(1));
  await store.login({ userId: "alice" });
  const s = store.getSnapshot();
  assert.equal(s.isLoggedIn, true);
  assert.equal(s.me?.id, "alice");
  assert.deepEqual(s.chatIds, ["g"]);
  const g = s.chats["g"]!;
  assert.equal(g.status, "ready");
  assert.equal(g.sync, "synced");
  assert.equal(g.unread, 1);
  assert.equal(g.hasMore, true);
  assert.deepEqual(g.messages.map((m) => m.text), ["one", "two", "three"]);
  assert.ok(g.messages.every((m) => m.status === "sent"));
  assert.ok(notified.length > 0);
  await until(() => store.getSnapshot().users["bob"]?.status === "online");
  assert.ok(srv.sockets[0]!.requests.some((r) => r.op === "presence.watch" && (r.args["users"] as string[]).includes("bob")));
  // The snapshot is the same object until something changes.
  assert.equal(store.getSnapshot(), store.getSnapshot());
});

test("live events: new messages count as unread unless mine, mentions mark the chat, read events clear it", async () => {
  const { store, push, nextSeq } = setup();
  await store.login({ userId: "alice" });
  const before = store.getSnapshot();
  push({ event: "message.new", channel: "g", seq: nextSeq(), data: { message: message("g", 4, "bob", "hey @alice", { mentions: ["alice"] }) } });
  let g = store.chat("g")!;
  assert.equal(g.unread, 2);
  assert.equal(g.mentioned, true);
  assert.equal(g.lastMessage?.text, "hey @alice");
  assert.notEqual(store.getSnapshot(), before);
  push({ event: "message.new", channel: "g", seq: nextSeq(), data: { message: message("g", 5, "alice", "mine") } });
  g = store.chat("g")!;
  assert.equal(g.unread, 0, "my own message moves my read position");
  assert.equal(g.mentioned, false);
  push({ event: "message.new", channel: "g", seq: nextSeq(), data: { message: message("g", 6, "bob", "more") } });
  assert.equal(store.chat("g")!.unread, 1);
  push({ event: "read", channel: "g", data: { user: "alice", segment: 6 } });
  assert.equal(store.chat("g")!.unread, 0);
  push({ event: "read", channel: "g", data: { user: "bob", segment: 5 } });
  assert.deepEqual(store.chat("g")!.readBy, { bob: 5 });
});

test("events keep my reactions: updates without per-reader fields carry them over, my reaction events change them", async () => {
  const { store, push, nextSeq } = setup();
  await store.login({ userId: "alice" });
  const m3 = () => store.chat("g")!.messages.find((m) => m.segment === 3)!;
  assert.deepEqual(m3().my_reactions, ["👍"]);
  push({ event: "reaction.updated", channel: "g", seq: nextSeq(), data: { message: message("g", 3, "bob", "three", { reactions: { "👍": 2, "🎉": 1 } }), user: "bob", name: "🎉", added: true } });
  assert.deepEqual(m3().my_reactions, ["👍"]);
  assert.deepEqual(m3().reactions, { "👍": 2, "🎉": 1 });
  push({ event: "reaction.updated", channel: "g", seq: nextSeq(), data: { message: message("g", 3, "bob", "three", { reactions: { "👍": 1, "🎉": 1 } }), user: "alice", name: "👍", added: false } });
  assert.deepEqual(m3().my_reactions, []);
  push({ event: "message.updated", channel: "g", seq: nextSeq(), data: { message: message("g", 3, "bob", "three (edited)", { edited_at: "2026-01-01T00:01:00.000Z" }), actor: "bob" } });
  assert.equal(m3().text, "three (edited)");
  push({ event: "message.deleted", channel: "g", seq: nextSeq(), data: { message: message("g", 3, "bob", "", { deleted: true }), actor: "bob" } });
  assert.equal(m3().deleted, true);
});

test("thread replies stay out of the timeline and gather under their parent", async () => {
  const { store, push, nextSeq } = setup();
  await store.login({ userId: "alice" });
  push({ event: "message.new", channel: "g", seq: nextSeq(), data: { message: message("g", 4, "bob", "reply", { parent_id: "1-m" }) } });
  push({ event: "message.updated", channel: "g", seq: nextSeq(), data: { message: message("g", 1, "bob", "one", { reply_count: 1 }), actor: "bob" } });
  const g = store.chat("g")!;
  assert.deepEqual(g.messages.map((m) => m.segment), [1, 2, 3]);
  assert.equal(g.messages[0]!.reply_count, 1);
  assert.deepEqual(g.threads["1-m"]!.messages.map((m) => m.text), ["reply"]);
  assert.equal(store.replies("g", "1-m"), g.threads["1-m"]!.messages);
  assert.equal(store.messages("g"), g.messages);
  assert.deepEqual(store.replies("g", "2-m"), []);
});

test("typing indicators appear, end with the user's message, and expire when not renewed", async () => {
  const { store, push, clock } = setup();
  await store.login({ userId: "alice" });
  push({ event: "typing", channel: "g", data: { user: "bob", active: true } });
  push({ event: "typing", channel: "g", data: { user: "alice", active: true } }); // my own: not shown
  assert.deepEqual(store.chat("g")!.typing, ["bob"]);
  clock.advance(9_000);
  store.sweepTyping();
  assert.deepEqual(store.chat("g")!.typing, ["bob"]);
  clock.advance(1_500);
  store.sweepTyping();
  assert.deepEqual(store.chat("g")!.typing, []);
});

test("outgoing messages go sending → failed → (resend) sent, keeping their client_id", async () => {
  let fail = true;
  const sent: string[] = [];
  const { store } = setup({
    handler: (req) => {
      if (req.op !== "message.send") return undefined;
      sent.push(req.args["client_id"] as string);
      if (fail) return { error: { code: "internal", message: "disk trouble" } };
      return { result: { message: message("g", 4, "alice", req.args["text"] as string, { client_id: req.args["client_id"] as string }) } };
    },
  });
  await store.login({ userId: "alice" });
  const states: string[] = [];
  store.subscribe(() => {
    const g = store.getSnapshot().chats["g"];
    const m = g?.messages.find((x) => x.text === "hello");
    if (m && states[states.length - 1] !== m.status) states.push(m.status);
  });
  const p = store.send("g", "hello");
  assert.equal(store.chat("g")!.outgoing.length, 1);
  assert.equal(store.chat("g")!.messages.at(-1)!.status, "sending");
  await assert.rejects(p);
  const failed = store.chat("g")!.outgoing[0]!;
  assert.equal(failed.status, "failed");
  assert.ok(failed.error);
  fail = false;
  const ok = await store.resend(failed);
  assert.equal(ok.status, "sent");
  assert.equal(ok.segment, 4);
  const g = store.chat("g")!;
  assert.equal(g.outgoing.length, 0);
  assert.equal(g.messages.filter((m) => m.text === "hello").length, 1);
  assert.ok(sent.length >= 2);
  assert.ok(sent.every((c) => c === sent[0]), "every attempt carries the same client_id");
  await until(() => states.at(-1) === "sent");
  assert.deepEqual(states.filter((s, i) => states.indexOf(s) === i), ["sending", "failed", "sent"]);
});

test("my own message.new arriving before the send's reply replaces the outgoing copy once", async () => {
  const { store, srv, push, nextSeq } = setup({ handler: (req) => (req.op === "message.send" ? null : undefined) });
  await store.login({ userId: "alice" });
  const p = store.send("g", "race");
  const { req } = await srv.request((r) => r.op === "message.send");
  const m = message("g", 4, "alice", "race", { client_id: req.args["client_id"] as string });
  push({ event: "message.new", channel: "g", seq: nextSeq(), data: { message: m } });
  assert.equal(store.chat("g")!.outgoing.length, 0);
  srv.current.push({ id: req.id, result: { message: { ...m, my_reactions: [], favorite: false } } });
  await p;
  assert.equal(store.chat("g")!.messages.filter((x) => x.text === "race").length, 1);
});

test("a reset replaces the chat's messages; being banned removes the chat", async () => {
  const { store, srv, push, nextSeq } = setup();
  await store.login({ userId: "alice" });
  const seq = nextSeq();
  srv.handler = ((orig) => (req: Request, sock: import("./fake.js").FakeSocket) => {
    if (req.op === "channel.watch" && req.args["since_seq"] !== undefined) {
      const r: WatchResult = {
        channel: channel("g", { last_segment: 900 }), member: member("alice", "g", { read_segment: 899 }),
        messages: [message("g", 899, "bob", "late"), message("g", 900, "bob", "later")], has_more: false, messages_has_more: true, seq: 5000, events: [], reset: true,
      };
      return { result: r };
    }
    return orig(req, sock);
  })(srv.handler);
  push({ event: "message.new", channel: "g", seq: seq + 5, data: { message: message("g", 10, "bob", "gap") } });
  await until(() => store.chat("g")!.messages[0]?.segment === 899);
  const g = store.chat("g")!;
  assert.deepEqual(g.messages.map((m) => m.text), ["late", "later"]);
  assert.equal(g.status, "ready");
  assert.equal(g.unread, 1);
  push({ event: "member.updated", channel: "g", seq: 5001, data: { user: "alice", member: member("alice", "g", { membership: "banned", roles: [] }), actor: "bob" } });
  assert.equal(store.chat("g"), undefined);
  assert.deepEqual(store.getSnapshot().chatIds, []);
});

test("a dropped connection makes chats stale, then syncing while their resumes are answered, then synced again", async () => {
  // The resume goes with the reconnect's connect; answered later than the
  // connect (a busy channel), the chat shows syncing in between.
  let slow: WatchResult | undefined;
  const { store, srv } = setup({
    handler: (req) => {
      if (req.op !== "channel.watch" || req.args["since_seq"] === undefined || !slow) return undefined;
      const sock = srv.current;
      setTimeout(() => sock.reply(req.id, { result: slow }), 30);
      return null;
    },
  });
  await store.login({ userId: "alice" });
  slow = { channel: channel("g", { last_segment: 3 }), member: member("alice", "g", { read_segment: 2 }), messages: [], has_more: false, messages_has_more: false, seq: 10 };
  const seen = new Set<string>();
  store.subscribe(() => {
    const g = store.getSnapshot().chats["g"];
    if (g) seen.add(g.sync);
    seen.add(store.getSnapshot().status);
  });
  srv.current.kill();
  await until(() => store.getSnapshot().status === "online" && store.chat("g")!.sync === "synced" && seen.has("syncing"));
  assert.ok(seen.has("stale"));
  assert.ok(seen.has("reconnecting"));
});

test("logout resets the store", async () => {
  const { store } = setup();
  await store.login({ userId: "alice" });
  await store.logout();
  const s = store.getSnapshot();
  assert.equal(s.isLoggedIn, false);
  assert.deepEqual(s.chatIds, []);
  assert.equal(s.status, "offline");
});

test("create adds the new chat, ready and empty; joins and leaves keep member_count", async () => {
  const { store, push } = setup({
    handler: (req) =>
      req.op === "channel.create"
        ? { result: { channel: channel("new", { member_count: 1 }), member: member("alice", "new", { roles: ["owner"] }), seq: 0 } }
        : undefined,
  });
  await store.login({ userId: "alice" });
  const c = await store.create({ id: "new", type: "standard" });
  assert.equal(c.status, "ready");
  assert.deepEqual(c.messages, []);
  assert.equal(c.hasMore, false);
  assert.equal(c.canModerate, true);
  assert.ok(store.getSnapshot().chatIds.includes("new"));
  push({ event: "message.new", channel: "new", seq: 1, data: { message: message("new", 1, "bob", "bob joined", { type: "system", system: { kind: "member_joined", user: "bob" } }) } });
  push({ event: "member.joined", channel: "new", seq: 2, data: { user: "bob", member: member("bob", "new") } });
  assert.equal(store.chat("new")!.channel.member_count, 2);
  push({ event: "member.left", channel: "new", seq: 3, data: { user: "bob" } });
  assert.equal(store.chat("new")!.channel.member_count, 1);
});

test("notices: a chat others put me in is watched, an invitation is listed, a removal drops the chat", async () => {
  const { store, srv, push } = setup({
    handler: (req) =>
      req.op === "channel.watch" && req.args["channel"] === "dm-1"
        ? { result: { channel: channel("dm-1", { type: "conversation", last_segment: 1 }), member: member("alice", "dm-1"), messages: [message("dm-1", 1, "bob", "hi alice")], has_more: false, messages_has_more: false, seq: 2 } }
        : undefined,
  });
  await store.login({ userId: "alice" });
  push({ event: "channel.added", data: { channel: channel("dm-1", { type: "conversation" }), reason: "created" } });
  await srv.request((r) => r.op === "channel.watch" && r.args["channel"] === "dm-1");
  await until(() => store.chat("dm-1")?.status === "ready");
  assert.equal(store.chat("dm-1")!.unread, 1);
  assert.deepEqual(store.chat("dm-1")!.messages.map((m) => m.text), ["hi alice"]);
  push({ event: "channel.added", data: { channel: channel("secret", { type: "private" }), reason: "invited" } });
  assert.deepEqual(store.getSnapshot().invites.map((c) => c.id), ["secret"]);
  push({ event: "channel.removed", data: { channel: "dm-1", reason: "left" } });
  push({ event: "channel.removed", data: { channel: "secret", reason: "removed" } });
  assert.equal(store.chat("dm-1"), undefined);
  assert.deepEqual(store.getSnapshot().invites, []);
  assert.equal(store.client.watches().has("dm-1"), false);
});

test("an import's channel.updated reloads the chat: its newest page and counter", async () => {
  const { store, srv, push, nextSeq } = setup();
  await store.login({ userId: "alice" });
  const imported = [message("g", 3, "bob", "three"), message("g", 40, "carol", "from the old server")];
  srv.handler = ((orig) => (req: Request, sock: import("./fake.js").FakeSocket) => {
    if (req.op === "messages.history") return { result: { messages: imported, has_more: true } };
    return orig(req, sock);
  })(srv.handler);
  push({
    event: "channel.updated", channel: "g", seq: nextSeq(),
    data: { channel: channel("g", { last_segment: 40 }), reason: "imported", imported: { messages: 37, members: 1, from_segment: 4, to_segment: 40 } },
  });
  await until(() => store.chat("g")!.messages.at(-1)?.segment === 40);
  const g = store.chat("g")!;
  assert.equal(g.status, "ready");
  assert.deepEqual(g.messages.map((m) => m.text), ["three", "from the old server"]);
  assert.equal(g.channel.last_segment, 40);
});
