import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import type { BudgetStatusQuery, CreateBudgetBody, ListBudgetsQuery, SetOrgBody, UpdateBudgetBody } from '../schemas/budget.schemas';
import type { BudgetService } from '../services/budget.service';

type IdParams = { params: { id: string } };

export class BudgetController {
  constructor(private readonly budgets: BudgetService) {}

  /** POST /api/budgets (supervisor, admin) */
  create = async ({ body, caller, idempotency }: Input<{ body: CreateBudgetBody }>, res: Response) => {
    send(res, await this.budgets.create(caller.userId, body, idempotency));
  };

  /** GET /api/budgets (supervisor, admin) */
  list = async ({ query }: Input<{ query: ListBudgetsQuery }>, res: Response) => {
    res.json(await this.budgets.list(query));
  };

  /** PATCH /api/budgets/:id (supervisor, admin) */
  update = async ({ params, body }: Input<IdParams & { body: UpdateBudgetBody }>, res: Response) => {
    res.json(await this.budgets.update(params.id, body));
  };

  /** DELETE /api/budgets/:id (supervisor, admin) */
  remove = async ({ params }: Input<IdParams>, res: Response) => {
    await this.budgets.remove(params.id);
    send(res, { effect: 'deleted', body: null });
  };

  /** GET /api/budgets/status */
  status = async ({ query, caller }: Input<{ query: BudgetStatusQuery }>, res: Response) => {
    res.json(await this.budgets.status(caller, query));
  };

  /** PUT /api/users/:userId/org (supervisor, admin) */
  setOrg = async ({ params, body }: Input<{ params: { userId: string }; body: SetOrgBody }>, res: Response) => {
    res.json(await this.budgets.setOrg(params.userId, body.orgId));
  };
}
