import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { DailyByModel } from './api';
import { DataTable } from './components';
import { formatCredits, microToPlot, microToText } from './format';

/** Distinguishable on white and for common colour-vision deficiencies (Okabe–Ito, then darker tones). */
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000', '#7f3c8d', '#11a579'];
const color = (i: number) => PALETTE[i % PALETTE.length];

/**
 * Daily credits by model as stacked bars (uPlot). Each bar is drawn from 0 to the running total of the
 * models up to it, the tallest first, so the visible bands are each model's own credits; the running
 * totals are exact BigInt sums and only become floats as pixel positions. The same numbers are in a
 * table under the chart, for screen readers and for copying.
 */
export function StackedDailyChart({ data, label }: { data: DailyByModel; label: string }) {
  const host = useRef<HTMLDivElement>(null);
  const { days, models } = data;

  useEffect(() => {
    const el = host.current;
    if (!el || days.length === 0) return;
    const running: bigint[][] = [];
    models.forEach((m, i) => running.push(m.credits.map((c, d) => c + (i > 0 ? running[i - 1][d] : 0n))));
    const xs = days.map((_, i) => i);
    // Drawn from the top of the stack down: series k is model (models.length - 1 - k).
    const order = models.map((_, i) => models.length - 1 - i);
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 260,
      scales: { x: { time: false, range: [-0.6, days.length - 0.4] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [
        {
          // About one label per 70 px, so they never overlap on a narrow window.
          splits: (u) => {
            const every = Math.max(1, Math.ceil(days.length / Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 70))));
            return xs.filter((i) => i % every === 0);
          },
          values: (_u, splits) => splits.map((i) => days[i]?.slice(5) ?? ''),
        },
        { size: 70, values: (_u, splits) => splits.map((v) => String(Math.round(v * 1e6) / 1e6)) },
      ],
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
      series: [
        { label: 'UTC day', value: (_u, v) => (v == null ? '' : (days[v] ?? '')) },
        ...order.map((m) => ({
          label: models[m].modelId,
          stroke: color(m),
          fill: color(m),
          width: 0,
          paths: uPlot.paths.bars!({ size: [0.7, 60], align: 0 }),
          points: { show: false },
          value: (_u: uPlot, _v: number | null, _s: number, idx: number | null) =>
            idx == null ? '' : formatCredits(microToText(models[m].credits[idx])),
        })),
      ],
    };
    const plot = new uPlot(opts, [xs, ...order.map((m) => running[m].map(microToPlot))], el);
    // The table below carries the same data for assistive technology.
    plot.root.setAttribute('aria-hidden', 'true');
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, el.clientWidth), height: 260 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [days, models]);

  const totals = models.map((m) => m.credits.reduce((a, b) => a + b, 0n));
  const grand = totals.reduce((a, b) => a + b, 0n);
  const rows = days.map((day, d) => ({ day, values: models.map((m) => m.credits[d]), total: models.reduce((a, m) => a + m.credits[d], 0n) }));
  return (
    <figure class="chart">
      <figcaption>
        {label}: <span class="num" data-testid="chart-total">{formatCredits(microToText(grand))}</span> credits over {days.length} UTC{' '}
        {days.length === 1 ? 'day' : 'days'}
        {models.length === 0 && ' (no usage in this range)'}
      </figcaption>
      <div ref={host} class="chart-canvas" />
      <details>
        <summary>Table of the chart&rsquo;s data</summary>
        <DataTable
          caption={`${label} (credits per UTC day)`}
          rows={rows}
          rowKey={(r) => r.day}
          empty="No days"
          columns={[
            { header: 'UTC day', cell: (r) => r.day },
            ...models.map((m, i) => ({ header: m.modelId, numeric: true, cell: (r: (typeof rows)[number]) => formatCredits(microToText(r.values[i])) })),
            { header: 'Total', numeric: true, cell: (r) => formatCredits(microToText(r.total)) },
          ]}
        />
      </details>
    </figure>
  );
}
