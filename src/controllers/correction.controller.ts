import type { RequestHandler } from 'express';
import { idempotencyOf, send } from '../middleware/idempotency.middleware';
import type { AdjustBody, RefundBody, RevokeBody } from '../schemas/correction.schemas';
import type { CorrectionService } from '../services/correction.service';

export class CorrectionController {
  constructor(private readonly corrections: CorrectionService) {}

  /** POST /api/credits/adjust (supervisor, admin; idempotent) */
  adjust: RequestHandler = async (req, res) => {
    send(res, await this.corrections.adjust(req.auth!.userId, req.valid.body as AdjustBody, idempotencyOf(req)));
  };

  /** POST /api/credits/allocations/:id/revoke (supervisor, admin; idempotent) */
  revoke: RequestHandler = async (req, res) => {
    send(res, await this.corrections.revoke(req.auth!.userId, req.valid.params.id as string, req.valid.body as RevokeBody, idempotencyOf(req)));
  };

  /** POST /api/usage/records/:id/refund (supervisor, admin; idempotent) */
  refund: RequestHandler = async (req, res) => {
    send(res, await this.corrections.refund(req.auth!.userId, req.valid.params.id as string, req.valid.body as RefundBody, idempotencyOf(req)));
  };
}
