import assert from "node:assert/strict";
import { test } from "node:test";
import { Client, connect } from "../../src/client.js";
import { SwitchboardError } from "../../src/errors.js";
import { CONNECT_SUBPROTOCOL_PREFIX, CONNECTED_SUBPROTOCOL, SUBPROTOCOL, type ServerEvent, type WatchResult } from "../../src/types.js";
import { channel, FakeServer, member, message, until, type Request } from "./fake.js";

const fast = { minBackoffMs: 5, maxBackoffMs: 20, requestTimeoutMs: 500, initialTimeoutMs: 2000 };

function watchResult(ch: string, seq: number, over: Partial<WatchResult> = {}): WatchResult {
  return { channel: channel(ch), member: member("alice", ch), messages: [], has_more: false, messages_has_more: false, seq, ...over };
}

function newEvent(ch: string, seq: number, segment: number): ServerEvent {
  return { event: "message.new", channel: ch, seq, data: { message: message(ch, segment, "bob", `m${segment}`) } };
}

test("connect sends connect first and resolves online; replies are matched by id out of order", async () => {
  const srv = new FakeServer();
  const held: Array<{ req: Request }> = [];
  srv.handler = (req) => {
    if (req.op === "users.get") {
      held.push({ req });
      return undefined;
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", name: "Alice", WebSocket: srv.WebSocket, ...fast });
  assert.equal(c.status, "online");
  assert.equal(c.user?.id, "alice");
  assert.deepEqual(srv.current.requests[0], { id: 0, op: "connect", args: { user_id: "alice", name: "Alice" } });
  const a = c.call("users.get", { ids: ["a"] });
  const b = c.call("users.get", { ids: ["b"] });
  await until(() => held.length === 2);
  srv.current.push({ id: held[1]!.req.id, result: { users: [{ id: "b" }] } }, { id: held[0]!.req.id, result: { users: [{ id: "a" }] } });
  assert.equal((await a).users[0]!.id, "a");
  assert.equal((await b).users[0]!.id, "b");
  c.close();
  assert.equal(c.status, "offline");
});

test("an error reply rejects with its code and retryAfterMs; unknown codes read as internal", async () => {
  const srv = new FakeServer();
  srv.handler = (req) => {
    if (req.op === "message.send") return { error: { code: "muted", message: "you are muted", retry_after_ms: 3000 } };
    if (req.op === "message.flag") return { error: { code: "brand_new", message: "from the future" } };
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: ["ws://gw/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast });
  await assert.rejects(c.call("message.send", { channel: "g", client_id: "x", text: "hi" }), (e: unknown) => {
    assert.ok(e instanceof SwitchboardError);
    assert.equal(e.code, "muted");
    assert.equal(e.retryAfterMs, 3000);
    assert.equal(e.op, "message.send");
    assert.equal(e.retryable, true);
    return true;
  });
  await assert.rejects(c.call("message.flag", { channel: "g", message_id: "1" }), (e: unknown) => e instanceof SwitchboardError && e.code === "internal" && /brand_new/.test(e.message));
  c.close();
});

test("a short rate_limited wait is waited out for requests safe to repeat; slow mode's seconds and other requests reject", async () => {
  const srv = new FakeServer();
  const sends = new Map<string, number>();
  srv.handler = (req) => {
    const args = req.args as { client_id?: string };
    if (req.op === "message.send") {
      const n = (sends.get(args.client_id!) ?? 0) + 1;
      sends.set(args.client_id!, n);
      if (args.client_id === "paced" && n === 1) return { error: { code: "rate_limited", message: "session rate", retry_after_ms: 30 } };
      if (args.client_id === "slow") return { error: { code: "rate_limited", message: "slow mode", retry_after_ms: 10000 } };
      return { result: { message: message("g", n, "alice", "hi") } };
    }
    if (req.op === "channel.create") return { error: { code: "rate_limited", message: "session rate", retry_after_ms: 30 } };
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: ["ws://gw/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const start = Date.now();
  await c.call("message.send", { channel: "g", client_id: "paced", text: "hi" });
  assert.equal(sends.get("paced"), 2, "sent again once the wait was over");
  assert.ok(Date.now() - start >= 25, "after the wait the server asked for");
  await assert.rejects(c.call("message.send", { channel: "g", client_id: "slow", text: "hi" }), (e: unknown) => e instanceof SwitchboardError && e.code === "rate_limited" && e.retryAfterMs === 10000);
  assert.equal(sends.get("slow"), 1);
  await assert.rejects(c.call("channel.create", { id: "new", type: "standard" }), (e: unknown) => e instanceof SwitchboardError && e.code === "rate_limited");
  c.close();
});

test("an unavailable request safe to repeat is sent again, never sooner than its retry_after_ms; one not safe to repeat rejects", async () => {
  const srv = new FakeServer();
  let sends = 0;
  srv.handler = (req) => {
    if (req.op === "message.send") {
      sends++;
      if (sends === 1) return { error: { code: "unavailable", message: "electing", retry_after_ms: 120 } };
      return { result: { message: message("g", sends, "alice", "hi") } };
    }
    if (req.op === "channel.create") return { error: { code: "unavailable", message: "electing", retry_after_ms: 120 } };
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: ["ws://gw/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const start = Date.now();
  await c.call("message.send", { channel: "g", client_id: "m1", text: "hi" });
  assert.equal(sends, 2, "sent again after unavailable");
  assert.ok(Date.now() - start >= 110, `sent again after ${Date.now() - start} ms, sooner than the 120 ms asked`);
  await assert.rejects(c.call("channel.create", { id: "new", type: "standard" }), (e: unknown) => e instanceof SwitchboardError && e.code === "unavailable");
  c.close();
});

test("events are delivered in seq order: repeats are dropped and a gap resumes from the last seq", async () => {
  const srv = new FakeServer();
  srv.handler = (req) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 3) };
    if (req.op === "channel.watch") return undefined; // answered by hand below
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const got: number[] = [];
  c.onEvent((e) => got.push(e.seq ?? -1));
  await c.call("channel.watch", { channel: "g" });
  const s = srv.current;
  s.push(newEvent("g", 3, 1), newEvent("g", 4, 2), newEvent("g", 4, 2), { event: "typing", channel: "g", data: { user: "bob", active: true } });
  assert.deepEqual(got, [4, -1]);
  s.push(newEvent("g", 7, 5)); // 5 and 6 missed
  const { req } = await srv.request((r) => r.op === "channel.watch" && r.args["since_seq"] === 4);
  s.push(newEvent("g", 8, 6)); // live, while the resume is out: its replay carries it
  s.push({
    id: req.id,
    result: watchResult("g", 8, { events: [newEvent("g", 5, 3), newEvent("g", 6, 4), newEvent("g", 7, 5), newEvent("g", 8, 6)] }),
  });
  s.push(newEvent("g", 9, 7));
  await until(() => got.length === 7);
  assert.deepEqual(got, [4, -1, 5, 6, 7, 8, 9]);
  assert.equal(c.watches().get("g"), 9);
  c.close();
});

test("a message in an event, without its empty fields, channel or text type, reaches listeners whole", async () => {
  const srv = new FakeServer();
  srv.handler = (req) => (req.op === "channel.watch" ? { result: watchResult("g", 0) } : srv.defaultAnswer(req));
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const got: ServerEvent[] = [];
  c.onEvent((e) => got.push(e));
  await c.call("channel.watch", { channel: "g" });
  // As the server writes it (docs/protocol.md, "A message in an event").
  const compact = { id: "1-m", segment: 1, user: "bob", text: "hi", client_id: "c-1", created_at: "2026-01-01T00:00:01.000Z" };
  srv.current.push({ event: "message.new", channel: "g", seq: 1, data: { message: compact } } as unknown as ServerEvent);
  srv.current.push({
    event: "reaction.updated", channel: "g", seq: 2,
    data: { message: { ...compact, type: "image", reactions: { "👍": 1 }, mentions: ["alice"] }, user: "carl", name: "👍", added: true },
  } as unknown as ServerEvent);
  await until(() => got.length === 2);
  const e = got[0]!;
  assert.ok(e.event === "message.new");
  assert.deepEqual(e.data.message, message("g", 1, "bob", "hi"));
  const r = got[1]!;
  assert.ok(r.event === "reaction.updated");
  assert.deepEqual(r.data.message, message("g", 1, "bob", "hi", { type: "image", reactions: { "👍": 1 }, mentions: ["alice"] }));
  c.close();
});

test("a resume with has_more continues from the last event; reset is reported", async () => {
  const srv = new FakeServer();
  let page = 0;
  srv.handler = (req) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 1) };
    if (req.op === "channel.watch") {
      page++;
      if (page === 1) return { result: watchResult("g", 4, { events: [newEvent("g", 2, 2), newEvent("g", 3, 3)], events_has_more: true, has_more: true }) };
      if (page === 2) return { result: watchResult("g", 4, { events: [newEvent("g", 4, 4)] }) };
      return { result: watchResult("g", 40, { events: [], reset: true, messages: [message("g", 30, "bob", "late")] }) };
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const got: number[] = [];
  const watches: string[] = [];
  c.onEvent((e) => got.push(e.seq!));
  c.onWatch((e) => watches.push(`${e.phase}${e.result?.reset ? ":reset" : ""}`));
  await c.call("channel.watch", { channel: "g" });
  srv.current.push(newEvent("g", 5, 5)); // gap: 2..4 missing
  await until(() => got.length === 3);
  assert.deepEqual(got, [2, 3, 4]);
  assert.equal(page, 2);
  srv.current.push(newEvent("g", 9, 9)); // another gap; the server no longer has the events
  await until(() => watches.includes("done:reset"));
  assert.equal(c.watches().get("g"), 40);
  assert.deepEqual(watches, ["done", "start", "start", "done", "start", "done:reset"]);
  c.close();
});

test("a resync that times out is tried again until it delivers the missed events", async () => {
  const srv = new FakeServer();
  let resyncs = 0;
  srv.handler = (req) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 1) };
    if (req.op === "channel.watch") {
      resyncs++;
      if (resyncs <= 2) return undefined; // too busy to answer in time
      return { result: watchResult("g", 3, { events: [newEvent("g", 2, 2), newEvent("g", 3, 3)] }) };
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 100 });
  const got: number[] = [];
  const watches: string[] = [];
  c.onEvent((e) => got.push(e.seq!));
  c.onWatch((e) => watches.push(e.phase));
  await c.call("channel.watch", { channel: "g" });
  srv.current.push(newEvent("g", 3, 3)); // gap: 2 missing
  await until(() => got.length === 2);
  assert.deepEqual(got, [2, 3]);
  assert.ok(resyncs >= 3, `${resyncs} resync calls`); // more if one answered in time still came too late on a busy machine
  assert.deepEqual(watches, ["done", "start", "done"]);
  c.close();
});

test("a resync answered after its timeout is taken: its events are delivered and the channel is not asked again", async () => {
  const srv = new FakeServer();
  let resyncs = 0;
  srv.handler = (req, sock) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 1) };
    if (req.op === "channel.watch") {
      resyncs++;
      if (resyncs === 1) {
        // Answered after the client's timeout (and within another), then
        // the events after the reply's position, as a gateway sends them.
        // Something else arrives meanwhile: the connection is alive.
        setTimeout(() => sock.push(newEvent("h", 1, 1)), 50);
        setTimeout(() => {
          sock.reply(req.id, { result: watchResult("g", 3, { events: [newEvent("g", 2, 2), newEvent("g", 3, 3)] }) });
          sock.push(newEvent("g", 4, 4));
        }, 150);
        return undefined;
      }
      return { result: watchResult("g", 4, { events: [newEvent("g", 2, 2), newEvent("g", 3, 3), newEvent("g", 4, 4)] }) };
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 100 });
  const got: number[] = [];
  c.onEvent((e) => {
    if (e.channel === "g") got.push(e.seq!);
  });
  await c.call("channel.watch", { channel: "g" });
  srv.current.push(newEvent("g", 3, 3)); // gap: 2 missing
  await until(() => got.length === 3);
  assert.deepEqual(got, [2, 3, 4]);
  assert.equal(resyncs, 1);
  assert.equal(srv.sockets.length, 1);
  c.close();
});

