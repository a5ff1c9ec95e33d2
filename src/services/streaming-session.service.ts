import type { Config } from '../config';
import type { Database } from '../db/database';
import type { PriceService } from './price.service';
import type { CreditService } from './credit.service';

/** Streaming sessions as two-phase holds (issue #4). */
export class StreamingSessionService {
  constructor(
    private readonly db: Database,
    private readonly credits: CreditService,
    private readonly prices: PriceService,
    private readonly config: Config,
  ) {}
}
