import type { RequestHandler } from 'express';
import type { BudgetStatusQuery, CreateBudgetBody, ListBudgetsQuery, SetOrgBody, UpdateBudgetBody } from '../schemas/budget.schemas';
import type { BudgetService } from '../services/budget.service';

export class BudgetController {
  constructor(private readonly budgets: BudgetService) {}

  /** POST /api/budgets (supervisor, admin) */
  create: RequestHandler = async (req, res) => {
    res.status(201).json(await this.budgets.create(req.auth!.userId, req.valid.body as CreateBudgetBody));
  };

  /** GET /api/budgets (supervisor, admin) */
  list: RequestHandler = async (req, res) => {
    res.json(await this.budgets.list(req.valid.query as ListBudgetsQuery));
  };

  /** PATCH /api/budgets/:id (supervisor, admin) */
  update: RequestHandler = async (req, res) => {
    res.json(await this.budgets.update(req.valid.params.id as string, req.valid.body as UpdateBudgetBody));
  };

  /** DELETE /api/budgets/:id (supervisor, admin) */
  remove: RequestHandler = async (req, res) => {
    await this.budgets.remove(req.valid.params.id as string);
    res.status(204).end();
  };

  /** GET /api/budgets/status */
  status: RequestHandler = async (req, res) => {
    res.json(await this.budgets.status(req.auth!, req.valid.query as BudgetStatusQuery));
  };

  /** PUT /api/users/:userId/org (supervisor, admin) */
  setOrg: RequestHandler = async (req, res) => {
    res.json(await this.budgets.setOrg(req.valid.params.userId as string, (req.valid.body as SetOrgBody).orgId));
  };
}
