import type { RequestHandler } from 'express';
import { toCredits } from '../lib/money';
import { idempotencyOf, send } from '../middleware/idempotency.middleware';
import { toBalanceJson, type AllocateBody, type CalculateBody, type CheckBody, type TransactionsQuery } from '../schemas/credit.schemas';
import type { CreditService } from '../services/credit.service';

export class CreditController {
  constructor(private readonly credits: CreditService) {}

  /** GET /api/credits/balance */
  balance: RequestHandler = async (req, res) => {
    res.json(toBalanceJson(await this.credits.getUserBalance(req.auth!)));
  };

  /** GET /api/credits/balance/:userId (supervisor, admin) */
  balanceOf: RequestHandler = async (req, res) => {
    res.json(toBalanceJson(await this.credits.getBalanceOf(req.valid.params.userId as string)));
  };

  /** POST /api/credits/check */
  check: RequestHandler = async (req, res) => {
    const result = await this.credits.checkUserCredits(req.auth!.userId, req.valid.body as CheckBody);
    res.json({
      sufficient: result.sufficient,
      requiredCredits: toCredits(result.required),
      availableCredits: toCredits(result.available),
      ...(result.limitedBy ? { limitedBy: result.limitedBy } : {}),
    });
  };

  /** POST /api/credits/calculate */
  calculate: RequestHandler = async (req, res) => {
    res.json(await this.credits.calculate(req.valid.body as CalculateBody));
  };

  /** POST /api/credits/allocate (supervisor, admin; idempotent) */
  allocate: RequestHandler = async (req, res) => {
    send(res, await this.credits.allocateCredits(req.auth!.userId, req.valid.body as AllocateBody, idempotencyOf(req)));
  };

  /** GET /api/credits/transactions */
  transactions: RequestHandler = async (req, res) => {
    res.json(await this.credits.listTransactions(req.auth!, req.valid.query as TransactionsQuery));
  };

  /** GET /api/admin/reconcile (admin) */
  reconcile: RequestHandler = async (_req, res) => {
    res.json(await this.credits.reconcile());
  };
}
