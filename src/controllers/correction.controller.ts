import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import type { AdjustBody, CreateScheduleBody, RefundBody, RerateBody, RevokeBody, SchedulesQuery } from '../schemas/correction.schemas';
import type { CorrectionService } from '../services/correction.service';

type IdParams = { params: { id: string } };

export class CorrectionController {
  constructor(private readonly corrections: CorrectionService) {}

  /** POST /api/credits/adjust (supervisor, admin; idempotent) */
  adjust = async ({ body, caller, idempotency }: Input<{ body: AdjustBody }>, res: Response) => {
    send(res, await this.corrections.adjust(caller.userId, body, idempotency));
  };

  /** POST /api/credits/allocations/:id/revoke (supervisor, admin; idempotent) */
  revoke = async ({ params, body, caller, idempotency }: Input<IdParams & { body: RevokeBody }>, res: Response) => {
    send(res, await this.corrections.revoke(caller.userId, params.id, body, idempotency));
  };

  /** POST /api/usage/records/:id/refund (supervisor, admin; idempotent) */
  refund = async ({ params, body, caller, idempotency }: Input<IdParams & { body: RefundBody }>, res: Response) => {
    send(res, await this.corrections.refund(caller.userId, params.id, body, idempotency));
  };

  /** POST /api/credits/schedules (supervisor, admin; idempotent) */
  createSchedule = async ({ body, caller, idempotency }: Input<{ body: CreateScheduleBody }>, res: Response) => {
    send(res, await this.corrections.createSchedule(caller.userId, body, idempotency));
  };

  /** GET /api/credits/schedules (supervisor, admin) */
  listSchedules = async ({ query }: Input<{ query: SchedulesQuery }>, res: Response) => {
    res.json(await this.corrections.listSchedules(query));
  };

  /** DELETE /api/credits/schedules/:id (supervisor, admin) */
  deleteSchedule = async ({ params }: Input<IdParams>, res: Response) => {
    res.json(await this.corrections.deleteSchedule(params.id));
  };

  /** POST /api/admin/rerate (admin; idempotent) */
  rerate = async ({ body, caller, idempotency }: Input<{ body: RerateBody }>, res: Response) => {
    send(res, await this.corrections.rerate(caller.userId, body, idempotency));
  };
}
