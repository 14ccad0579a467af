// The SDK's op, event and error names are those docs/protocol.md
// documents: a name added to the protocol and not to src/types.ts (or the
// reverse) fails here. The integration suite checks the same op names
// against a running server.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { SwitchboardError } from "../../src/errors.js";
import { splitFrames, jitter, httpOrigin } from "../../src/transport.js";
import { ERROR_CODES, EVENT_NAMES, IDEMPOTENT_OPS, OP_NAMES } from "../../src/types.js";

// .test-build/test/unit → the repository root
const repo = join(dirname(fileURLToPath(import.meta.url)), "../../../../..");
const doc = readFileSync(join(repo, "docs/protocol.md"), "utf8");

/** The rows' first cells (`name`) of the markdown table that follows a heading. */
function tableNames(heading: string): string[] {
  const start = doc.search(new RegExp(`\n#{2,3} ${heading}\n`));
  assert.ok(start >= 0, `docs/protocol.md has a "${heading}" section`);
  const names: string[] = [];
  let inTable = false;
  for (const line of doc.slice(start).split("\n").slice(2)) {
    if (line.startsWith("|")) {
      inTable = true;
      const m = /^\| `([^`]+)` \|/.exec(line);
      if (m) names.push(m[1]!);
    } else if (inTable) break;
  }
  return names;
}

test("every op documented in docs/protocol.md is in OP_NAMES, and nothing else", () => {
  const documented = new Set<string>();
  for (const m of doc.matchAll(/^### (`[a-z][a-z.]*`(?: \/ `[a-z][a-z.]*`)*)$/gm)) {
    for (const n of m[1]!.matchAll(/`([^`]+)`/g)) documented.add(n[1]!);
  }
  assert.ok(documented.size > 30, `found ${documented.size} ops`);
  assert.deepEqual([...OP_NAMES].sort(), [...documented].sort());
  assert.equal(new Set(OP_NAMES).size, OP_NAMES.length);
  for (const op of IDEMPOTENT_OPS) assert.ok((OP_NAMES as readonly string[]).includes(op), op);
});

test("every event of the Events and Notices tables is in EVENT_NAMES", () => {
  assert.deepEqual([...EVENT_NAMES].sort(), [...tableNames("Events"), ...tableNames("Notices")].sort());
});

test("every error code of the Errors table is in ERROR_CODES", () => {
  assert.deepEqual([...ERROR_CODES].sort(), tableNames("Errors").sort());
});

test("frames packed into one message are split; blank and broken lines are skipped", () => {
  const got: unknown[] = [];
  const bad: string[] = [];
  splitFrames('{"id":1,"result":{}}\n\n{"event":"typing","data":{"user":"a\\nb"}}\nnot json\n[1]\n', (f) => got.push(f), (l) => bad.push(l));
  assert.deepEqual(got, [{ id: 1, result: {} }, { event: "typing", data: { user: "a\nb" } }]);
  assert.deepEqual(bad, ["not json", "[1]"]);
});

test("jitter stays between half and all of the delay", () => {
  assert.equal(jitter(100, () => 0), 50);
  assert.equal(jitter(100, () => 0.999999) < 100, true);
  for (let i = 0; i < 100; i++) {
    const d = jitter(200);
    assert.ok(d >= 100 && d <= 200);
  }
});

test("the files API lives at the gateway's HTTP origin", () => {
  assert.equal(httpOrigin("ws://127.0.0.1:8080/v1/ws"), "http://127.0.0.1:8080");
  assert.equal(httpOrigin("wss://chat.example.com/v1/ws"), "https://chat.example.com");
});

test("errors keep the server's code and retry hint", () => {
  const e = SwitchboardError.fromWire({ code: "rate_limited", message: "slow mode", retry_after_ms: 9999 }, "message.send");
  assert.equal(e.code, "rate_limited");
  assert.equal(e.retryAfterMs, 9999);
  assert.equal(e.retryable, true);
  assert.ok(e instanceof Error);
  const perm = SwitchboardError.fromWire({ code: "muted", message: "permanent" });
  assert.equal(perm.retryAfterMs, undefined);
  assert.equal(perm.retryable, false);
  assert.equal(SwitchboardError.fromWire({ code: "forbidden", message: "no", retry_after_ms: 0 }).retryAfterMs, undefined);
});
