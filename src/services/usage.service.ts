import type { Database } from '../db/database';
import type { PriceService } from './price.service';
import type { CreditService } from './credit.service';
import type { IdempotencyService } from './idempotency.service';

/** Usage records and statistics (issue #5). */
export class UsageService {
  constructor(
    private readonly db: Database,
    private readonly credits: CreditService,
    private readonly prices: PriceService,
    private readonly idempotency: IdempotencyService,
  ) {}
}
