import type { Database } from '../db/database';
import type { PriceService } from './price.service';
import type { IdempotencyService } from './idempotency.service';
import type { UserAccountService } from './user-account.service';

/** Balances, lots, grants, prices and the ledger (issue #3). */
export class CreditService {
  constructor(
    private readonly db: Database,
    private readonly users: UserAccountService,
    private readonly idempotency: IdempotencyService,
    private readonly prices: PriceService,
  ) {}
}
