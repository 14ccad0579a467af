// End to end in a real browser: a node serves the embedded app; two
// browser contexts (alice and bob, each with its own storage) sign in,
// chat, react, reply in a thread, see each other typing and their unread
// badges, upload an image, ride out a node restart; the console shows the
// node. Each page is screenshotted into test-artifacts/.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { deflateSync } from "node:zlib";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { Node } from "../../sdk/typescript/test/integration/node.js";

const KEY = "e2e-operator-key";
const artifacts = join(dirname(fileURLToPath(import.meta.url)), "../test-artifacts");
mkdirSync(artifacts, { recursive: true });

let node: Node;
let browser: Browser;
let alice: Page;
let bob: Page;
const contexts: BrowserContext[] = [];
const pageErrors: string[] = [];

const shot = (p: Page, name: string) => p.screenshot({ path: join(artifacts, `${name}.png`) });
const base = () => `http://${node.addr}`;

async function newPage(width = 1280, height = 800): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1, locale: "en-US", timezoneId: "UTC", colorScheme: "light" });
  contexts.push(ctx);
  // Records each WebSocket's selected subprotocol and what it sent: the
  // SDK offers its connect in the upgrade (docs/protocol.md).
  await ctx.addInitScript(() => {
    const seen: Array<{ protocol: string; sent: string[] }> = [];
    (window as unknown as { __ws: typeof seen }).__ws = seen;
    const Base = window.WebSocket;
    window.WebSocket = class extends Base {
      private rec = { protocol: "", sent: [] as string[] };
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        seen.push(this.rec);
        this.addEventListener("open", () => (this.rec.protocol = this.protocol));
      }
      override send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
        if (typeof data === "string") this.rec.sent.push(data);
        super.send(data);
      }
    };
  });
  const p = await ctx.newPage();
  p.on("pageerror", (e) => pageErrors.push(`${e.message}\n${e.stack ?? ""}`));
  p.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/.test(m.text())) pageErrors.push(m.text());
  });
  p.setDefaultTimeout(10_000);
  return p;
}

async function signIn(p: Page, user: string, name: string): Promise<void> {
  await p.goto(base() + "/");
  await p.fill("#login-user", user);
  await p.fill("#login-name", name);
  await p.click("form.login-card button[type=submit]");
  await p.waitForSelector(".app .me-name");
}

const sidebarButton = (p: Page, name: string) => p.locator(".sidebar").getByRole("button", { name });

/**
 * A step of the story: the steps share the pages, so after one fails the
 * rest are skipped (their failures would only repeat it); the failing
 * step leaves a screenshot of every page.
 */
let broken = "";
function step(name: string, fn: () => Promise<void>): void {
  test(name, async (t) => {
    if (broken) {
      t.skip(`"${broken}" failed`);
      return;
    }
    try {
      await fn();
    } catch (err) {
      broken = name;
      for (const [i, c] of contexts.entries()) for (const pg of c.pages()) await pg.screenshot({ path: join(artifacts, `failed-${i}.png`) }).catch(() => {});
      throw err;
    }
  });
}

const composer = (p: Page) => p.locator(".main .composer textarea");
const messages = (p: Page) => p.locator(".main .timeline .msg:not(.system)");
const message = (p: Page, text: string) => p.locator(".main .timeline .msg", { hasText: text });

async function send(p: Page, text: string): Promise<void> {
  await composer(p).fill(text);
  await composer(p).press("Enter");
  await message(p, text).first().waitFor();
}

