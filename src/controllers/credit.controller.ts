import type { Response } from 'express';
import { toCredits } from '../lib/money';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import { toBalanceJson, type AllocateBody, type CalculateBody, type CheckBody, type ReconcileQuery, type TransactionsQuery } from '../schemas/credit.schemas';
import type { CreditService } from '../services/credit.service';

export class CreditController {
  constructor(private readonly credits: CreditService) {}

  /** GET /api/credits/balance */
  balance = async ({ caller }: Input, res: Response) => {
    res.json(toBalanceJson(await this.credits.getUserBalance(caller)));
  };

  /** GET /api/credits/balance/:userId (supervisor, admin) */
  balanceOf = async ({ params }: Input<{ params: { userId: string } }>, res: Response) => {
    res.json(toBalanceJson(await this.credits.getBalanceOf(params.userId)));
  };

  /** POST /api/credits/check */
  check = async ({ body, caller }: Input<{ body: CheckBody }>, res: Response) => {
    const result = await this.credits.checkUserCredits(caller.userId, body);
    res.json({
      sufficient: result.sufficient,
      requiredCredits: toCredits(result.required),
      availableCredits: toCredits(result.available),
      ...(result.limitedBy ? { limitedBy: result.limitedBy } : {}),
    });
  };

  /** POST /api/credits/calculate */
  calculate = async ({ body }: Input<{ body: CalculateBody }>, res: Response) => {
    res.json(await this.credits.calculate(body));
  };

  /** POST /api/credits/allocate (supervisor, admin; idempotent) */
  allocate = async ({ body, caller, idempotency }: Input<{ body: AllocateBody }>, res: Response) => {
    send(res, await this.credits.allocateCredits(caller.userId, body, idempotency));
  };

  /** GET /api/credits/transactions */
  transactions = async ({ query, caller }: Input<{ query: TransactionsQuery }>, res: Response) => {
    res.json(await this.credits.listTransactions(caller, query));
  };

  /** GET /api/admin/reconcile?mode=full|incremental or ?userId= (admin) */
  reconcile = async ({ query }: Input<{ query: ReconcileQuery }>, res: Response) => {
    res.json(await this.credits.reconcile(query));
  };
}
