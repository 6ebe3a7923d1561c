/// <reference types="vite/client" />
/**
 * The training dashboard page. Its data is a stream of messages (src/dashboard/state.ts): live and replay pages
 * read them from the server's /events (Server-Sent Events: the full history on every (re)connection, then new
 * records; EventSource reconnects by itself and resumes after the last event id), a report.html carries them
 * inline. Rendering is throttled to a few frames a second however fast records arrive.
 */
import "./style.css";
import { DashboardState, type RunState, type StreamMessage } from "../../src/dashboard/state.ts";
import { fade, LineChart, runColor, seriesTable, type SeriesSpec, type Table } from "./charts.ts";
import { confusionMatrix, misclassified, modelSummary, perClassAccuracy } from "./panels.ts";

interface PageData {
  mode: "live" | "replay" | "report";
  messages?: StreamMessage[];
  /** A report's config.json, shown when the metrics lack their run record. */
  config?: Record<string, unknown>;
}

const $ = (id: string) => document.getElementById(id)!;
const page: PageData = JSON.parse(document.getElementById("dashboard-data")?.textContent || '{"mode":"live"}');

const smoothingInput = $("smoothing") as HTMLInputElement;
let state = new DashboardState(Number(smoothingInput.value));
const hidden = new Set<number>();
let focus: number | undefined;
let chosenEpoch: number | undefined; // undefined: the latest

const lossChart = new LineChart($("loss-chart"), { height: 320, xLabel: "step" });
const accuracyChart = new LineChart($("accuracy-chart"), { height: 240, xLabel: "epoch", points: true, integerX: true, yFormat: (v) => `${v.toFixed(v >= 99.95 ? 0 : 1)}%` });
const lrChart = new LineChart($("lr-chart"), { height: 240, xLabel: "step", yFormat: (v) => (v === 0 ? "0" : v.toExponential(1)) });
const throughputChart = new LineChart($("throughput-chart"), { height: 240, xLabel: "step", yFormat: (v) => Math.round(v).toLocaleString("en-US") });
for (const c of [lossChart, accuracyChart, lrChart, throughputChart]) c.onRangeChange = () => schedule();

let scheduled = false;
let lastRender = 0;
let renderCost = 0;
/**
 * At most 2 renders a second, and never more than ~5% of the page's time (the page shares the cores with the
 * training when both run on one machine): a render re-decimates every series
 * (O(points)) and redraws (about 1 ms for a few thousand points).
 */
function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  const wait = Math.max(0, Math.max(500, 20 * renderCost) - (performance.now() - lastRender));
  setTimeout(
    () =>
      requestAnimationFrame(() => {
        scheduled = false;
        const t0 = performance.now();
        render();
        lastRender = performance.now();
        renderCost = lastRender - t0;
        document.body.dataset.renderMs = renderCost.toFixed(1);
      }),
    wait,
  );
}

function apply(messages: StreamMessage[]): void {
  for (const m of messages) state.apply(m);
  schedule();
}

function setConnection(text: string, kind: "ok" | "warn" | "off"): void {
  const badge = $("connection");
  badge.textContent = text;
  badge.className = `badge ${kind}`;
}

