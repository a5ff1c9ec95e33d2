import type { Services } from '../services';
import type { RouteSpec } from './route-table';

/** /api/usage/* (issue #5). */
export function usageRoutes(_services: Services): RouteSpec[] {
  return [];
}
