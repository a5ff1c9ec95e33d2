import fs from 'node:fs';
import { renderDiagnostics, type Diagnostics } from './diagnostics';
import type { ScenarioResult } from './protocol';

export interface ScenarioRow {
  id: string;
  title: string;
  /** Set when the scenario could not run (e.g. its endpoint does not exist yet). */
  skipped?: string;
  result?: ScenarioResult;
  deadlocks?: number;
  peakRssMb?: number;
  /** Where its time went (bench/diagnostics.ts), summed over its rounds. */
  diagnostics?: Diagnostics;
}

export interface SoakSummary {
  seconds: number;
  startRssMb: number;
  endRssMb: number;
  peakRssMb: number;
  growthPct: number;
  result: ScenarioResult;
}

export interface RunReport {
  command: string;
  date: string;
  /** /proc/loadavg (1, 5, 15 min) at the start and the end of the run: the machine is shared. */
  loadAverage?: string;
  commit: string;
  node: string;
  cpus: number;
  database: string;
  connections: number;
  durationSec: number;
  rounds: number;
  poolMax: number;
  rows: ScenarioRow[];
  servicePeakRssMb: number;
  serviceHwmMb: number;
  soak?: SoakSummary;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
/** Latencies: one decimal below 10 ms, whole milliseconds above. */
const ms = (n: number) => fmt(n, n < 10 ? 1 : 0);

export function ratioTo(row: ScenarioRow | undefined, base: ScenarioRow | undefined): number {
  if (!row?.result || !base?.result || base.result.reqPerSec === 0) return NaN;
  return row.result.reqPerSec / base.result.reqPerSec;
}

/** The in-run baselines every row is divided by: PostgreSQL's ceiling, the ideal handler, bare Express, the hold transaction. */
export const BASELINES = ['P0', 'I0', 'H0', 'B1'] as const;

export function renderTable(report: RunReport): string {
  const bases = BASELINES.map((id) => report.rows.find((r) => r.id === id));
  const lines = [
    `| scenario | what | req/s | p50 ms | p99 ms | non-2xx | errors | deadlocks | ${BASELINES.map((b) => `× ${b}`).join(' | ')} |`,
    `|---|---|---:|---:|---:|---:|---:|---:|${BASELINES.map(() => '---:').join('|')}|`,
  ];
  for (const row of report.rows) {
    const r = row.result;
    if (!r) {
      lines.push(`| ${row.id} | ${row.title} | skipped: ${row.skipped ?? 'not run'} | | | | | |${BASELINES.map(() => ' |').join('')}`);
      continue;
    }
    const flows = r.perFlow > 1 ? ` (${fmt(r.reqPerSec / r.perFlow)} flows/s)` : '';
    const ratios = bases.map((base) => (base === row ? '1.00' : fmt(ratioTo(row, base), 2)));
    lines.push(
      `| ${row.id} | ${row.title} | ${fmt(r.reqPerSec)}${flows} | ${ms(r.p50)} | ${ms(r.p99)} | ${r.non2xx} | ${r.errors} | ${row.deadlocks ?? '–'} | ${ratios.join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** The issue's targets, checked against one run (reported, never asserted: numbers drift on shared machines). */
export function targetChecks(report: RunReport): string[] {
  const get = (id: string) => report.rows.find((r) => r.id === id);
  const [b1, i0, h0, s1, s3, s4, s5, sh] = ['B1', 'I0', 'H0', 'S1', 'S3', 'S4', 'S5', 'SH'].map(get);
  const checks: string[] = [];
  const mark = (ok: boolean) => (ok ? 'met' : 'NOT met');
  const atLeast = (label: string, row: ScenarioRow | undefined, base: ScenarioRow | undefined, min: number) => {
    if (!row?.result || !base?.result) return;
    const ratio = ratioTo(row, base);
    checks.push(`${label}: ${fmt(ratio, 2)}× — ${mark(ratio >= min)}`);
  };
  atLeast('S1 ≥ 0.85× I0 req/s', s1, i0, 0.85);
  atLeast('S3 ≥ 0.85× I0 req/s (requests)', s3, i0, 0.85);
  // Not an issue target: S3 against the same two statements from minimal handlers (I3), the service's own
  // cost on flows; I0 has only opens, whose statement does about half of a settle's database work.
  const i3 = get('I3');
  if (s3?.result && i3?.result) checks.push(`S3 vs I3, the same two statements from minimal handlers (information): ${fmt(ratioTo(s3, i3), 2)}×`);
  atLeast('SH (the service\'s /health) ≥ 0.85× H0 req/s', sh, h0, 0.85);
  atLeast('S5 ≥ 2× S1 req/s', s5, s1, 2);
  if (s1?.result && i0?.result) {
    checks.push(`S1 p99 ≤ 1.5× I0 p99: ${fmt(s1.result.p99)} ms vs ${fmt(1.5 * i0.result.p99)} ms (I0 ${fmt(i0.result.p99)} ms) — ${mark(s1.result.p99 <= 1.5 * i0.result.p99)}`);
  }
  if (s4?.result && s1?.result) {
    const clean = s4.result.non2xx === 0 && s4.result.errors === 0 && (s4.deadlocks ?? 0) === 0;
    checks.push(`S4 zero errors and deadlocks: ${s4.result.non2xx} non-2xx, ${s4.result.errors} errors, ${s4.deadlocks ?? '?'} deadlocks — ${mark(clean)}`);
    atLeast('S4 ≥ 0.4× S1 req/s', s4, s1, 0.4);
  }
  atLeast('S1 ≥ 1.0× B1 req/s', s1, b1, 1);
  checks.push(`service peak RSS < 250 MB: ${fmt(report.servicePeakRssMb)} MB (VmHWM ${fmt(report.serviceHwmMb)} MB) — ${mark(report.serviceHwmMb < 250)}`);
  if (report.soak) checks.push(`soak RSS growth ≤ 10%: ${fmt(report.soak.growthPct, 1)}% — ${mark(report.soak.growthPct <= 10)}`);
  return checks;
}

export function renderReport(report: RunReport): string {
  const out = [
    `Run ${report.date} · commit ${report.commit} · node ${report.node} · ${report.cpus} CPUs · database: ${report.database}`,
    `Command: \`${report.command}\` · ${report.connections} connections · ${report.durationSec} s per scenario in ${report.rounds} round(s) · pool ${report.poolMax} (service and baseline)`,
    `Load average (1/5/15 min): ${report.loadAverage ?? 'unknown'}`,
    '',
    renderTable(report),
    '',
    'Where the time went (per request, summed over rounds; ms/req of CPU is CPU time divided by requests served):',
    '',
    renderDiagnostics(report.rows),
    '',
    `Service RSS: peak sampled ${fmt(report.servicePeakRssMb)} MB, VmHWM ${fmt(report.serviceHwmMb)} MB.`,
  ];
  if (report.soak) {
    const s = report.soak;
    out.push(
      `Soak (${fmt(s.seconds)} s mixed initialize→finalize→balance, ${fmt(s.result.reqPerSec)} req/s, ${s.result.non2xx} non-2xx, ${s.result.errors} errors): ` +
        `RSS ${fmt(s.startRssMb)} MB (mean of the first 30 s) → ${fmt(s.endRssMb)} MB (mean of the last 30 s), growth ${fmt(s.growthPct, 1)}%, peak ${fmt(s.peakRssMb)} MB.`,
    );
  }
  const codes = report.rows
    .filter((r) => r.result && Object.keys(r.result.errorCodes).length)
    .map((r) => `${r.id}: ${Object.entries(r.result!.errorCodes).map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  if (codes.length) out.push('', `Non-2xx responses by status and code — ${codes.join('; ')}.`);
  out.push('', 'Targets (ratios inside this run):', '', ...targetChecks(report).map((c) => `- ${c}`));
  return out.join('\n');
}

const BEGIN = '<!-- bench:results:begin (written by npm run bench) -->';
const END = '<!-- bench:results:end -->';

/** Replaces the results block of docs/performance.md, leaving the hand-written parts alone. */
export function writeResultsBlock(file: string, markdown: string): void {
  const block = `${BEGIN}\n${markdown}\n${END}`;
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  const next =
    start >= 0 && end > start
      ? current.slice(0, start) + block + current.slice(end + END.length)
      : `${current.trimEnd()}\n\n## Latest results\n\n${block}\n`;
  fs.writeFileSync(file, next);
}
