// Runs the end-to-end tests in e2e/: a real node (the switchboard binary,
// built from this repository unless SWITCHBOARD_BIN names one) serving
// the embedded app, driven in headless Chromium (CHROMIUM, default
// /usr/bin/chromium) by playwright-core. Screenshots go to test-artifacts/.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, ".e2e-build");
rmSync(join(root, "test-artifacts"), { recursive: true, force: true });
rmSync(out, { recursive: true, force: true });
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(chromium)) {
  console.error(`e2e: no Chromium at ${chromium}: apt-get install -y chromium (or set CHROMIUM)`);
  process.exit(1);
}
const tests = readdirSync(join(root, "e2e")).filter((f) => f.endsWith(".test.ts"));
await build({
  entryPoints: tests.map((f) => join(root, "e2e", f)),
  outdir: out,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["playwright-core"],
  sourcemap: "inline",
  logLevel: "warning",
});
const env = { ...process.env, CHROMIUM: chromium };
if (!env.SWITCHBOARD_BIN) {
  env.SWITCHBOARD_BIN = join(out, "switchboard");
  const go = spawnSync("go", ["build", "-o", env.SWITCHBOARD_BIN, "./cmd/switchboard"], { stdio: "inherit", cwd: join(root, "..") });
  if (go.status !== 0) process.exit(go.status ?? 1);
}
const r = spawnSync(process.execPath, ["--enable-source-maps", "--test", "--test-reporter=spec", "--test-concurrency=1", ...tests.map((f) => join(out, f.replace(/\.ts$/, ".js")))], { stdio: "inherit", cwd: root, env });
process.exit(r.status ?? 1);
