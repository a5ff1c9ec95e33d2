import { Router } from 'express';
import { HealthController, type Lifecycle } from '../controllers/health.controller';
import type { Database } from '../db/database';
import type { Services } from '../services';
import { adminRoutes } from './admin.routes';
import { budgetRoutes, userOrgRoutes } from './budget.routes';
import { creditRoutes } from './credit.routes';
import { healthRoutes } from './health.routes';
import { modelRoutes } from './model.routes';
import { routerFor, type RouteChain, type RouteSpec } from './route-table';
import { streamingSessionRoutes } from './streaming-session.routes';
import { usageRoutes } from './usage.routes';
import { userAccountRoutes } from './user-account.routes';

/** One area of the API: its routes, mounted under `/api` + `mount`. */
export interface ApiArea {
  mount: string;
  specs: RouteSpec[];
}

/** The API's areas, one router each. A new area is one *.routes.ts file and one line here. */
export function apiAreas(services: Services): ApiArea[] {
  return [
    { mount: '/me', specs: userAccountRoutes(services) },
    { mount: '/credits', specs: creditRoutes(services) },
    { mount: '/admin', specs: adminRoutes(services) },
    { mount: '/models', specs: modelRoutes(services) },
    { mount: '/streaming-sessions', specs: streamingSessionRoutes(services) },
    { mount: '/usage', specs: usageRoutes(services) },
    { mount: '/budgets', specs: budgetRoutes(services) },
    { mount: '/users', specs: userOrgRoutes(services) },
  ];
}

/** The main API router (mounted at /api): one express.Router per area. */
export function createApiRouter(areas: ApiArea[], chain: RouteChain): Router {
  const api = Router();
  for (const area of areas) api.use(area.mount, routerFor(area.specs, `/api${area.mount}`, chain));
  return api;
}

/** Routes outside /api: liveness and readiness probes. */
export function probeRoutes(db: Database, lifecycle: Lifecycle): RouteSpec[] {
  return healthRoutes(new HealthController(db, lifecycle));
}
