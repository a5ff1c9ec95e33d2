import type { RequestHandler } from 'express';
import type { Database } from '../db/database';
import { pendingMigrations } from '../db/migrator';

/** Shared with the server: flipped to draining on SIGTERM so load balancers stop sending traffic. */
export interface Lifecycle {
  draining: boolean;
}

export class HealthController {
  private migrationsComplete = false;

  constructor(
    private readonly db: Database,
    private readonly lifecycle: Lifecycle,
  ) {}

  health: RequestHandler = (_req, res) => {
    res.json({ status: 'ok' });
  };

  ready: RequestHandler = async (_req, res) => {
    const checks = { database: 'unknown', migrations: 'unknown', draining: this.lifecycle.draining };
    try {
      await this.db.query('SELECT 1');
      checks.database = 'ok';
      if (!this.migrationsComplete) this.migrationsComplete = (await pendingMigrations(this.db.sequelize)).length === 0;
      checks.migrations = this.migrationsComplete ? 'ok' : 'pending';
    } catch {
      checks.database = checks.database === 'ok' ? 'ok' : 'unreachable';
    }
    const ready = checks.database === 'ok' && checks.migrations === 'ok' && !this.lifecycle.draining;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not_ready', checks });
  };
}
