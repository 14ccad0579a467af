// Runs the SDK's tests with node's test runner: `unit` (no server) or
// `integration` (against a real switchboard serve each suite starts).
// esbuild transpiles src/ and test/ to .test-build/ first; nothing is bundled.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const kind = process.argv[2] ?? "unit";
const out = join(root, ".test-build");
rmSync(out, { recursive: true, force: true });
const files = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []));
await build({
  entryPoints: [...files(join(root, "src")), ...files(join(root, "test"))],
  outdir: out,
  outbase: root,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: "inline",
  logLevel: "warning",
});
const env = { ...process.env };
if (kind === "integration" && !env.SWITCHBOARD_BIN) {
  // The tests start real nodes: build the binary from this repository.
  env.SWITCHBOARD_BIN = join(out, "switchboard");
  const go = spawnSync("go", ["build", "-o", env.SWITCHBOARD_BIN, "./cmd/switchboard"], { stdio: "inherit", cwd: join(root, "../..") });
  if (go.status !== 0) process.exit(go.status ?? 1);
}
const tests = files(join(root, "test", kind)).filter((f) => f.endsWith(".test.ts")).map((f) => join(out, relative(root, f)).replace(/\.ts$/, ".js"));
const r = spawnSync(process.execPath, ["--enable-source-maps", "--test", "--test-reporter=spec", "--test-concurrency=1", ...tests], { stdio: "inherit", cwd: root, env });
process.exit(r.status ?? 1);
