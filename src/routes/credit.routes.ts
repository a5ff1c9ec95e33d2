import type { Services } from '../services';
import type { RouteSpec } from './route-table';

/** /api/credits/*, /api/models, /api/admin/reconcile (issue #3). */
export function creditRoutes(_services: Services): RouteSpec[] {
  return [];
}
