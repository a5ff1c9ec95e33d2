import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { findFreePort } from '../../../src/db/embedded-postgres';
import { TEST_JWT_SECRET } from '../../support/tokens';
import { onExit } from './cleanup';
import { call } from './http';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const SERVER_ENTRY = path.join(REPO_ROOT, 'dist/src/server.js');

/**
 * Settings every service process in the suite gets unless a scenario overrides them: a real production
 * configuration except that timers are short so that expiry and sweeping happen within a test.
 */
export const BASE_SERVICE_ENV: Record<string, string> = {
  NODE_ENV: 'production',
  // The suite scrapes /metrics without a token.
  METRICS_PUBLIC: 'true',
  HOST: '127.0.0.1',
  JWT_SECRET: TEST_JWT_SECRET,
  LOG_LEVEL: 'warn',
  SWEEPER_INTERVAL_MS: '500',
  SHUTDOWN_GRACE_MS: '3000',
  SHUTDOWN_DELAY_MS: '0',
  // The suite measures correctness under load; rate limiting (issue #8) would only get in the way.
  RATE_LIMIT_ENABLED: 'false',
  // Never read a developer's .env: each process gets exactly the environment written here.
  DOTENV_CONFIG_PATH: '/nonexistent/.env',
};

export interface ServiceOptions {
  name: string;
  databaseUrl: string;
  logDir: string;
  env?: Record<string, string>;
}

/**
 * One real service process (`node dist/src/server.js`) on its own port. It can be killed with SIGKILL at
 * any moment and restarted on the same port; stdout/stderr go to a log file the scenario can inspect.
 */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private forgetExitHook: (() => void) | undefined;
  private exited: Promise<void> = Promise.resolve();
  readonly logFile: string;
  port = 0;
  starts = 0;
  /** True from a successful readiness check until the process is stopped or killed. */
  ready = false;

  constructor(readonly options: ServiceOptions) {
    this.logFile = path.join(options.logDir, `${options.name}.log`);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process (on the same port as before, if it ran already) and waits until /ready is 200. */
  async start(timeoutMs = 30_000): Promise<void> {
    if (this.alive) return;
    if (!fs.existsSync(SERVER_ENTRY)) throw new Error(`${SERVER_ENTRY} is missing: run npm run build (the suite's global setup does)`);
    if (!this.port) this.port = await findFreePort();
    const log = fs.openSync(this.logFile, 'a');
    fs.writeSync(log, `\n=== start #${++this.starts} ${new Date().toISOString()} ===\n`);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      ...BASE_SERVICE_ENV,
      DATABASE_URL: this.options.databaseUrl,
      PORT: String(this.port),
      ...this.options.env,
    };
    const child = spawn(process.execPath, [SERVER_ENTRY], { cwd: REPO_ROOT, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const pid = child.pid!;
    this.forgetExitHook = onExit(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    await this.waitReady(timeoutMs);
  }

  /** Polls /ready until it answers 200; fails early (with the log tail) if the process dies. */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.alive) throw new Error(`${this.options.name} exited while starting:\n${this.logTail()}`);
      const res = await call(this.url, { path: '/ready', timeoutMs: 2_000 });
      if (res.status === 200) {
        this.ready = true;
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.options.name} not ready after ${timeoutMs} ms:\n${this.logTail()}`);
  }

  /** kill -9: no shutdown hook runs, in-flight requests are cut, the pool's connections just vanish. */
  async kill(): Promise<void> {
    this.ready = false;
    if (!this.child) return;
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
    this.forgetExitHook?.();
    this.child = undefined;
  }

  /** Graceful stop (SIGTERM), escalating to SIGKILL when it takes too long. */
  async stop(graceMs = 5_000): Promise<void> {
    this.ready = false;
    if (!this.child) return;
    if (this.alive) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child?.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.forgetExitHook?.();
    this.child = undefined;
  }

  log(): string {
    return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
  }

  logTail(lines = 40): string {
    return this.log().split('\n').slice(-lines).join('\n');
  }
}
