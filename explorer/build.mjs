// Builds the explorer into gateway/static/explorer/: index.html, explorer.js, explorer.css.
// The page loads only these same-origin files (no inline script or style), so the gateway
// serves it under `script-src 'self'; style-src 'self' 'nonce-…'`: the empty nonce below is
// filled per response, for the one <style> GraphiQL's dialogs add at run time.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "gateway", "static", "explorer");

const HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <meta name="referrer" content="no-referrer" />
    <meta name="talkgate-demo-key" content="" />
    <title>talkgate explorer (GraphiQL)</title>
    <link rel="stylesheet" href="/explorer/assets/explorer.css" />
    <script defer src="/explorer/assets/explorer.js" nonce=""></script>
  </head>
  <body>
    <div id="explorer"></div>
  </body>
</html>
`;

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: { explorer: join(here, "src", "main.jsx") },
  outdir: out,
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  jsx: "automatic",
  legalComments: "none",
  define: { "process.env.NODE_ENV": '"production"', global: "globalThis" },
  // Fonts and images GraphiQL's CSS refers to are inlined, so the page fetches nothing else.
  loader: { ".woff": "dataurl", ".woff2": "dataurl", ".ttf": "dataurl", ".svg": "dataurl", ".png": "dataurl" },
  logLevel: "info",
});
await writeFile(join(out, "index.html"), HTML);
console.log(`explorer built into ${out}`);
