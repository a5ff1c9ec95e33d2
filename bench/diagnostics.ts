/**
 * Where a scenario's time goes, measured around it by the orchestrator (bench/run.ts), summed over rounds:
 * CPU of the process under load and of PostgreSQL (from /proc, children included), the machine's idle
 * share, time inside the session functions (pg_stat_user_functions, track_functions = pl), commits and WAL
 * flushes (pg_stat_database, pg_stat_wal with track_wal_io_timing), and from the service's own /metrics:
 * event-loop delay (prom-client's monitorEventLoopDelay, reset at every scrape) and the hot-path
 * statements' pool wait and round trip (db_hot_statement_*).
 * Everything is best effort: a number that cannot be read (not Linux, a remote database) is left out.
 */
import fs from 'node:fs';
import type { Client } from 'pg';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU seconds of a process and its children: its own, its reaped children's, and its live children's. */
function treeCpuSeconds(pid: number | undefined): number {
  if (!pid) return NaN;
  let ticks = 0;
  try {
    const fields = (stat: string) => stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = fields(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    // fields[0] is state (field 3); utime, stime, cutime, cstime are fields 14-17.
    ticks += Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const f = fields(fs.readFileSync(`/proc/${entry}/stat`, 'utf8'));
        if (Number(f[1]) === pid) ticks += Number(f[11]) + Number(f[12]);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    return NaN;
  }
  return ticks / TICKS_PER_SECOND;
}

function machineCpu(): { idle: number; total: number } {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const n = line.split(/\s+/).slice(1).map(Number);
    return { idle: n[3] + n[4], total: n.slice(0, 8).reduce((a, b) => a + b, 0) };
  } catch {
    return { idle: NaN, total: NaN };
  }
}

export function loadAverage(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'unknown';
  }
}

interface DbCounters {
  commits: number;
  calls: number;
  fnMs: number;
  walSync: number;
  walSyncMs: number;
  walBytes: number;
}

interface Snapshot {
  at: number;
  serverCpu: number;
  pgCpu: number;
  loaderCpu: number;
  machine: { idle: number; total: number };
  db?: DbCounters;
  metrics?: Record<string, number>;
}

/** Per-scenario sums (over rounds) of what changed while it ran. */
export interface Diagnostics {
  seconds: number;
  requests: number;
  serverCpu: number;
  pgCpu: number;
  loaderCpu: number;
  idleShare: number[];
  commits: number;
  calls: number;
  fnMs: number;
  walSync: number;
  walSyncMs: number;
  walBytes: number;
  statements: number;
  acquireSeconds: number;
  executeSeconds: number;
  lagMeanMs: number[];
  lagP99Ms: number[];
  loadAverages: string[];
}

export const emptyDiagnostics = (): Diagnostics => ({
  seconds: 0,
  requests: 0,
  serverCpu: 0,
  pgCpu: 0,
  loaderCpu: 0,
  idleShare: [],
  commits: 0,
  calls: 0,
  fnMs: 0,
  walSync: 0,
  walSyncMs: 0,
  walBytes: 0,
  statements: 0,
  acquireSeconds: 0,
  executeSeconds: 0,
  lagMeanMs: [],
  lagP99Ms: [],
  loadAverages: [],
});

/** The session functions whose time inside PostgreSQL is measured (initialize's and finalize's). */
const FUNCTIONS = ['acct_session_open', 'acct_session_settle'];

export class Probe {
  private postmasterPid?: number;

  constructor(
    private readonly stats: Client,
    private readonly pids: { loader?: number },
    private readonly metricsToken: string,
  ) {}

  /**
   * Turns on function and WAL timing for the bench's database (new connections pick it up); superuser only.
   * Also sets the session settings the service otherwise sends in its startup packet (its defaults), so a
   * variant with DATABASE_PREPARED_STATEMENTS=false, which sends none (as behind PgBouncer), passes the
   * boot check; a service that sends them overrides these.
   */
  async enable(database: string): Promise<void> {
    const settings = ['track_functions = pl', 'track_wal_io_timing = on'];
    settings.push("TimeZone = 'UTC'", "default_transaction_isolation = 'read committed'", "lock_timeout = '3s'", "statement_timeout = '10s'");
    for (const setting of settings) {
      await this.stats.query(`ALTER DATABASE "${database.replace(/"/g, '')}" SET ${setting}`).catch(() => undefined);
    }
    try {
      const { rows } = await this.stats.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const stat = fs.readFileSync(`/proc/${rows[0].pid}/stat`, 'utf8');
      this.postmasterPid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      // a remote database: no PostgreSQL CPU figures
    }
  }

  private async db(): Promise<DbCounters | undefined> {
    try {
      const { rows } = await this.stats.query<{ commits: string; calls: string; fn_ms: string }>(
        `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
                (SELECT coalesce(sum(calls), 0) FROM pg_stat_user_functions WHERE funcname = ANY($1)) AS calls,
                (SELECT coalesce(sum(total_time), 0) FROM pg_stat_user_functions WHERE funcname = ANY($1)) AS fn_ms`,
        [FUNCTIONS],
      );
      const wal = await this.stats
        .query<{ wal_sync: string; wal_sync_time: string; wal_bytes: string }>('SELECT wal_sync, wal_sync_time, wal_bytes FROM pg_stat_wal')
        .then((r) => r.rows[0])
        .catch(() => undefined);
      return {
        commits: Number(rows[0].commits),
        calls: Number(rows[0].calls),
        fnMs: Number(rows[0].fn_ms),
        walSync: Number(wal?.wal_sync ?? NaN),
        walSyncMs: Number(wal?.wal_sync_time ?? NaN),
        walBytes: Number(wal?.wal_bytes ?? NaN),
      };
    } catch {
      return undefined;
    }
  }