before(async () => {
  node = new Node(["--api-key", KEY], false);
  await node.start();
  browser = await chromium.launch({
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await node?.destroy();
});

step("sign in, create a channel, and chat between two users", async () => {
  alice = await newPage();
  await alice.goto(base() + "/");
  await alice.waitForSelector("form.login-card");
  await shot(alice, "01-sign-in");
  await signIn(alice, "alice", "Alice Liddell");
  // The connect went in the upgrade: the gateway took it, no connect frame was sent.
  const sockets = await alice.evaluate(() => (window as unknown as { __ws: Array<{ protocol: string; sent: string[] }> }).__ws);
  assert.ok(sockets.length > 0 && sockets.every((w) => w.protocol === "switchboard.v1.json.connected"), JSON.stringify(sockets));
  assert.ok(sockets.every((w) => !w.sent.some((f) => f.includes('"op":"connect"'))), JSON.stringify(sockets));
  await alice.locator(".sidebar").getByRole("button", { name: "New channel" }).click();
  await alice.getByLabel("Name", { exact: true }).fill("General");
  await alice.getByLabel("Description").fill("Company-wide announcements and chat");
  await alice.getByRole("button", { name: "Create channel" }).click();
  await alice.waitForURL(/#\/c\/general$/);
  await send(alice, "Hello Bob! Welcome to the team 👋");

  bob = await newPage();
  await signIn(bob, "bob", "Bob Marley");
  await sidebarButton(bob, "Browse channels").click();
  await bob.getByRole("button", { name: "Join General" }).click();
  await bob.waitForURL(/#\/c\/general$/);
  await message(bob, "Hello Bob!").waitFor();

  // Typing: bob types, alice sees it.
  await composer(bob).pressSequentially("Hi Alice, glad to", { delay: 10 });
  await alice.locator(".main .typing-line", { hasText: "Bob Marley is typing" }).waitFor();
  await composer(bob).press("Enter");
  await message(alice, "Hi Alice, glad to").waitFor();
  await alice.locator(".main .typing-line", { hasText: "typing" }).waitFor({ state: "detached", timeout: 12_000 }).catch(async () => {
    assert.equal((await alice.locator(".main .typing-line").textContent())?.includes("typing"), false);
  });
  await send(alice, "Standup at 10:00 — @bob can you share the release notes?");
  for (const p of [alice, bob]) await p.waitForFunction(() => document.querySelectorAll(".main .timeline .msg:not(.system)").length === 3);
  // The mention is marked up for bob.
  await bob.locator(".msg.mentions-me .mention.mention-self", { hasText: "@bob" }).waitFor();
});

step("reactions show on both sides", async () => {
  const m = message(alice, "Hi Alice, glad to");
  await m.hover();
  await m.getByRole("button", { name: "React with 👍" }).click();
  await message(bob, "Hi Alice, glad to").locator(".reaction", { hasText: "👍" }).getByText("1").waitFor();
  const chip = message(alice, "Hi Alice, glad to").locator(".reaction.mine");
  await chip.waitFor();
  assert.equal(await chip.getAttribute("aria-pressed"), "true");
  // Bob adds his own: the count goes to 2 for both.
  await message(bob, "Hi Alice, glad to").locator(".reaction", { hasText: "👍" }).click();
  await message(alice, "Hi Alice, glad to").locator(".reaction", { hasText: "👍" }).getByText("2").waitFor();
});

step("a reply in a thread reaches the other user's thread panel", async () => {
  const m = message(bob, "Standup at 10:00");
  await m.hover();
  await m.getByRole("button", { name: "Reply in thread" }).click();
  const panel = bob.locator(".side-panel");
  await panel.locator(".msg", { hasText: "Standup at 10:00" }).waitFor();
  await panel.locator(".composer textarea").fill("Sure, sharing them in a minute 📄");
  await panel.locator(".composer textarea").press("Enter");
  await panel.locator(".msg", { hasText: "Sure, sharing them" }).waitFor();
  await shot(bob, "03-thread");
  // Alice sees the reply count, opens the thread, sees the reply.
  const link = message(alice, "Standup at 10:00").locator(".thread-link", { hasText: "1 reply" });
  await link.waitFor();
  await link.click();
  await alice.locator(".side-panel .msg", { hasText: "Sure, sharing them" }).waitFor();
  await alice.keyboard.press("Escape");
  await alice.locator(".side-panel").waitFor({ state: "hidden" });
});

step("an image upload shows as a preview for the other user", async () => {
  const png = gradientPNG(480, 270);
  await bob.locator(".main .composer input[type=file]").setInputFiles({ name: "diagram.png", mimeType: "image/png", buffer: png });
  await bob.locator(".main .file-chip:not(.uploading)", { hasText: "diagram.png" }).waitFor();
  await composer(bob).fill("Here is the diagram");
  await composer(bob).press("Enter");
  const img = alice.locator(".main .msg", { hasText: "Here is the diagram" }).locator(".att-image img");
  await img.waitFor();
  await alice.waitForFunction((sel) => {
    const el = document.querySelector<HTMLImageElement>(sel);
    return !!el && el.src.startsWith("blob:") && el.complete && el.naturalWidth === 480;
  }, ".main .att-image img");
  await shot(alice, "02-chat");
});

step("unread badges and mention marks count messages in chats not open", async () => {
  // Alice has General open at its newest message: it is read, nothing counts.
  await alice.waitForFunction(() => document.title === "General · Switchboard");
  await alice.locator(".sidebar").getByRole("button", { name: "New channel" }).click();
  await alice.getByLabel("Name", { exact: true }).fill("Random");
  await alice.getByRole("button", { name: "Create channel" }).click();
  await alice.waitForURL(/#\/c\/random$/);
  await send(bob, "Did everyone see the deploy?");
  await send(bob, "@alice the dashboard is green again ✅");
  const item = alice.locator('a.chat-item[data-chat="general"]');
  await item.locator(".badge-count", { hasText: "2" }).waitFor();
  await item.locator(".mention-mark").waitFor();
  assert.match((await item.getAttribute("aria-label")) ?? "", /2 unread, mentioned/);
  await shot(alice, "04-unread");
  // Opening the chat reads it: the badge goes.
  await item.click();
  await alice.locator(".main .unread-divider").waitFor();
  await item.locator(".badge-count").waitFor({ state: "detached" });
});

step("at phone width one pane shows at a time", async () => {
  const phone = await newPage(390, 844);
  await signIn(phone, "carol", "Carol Danvers");
  await sidebarButton(phone, "Browse channels").click();
  await phone.getByRole("button", { name: "Join General" }).click();
  await phone.waitForURL(/#\/c\/general$/);
  await message(phone, "dashboard is green").waitFor();
  assert.equal(await phone.locator(".sidebar").isVisible(), false);
  await shot(phone, "06-phone-chat");
  await phone.getByRole("link", { name: "Back to chats" }).click();
  await phone.locator(".sidebar").waitFor();
  assert.equal(await phone.locator(".main").isVisible(), false);
  await shot(phone, "05-phone-chats");
});

step("when the node restarts the app shows it is reconnecting, then catches up", async () => {
  await alice.locator('a.chat-item[data-chat="general"]').click();
  await node.kill();
  await alice.locator(".banner", { hasText: "Reconnecting" }).waitFor();
  await composer(alice).fill("Sent while the node was down");
  await composer(alice).press("Enter");
  await alice.locator(".msg.sending", { hasText: "Sent while the node was down" }).waitFor();
  await shot(alice, "07-reconnecting");
  await node.start();
  await alice.locator(".banner").waitFor({ state: "hidden", timeout: 15_000 });
  await alice.locator(".msg:not(.sending)", { hasText: "Sent while the node was down" }).waitFor();
  await message(bob, "Sent while the node was down").waitFor({ timeout: 15_000 });
  assert.equal(await message(bob, "Sent while the node was down").count(), 1);
});

step("members and moderation: the owner mutes a member, who sees it", async () => {
  await alice.getByRole("button", { name: "Members" }).click();
  const bobRow = alice.locator(".side-panel .member", { hasText: "Bob Marley" });
  await bobRow.waitFor();
  await shot(alice, "08-members");
  await bobRow.getByRole("button", { name: "Mute 1 h" }).click();
  await bobRow.locator(".badge", { hasText: "muted" }).waitFor();
  await bob.locator(".main .composer textarea[disabled]").waitFor();
  assert.match((await composer(bob).getAttribute("placeholder")) ?? "", /muted/);
  await bobRow.getByRole("button", { name: "Unmute" }).click();
  await bob.locator(".main .composer textarea:not([disabled])").waitFor();
});

step("a direct message opens a conversation the other user sees, with presence", async () => {
  await sidebarButton(bob, "New message").click();
  await bob.getByLabel("User ids").fill("alice");
  await bob.getByRole("button", { name: "Start conversation" }).click();
  await bob.waitForURL(/#\/c\/dm-/);
  await bob.locator(".chat-head h1", { hasText: "Alice Liddell" }).waitFor();
  await send(bob, "Can we talk about the launch plan later today?");
  // Alice's sessions hear of the conversation bob started (channel.added).
  const dm = alice.locator("a.chat-item", { hasText: "Bob Marley" });
  await dm.locator(".badge-count", { hasText: "1" }).waitFor();
  await dm.locator(".presence.online").waitFor();
  await dm.click();
  await message(alice, "launch plan").waitFor();
  await send(alice, "Sure — 3 pm works 👍");
  await message(bob, "3 pm works").waitFor();
  // The overview for the docs: General with a thread open, the DM in the sidebar.
  await alice.locator('a.chat-item[data-chat="general"]').click();
  await message(alice, "Standup at 10:00").locator(".thread-link").click();
  await alice.locator(".side-panel .msg", { hasText: "Sure, sharing them" }).waitFor();
  await alice.mouse.move(0, 0);
  await alice.locator(".toast").first().waitFor({ state: "detached", timeout: 8000 }).catch(() => {});
  await shot(alice, "10-overview");
});

step("the console shows the node, its members and charts; drain needs the key", async () => {
  const p = await newPage(1280, 860);
  await p.goto(base() + "/console");
  await p.locator(".error", { hasText: "API key" }).waitFor();
  await p.getByLabel("Operator API key").fill(KEY);
  await p.getByRole("button", { name: "Use key" }).click();
  const row = p.locator("table tbody tr.self");
  await row.waitFor();
  const name = (await p.locator(".node-name").textContent()) ?? "";
  assert.match(name, /^node-/);
  await row.locator("th", { hasText: name }).waitFor();
  await row.locator(".state.alive").waitFor();
  // Sessions come from the node's metrics: alice, bob and carol are connected.
  await p.waitForFunction(() => Number(document.querySelectorAll("table tbody tr.self td.num")[2]?.textContent) >= 3);
  await p.waitForFunction(() => document.querySelectorAll("figure svg polyline").length >= 2, undefined, { timeout: 15_000 });
  // Each chart's y axis reads 0, then evenly spaced exact values (0.25, not 0.3).
  const axes = await p.$$eval("figure svg", (svgs) => svgs.map((s) => [...s.querySelectorAll("text.y-tick")].map((t) => t.textContent ?? "")));
  assert.ok(axes.length >= 2, `${axes.length} charts`);
  for (const labels of axes) {
    const vs = labels.map(Number);
    assert.ok(vs.length >= 2 && vs[0] === 0 && vs.every(Number.isFinite), `y axis ${labels.join(" ")}`);
    const step = vs[1]! - vs[0]!;
    vs.forEach((v, i) => assert.ok(Math.abs(v - i * step) < 1e-9, `y axis ${labels.join(" ")}: uneven`));
  }
  await shot(p, "09-console");
  // A member whose disk is full says so (the node reports disk_full; the
  // Go tests fill a real disk, here the answer is edited on its way).
  await p.route("**/v1/cluster", async (route) => {
    const res = await route.fetch();
    const view = await res.json();
    view.members[0].disk_full = true;
    await route.fulfill({ response: res, json: view });
  });
  const full = row.locator(".state.disk-full");
  await full.waitFor({ timeout: 15_000 });
  assert.equal(await full.textContent(), "disk full");
  await shot(p, "11-console-disk-full");
  await p.unroute("**/v1/cluster");
  await row.locator(".state.alive").waitFor({ timeout: 15_000 });
  // A wrong key cannot drain.
  const res = await p.evaluate(async () => (await fetch("/v1/cluster/drain", { method: "POST", headers: { Authorization: "Bearer wrong" } })).status);
  assert.equal(res, 401);
});

test("no page threw or broke the content security policy", () => {
  assert.deepEqual(pageErrors, []);
});

/** A w×h PNG of a diagonal gradient (RGB, no filter), made here so the test needs no image file. */
function gradientPNG(w: number, hgt: number): Buffer {
  const raw = Buffer.alloc((w * 3 + 1) * hgt);
  for (let y = 0; y < hgt; y++) {
    const row = y * (w * 3 + 1);
    for (let x = 0; x < w; x++) {
      const t = (x / w + y / hgt) / 2;
      raw[row + 1 + x * 3] = Math.round(91 + (214 - 91) * t);
      raw[row + 2 + x * 3] = Math.round(91 + (64 - 91) * t);
      raw[row + 3 + x * 3] = Math.round(214 + (159 - 214) * t);
    }
  }
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(hgt, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}
