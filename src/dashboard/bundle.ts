/**
 * Node-only: the dashboard page as one self-contained HTML document. web/dashboard.html is the page's markup;
 * its script (web/dashboard/main.ts, with uPlot and its CSS) is bundled by Vite into a single IIFE + one CSS
 * file, and both are inlined, together with the page's data. The live server and report.html serve the same
 * document, so they show the same charts; an inline classic script also runs from file://, where module
 * scripts that import other files do not.
 *
 * An installed package reads the bundle and the markup built at pack time (dist/dashboard/, see
 * scripts/build.ts) and never needs Vite or uPlot. A checkout builds the bundle on demand with Vite's JS API and
 * caches it under node_modules/.cache, keyed by a hash of the page's sources, so a fresh checkout builds it
 * once (a few seconds) and an edited source rebuilds it.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { contentHash, UserError, writeFileAtomic } from "../node/files.ts";
import { COMPILED, ROOT } from "../server/build.ts";
import type { StreamMessage } from "./state.ts";

const ENTRY = join(ROOT, "web", "dashboard", "main.ts");
/** Where a package keeps the page built at pack time: the bundle (JSON) and the markup. */
export const SHIPPED_DIR = join(ROOT, "dashboard");
export const SHIPPED_BUNDLE = "bundle.json";
const TEMPLATE = COMPILED ? join(SHIPPED_DIR, "dashboard.html") : join(ROOT, "web", "dashboard.html");

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
  if (COMPILED) {
    const shipped = join(SHIPPED_DIR, SHIPPED_BUNDLE);
    if (!existsSync(shipped)) throw new UserError(`${shipped}: the dashboard page is missing from this installation; reinstall onnx-mnist`);
    return JSON.parse(readFileSync(shipped, "utf8")) as Bundle;
  }
  const cache = join(ROOT, "node_modules", ".cache", "onnx-mnist", `dashboard-${sourceHash()}.json`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, "utf8")) as Bundle;
  const bundle = await buildDashboardBundle();
  writeFileAtomic(cache, JSON.stringify(bundle));
  return bundle;
}

/** Bundles the page's script and style from the sources (Vite is a dev dependency). */
export async function buildDashboardBundle(): Promise<Bundle> {
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
      rolldownOptions: { checks: { bundlerTimings: false } }, // no [PLUGIN_TIMINGS] report under load
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
