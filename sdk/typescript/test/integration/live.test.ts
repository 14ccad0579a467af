// The SDK against a real node: one `switchboard serve` (auth secret and
// development auth both on) for the whole file, reached directly or
// through a proxy that cuts and silences connections.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { Client, connect } from "../../src/client.js";
import { SwitchboardError } from "../../src/errors.js";
import { ChatStore } from "../../src/store/store.js";
import type { ChatMessage } from "../../src/store/state.js";
import { OP_NAMES } from "../../src/types.js";
import type { ClientOptions } from "../../src/client.js";
import type { WebSocketConstructor } from "../../src/transport.js";
import { Node, Proxy, TLSFront, token, until } from "./node.js";

/** Options every test client uses: the ws package, short backoff. */
function clientOptions(url: string | string[]): Omit<ClientOptions, "userId" | "token"> {
  return { urls: url, WebSocket: WebSocket as unknown as WebSocketConstructor, minBackoffMs: 20, maxBackoffMs: 300, requestTimeoutMs: 5000 };
}

let node: Node;
let proxy: Proxy;
const open: Array<{ close(): void } | ChatStore> = [];

before(async () => {
  node = new Node();
  await node.start();
  proxy = new Proxy(() => node.addr);
  await proxy.listen();
});

after(async () => {
  for (const o of open) (o instanceof ChatStore ? o.reset() : o.close());
  await proxy.close();
  await node.destroy();
});

async function client(userId: string, url: string | string[] = node.url, extra: Partial<Parameters<typeof connect>[0]> = {}): Promise<Client> {
  const c = await connect({ ...clientOptions(url), userId, ...extra });
  open.push(c);
  return c;
}

async function store(userId: string, url = node.url, extra: Record<string, unknown> = {}): Promise<ChatStore> {
  const s = new ChatStore({ connection: { ...clientOptions(url), ...extra } });
  open.push(s);
  await s.login({ userId, name: userId[0]!.toUpperCase() + userId.slice(1) });
  return s;
}

let n = 0;
const chanId = (what: string) => `${what}-${process.pid}-${++n}`;

test("the server knows every op of OP_NAMES (and answers unknown ones as such)", async () => {
  const ws = new WebSocket(node.url, ["switchboard.v1.json"]);
  const replies = new Map<number, { error?: { code: string; message: string } }>();
  ws.on("message", (b) => {
    for (const line of b.toString().split("\n")) if (line) {
      const f = JSON.parse(line);
      if (typeof f.id === "number") replies.set(f.id, f);
    }
  });
  await new Promise((r) => ws.once("open", r));
  ws.send(JSON.stringify({ id: 0, op: "connect", args: { user_id: "op-prober" } }));
  await until(() => replies.has(0));
  // Every op but connect (answered) and logout (ends the session), with empty args.
  const ops = OP_NAMES.filter((o) => o !== "connect" && o !== "logout");
  ops.forEach((op, i) => ws.send(JSON.stringify({ id: i + 1, op, args: {} })));
  ws.send(JSON.stringify({ id: 999, op: "nope.op", args: {} }));
  await until(() => replies.size === ops.length + 2);
  assert.match(replies.get(999)!.error!.message, /unknown op/);
  ops.forEach((op, i) => {
    const r = replies.get(i + 1)!;
    assert.ok(!r.error || !/unknown op/.test(r.error.message), `${op}: ${JSON.stringify(r)}`);
  });
  ws.close();
});

test("history comes in pages of 25: the newest on watch, older ones on loadOlder, until hasMore is false", async () => {
  const ch = chanId("pages");
  const alice = await client("alice");
  await alice.call("channel.create", { id: ch, type: "standard", name: "Pages" });
  for (let i = 1; i <= 60; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, k) => alice.call("message.send", { channel: ch, client_id: `p-${i + k}`, text: `m${i + k}` })));
  }
  const bob = await store("bob");
  await bob.join(ch);
  let c = bob.chat(ch)!;
  assert.equal(c.messages.length, 25);
  assert.equal(c.hasMore, true);
  const segs = () => bob.chat(ch)!.messages.map((m) => m.segment);
  assert.deepEqual(segs(), Array.from({ length: 25 }, (_, i) => 37 + i)); // 60 messages, then "bob joined" (61)
  await bob.loadOlder(ch);
  assert.equal(segs().length, 50);
  assert.equal(bob.chat(ch)!.hasMore, true);
  await bob.loadOlder(ch);
  c = bob.chat(ch)!;
  assert.deepEqual(segs(), Array.from({ length: 61 }, (_, i) => i + 1));
  assert.equal(c.hasMore, false);
  assert.equal(c.messages[0]!.text, "m1");
});

