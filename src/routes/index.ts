import { HealthController, type Lifecycle } from '../controllers/health.controller';
import type { Database } from '../db/database';
import type { Services } from '../services';
import { correctionRoutes } from './correction.routes';
import { creditRoutes } from './credit.routes';
import { healthRoutes } from './health.routes';
import { modelRoutes } from './model.routes';
import type { RouteSpec } from './route-table';
import { streamingSessionRoutes } from './streaming-session.routes';
import { usageRoutes } from './usage.routes';
import { userAccountRoutes } from './user-account.routes';

/** Every route the service answers, in one table (mounted by createApp, documented by OpenAPI). */
export function buildRouteTable(services: Services, db: Database, lifecycle: Lifecycle): RouteSpec[] {
  return [
    ...healthRoutes(new HealthController(db, lifecycle)),
    ...userAccountRoutes(services),
    ...creditRoutes(services),
    ...modelRoutes(services),
    ...streamingSessionRoutes(services),
    ...usageRoutes(services),
    ...correctionRoutes(services),
  ];
}
