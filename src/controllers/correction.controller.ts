import type { RequestHandler } from 'express';
import { idempotencyOf, send } from '../middleware/idempotency.middleware';
import type { AdjustBody, CreateScheduleBody, RefundBody, RerateBody, RevokeBody, SchedulesQuery } from '../schemas/correction.schemas';
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

  /** POST /api/credits/schedules (supervisor, admin; idempotent) */
  createSchedule: RequestHandler = async (req, res) => {
    send(res, await this.corrections.createSchedule(req.auth!.userId, req.valid.body as CreateScheduleBody, idempotencyOf(req)));
  };

  /** GET /api/credits/schedules (supervisor, admin) */
  listSchedules: RequestHandler = async (req, res) => {
    res.json(await this.corrections.listSchedules(req.valid.query as SchedulesQuery));
  };

  /** DELETE /api/credits/schedules/:id (supervisor, admin) */
  deleteSchedule: RequestHandler = async (req, res) => {
    res.json(await this.corrections.deleteSchedule(req.valid.params.id as string));
  };

  /** POST /api/admin/rerate (admin; idempotent) */
  rerate: RequestHandler = async (req, res) => {
    send(res, await this.corrections.rerate(req.auth!.userId, req.valid.body as RerateBody, idempotencyOf(req)));
  };
}