function connect(): void {
  const source = new EventSource("events");
  source.onopen = () => setConnection(page.mode === "live" ? "live" : "connected", "ok");
  source.onmessage = (ev) => apply(JSON.parse(ev.data) as StreamMessage[]);
  // The server restarted (its event ids are unknown to it): it resends everything, so start over.
  source.addEventListener("reset", () => {
    state = new DashboardState(state.smoothing);
    schedule();
  });
  source.onerror = () => {
    const done = state.runs.size > 0 && [...state.runs.values()].every((r) => r.status !== "running" && r.status !== "waiting");
    if (done) setConnection("finished (server closed)", "off");
    else setConnection(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting…", "warn");
  };
}

smoothingInput.addEventListener("input", () => {
  const w = Number(smoothingInput.value);
  ($("smoothing-value") as HTMLOutputElement).value = w.toFixed(2);
  state.setSmoothing(w);
  schedule();
});
($("epoch-select") as HTMLSelectElement).addEventListener("change", (e) => {
  const v = (e.target as HTMLSelectElement).value;
  chosenEpoch = v === "latest" ? undefined : Number(v);
  schedule();
});

function visibleRuns(): RunState[] {
  return [...state.runs.values()].filter((r) => !hidden.has(r.id));
}

function focusedRun(): RunState | undefined {
  if (focus === undefined || !state.runs.has(focus)) focus = state.runs.keys().next().value;
  return focus === undefined ? undefined : state.runs.get(focus);
}

function render(): void {
  const run = focusedRun();
  const latest = run?.lastEpoch();
  $("loss-points").textContent = String(state.lossPoints());
  $("test-accuracy").textContent = latest ? (100 * latest.test_accuracy).toFixed(2) : "–";
  $("step").textContent = run?.loss.length ? `${run.loss.x[run.loss.length - 1]}` + (run.info ? ` / ${run.info.epochs * run.info.steps_per_epoch}` : "") : "–";
  const ips = run?.throughput.last();
  $("images-per-s").textContent = ips === undefined ? "–" : Math.round(ips).toLocaleString("en-US");
  renderRunList();
  renderCharts();
  renderDetails(run);
}

let runListKey = "";
function renderRunList(): void {
  const runs = [...state.runs.values()];
  const key = JSON.stringify(runs.map((r) => [r.id, r.name, r.status, r.epochs.length, hidden.has(r.id), r.id === focus]));
  if (key === runListKey) return;
  runListKey = key;
  const list = $("run-list");
  list.replaceChildren(
    ...runs.map((r) => {
      const li = document.createElement("li");
      li.dataset.run = String(r.id);
      li.className = r.id === focus ? "focus" : "";
      const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: !hidden.has(r.id), title: "show on the charts" });
      box.addEventListener("change", () => {
        if (box.checked) hidden.delete(r.id);
        else hidden.add(r.id);
        schedule();
      });
      const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
      swatch.style.background = runColor(r.id);
      const name = Object.assign(document.createElement("button"), { className: "name", textContent: r.name, title: `${r.dir}\nshow this run's evaluation below` });
      name.addEventListener("click", () => {
        focus = r.id;
        chosenEpoch = undefined;
        schedule();
      });
      const last = r.lastEpoch();
      const status = Object.assign(document.createElement("small"), {
        className: `status ${r.status}`,
        textContent: `${r.status}` + (last ? ` · epoch ${last.epoch} · ${(100 * last.test_accuracy).toFixed(2)}%` : ""),
      });
      const label = document.createElement("label");
      label.append(box, swatch);
      li.append(label, name, status);
      return li;
    }),
  );
}

function renderCharts(): void {
  const runs = visibleRuns();
  const lossSpecs: SeriesSpec[] = [];
  const lossTables: Table[] = [];
  const lrSpecs: SeriesSpec[] = [];
  const lrTables: Table[] = [];
  const ipsSpecs: SeriesSpec[] = [];
  const ipsTables: Table[] = [];
  const accSpecs: SeriesSpec[] = [];
  const accTables: Table[] = [];
  for (const r of runs) {
    const color = runColor(r.id);
    if (r.loss.length) {
      lossTables.push(seriesTable(r.loss, lossChart, true));
      lossSpecs.push({ label: `${r.name} (raw)`, stroke: fade(color, 0.28), width: 1 }, { label: r.name, stroke: color, width: 2 });
      lrTables.push(seriesTable(r.lr, lrChart, false));
      lrSpecs.push({ label: r.name, stroke: color });
      ipsTables.push(seriesTable(r.throughput, throughputChart, false));
      ipsSpecs.push({ label: r.name, stroke: color });
    }
    const epochs = r.epochs.filter(Boolean);
    if (epochs.length) {
      accTables.push({ x: epochs.map((e) => e.epoch), ys: [epochs.map((e) => 100 * e.test_accuracy), epochs.map((e) => 100 * e.train_accuracy)] });
      accSpecs.push({ label: `${r.name} test`, stroke: color, width: 2 }, { label: `${r.name} train`, stroke: color, dash: [5, 4] });
    }
  }
  lossChart.draw(lossTables, lossSpecs);
  accuracyChart.draw(accTables, accSpecs);
  lrChart.draw(lrTables, lrSpecs);
  throughputChart.draw(ipsTables, ipsSpecs);
}

let detailsKey = "";
function renderDetails(run: RunState | undefined): void {
  const epochs = run?.epochs.filter(Boolean) ?? [];
  const e = chosenEpoch === undefined ? epochs[epochs.length - 1] : epochs.find((x) => x.epoch === chosenEpoch);
  const key = JSON.stringify([run?.id, run?.name, !!run?.info, epochs.length, e?.epoch, e?.step, chosenEpoch]);
  if (key === detailsKey) return;
  detailsKey = key;
  $("focus-name").textContent = run?.name ?? "–";
  const select = $("epoch-select") as HTMLSelectElement;
  select.replaceChildren(new Option("latest", "latest"), ...epochs.map((x) => new Option(String(x.epoch), String(x.epoch))));
  select.value = chosenEpoch === undefined ? "latest" : String(chosenEpoch);
  confusionMatrix($("confusion-matrix"), e);
  perClassAccuracy($("per-class"), e);
  misclassified($("misclassified"), e, run?.info?.test_count);
  modelSummary($("model-summary"), run?.info, page.config);
}

$("mode").textContent = page.mode === "report" ? "report" : page.mode === "live" ? "live dashboard" : "runs";
if (page.messages) {
  apply(page.messages);
  if (page.mode === "report") setConnection("static report", "off");
}
if (page.mode !== "report") connect();
else render();
