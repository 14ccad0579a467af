// Builds the chat app and the console from src/ (with the SDK's sources)
// into dist/, which is committed and embedded in the switchboard binary.
//
//   node scripts/build.mjs            build into dist/
//   node scripts/build.mjs --out DIR  build into DIR
//   node scripts/build.mjs --check    build into a temp dir and fail if dist/ differs
import { build } from "esbuild";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const check = args.includes("--check");
const outArg = args.indexOf("--out");
const dist = join(root, "dist");
const out = check ? mkdtempSync(join(tmpdir(), "switchboard-web-")) : outArg >= 0 ? args[outArg + 1] : dist;

async function buildInto(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "assets"), { recursive: true });
  await build({
    entryPoints: { app: join(root, "src/app/main.ts"), console: join(root, "src/console/main.ts") },
    outdir: join(dir, "assets"),
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox115", "safari16"],
    minify: true,
    legalComments: "none",
    charset: "utf8",
    alias: { "@switchboard-chat/client": join(root, "../sdk/typescript/src/index.ts") },
    logLevel: "warning",
  });
  for (const f of ["index.html", "console.html"]) cpSync(join(root, "src", f), join(dir, f));
  cpSync(join(root, "src/favicon.svg"), join(dir, "assets/favicon.svg"));
}

/** Every file under dir, as paths relative to it. */
function files(dir, base = dir) {
  return readdirSync(dir)
    .flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n), base) : [relative(base, join(dir, n))]))
    .sort();
}

await buildInto(out);
if (check) {
  const want = files(out);
  let have = [];
  try {
    have = files(dist);
  } catch {
    // no dist yet
  }
  const diff = [...new Set([...want, ...have])].filter((f) => !want.includes(f) || !have.includes(f) || !readFileSync(join(out, f)).equals(readFileSync(join(dist, f))));
  rmSync(out, { recursive: true, force: true });
  if (diff.length) {
    console.error(`web/dist is out of date with web/src and the SDK (${diff.join(", ")}): run make web and commit web/dist`);
    process.exit(1);
  }
  console.log("web/dist is up to date");
} else {
  console.log(`built ${relative(process.cwd(), out) || "."}: ${files(out).join(", ")}`);
}
