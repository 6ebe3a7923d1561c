/**
 * The library's two entries: "onnx-mnist" (src/index.ts) must bundle for the browser without any Node module,
 * and the README must document every name either entry exports.
 */
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import type { Plugin } from "vite";

const ROOT = join(import.meta.dirname, "..");
const NODE_ONLY = new Set([...builtinModules, "onnxruntime-node"]);

/**
 * Whether the package holding `importer` maps `id` away for browsers (package.json "browser": { "fs": false }),
 * as protobufjs does for the `fs` it only uses to load .proto files by name, which we never do.
 */
function mappedAwayForBrowsers(id: string, importer: string): boolean {
  for (let dir = dirname(importer); dir !== dirname(dir); dir = dirname(dir)) {
    if (!existsSync(join(dir, "package.json"))) continue;
    const browser = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).browser;
    return typeof browser === "object" && browser !== null && browser[id] === false;
  }
  return false;
}

/**
 * Bundles `entry` as a browser build would (Vite, client conditions) and returns every import of a Node module
 * or of onnxruntime-node, as "module <- importer". Vite would quietly stub such imports out for the browser;
 * this plugin sees them first.
 */
async function nodeImports(entry: string): Promise<string[]> {
  const found: string[] = [];
  const spy: Plugin = {
    name: "node-imports",
    enforce: "pre",
    resolveId(id, importer) {
      const bare = id.replace(/^node:/, "");
      if (id.startsWith("node:") || NODE_ONLY.has(bare) || NODE_ONLY.has(bare.split("/")[0])) {
        if (importer && mappedAwayForBrowsers(id, importer)) return null;
        found.push(`${id} <- ${relative(ROOT, importer ?? "")}`);
        return { id, external: true };
      }
      return null;
    },
  };
  const { build } = await import("vite");
  await build({
    configFile: false,
    root: ROOT,
    logLevel: "silent",
    plugins: [spy],
    build: {
      write: false,
      target: "es2022",
      lib: { entry: join(ROOT, entry), formats: ["es"], fileName: "entry" },
      rolldownOptions: { checks: { bundlerTimings: false } },
    },
  });
  return found;
}

describe("the browser entry (onnx-mnist)", () => {
  it("bundles for the browser without fs, http, path or any other Node module, nor onnxruntime-node", async () => {
    expect(await nodeImports("src/index.ts")).toEqual([]);
  }, 120_000);

  it("is told apart from the Node entry, which does import them (the check can fail)", async () => {
    const found = await nodeImports("src/node/index.ts");
    for (const m of ["node:fs", "node:http", "node:path", "onnxruntime-node"]) expect(found.some((f) => f.startsWith(`${m} <-`)), m).toBe(true);
  }, 120_000);
});

/** The names an entry exports: `export { a, b as c, type D } from` lists, and `export *` followed into its target. */
function exportedNames(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
  const names: string[] = [];
  for (const m of text.matchAll(/export\s*(?:type\s*)?\{([^}]*)\}/g)) {
    for (const part of m[1].split(",").map((p) => p.trim()).filter(Boolean)) names.push(part.replace(/^type\s+/, "").split(/\s+as\s+/).at(-1)!);
  }
  for (const m of text.matchAll(/export\s*\*\s*from\s*"([^"]+)"/g)) names.push(...exportedNames(join(file, "..", m[1])));
  return names;
}

describe("README's API section", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const start = readme.indexOf("<!-- api:start -->");
  const end = readme.indexOf("<!-- api:end -->");
  const api = readme.slice(start, end);

  it("exists", () => {
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
  });

  for (const [entry, file] of [["onnx-mnist", "src/index.ts"], ["onnx-mnist/node", "src/node/index.ts"]] as const) {
    it(`documents every export of ${entry}`, () => {
      const names = exportedNames(file);
      expect(names.length).toBeGreaterThan(20);
      // Named in code: `name` or `name(arguments)`.
      expect(names.filter((n) => !api.includes(`\`${n}\``) && !api.includes(`\`${n}(`))).toEqual([]);
    });
  }
});

describe("version", () => {
  it("the CLI's --version (src/program VERSION, also each graph's producer_version) is package.json's version", async () => {
    const { VERSION } = await import("../src/program/program.ts");
    expect(VERSION).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
  });
});
