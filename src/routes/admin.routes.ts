import { CreditController } from '../controllers/credit.controller';
import { reconcileResponse } from '../schemas/credit.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

/** /api/admin/*: whole-system checks and corrections (admin only). */
export function adminRoutes(services: Services): RouteSpec[] {
  const credits = new CreditController(services.credits);
  return [
    route({
      method: 'get',
      path: '/api/admin/reconcile',
      summary: 'Recompute every allocation and hold from the ledger and list any difference',
      tags: ['Admin'],
      access: 'admin',
      responses: { 200: { description: 'Reconciliation report', schema: reconcileResponse } },
      handle: credits.reconcile,
    }),
  ];
}
