import { Router } from 'express';
import { HealthController, type Lifecycle } from '../controllers/health.controller';
import type { Database } from '../db/database';
import type { Services } from '../services';
import { adminRoutes } from './admin.routes';
import { budgetRoutes, userOrgRoutes } from './budget.routes';
import { correctionRoutes } from './correction.routes';
import { creditRoutes } from './credit.routes';
import { eventRoutes, webhookRoutes } from './event.routes';
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
  // Corrections (adjust, revoke, refund, schedules, re-rate) live in one file but belong to three areas.
  const corrections = correctionRoutes(services);
  const correctionsUnder = (mount: string) => corrections.filter((spec) => spec.path.startsWith(`/api${mount}/`));
  return [
    { mount: '/me', specs: userAccountRoutes(services) },
    { mount: '/credits', specs: [...creditRoutes(services), ...correctionsUnder('/credits')] },
    { mount: '/admin', specs: [...adminRoutes(services), ...correctionsUnder('/admin')] },
    { mount: '/models', specs: modelRoutes(services) },
    { mount: '/streaming-sessions', specs: streamingSessionRoutes(services) },
    { mount: '/usage', specs: [...usageRoutes(services), ...correctionsUnder('/usage')] },
    { mount: '/events', specs: eventRoutes(services) },
    { mount: '/webhooks', specs: webhookRoutes(services) },
    { mount: '/budgets', specs: budgetRoutes(services) },
    { mount: '/users', specs: userOrgRoutes(services) },
  ];
}

/** The main API router (mounted at /api): one express.Router per area. */
export function createApiRouter(areas: ApiArea[], chain: RouteChain): Router {
  const api = Router();
  // The hot path's areas first: the mounts are disjoint, so their order only decides how many mounts the
  // router tries before the right one (the OpenAPI document keeps the areas' own order).
  const first = ['/streaming-sessions', '/credits'];
  const rank = (area: ApiArea) => (first.includes(area.mount) ? first.indexOf(area.mount) : first.length);
  for (const area of [...areas].sort((a, b) => rank(a) - rank(b))) api.use(area.mount, routerFor(area.specs, `/api${area.mount}`, chain));
  return api;
}

/** Routes outside /api: liveness and readiness probes. */
export function probeRoutes(db: Database, lifecycle: Lifecycle): RouteSpec[] {
  return healthRoutes(new HealthController(db, lifecycle));
}
