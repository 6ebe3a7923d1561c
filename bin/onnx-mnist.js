#!/usr/bin/env node
// A checkout runs the TypeScript sources through tsx (no build step between an edit and a run); an installed
// package has no sources and runs the JavaScript compiled into dist/ at pack time, needing only its dependencies.
import { existsSync } from "node:fs";

const source = new URL("../cli/main.ts", import.meta.url);
let main;
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  ({ main } = await import(source.href));
} else {
  ({ main } = await import("../dist/cli/main.js"));
}
await main(process.argv.slice(2));
