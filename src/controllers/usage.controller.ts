import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import type { RecordUsageBody, RecordsQuery, StatsQuery } from '../schemas/usage.schemas';
import type { UsageService } from '../services/usage.service';

export class UsageController {
  constructor(private readonly usage: UsageService) {}

  /** POST /api/usage/record */
  record = async ({ body, caller, idempotency }: Input<{ body: RecordUsageBody }>, res: Response) => {
    send(res, await this.usage.recordUsage(caller, body, idempotency));
  };

  /** GET /api/usage/stats (own) and /api/usage/stats/:userId (supervisor, admin). */
  stats = async ({ query, params, caller }: Input<{ query: StatsQuery; params: { userId?: string } }>, res: Response) => {
    res.json(await this.usage.getUserStats(caller, query, params.userId));
  };

  /** GET /api/usage/system-stats (admin) */
  systemStats = async ({ query }: Input<{ query: StatsQuery }>, res: Response) => {
    res.json(await this.usage.getSystemStats(query));
  };

  /** GET /api/usage/records: a page of JSON, or (format=csv) the whole range streamed in CSV. */
  records = async ({ query, caller }: Input<{ query: RecordsQuery }>, res: Response) => {
    if (query.format !== 'csv') {
      res.json(await this.usage.listRecords(caller, query));
      return;
    }
    const csv = await this.usage.exportRecordsCsv(caller, query);
    res.setHeader('Content-Type', 'text/csv; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="${csv.filename}"`);
    await pipeline(Readable.from(csv.chunks), res);
  };
}
