/**
 * Node-only: the dashboard page as one self-contained HTML document. web/dashboard.html is the page's markup;
 * its script (web/dashboard/main.ts, with uPlot and its CSS) is bundled by Vite into a single IIFE + one CSS
 * file, and both are inlined, together with the page's data. The live server and report.html serve the same
 * document, so they show the same charts; an inline classic script also runs from file://, where module
 * scripts that import other files do not.
 *
 * The bundle is built on demand with Vite's JS API and cached under node_modules/.cache, keyed by a hash of the
 * page's sources, so a fresh checkout builds it once (a few seconds) and an edited source rebuilds it.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { contentHash, UserError, writeFileAtomic } from "../node/files.ts";
import type { StreamMessage } from "./state.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const ENTRY = join(ROOT, "web", "dashboard", "main.ts");
const TEMPLATE = join(ROOT, "web", "dashboard.html");

export interface Bundle {
  js: string;
  css: string;
}

/** What the page starts from: live pages read /events; a report carries its messages. */
export interface PageData {
  mode: "live" | "replay" | "report";
  title?: string;
  messages?: StreamMessage[];
  config?: Record<string, unknown>;
}

let pending: Promise<Bundle> | undefined;

export function dashboardBundle(): Promise<Bundle> {
  pending ??= loadOrBuild().catch((e) => {
    pending = undefined;
    throw e;
  });
  return pending;
}

/** The page's sources and the versions of the packages that build it. */
function sourceHash(): string {
  const versions = ["uplot", "vite"].map((pkg) => join("node_modules", pkg, "package.json")).filter((p) => existsSync(join(ROOT, p)));
  return contentHash(ROOT, [join("web", "dashboard"), join("src", "dashboard"), ...versions], (name) => /\.(ts|css)$|^package\.json$/.test(name));
}

async function loadOrBuild(): Promise<Bundle> {
  const cache = join(ROOT, "node_modules", ".cache", "onnx-mnist", `dashboard-${sourceHash()}.json`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, "utf8")) as Bundle;
  const bundle = await build();
  writeFileAtomic(cache, JSON.stringify(bundle));
  return bundle;
}

async function build(): Promise<Bundle> {
  let vite: typeof import("vite");
  try {
    vite = await import("vite");
  } catch {
    throw new UserError("the dashboard page is built with Vite, which is not installed; run npm install (Vite is a dev dependency)");
  }
  const result = await vite.build({
    configFile: false,
    root: join(ROOT, "web"),
    publicDir: false,
    logLevel: "warn",
    mode: "production",
    build: {
      write: false,
      minify: true,
      sourcemap: false,
      reportCompressedSize: false,
      copyPublicDir: false,
      outDir: join(ROOT, "node_modules", ".cache", "onnx-mnist", "dashboard-build"),
      lib: { entry: ENTRY, formats: ["iife"], name: "OnnxMnistDashboard", fileName: () => "dashboard.js", cssFileName: "dashboard" },
    },
  });
  const outputs = (Array.isArray(result) ? result : [result]).flatMap((r) => ("output" in r ? r.output : []));
  let js = "";
  let css = "";
  for (const o of outputs) {
    if (o.type === "chunk") js += o.code;
    else if (o.fileName.endsWith(".css")) css += typeof o.source === "string" ? o.source : new TextDecoder().decode(o.source);
  }
  if (!js) throw new Error("building the dashboard page produced no JavaScript");
  return { js, css };
}

/** JSON that is safe inside <script>: no "<" at all, so no "</script>" or "<!--". */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

/** The dashboard page with its script, style and data inlined. */
export async function renderPage(data: PageData): Promise<string> {
  const { js, css } = await dashboardBundle();
  let html = readFileSync(TEMPLATE, "utf8");
  const script = /<script type="module" src="[^"]*dashboard\/main\.ts"><\/script>\s*/;
  if (!script.test(html)) throw new Error(`${TEMPLATE}: the dashboard/main.ts script tag is missing`);
  html = html.replace(script, "");
  if (data.title) html = html.replace(/<title>[^<]*<\/title>/, () => `<title>${escapeHtml(data.title!)}</title>`);
  // Replacement callbacks, not strings: the bundle contains "$&"-like sequences that replace() would expand.
  html = html.replace("</head>", () => `<style>\n${css.replace(/<\/style/gi, "<\\/style")}\n</style>\n</head>`);
  html = html.replace(
    "</body>",
    () =>
      `<script id="dashboard-data" type="application/json">${scriptJson(data)}</script>\n` +
      `<script>\n${js.replace(/<\/script/gi, "<\\/script")}\n</script>\n</body>`,
  );
  return html;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}