test("after the connection drops, the store reconnects and resumes: missed messages arrive once, in order", async () => {
  const ch = chanId("resume");
  const alice = await client("alice");
  await alice.call("channel.create", { id: ch, type: "standard" });
  const bob = await store("bob", proxy.url);
  await bob.join(ch);
  const statuses: string[] = [];
  // Updates while still online (a join's late events, a liveness ping's
  // reply) are not status changes: record from the first that is.
  bob.subscribe(() => {
    const s = bob.getSnapshot().status;
    if (statuses.length === 0 && s === "online") return;
    if (statuses.at(-1) !== s) statuses.push(s);
  });
  proxy.refuse(true);
  proxy.cut();
  await until(() => bob.getSnapshot().status === "reconnecting", 5000, "reconnecting");
  assert.equal(bob.chat(ch)!.sync, "stale");
  for (let i = 1; i <= 3; i++) await alice.call("message.send", { channel: ch, client_id: `away-${i}`, text: `while away ${i}` });
  proxy.refuse(false);
  await until(() => bob.chat(ch)?.messages.filter((m) => m.text.startsWith("while away")).length === 3, 10_000, "missed messages");
  await until(() => bob.chat(ch)!.sync === "synced");
  const texts = bob.chat(ch)!.messages.map((m) => m.text).filter((t) => t.startsWith("while away"));
  assert.deepEqual(texts, ["while away 1", "while away 2", "while away 3"]);
  assert.equal(bob.chat(ch)!.unread, 3);
  assert.deepEqual(statuses, ["reconnecting", "online"]);
  // Live events flow again on the new connection.
  await alice.call("message.send", { channel: ch, client_id: "back", text: "welcome back" });
  await until(() => bob.chat(ch)!.messages.at(-1)?.text === "welcome back");
});

test("a gateway that goes silent is left for the next URL: the send outstanding on it is stored once, the watch resumes", async () => {
  const ch = chanId("stall");
  const alice = await client("alice");
  await alice.call("channel.create", { id: ch, type: "standard" });
  const stall = 400;
  const bob = await client("bob", [proxy.url, node.url], { stallTimeoutMs: stall });
  await bob.call("channel.join", { channel: ch });
  const texts: string[] = [];
  bob.onEvent((e) => {
    if (e.event === "message.new" && e.channel === ch) texts.push((e.data as { message: { text: string } }).message.text);
  });
  proxy.silence(true); // the gateway behind the proxy carries the send out, but nothing comes back
  try {
    const start = Date.now();
    const m = await bob.call("message.send", { channel: ch, client_id: "through-the-stall", text: "through the stall" });
    assert.ok(Date.now() - start < 5000, "left the silent gateway before the request timeout");
    assert.equal(m.message.client_id, "through-the-stall");
    await alice.call("message.send", { channel: ch, client_id: "after-the-stall", text: "after the stall" });
    await until(() => texts.includes("after the stall"), 5000, "live events on the next gateway");
  } finally {
    proxy.silence(false);
  }
  assert.equal(texts.filter((t) => t === "through the stall").length, 1);
  const hist = await alice.call("messages.history", { channel: ch, limit: 100 });
  assert.equal(hist.messages.filter((x) => x.client_id === "through-the-stall").length, 1);
});

test("an outgoing message goes sending → failed (no reply) → resend → sent, stored once", async () => {
  const ch = chanId("outgoing");
  const alice = await store("alice");
  await alice.create({ id: ch, type: "standard" });
  const bob = await store("bob", proxy.url, { requestTimeoutMs: 800 });
  await bob.join(ch);
  await until(() => alice.chat(ch)!.messages.some((m) => m.system?.kind === "member_joined"));
  const states: string[] = [];
  bob.subscribe(() => {
    const m = bob.chat(ch)?.messages.find((x) => x.text === "are you there?");
    if (m && states.at(-1) !== m.status) states.push(m.status);
  });
  proxy.silence(true); // the server gets the message; its reply (and everything else) is lost
  await assert.rejects(bob.send(ch, "are you there?"), (e: unknown) => e instanceof SwitchboardError && e.code === "timeout");
  const failed = bob.chat(ch)!.outgoing.find((m) => m.text === "are you there?") as ChatMessage;
  assert.equal(failed.status, "failed");
  const resent = bob.resend(failed); // waits for a connection
  proxy.silence(false);
  const sent = await resent;
  assert.equal(sent.status, "sent");
  assert.equal(sent.client_id, failed.client_id);
  await until(() => bob.chat(ch)!.outgoing.length === 0);
  assert.deepEqual(states.slice(0, 2), ["sending", "failed"]);
  assert.equal(states.at(-1), "sent");
  const mine = (s: ChatStore) => s.chat(ch)!.messages.filter((m) => m.client_id === failed.client_id);
  assert.equal(mine(bob).length, 1);
  await until(() => mine(alice).length === 1);
  const hist = await alice.client.call("messages.history", { channel: ch, limit: 100 });
  assert.equal(hist.messages.filter((m) => m.text === "are you there?").length, 1);
});

