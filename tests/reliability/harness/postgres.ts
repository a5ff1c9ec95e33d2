import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { Client, Pool } from 'pg';
import { createDatabase } from '../../../src/db/database';
import { findFreePort } from '../../../src/db/embedded-postgres';
import { migrateToLatest } from '../../../src/db/migrator';
import { onExit } from './cleanup';

const DATABASE = 'acct';
const REPO_ROOT = path.resolve(__dirname, '../../..');

/**
 * A real PostgreSQL server owned by one scenario: its own temp data directory and port, so the scenario
 * can stop and restart it (database loss) without disturbing anyone else. The data survives a restart.
 */
export class ControlledPostgres {
  private controller: ChildProcess | undefined;
  private replies: readline.Interface | undefined;
  private pending: Array<(reply: { ok: boolean; error?: string; pid?: number | null }) => void> = [];
  private pool: Pool | undefined;
  private serverPid: number | null = null;
  private forgetExitHook: (() => void) | undefined;
  readonly logLines: string[] = [];

  private constructor(
    readonly rootDir: string,
    readonly port: number,
  ) {}

  /** Starts a fresh server and migrates the service's database. */
  static async start(): Promise<ControlledPostgres> {
    const rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-rel-pg-'));
    // PostgreSQL runs as the `postgres` system user when we are root; it must be able to enter the dir.
    fs.chmodSync(rootDir, 0o755);
    const pg = new ControlledPostgres(rootDir, await findFreePort());
    try {
      await pg.resume();
      const admin = new Client({ connectionString: pg.adminUrl });
      await admin.connect();
      await admin.query(`CREATE DATABASE ${DATABASE}`);
      await admin.end();
      const db = createDatabase({ url: pg.url, poolMax: 2, statementTimeoutMs: 60_000, lockTimeoutMs: 60_000, acquireTimeoutMs: 60_000 });
      await migrateToLatest(db.sequelize);
      await db.close();
      return pg;
    } catch (error) {
      await pg.destroy();
      throw error;
    }
  }

  get dataDir(): string {
    return path.join(this.rootDir, 'data');
  }

  get adminUrl(): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** The service database (what DATABASE_URL of every service process points at). */
  get url(): string {
    return `postgres://postgres:postgres@127.0.0.1:${this.port}/${DATABASE}`;
  }

  get running(): boolean {
    return this.serverPid !== null;
  }

  /** Sends one command to the controller process (harness/pg-controller.ts) and waits for its answer. */
  private async command(cmd: 'start' | 'stop'): Promise<void> {
    if (!this.controller) {
      const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', path.join(__dirname, 'pg-controller.ts'), this.dataDir, String(this.port)], {
        cwd: REPO_ROOT,
        env: { ...process.env, TS_NODE_PROJECT: path.join(REPO_ROOT, 'tsconfig.test.json') },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      child.stderr!.on('data', (d: Buffer) => {
        if (this.logLines.length < 5000) this.logLines.push(d.toString());
      });
      this.replies = readline.createInterface({ input: child.stdout! });
      this.replies.on('line', (line) => this.pending.shift()?.(JSON.parse(line)));
      child.once('exit', () => {
        for (const waiter of this.pending.splice(0)) waiter({ ok: false, error: 'pg controller exited' });
        this.controller = undefined;
      });
      this.controller = child;
    }
    const reply = await new Promise<{ ok: boolean; error?: string; pid?: number | null }>((resolve) => {
      this.pending.push(resolve);
      this.controller!.stdin!.write(JSON.stringify({ cmd }) + '\n');
    });
    if (!reply.ok) throw new Error(`postgres ${cmd} failed: ${reply.error}\n${this.logLines.slice(-20).join('')}`);
    this.serverPid = reply.pid ?? null;
  }

  /** Starts (or restarts) the server on the same port and data directory. */
  async resume(): Promise<void> {
    if (this.running) return;
    await this.command('start');
    const pid = this.serverPid;
    // Belt and braces: should the controller itself be killed, the server must not outlive the suite.
    this.forgetExitHook = onExit(() => {
      try {
        if (pid) process.kill(pid, 'SIGQUIT');
      } catch {
        /* already gone */
      }
    });
  }

  /** Fast shutdown (SIGINT): open connections are terminated, as when a database host goes away. */
  async pause(): Promise<void> {
    if (!this.running) return;
    await this.pool?.end().catch(() => undefined);
    this.pool = undefined;
    await this.command('stop');
    this.serverPid = null;
    this.forgetExitHook?.();
  }

  /** Runs one statement on the service database from the test side (a small pool of its own). */
  async sql<T extends Record<string, unknown> = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    if (!this.pool) {
      this.pool = new Pool({ connectionString: this.url, max: 4, application_name: 'reliability-suite' });
      // A server restart drops idle clients; that must not crash the test process.
      this.pool.on('error', () => undefined);
    }
    const result = await this.pool.query(text, params);
    return result.rows as T[];
  }

  /** A dedicated client (e.g. to hold a row lock in an open transaction). Caller ends it. */
  async client(): Promise<Client> {
    const client = new Client({ connectionString: this.url, application_name: 'reliability-suite' });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** Stops the server and deletes its data directory. */
  async destroy(): Promise<void> {
    await this.pause().catch(() => undefined);
    const controller = this.controller;
    if (controller) {
      const exited = new Promise((resolve) => controller.once('exit', resolve));
      controller.stdin!.end();
      await exited;
    }
    fs.rmSync(this.rootDir, { recursive: true, force: true });
  }
}
