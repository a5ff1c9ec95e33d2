import type { Services } from '../services';
import type { RouteSpec } from './route-table';

/** /api/streaming-sessions/* (issue #4). */
export function streamingSessionRoutes(_services: Services): RouteSpec[] {
  return [];
}
