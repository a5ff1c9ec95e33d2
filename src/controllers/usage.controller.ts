import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { RequestHandler } from 'express';
import { idempotencyOf, send } from '../middleware/idempotency.middleware';
import type { RecordUsageBody, RecordsQuery, StatsQuery } from '../schemas/usage.schemas';
import type { UsageService } from '../services/usage.service';

export class UsageController {
  constructor(private readonly usage: UsageService) {}

  /** POST /api/usage/record */
  record: RequestHandler = async (req, res) => {
    send(res, await this.usage.recordUsage(req.auth!, req.valid.body as RecordUsageBody, idempotencyOf(req)));
  };

  /** GET /api/usage/stats (own) and /api/usage/stats/:userId (supervisor, admin). */
  stats: RequestHandler = async (req, res) => {
    const userId = req.valid.params.userId as string | undefined;
    res.json(await this.usage.getUserStats(req.auth!, req.valid.query as StatsQuery, userId));
  };

  /** GET /api/usage/system-stats (admin) */
  systemStats: RequestHandler = async (req, res) => {
    res.json(await this.usage.getSystemStats(req.valid.query as StatsQuery));
  };

  /** GET /api/usage/records: a page as JSON, or the whole range streamed as CSV with format=csv. */
  records: RequestHandler = async (req, res) => {
    const query = req.valid.query as unknown as RecordsQuery;
    if (query.format !== 'csv') {
      res.json(await this.usage.listRecords(req.auth!, query));
      return;
    }
    const csv = await this.usage.exportRecordsCsv(req.auth!, query);
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="${csv.filename}"`);
    await pipeline(Readable.from(csv.chunks), res);
  };
}
