/**
 * The per-epoch panels of one run: confusion-matrix heatmap, per-class accuracy, the gallery of misclassified
 * test digits, and the model summary. Plain DOM: a table per matrix, a canvas per digit.
 */
import type { EpochRecord, Mistake, RunRecord } from "../../src/dashboard/records.ts";

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...children: (Node | string)[]) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

const pct = (f: number, digits = 1) => `${(100 * f).toFixed(digits)}%`;

/**
 * Rows are the true digit, columns the prediction. A cell's shade is its share of the row (the class's test
 * images): the diagonal in blue (right), the rest in red (wrong), so confusions stand out however rare.
 */
export function confusionMatrix(target: HTMLElement, e: EpochRecord | undefined): void {
  target.replaceChildren();
  if (!e) return void target.append(el("p", { className: "empty", textContent: "after the first epoch" }));
  const table = el("table", { className: "confusion" });
  const head = el("tr", {}, el("th", { textContent: "true \\ pred" }));
  e.confusion.forEach((_, j) => head.append(el("th", { textContent: String(j) })));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  e.confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const tr = el("tr", {}, el("th", { textContent: String(i) }));
    row.forEach((n, j) => {
      const f = n / total;
      // Off the diagonal, even a few mistakes get a visible shade: sqrt stretches small shares.
      const a = i === j ? f : Math.min(1, Math.sqrt(f) * 1.5);
      const td = el("td", { textContent: String(n), title: `true ${i}, predicted ${j}: ${n} (${pct(f)} of ${i}s)` });
      td.dataset.count = String(n);
      if (n > 0) td.style.background = i === j ? `rgba(31, 119, 180, ${0.15 + 0.85 * a})` : `rgba(214, 39, 40, ${0.15 + 0.85 * a})`;
      if (n > 0 && (i === j ? a > 0.55 : a > 0.6)) td.style.color = "#fff";
      tr.append(td);
    });
    body.append(tr);
  });
  table.append(body);
  target.append(table);
}

export function perClassAccuracy(target: HTMLElement, e: EpochRecord | undefined): void {
  target.replaceChildren();
  if (!e) return;
  const lo = Math.min(...e.per_class_accuracy);
  for (const [digit, acc] of e.per_class_accuracy.entries()) {
    const bar = el("span", { className: "bar" });
    bar.style.width = pct(acc);
    if (acc === lo) bar.classList.add("worst");
    target.append(el("div", { className: "class-row" }, el("span", { className: "digit", textContent: String(digit) }), el("span", { className: "track" }, bar), el("span", { className: "value", textContent: pct(acc, 2) })));
  }
}

function decodePixels(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** A digit as MNIST stores it: white ink on black, 28x28, scaled up by CSS with crisp pixels. */
function digitCanvas(m: Mistake): HTMLCanvasElement {
  const px = decodePixels(m.pixels);
  const side = Math.round(Math.sqrt(px.length)) || 28;
  const canvas = el("canvas", { width: side, height: side });
  const ctx = canvas.getContext("2d")!;
  const img = ctx.createImageData(side, side);
  for (let i = 0; i < side * side; i++) {
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = px[i] ?? 0;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

export function misclassified(target: HTMLElement, e: EpochRecord | undefined, testCount?: number): void {
  target.replaceChildren();
  if (!e) return;
  if (!e.misclassified.length) return void target.append(el("p", { className: "empty", textContent: "no mistakes on the test set" }));
  const wrong = e.confusion.reduce((a, row, i) => a + row.reduce((b, n, j) => b + (i === j ? 0 : n), 0), 0);
  target.append(el("p", { className: "note", textContent: `the ${e.misclassified.length} most confident of ${wrong} mistakes` + (testCount ? ` on ${testCount.toLocaleString("en-US")} test images` : "") }));
  const grid = el("div", { className: "gallery" });
  for (const m of e.misclassified) {
    const item = el(
      "figure",
      { className: "mistake", title: `test image #${m.index}: true ${m.label}, predicted ${m.prediction} with ${pct(m.confidence)} confidence` },
      digitCanvas(m),
      el("figcaption", {}, el("b", { textContent: String(m.label) }), " → ", el("b", { className: "wrong", textContent: String(m.prediction) }), el("small", { textContent: ` ${pct(m.confidence, 0)}` })),
    );
    item.dataset.label = String(m.label);
    item.dataset.prediction = String(m.prediction);
    grid.append(item);
  }
  target.append(grid);
}

function configList(entries: [string, unknown][]): HTMLDListElement {
  const config = el("dl", { className: "config" });
  for (const [k, v] of entries) {
    if (v === null || v === undefined) continue;
    config.append(el("dt", { textContent: k }), el("dd", { textContent: typeof v === "object" ? JSON.stringify(v) : String(v) }));
  }
  return config;
}

export function modelSummary(target: HTMLElement, info: RunRecord | undefined, fallbackConfig?: Record<string, unknown>): void {
  target.replaceChildren();
  if (!info) {
    target.append(el("p", { className: "empty", textContent: "waiting for the run's first record" }));
    if (fallbackConfig) target.append(configList(Object.entries(fallbackConfig)));
    return;
  }
  const { model } = info;
  const table = el("table", { className: "layers" });
  table.append(el("thead", {}, el("tr", {}, ...["layer", "type", "output shape", "parameters"].map((h) => el("th", { textContent: h })))));
  const body = el("tbody");
  for (const l of model.layers) {
    body.append(el("tr", {}, el("td", { textContent: l.name }), el("td", { textContent: l.type }), el("td", { textContent: `[${l.output_shape.join(", ")}]` }), el("td", { className: "num", textContent: l.params.toLocaleString("en-US") })));
  }
  body.append(el("tr", { className: "total" }, el("td", { textContent: model.name }), el("td"), el("td"), el("td", { className: "num", textContent: model.params.toLocaleString("en-US") })));
  table.append(body);
  const sizes: [string, unknown][] = [
    ["epochs", info.epochs],
    ["steps per epoch", info.steps_per_epoch],
    ["train images", info.train_count],
    ["test images", info.test_count],
    ["started", info.started],
  ];
  const flags = Object.entries(info.config ?? {}).filter(([k]) => !sizes.some(([s]) => s === k));
  target.append(table, configList([...sizes, ...flags]));
}