test("a message sent while the node is down waits, and is delivered once after it restarts", async () => {
  const ch = chanId("restart");
  const bob = await store("bob");
  await bob.create({ id: ch, type: "standard" });
  await bob.send(ch, "before");
  await node.kill();
  await until(() => bob.getSnapshot().status === "reconnecting");
  const pending = bob.send(ch, "during");
  assert.equal(bob.chat(ch)!.messages.at(-1)!.status, "sending");
  await node.start();
  const m = await pending;
  assert.equal(m.status, "sent");
  await until(() => bob.chat(ch)!.sync === "synced");
  assert.deepEqual(bob.chat(ch)!.messages.map((x) => x.text), ["before", "during"]);
  const hist = await bob.client.call("messages.history", { channel: ch });
  assert.deepEqual(hist.messages.map((x) => x.text), ["before", "during"]);
});

test("typing and presence reach the other user", async () => {
  const ch = chanId("typing");
  const alice = await store("alice");
  await alice.create({ id: ch, type: "standard" });
  const carol = await store("carol");
  await carol.join(ch);
  carol.typing(ch);
  await until(() => alice.chat(ch)!.typing.includes("carol"), 5000, "carol typing");
  carol.stopTyping(ch);
  await until(() => alice.chat(ch)!.typing.length === 0, 5000, "carol stopped");
  await until(() => alice.getSnapshot().users["carol"]?.status === "online", 5000, "carol online");
  carol.reset(); // closes carol's connection
  await until(() => alice.getSnapshot().users["carol"]?.status === "offline", 10_000, "carol offline");
});

test("a join token admits a user to a private channel; session tokens connect", async () => {
  const ch = chanId("private");
  const alice = await store("alice");
  await alice.create({ id: ch, type: "private", name: "Backstage" });
  const dave = new ChatStore({ connection: clientOptions(node.url) });
  open.push(dave);
  let minted = 0;
  await dave.login({ token: () => (minted++, token("dave", { name: "Dave" })) });
  assert.equal(dave.getSnapshot().me?.name, "Dave");
  assert.equal(minted, 1);
  await assert.rejects(dave.join(ch), (e: unknown) => e instanceof SwitchboardError && e.code === "forbidden");
  const chat = await dave.joinByToken(token("dave", { channel: ch, perms: "read,write" }));
  assert.equal(chat.id, ch);
  assert.equal(chat.member?.membership, "member");
  await dave.send(ch, "hello from backstage");
  await until(() => alice.chat(ch)!.messages.some((m) => m.text === "hello from backstage"));
  await assert.rejects(dave.joinByToken(token("erin", { channel: ch })), (e: unknown) => e instanceof SwitchboardError && e.code === "token_invalid");
  // A file goes up with the session token and comes back.
  const file = await dave.upload(new Blob(["hi there"], { type: "text/plain" }), "note.txt");
  assert.equal(file.name, "note.txt");
  const back = await dave.client.download(file.url);
  assert.equal(await back.text(), "hi there");
});

test("with several gateway URLs the client skips one that is down", async () => {
  const dead = new Proxy(() => node.addr);
  await dead.listen();
  dead.refuse(true);
  const c = await client("frank", [dead.url, node.url]);
  assert.equal(c.status, "online");
  assert.equal(c.user?.id, "frank");
  await dead.close();
});

test("wss:// URLs work in Node with the ws package given the CA; without it the certificate is refused", async () => {
  const front = new TLSFront(() => node.addr);
  await front.listen();
  try {
    const c = await client("grace", front.url, { webSocketOptions: { ca: front.ca } });
    assert.equal(c.status, "online");
    assert.equal((await c.call("me", {})).user.id, "grace");
    c.close();
    await assert.rejects(connect({ ...clientOptions(front.url), userId: "grace", initialTimeoutMs: 500 }), (e: unknown) => e instanceof SwitchboardError);
  } finally {
    await front.close();
  }
});

test("a join made before open() goes with the connect: the live room's first events follow it", async () => {
  const ch = chanId("stage");
  const host = await client("hazel");
  await host.call("channel.create", { id: ch, type: "live", name: "Stage" });
  const viewer = new Client({ ...clientOptions(node.url), userId: "vic" });
  open.push(viewer);
  const got: string[] = [];
  viewer.onEvent((e) => {
    if (e.event === "message.new" && e.channel === ch) got.push(e.data.message.text);
  });
  const joined = viewer.call("channel.join", { channel: ch });
  await viewer.open();
  const res = await joined;
  assert.equal(res.channel.id, ch);
  await host.call("message.send", { channel: ch, client_id: `hi-${ch}`, text: "welcome" });
  await until(() => got.length === 1);
  assert.deepEqual(got, ["welcome"]);
});
