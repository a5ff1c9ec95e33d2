import { BudgetController } from '../controllers/budget.controller';
import {
  budgetIdParams,
  budgetListResponse,
  budgetSchema,
  budgetStatusQuery,
  budgetStatusResponse,
  createBudgetBody,
  listBudgetsQuery,
  setOrgBody,
  updateBudgetBody,
  userIdParams,
  userOrgResponse,
} from '../schemas/budget.schemas';
import { errorResponse } from '../schemas/common';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/budgets/* (issue #14, docs/budgets.md). */
export function budgetRoutes(services: Services): RouteSpec[] {
  const controller = new BudgetController(services.budgets);
  return [
    route({
      method: 'post',
      path: '/api/budgets',
      summary: 'Create a budget: a spend cap for a user or an organization per day, week or month of a time zone',
      tags: ['Budgets'],
      access: 'supervisor',
      idempotent: true,
      request: { body: createBudgetBody },
      responses: { 201: { description: 'The budget', schema: budgetSchema } },
      errors: ['VALIDATION_ERROR', 'UNKNOWN_MODEL', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.create,
    }),
    route({
      method: 'get',
      path: '/api/budgets',
      summary: 'Budgets of a user (?userId=) or an organization (?orgId=), or all, oldest first',
      tags: ['Budgets'],
      access: 'supervisor',
      request: { query: listBudgetsQuery },
      responses: { 200: { description: 'Budgets', schema: budgetListResponse } },
      errors: ['VALIDATION_ERROR'],
      handle: controller.list,
    }),
    route({
      method: 'get',
      path: '/api/budgets/status',
      summary: 'The budgets that apply to the caller (or, for supervisors and admins, to ?userId= or ?orgId=) in their current period',
      tags: ['Budgets'],
      access: 'user',
      request: { query: budgetStatusQuery },
      responses: { 200: { description: 'Budget status', schema: budgetStatusResponse } },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: controller.status,
    }),
    route({
      method: 'patch',
      path: '/api/budgets/:id',
      summary: 'Change a budget\u2019s limit (spent and held stay; the next decision uses the new limit)',
      tags: ['Budgets'],
      access: 'supervisor',
      request: { params: budgetIdParams, body: updateBudgetBody },
      responses: {
        200: { description: 'The budget', schema: budgetSchema },
        404: { description: 'Unknown budget', schema: errorResponse },
      },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: controller.update,
    }),
    route({
      method: 'delete',
      path: '/api/budgets/:id',
      summary: 'Delete a budget and its counters (credits are untouched)',
      tags: ['Budgets'],
      access: 'supervisor',
      request: { params: budgetIdParams },
      responses: {
        204: { description: 'Deleted' },
        404: { description: 'Unknown budget', schema: errorResponse },
      },
      errors: ['NOT_FOUND'],
      handle: controller.remove,
    }),
  ];
}

/** /api/users/* : a user's organization. */
export function userOrgRoutes(services: Services): RouteSpec[] {
  const controller = new BudgetController(services.budgets);
  return [
    route({
      method: 'put',
      path: '/api/users/:userId/org',
      summary: 'Set a user\u2019s organization (null: none); a token carrying the org claim overrides it',
      tags: ['Budgets'],
      access: 'supervisor',
      request: { params: userIdParams, body: setOrgBody },
      responses: { 200: { description: 'The user and their organization', schema: userOrgResponse } },
      errors: ['VALIDATION_ERROR'],
      handle: controller.setOrg,
    }),
  ];
}