test("a resume in flight across a drop goes on by itself: the reconnect does not start a second one", async () => {
  const srv = new FakeServer();
  srv.handler = (req, sock) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 1) };
    if (req.op === "channel.watch") {
      if (sock === srv.sockets[1]) {
        setTimeout(() => sock.kill(), 10); // unanswered, and this connection drops too
        return undefined;
      }
      return { result: watchResult("g", 2, { events: [newEvent("g", 2, 2)] }) };
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const got: number[] = [];
  c.onEvent((e) => got.push(e.seq!));
  await c.call("channel.watch", { channel: "g" });
  srv.current.kill();
  await until(() => got.length === 1 && srv.sockets.length === 3);
  await new Promise((r) => setTimeout(r, 50));
  const resumes = srv.sockets[2]!.requests.filter((r) => r.op === "channel.watch");
  assert.equal(resumes.length, 1);
  assert.deepEqual(got, [2]);
  c.close();
});

test("a reconnect packs its watches' resumes with its connect, up to 8; the rest follow it; each starts once the session is back", async () => {
  const srv = new FakeServer();
  srv.takesConnect = true;
  const names = Array.from({ length: 10 }, (_, i) => `room${i}`);
  srv.handler = (req) => {
    if (req.op !== "channel.watch") return srv.defaultAnswer(req);
    const ch = req.args["channel"] as string;
    if (req.args["since_seq"] === undefined) return { result: watchResult(ch, 5) };
    return { result: watchResult(ch, 6, { events: [newEvent(ch, 6, 6)] }) };
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  for (const ch of names) await c.call("channel.watch", { channel: ch });
  const log: string[] = [];
  c.onStatus((st) => log.push(st));
  c.onWatch((e) => log.push(`${e.phase} ${e.channel}`));
  const got: string[] = [];
  c.onEvent((e) => got.push(`${e.channel} ${e.seq}`));
  srv.sockets[0]!.kill();
  await until(() => got.length === names.length, 2000, "every replay");
  const sock = srv.sockets[1]!;
  const offered = sock.offeredAll;
  assert.equal(offered[0]!.op, "connect");
  assert.deepEqual(
    offered.slice(1).map((r) => [r.op, r.args]),
    names.slice(0, 8).map((ch) => ["channel.watch", { channel: ch, since_seq: 5 }]),
    "the first 8 resumes are in the connect's message",
  );
  assert.deepEqual(
    sock.requests.map((r) => [r.op, r.args]),
    names.slice(8).map((ch) => ["channel.watch", { channel: ch, since_seq: 5 }]),
    "the other two follow it",
  );
  assert.deepEqual(got.sort(), names.map((ch) => `${ch} 6`).sort(), "each replay delivered once");
  // Offline the channels were stale: their resumes start (for listeners)
  // once the session is back, then end.
  assert.equal(log[0], "reconnecting");
  assert.equal(log[1], "online");
  for (const ch of names) {
    const start = log.indexOf(`start ${ch}`);
    assert.ok(start > 1 && log.indexOf(`done ${ch}`) > start, `${ch}: ${log.join(", ")}`);
  }
  c.close();
});

test("after a drop the client reconnects to the next URL, resumes watches and resends idempotent requests with their client_id", async () => {
  const srv = new FakeServer();
  let sends = 0;
  srv.handler = (req, sock) => {
    if (req.op === "channel.watch" && req.args["since_seq"] === undefined) return { result: watchResult("g", 5) };
    if (req.op === "channel.watch") return { result: watchResult("g", 6, { events: [newEvent("g", 6, 6)] }) };
    if (req.op === "message.send") {
      sends++;
      if (sock === srv.sockets[0]) return undefined; // the reply is lost with the connection
      return { result: { message: message("g", 7, "alice", "hi", { client_id: req.args["client_id"] as string }) } };
    }
    if (req.op === "message.delete") return undefined;
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: ["ws://a/v1/ws", "ws://b/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast });
  const statuses: string[] = [];
  c.onStatus((s) => statuses.push(s));
  const events: number[] = [];
  c.onEvent((e) => events.push(e.seq!));
  await c.call("channel.watch", { channel: "g" });
  const send = c.call("message.send", { channel: "g", client_id: "cid-1", text: "hi" });
  const del = c.call("message.delete", { channel: "g", message_id: "1-m" });
  await srv.request((r) => r.op === "message.delete");
  srv.sockets[0]!.kill();
  await assert.rejects(del, (e: unknown) => e instanceof SwitchboardError && e.code === "disconnected");
  const res = await send;
  assert.equal(res.message.client_id, "cid-1");
  assert.equal(sends, 2);
  assert.equal(srv.sockets.length, 2);
  assert.equal(srv.sockets[1]!.url, "ws://b/v1/ws");
  const resent = srv.sockets[1]!.requests.filter((r) => r.op === "message.send");
  assert.deepEqual(resent[0]!.args, { channel: "g", client_id: "cid-1", text: "hi" });
  await until(() => events.includes(6));
  assert.deepEqual(srv.sockets[1]!.requests.find((r) => r.op === "channel.watch")!.args, { channel: "g", since_seq: 5 });
  assert.deepEqual(statuses, ["reconnecting", "online"]);
  c.close();
});

test("gateways that are down are skipped until one answers", async () => {
  const srv = new FakeServer();
  srv.down.add("ws://down/v1/ws");
  const c = await connect({ urls: ["ws://down/v1/ws", "ws://up/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast });
  assert.equal(c.status, "online");
  assert.equal(srv.current.url, "ws://up/v1/ws");
  c.close();
});

test("a connection attempt given up while connecting leaves no error behind (Node's ws throws one without a handler)", async () => {
  const srv = new FakeServer();
  srv.hung.add("ws://hung/v1/ws");
  const c = await connect({ urls: ["ws://hung/v1/ws", "ws://up/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 50 });
  assert.equal(c.status, "online");
  assert.equal(srv.current.url, "ws://up/v1/ws");
  // The abandoned socket's error came before the next dial: it is in by now.
  assert.deepEqual(srv.uncaught, []);
  c.close();
});

test("a request without a reply times out, and a connection that stays silent is replaced", async () => {
  const srv = new FakeServer();
  srv.handler = (req, sock) => {
    if (req.op === "me" && sock === srv.sockets[0]) {
      sock.silent = true;
      return undefined;
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 100 });
  await assert.rejects(c.call("me", {}), (e: unknown) => e instanceof SwitchboardError && e.code === "timeout");
  await until(() => srv.sockets.length === 2 && c.status === "online");
  await c.call("me", {});
  c.close();
});

test("a gateway that goes silent is left within stallTimeoutMs: idempotent requests are resent on the next URL, others fail, watches resume", async () => {
  const srv = new FakeServer();
  srv.handler = (req, sock) => {
    if (req.op === "channel.watch") return { result: watchResult("g", 5) };
    if (sock.url.startsWith("ws://a/") && sock.silent) return undefined; // a stopped process answers nothing
    return srv.defaultAnswer(req);
  };
  const stall = 200;
  const c = await connect({ urls: ["ws://a/v1/ws", "ws://b/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 5000, stallTimeoutMs: stall });
  await c.call("channel.watch", { channel: "g" });
  const a = srv.current;
  a.silent = true; // paused: the socket stays open, nothing comes back
  const start = Date.now();
  const send = c.call("message.send", { channel: "g", client_id: "x1", text: "hi" });
  const leave = c.call("channel.leave", { channel: "g" });
  await assert.rejects(leave, (e: unknown) => e instanceof SwitchboardError && e.code === "disconnected");
  await send;
  const took = Date.now() - start;
  // Well before requestTimeoutMs (5 s), which is what a request waited without the check.
  assert.ok(took < 10 * stall, `the stall took ${took} ms to get around`);
  const b = srv.current;
  assert.equal(b.url, "ws://b/v1/ws");
  assert.equal(a.readyState, 3, "the silent socket is closed");
  assert.ok(a.requests.some((r) => r.op === "ping"), "a ping went out before the drop");
  assert.ok(b.requests.some((r) => r.op === "message.send" && r.args["client_id"] === "x1"), "the send is resent, with its client_id");
  assert.ok(b.requests.some((r) => r.op === "channel.watch" && r.args["since_seq"] === 5), "the watch resumes from its seq");
  assert.ok(!b.requests.some((r) => r.op === "channel.leave"), "channel.leave is not resent");
  c.close();
});

test("an idle connection to a live gateway is pinged and kept", async () => {
  const srv = new FakeServer();
  const stall = 100;
  const c = await connect({ urls: ["ws://a/v1/ws", "ws://b/v1/ws"], userId: "alice", WebSocket: srv.WebSocket, ...fast, stallTimeoutMs: stall });
  // Each ping follows two quiet looks: three pings span more than two bounds of silence.
  await until(() => srv.current.requests.filter((r) => r.op === "ping").length >= 3, 5000, "three pings");
  assert.equal(srv.sockets.length, 1, "a live idle connection was dropped");
  assert.equal(c.status, "online");
  c.close();
});

test("stallTimeoutMs 0 turns the check off", async () => {
  const srv = new FakeServer();
  const c = await connect({ urls: "ws://a/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast, requestTimeoutMs: 300, stallTimeoutMs: 0 });
  srv.current.silent = true;
  // Only the request's own timeout ends the wait (and then the connection, which said nothing since).
  await assert.rejects(c.call("me", {}), (e: unknown) => e instanceof SwitchboardError && e.code === "timeout");
  assert.ok(!srv.sockets[0]!.requests.some((r) => r.op === "ping"));
  c.close();
});

test("an invalid token ends the client: open rejects and the status is offline", async () => {
  const srv = new FakeServer();
  srv.handler = (req) => (req.op === "connect" ? { error: { code: "token_invalid", message: "bad signature" } } : srv.defaultAnswer(req));
  const c = new Client({ urls: "ws://gw/v1/ws", token: "nope", WebSocket: srv.WebSocket, ...fast });
  await assert.rejects(c.open(), (e: unknown) => e instanceof SwitchboardError && e.code === "token_invalid");
  assert.equal(c.status, "offline");
  assert.equal(srv.sockets.length, 1);
  assert.deepEqual(srv.sockets[0]!.requests[0]!.args, { token: "nope" });
});

test("a token function is asked again for every connection", async () => {
  const srv = new FakeServer();
  let n = 0;
  const c = await connect({ urls: "ws://gw/v1/ws", token: async () => `t${++n}`, WebSocket: srv.WebSocket, ...fast });
  srv.current.kill(4001, "server draining: reconnect elsewhere");
  await until(() => srv.sockets.length === 2 && c.status === "online");
  assert.deepEqual(
    srv.sockets.map((s) => s.requests[0]!.args),
    [{ token: "t1" }, { token: "t2" }],
  );
  c.close();
});

test("logout ends the session without reconnecting", async () => {
  const srv = new FakeServer();
  srv.handler = (req, sock) => {
    if (req.op === "logout") {
      setTimeout(() => sock.kill(1000, "logout"), 1);
      return { result: {} };
    }
    return srv.defaultAnswer(req);
  };
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  await c.logout();
  assert.equal(c.status, "offline");
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(srv.sockets.length, 1);
  await assert.rejects(c.call("me", {}), (e: unknown) => e instanceof SwitchboardError && e.code === "closed");
});

test("being kicked ends the watch, so a reconnect does not resume the channel", async () => {
  const srv = new FakeServer();
  srv.handler = (req) => (req.op === "channel.watch" ? { result: watchResult("g", 1) } : srv.defaultAnswer(req));
  const c = await connect({ urls: "ws://gw/v1/ws", userId: "alice", WebSocket: srv.WebSocket, ...fast });
  await c.call("channel.watch", { channel: "g" });
  srv.current.push({ event: "member.kicked", channel: "g", seq: 2, data: { user: "alice", actor: "bob" } });
  assert.equal(c.watches().has("g"), false);
  srv.current.kill();
  await until(() => srv.sockets.length === 2 && c.status === "online");
  assert.equal(srv.current.requests.some((r) => r.op === "channel.watch"), false);
  c.close();
});

test("URLs must be ws:// or wss://", () => {
  assert.throws(() => new Client({ urls: "http://x/v1/ws", userId: "a" }), /not a ws/);
  assert.doesNotThrow(() => new Client({ urls: ["wss://chat.example/v1/ws"], userId: "a" }));
});

test("connect is offered in the upgrade: a gateway that takes it gets no connect frame; an older one, and any with connectFrame, gets the frame", async () => {
  for (const [takes, connectFrame] of [[true, false], [false, false], [true, true]] as const) {
    const srv = new FakeServer();
    srv.takesConnect = takes;
    const c = await connect({ urls: "ws://gw/v1/ws", userId: "zoe", name: "Zoë 🎉", WebSocket: srv.WebSocket, connectFrame, ...fast });
    assert.equal(c.status, "online");
    assert.equal(c.user?.id, "zoe");
    const sock = srv.current;
    const want = { id: 0, op: "connect", args: { user_id: "zoe", name: "Zoë 🎉" } };
    if (connectFrame) {
      assert.deepEqual(sock.protocols, [SUBPROTOCOL]);
    } else {
      assert.deepEqual(sock.protocols.slice(0, 2), [CONNECTED_SUBPROTOCOL, SUBPROTOCOL]);
      const offer = sock.protocols[2]!;
      assert.match(offer, /^switchboard\.connect\.[A-Za-z0-9_-]+$/);
      assert.deepEqual(JSON.parse(Buffer.from(offer.slice(CONNECT_SUBPROTOCOL_PREFIX.length), "base64url").toString()), want);
    }
    const framed = sock.requests.filter((r) => r.op === "connect" && r !== sock.offered);
    assert.equal(framed.length, takes && !connectFrame ? 0 : 1, `takes ${takes}, connectFrame ${connectFrame}`);
    c.close();
  }
});

test("requests safe to repeat made before open() go with the connect, in its message; the first that is not stops the packing; a connection that fails leaves them to the next", async () => {
  for (const takes of [true, false]) {
    const srv = new FakeServer();
    srv.takesConnect = takes;
    srv.handler = (req) => (req.op === "channel.join" ? { result: watchResult("stage", 4) } : srv.defaultAnswer(req));
    const c = new Client({ urls: "ws://gw/v1/ws", userId: "zoe", WebSocket: srv.WebSocket, ...fast });
    const joined = c.call("channel.join", { channel: "stage" });
    const created = c.call("channel.create", { id: "new", type: "standard" });
    const watched = c.call("channel.watch", { channel: "other" });
    await c.open();
    assert.equal((await joined).seq, 4);
    await created;
    await watched;
    const sock = srv.current;
    if (takes) {
      assert.deepEqual(sock.offeredAll.map((r) => r.op), ["connect", "channel.join"]);
      assert.deepEqual(sock.requests.map((r) => r.op), ["channel.create", "channel.watch"]);
    } else {
      assert.deepEqual(sock.requests.map((r) => r.op), ["connect", "channel.join", "channel.create", "channel.watch"]);
    }
    c.close();
  }

  const srv = new FakeServer();
  srv.takesConnect = true;
  srv.down.add("ws://down/v1/ws");
  let joins = 0;
  srv.handler = (req) => {
    if (req.op === "channel.join") {
      joins++;
      return { result: watchResult("stage", 9) };
    }
    return srv.defaultAnswer(req);
  };
  const c = new Client({ urls: ["ws://down/v1/ws", "ws://gw/v1/ws"], userId: "zoe", WebSocket: srv.WebSocket, ...fast });
  const joined = c.call("channel.join", { channel: "stage" });
  await c.open();
  assert.equal((await joined).seq, 9);
  assert.equal(srv.sockets.length, 2);
  assert.match(srv.sockets[0]!.protocols[2]!, /^switchboard\.connect\./, "the first connection carried the join too");
  assert.deepEqual(srv.current.offeredAll.map((r) => r.op), ["connect", "channel.join"]);
  assert.equal(joins, 1);
  c.close();
});