  private async metrics(serviceUrl: string | undefined): Promise<Record<string, number> | undefined> {
    if (!serviceUrl) return undefined;
    try {
      const res = await fetch(`${serviceUrl}/metrics`, { headers: { authorization: `Bearer ${this.metricsToken}` }, signal: AbortSignal.timeout(5_000) });
      if (res.status !== 200) return undefined;
      const values: Record<string, number> = {};
      for (const line of (await res.text()).split('\n')) {
        const m = /^(nodejs_eventloop_lag_(?:mean|p99)_seconds|db_hot_statement[a-z_]*|db_hot_statements_total)(?:\{[^}]*\})? (\S+)$/.exec(line);
        if (m) values[m[1]] = (values[m[1]] ?? 0) + Number(m[2]);
      }
      return values;
    } catch {
      return undefined;
    }
  }

  /** Before a scenario (also resets the service's event-loop histogram) and after it. */
  async snapshot(serverPid: number | undefined, serviceUrl?: string): Promise<Snapshot> {
    const metrics = await this.metrics(serviceUrl);
    return {
      at: Date.now(),
      serverCpu: treeCpuSeconds(serverPid),
      pgCpu: treeCpuSeconds(this.postmasterPid),
      loaderCpu: treeCpuSeconds(this.pids.loader),
      machine: machineCpu(),
      db: await this.db(),
      metrics,
    };
  }

  /** Adds what changed between two snapshots (the second taken after pg_stat's ~1 s flush) to `into`. */
  static add(into: Diagnostics, a: Snapshot, b: Snapshot, requests: number, seconds: number, load: string): void {
    into.seconds += seconds;
    into.requests += requests;
    into.serverCpu += b.serverCpu - a.serverCpu;
    into.pgCpu += b.pgCpu - a.pgCpu;
    into.loaderCpu += b.loaderCpu - a.loaderCpu;
    into.idleShare.push((b.machine.idle - a.machine.idle) / (b.machine.total - a.machine.total));
    into.loadAverages.push(load);
    if (a.db && b.db) {
      into.commits += b.db.commits - a.db.commits;
      into.calls += b.db.calls - a.db.calls;
      into.fnMs += b.db.fnMs - a.db.fnMs;
      into.walSync += b.db.walSync - a.db.walSync;
      into.walSyncMs += b.db.walSyncMs - a.db.walSyncMs;
      into.walBytes += b.db.walBytes - a.db.walBytes;
    }
    const m = b.metrics;
    // With WEB_CONCURRENCY > 1 each scrape reaches one worker: counters from two different workers do not subtract.
    const sameProcess = m && a.metrics && (m.db_hot_statements_total ?? 0) >= (a.metrics.db_hot_statements_total ?? 0);
    if (m && a.metrics && sameProcess) {
      into.statements += (m.db_hot_statements_total ?? 0) - (a.metrics.db_hot_statements_total ?? 0);
      into.acquireSeconds += (m.db_hot_statement_acquire_seconds_total ?? 0) - (a.metrics.db_hot_statement_acquire_seconds_total ?? 0);
      into.executeSeconds += (m.db_hot_statement_execute_seconds_total ?? 0) - (a.metrics.db_hot_statement_execute_seconds_total ?? 0);
      if (m.nodejs_eventloop_lag_mean_seconds !== undefined) into.lagMeanMs.push(m.nodejs_eventloop_lag_mean_seconds * 1000);
      if (m.nodejs_eventloop_lag_p99_seconds !== undefined) into.lagP99Ms.push(m.nodejs_eventloop_lag_p99_seconds * 1000);
    }
  }
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : '–');
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const max = (xs: number[]) => (xs.length ? Math.max(...xs) : NaN);

/** The "where the time went" table: one row per scenario that ran. */
export function renderDiagnostics(rows: { id: string; diagnostics?: Diagnostics }[]): string {
  const lines = [
    '| scenario | load avg (1 min) | server CPU ms/req | PostgreSQL CPU ms/req | load generator CPU ms/req | machine idle | in session function ms/call | commits/req | WAL flushes/commit | flush ms/commit | event-loop delay mean / max p99 ms | pool wait ms/stmt | statement round trip ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const { id, diagnostics: d } of rows) {
    if (!d || d.requests === 0) continue;
    const per = (x: number) => (1000 * x) / d.requests;
    // pg_stat flushes a backend's counters up to a second late: calls leaking in from the scenario before are not this one's.
    const ownCalls = d.calls >= 0.5 * d.requests;
    const loads = d.loadAverages.map((l) => l.split(' ')[0]).join(', ');
    lines.push(
      `| ${id} | ${loads} | ${fmt(per(d.serverCpu), 2)} | ${fmt(per(d.pgCpu), 2)} | ${fmt(per(d.loaderCpu), 2)} | ${fmt(100 * mean(d.idleShare), 0)}% | ` +
        `${ownCalls ? fmt(d.fnMs / d.calls, 2) : '–'} | ${fmt(d.commits / d.requests, 2)} | ${d.commits > 0 ? fmt(d.walSync / d.commits, 2) : '–'} | ` +
        `${d.commits > 0 ? fmt(d.walSyncMs / d.commits, 2) : '–'} | ${d.lagMeanMs.length ? `${fmt(mean(d.lagMeanMs))} / ${fmt(max(d.lagP99Ms))}` : '–'} | ` +
        `${d.statements > 0 ? fmt((1000 * d.acquireSeconds) / d.statements, 2) : '–'} | ${d.statements > 0 ? fmt((1000 * d.executeSeconds) / d.statements, 2) : '–'} |`,
    );
  }
  return lines.join('\n');
}
