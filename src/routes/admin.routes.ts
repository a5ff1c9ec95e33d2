import { CreditController } from '../controllers/credit.controller';
import { reconcileQuery, reconcileResponse } from '../schemas/credit.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/admin/*: whole-system checks and corrections (admin only). */
export function adminRoutes(services: Services): RouteSpec[] {
  const credits = new CreditController(services.credits);
  return [
    route({
      method: 'get',
      path: '/api/admin/reconcile',
      summary: 'Recompute allocations, holds, usage records and budget counters from the ledger and list any difference',
      tags: ['Admin'],
      access: 'admin',
      request: { query: reconcileQuery },
      responses: { 200: { description: 'Reconciliation report', schema: reconcileResponse } },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: credits.reconcile,
    }),
  ];
}
