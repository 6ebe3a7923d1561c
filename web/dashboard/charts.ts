/// <reference types="vite/client" />
/**
 * The dashboard's line charts, drawn by uPlot. A chart is rebuilt only when its set of series changes (a run
 * shown or hidden); otherwise new points go in with setData. Long per-step series are decimated to the chart's
 * width (min/max per pixel column, src/dashboard/series.ts), and re-decimated over the visible range when the
 * user zooms (drag to zoom, double-click to reset).
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { decimate, type Series } from "../../src/dashboard/series.ts";

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

export function runColor(id: number): string {
  return PALETTE[id % PALETTE.length];
}

export function fade(hex: string, alpha: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

/** One table to draw: its x values and, per series, y values (null = gap). */
export interface Table {
  x: number[];
  ys: (number | null)[][];
}

export interface SeriesSpec {
  label: string;
  stroke: string;
  width?: number;
  dash?: number[];
  points?: boolean;
}

export interface ChartOptions {
  height: number;
  xLabel: string;
  yFormat?: (v: number) => string;
  /** Draw points at every data point (per-epoch charts). */
  points?: boolean;
  /** x takes whole numbers only (epochs): no ticks in between. */
  integerX?: boolean;
}

export class LineChart {
  private plot?: uPlot;
  private key = "";
  /** The zoomed-in x range, or null for everything. */
  range: [number, number] | null = null;
  /** Asks the owner to redraw (after a zoom); set by the owner. */
  onRangeChange = () => {};
  drawnPoints = 0;

  constructor(
    readonly el: HTMLElement,
    private opts: ChartOptions,
  ) {
    new ResizeObserver(() => this.plot?.setSize(this.size())).observe(el);
  }

  /** Columns available for points: the plot's width in CSS pixels. */
  width(): number {
    return Math.max(100, this.el.clientWidth - 60);
  }

  private size() {
    return { width: Math.max(200, this.el.clientWidth), height: this.opts.height };
  }

  draw(tables: Table[], specs: SeriesSpec[]): void {
    const data = tables.length ? uPlot.join(tables.map((t) => [t.x, ...t.ys]) as uPlot.AlignedData[]) : ([[]] as unknown as uPlot.AlignedData);
    this.drawnPoints = tables.reduce((n, t) => n + t.x.length, 0);
    this.el.dataset.points = String(this.drawnPoints);
    this.el.dataset.series = String(specs.length);
    // The x extent of what is drawn (decimation keeps the ends): lets a test see that a curve is complete.
    const xs = tables.filter((t) => t.x.length);
    this.el.dataset.xMin = xs.length ? String(Math.min(...xs.map((t) => t.x[0]))) : "";
    this.el.dataset.xMax = xs.length ? String(Math.max(...xs.map((t) => t.x[t.x.length - 1]))) : "";
    const key = JSON.stringify(specs);
    if (!this.plot || key !== this.key) {
      this.plot?.destroy();
      this.key = key;
      this.plot = new uPlot(this.options(specs), data, this.el);
    } else this.plot.setData(data, true);
    if (this.range) this.plot.setScale("x", { min: this.range[0], max: this.range[1] });
  }

  private options(specs: SeriesSpec[]): uPlot.Options {
    const fmt = this.opts.yFormat;
    return {
      ...this.size(),
      legend: { show: true, live: true },
      cursor: {
        drag: { x: true, y: false, setScale: false },
        bind: {
          dblclick: () => () => {
            this.range = null;
            this.onRangeChange();
            return null;
          },
        },
      },
      scales: { x: { time: false } },
      axes: [
        { label: this.opts.xLabel, labelSize: 20, size: 36, incrs: this.opts.integerX ? [1, 2, 5, 10, 20, 50, 100, 200, 500] : undefined },
        { size: 56, values: fmt ? (_u, vals) => vals.map((v) => (v == null ? "" : fmt(v))) : undefined },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const lo = u.posToVal(u.select.left, "x");
            const hi = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            this.range = [lo, hi];
            this.onRangeChange();
          },
        ],
      },
      series: [
        { label: this.opts.xLabel },
        ...specs.map((s) => ({
          label: s.label,
          stroke: s.stroke,
          width: s.width ?? 1.5,
          dash: s.dash,
          spanGaps: false,
          points: { show: s.points ?? this.opts.points ?? false, size: 6 },
          value: fmt ? (_u: uPlot, v: number | null) => (v == null ? "–" : fmt(v)) : undefined,
        })),
      ],
    };
  }
}

/** A decimated table of a per-step series: raw y and, optionally, its smoothed curve at the same x. */
export function seriesTable(s: Series, chart: LineChart, withSmooth: boolean): Table {
  const [lo, hi] = chart.range ?? [-Infinity, Infinity];
  const idx = decimate(s.x, s.y, s.length, chart.width(), lo, hi);
  const x = idx.map((i) => s.x[i]);
  const y = idx.map((i) => finite(s.y[i]));
  return { x, ys: withSmooth ? [y, idx.map((i) => finite(s.smooth[i]))] : [y] };
}

function finite(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}
