import type { RequestHandler } from 'express';
import type { Database } from '../db/database';
import { pendingMigrations } from '../db/migrator';

/** Shared with the server: flipped to draining on SIGTERM so load balancers stop sending traffic. */
export interface Lifecycle {
  draining: boolean;
}

/** How long one database probe answers /ready: a flood of probes costs one query per second, not one each. */
export const READY_CACHE_MS = 1000;

// /health's answer never changes: its body is made once, and so is its ETag (by the app's own ETag function,
// as res.send would compute it for every response).
const HEALTH_BODY = Buffer.from(JSON.stringify({ status: 'ok' }));

export class HealthController {
  private migrationsComplete = false;
  private healthEtag: string | undefined | null = null;
  private probe: { at: number; result: Promise<{ database: string; migrations: string }> } | null = null;

  constructor(
    private readonly db: Database,
    private readonly lifecycle: Lifecycle,
  ) {}

  health: RequestHandler = (req, res) => {
    if (this.healthEtag === null) {
      const etagFn = req.app.get('etag fn') as ((body: Buffer, encoding?: string) => string) | undefined;
      this.healthEtag = etagFn?.(HEALTH_BODY);
    }
    // The same headers res.json would set; res.send still answers HEAD and a matching If-None-Match (304).
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    if (this.healthEtag !== undefined) res.setHeader('ETag', this.healthEtag);
    res.send(HEALTH_BODY);
  };

  ready: RequestHandler = async (_req, res) => {
    const now = Date.now();
    // Concurrent and repeated probes within READY_CACHE_MS share one database check.
    if (!this.probe || now - this.probe.at >= READY_CACHE_MS) this.probe = { at: now, result: this.checkDatabase() };
    const checks = { ...(await this.probe.result), draining: this.lifecycle.draining };
    const ready = checks.database === 'ok' && checks.migrations === 'ok' && !this.lifecycle.draining;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  };

  private async checkDatabase(): Promise<{ database: string; migrations: string }> {
    const checks = { database: 'unknown', migrations: 'unknown' };
    try {
      await this.db.query('SELECT 1');
      checks.database = 'ok';
      if (!this.migrationsComplete) this.migrationsComplete = (await pendingMigrations(this.db.sequelize)).length === 0;
      checks.migrations = this.migrationsComplete ? 'ok' : 'pending';
    } catch {
      checks.database = checks.database === 'ok' ? 'ok' : 'unreachable';
    }
    return checks;
  }
}
