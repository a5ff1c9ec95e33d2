import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderTable, targetChecks, writeResultsBlock, type RunReport } from '../../bench/report';
import type { ScenarioResult } from '../../bench/protocol';

const result = (reqPerSec: number, extra: Partial<ScenarioResult> = {}): ScenarioResult => ({
  requests: reqPerSec * 10,
  seconds: 10,
  reqPerSec,
  p50: 10,
  p99: 50,
  max: 80,
  ok: reqPerSec * 10,
  non2xx: 0,
  errors: 0,
  timeouts: 0,
  errorCodes: {},
  perFlow: 1,
  ...extra,
});

const report = (rows: RunReport['rows'], peakMb = 120): RunReport => ({
  command: 'npm run bench',
  date: '2026-11-24T00:00:00.000Z',
  commit: 'abc1234',
  node: 'v20',
  cpus: 2,
  database: 'embedded',
  connections: 50,
  durationSec: 15,
  rounds: 3,
  poolMax: 10,
  rows,
  servicePeakRssMb: peakMb,
  serviceHwmMb: peakMb,
});

describe('benchmark report', () => {
  it('When the service is close to its baselines, then the table shows each ratio to P0, I0, H0 and B1 and the targets are met', () => {
    const r = report([
      { id: 'B1', title: 'baseline', result: result(800) },
      { id: 'P0', title: 'statement', result: result(1500) },
      { id: 'I0', title: 'minimal handler', result: result(1000, { p99: 30 }) },
      { id: 'H0', title: 'bare health', result: result(3000) },
      { id: 'S1', title: 'initialize', result: result(900, { p99: 40 }) },
      { id: 'S3', title: 'flows', result: result(900) },
      { id: 'S4', title: 'hot user', result: result(600), deadlocks: 0 },
      { id: 'S5', title: 'balance', result: result(2000) },
      { id: 'SH', title: 'service health', result: result(2700) },
    ]);

    const table = renderTable(r);
    const checks = targetChecks(r);

    expect(table).toContain('| S1 | initialize | 900 | 10 | 40 | 0 | 0 | – | 0.60 | 0.90 | 0.30 | 1.13 |');
    expect(table).toContain('| S5 | balance | 2000 | 10 | 50 | 0 | 0 | – | 1.33 | 2.00 | 0.67 | 2.50 |');
    expect(checks.filter((c) => c.endsWith('NOT met'))).toEqual([]);
    expect(checks.length).toBeGreaterThanOrEqual(8);
  });

  it('When the service falls behind its baselines or the hot user saw errors, then those targets read NOT met', () => {
    const r = report(
      [
        { id: 'B1', title: 'baseline', result: result(1000, { p99: 30 }) },
        { id: 'I0', title: 'minimal handler', result: result(1200, { p99: 20 }) },
        { id: 'H0', title: 'bare health', result: result(3000) },
        { id: 'S1', title: 'initialize', result: result(900) },
        { id: 'S3', title: 'flows', result: result(1100) },
        { id: 'S4', title: 'hot user', result: result(500, { non2xx: 3 }), deadlocks: 1 },
        { id: 'S5', title: 'balance', result: result(1500) },
        { id: 'SH', title: 'service health', result: result(2000) },
      ],
      300,
    );

    const failed = targetChecks(r).filter((c) => c.endsWith('NOT met'));

    expect(failed.map((c) => c.split(':')[0])).toEqual([
      'S1 ≥ 0.85× I0 req/s',
      "SH (the service's /health) ≥ 0.85× H0 req/s",
      'S5 ≥ 2× S1 req/s',
      'S1 p99 ≤ 1.5× I0 p99',
      'S4 zero errors and deadlocks',
      'S1 ≥ 1.0× B1 req/s',
      'service peak RSS < 250 MB',
    ]);
  });

  it('When the run has I3, then S3 against it is printed as information, never as a target', () => {
    const rows = [
      { id: 'I0', title: 'minimal handler', result: result(1000) },
      { id: 'S3', title: 'flows', result: result(700) },
    ];
    expect(targetChecks(report(rows)).some((c) => c.startsWith('S3 vs I3'))).toBe(false);

    const checks = targetChecks(report([...rows, { id: 'I3', title: 'minimal flows', result: result(800) }]));

    expect(checks).toContain('S3 vs I3, the same two statements from minimal handlers (information): 0.88×');
    expect(checks.filter((c) => c.endsWith('NOT met')).map((c) => c.split(':')[0])).toEqual(['S3 ≥ 0.85× I0 req/s (requests)']);
  });

  it('When docs/performance.md already has a results block, then only that block is replaced', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-doc-'));
    const file = path.join(dir, 'performance.md');
    let text: string;
    try {
      fs.writeFileSync(file, '# Performance\n\nHand-written profile notes.\n');
      writeResultsBlock(file, 'first table');
      writeResultsBlock(file, 'second table');
      text = fs.readFileSync(file, 'utf8');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }

    expect(text).toContain('Hand-written profile notes.');
    expect(text).toContain('second table');
    expect(text).not.toContain('first table');
    expect(text.match(/bench:results:begin/g)).toHaveLength(1);
  });
});
