// Runs real `switchboard serve` processes for the integration tests (and
// the web app's end-to-end tests), a TCP proxy in front of them that can
// cut, refuse or silence connections, and a TLS front. Node built-ins
// only, so other packages can bundle it.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import tls from "node:tls";
import { fileURLToPath } from "node:url";

/** The switchboard binary: $SWITCHBOARD_BIN (scripts/test.mjs builds it). */
export function binary(): string {
  const bin = process.env["SWITCHBOARD_BIN"];
  if (!bin) throw new Error("SWITCHBOARD_BIN is not set: run the tests with scripts/test.mjs integration");
  return bin;
}

export const SECRET = "integration-secret";

/** Mints a token with `switchboard token` (a session token, or a join token with channel). */
export function token(user: string, opts: { channel?: string; perms?: string; name?: string } = {}): string {
  const args = ["token", "--secret", SECRET, "--user", user];
  if (opts.channel) args.push("--channel", opts.channel, "--perms", opts.perms ?? "read,write");
  if (opts.name) args.push("--name", opts.name);
  return execFileSync(binary(), args, { encoding: "utf8" }).trim();
}

/** One running node. */
export class Node {
  addr = "";
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private log = "";
  readonly dataDir: string;

  /** auth: run with an auth secret (and --dev-auth), or in development auth alone. */
  constructor(private readonly extra: string[] = [], private readonly auth = true) {
    this.dataDir = mkdtempSync(join(tmpdir(), "switchboard-sdk-"));
  }

  get url(): string {
    return `ws://${this.addr}/v1/ws`;
  }

  /** Starts the node (on its old port when restarting), retrying while the port is briefly taken. */
  async start(): Promise<void> {
    const listen = this.addr || "127.0.0.1:0";
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await this.startOnce(listen);
        return;
      } catch (err) {
        if (!/address already in use/.test(this.log) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private startOnce(listen: string): Promise<void> {
    this.log = "";
    const args = ["serve", "--listen", listen, "--cluster-bind", "127.0.0.1:0", "--data", this.dataDir,
      ...(this.auth ? ["--auth-secret", SECRET, "--dev-auth"] : []), "--log-level", "warn", "--drain-timeout", "0", ...this.extra];
    const p = spawn(binary(), args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    this.exited = new Promise((r) => p.once("exit", () => r()));
    p.stderr!.on("data", (b: Buffer) => {
      if (this.log.length < 64_000) this.log += b.toString();
    });
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node did not start:\n${this.log}`)), 30_000);
      createInterface({ input: p.stdout! }).on("line", (line) => {
        const m = /listening on (\S+) /.exec(line);
        if (m) {
          this.addr = m[1]!;
          clearTimeout(timer);
          resolve();
        }
      });
      p.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`node exited (${code}):\n${this.log}`));
      });
    });
  }

  /** SIGKILL, and wait for the process to end. */
  async kill(): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await this.exited;
    this.proc = null;
  }

  /** Kills the node and removes its data. */
  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * A TCP proxy to a node: clients connect through it so a test can cut
 * every connection (as a network failure would), refuse new ones, or
 * silently drop what the server sends (a connection that hangs).
 */
export class Proxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private refusing = false;
  private silenced = false;
  port = 0;

  constructor(private readonly target: () => string) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  private accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const [host, port] = this.target().split(":");
    const upstream = net.connect(Number(port), host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    this.pairs.add(pair);
    client.on("data", (b) => upstream.write(b));
    upstream.on("data", (b) => {
      if (!this.silenced) client.write(b);
    });
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  }

  /** Destroys every proxied connection. */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** While on, new connections are closed at once (the gateway is unreachable). */
  refuse(on: boolean): void {
    this.refusing = on;
  }

  /** While on, bytes from the server are dropped (replies never arrive). */
  silence(on: boolean): void {
    this.silenced = on;
  }

  get connections(): number {
    return this.pairs.size;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Polls cond until it holds or the deadline passes. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A wss:// front for a node: TLS (a test certificate for 127.0.0.1) in front of its plain port. */
export class TLSFront {
  private readonly server: tls.Server;
  port = 0;
  /** The CA that signed the test certificate, to pass as webSocketOptions.ca. */
  readonly ca: Buffer;

  constructor(private readonly target: () => string) {
    const dir = join(dirname(fileURLToPath(import.meta.url)), "../../../test/integration/tls");
    this.ca = readFileSync(join(dir, "ca.pem"));
    this.server = tls.createServer({ key: readFileSync(join(dir, "server.key")), cert: readFileSync(join(dir, "server.pem")) }, (client) => {
      const [host, port] = this.target().split(":");
      const upstream = net.connect(Number(port), host);
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on("error", end).on("close", end);
      upstream.on("error", end).on("close", end);
    });
    this.server.on("tlsClientError", () => {});
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `wss://127.0.0.1:${this.port}/v1/ws`;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
