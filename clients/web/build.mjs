// Bundles the page (src/, with the SDK and its protobuf runtime) into one
// script beside the static files, in dist/: what the gateway serves.
import { cp, mkdir } from "node:fs/promises";
import { build } from "esbuild";

await mkdir("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: "dist/app.js",
  // The SDK's file outbox, for Node only, imports these lazily.
  external: ["node:*"],
});
await cp("static", "dist", { recursive: true });
