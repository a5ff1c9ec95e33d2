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
import { mountRoutes, type RouteChain, type RouteSpec } from './route-table';
import { streamingSessionRoutes } from './streaming-session.routes';
import { usageRoutes } from './usage.routes';
import { userAccountRoutes } from './user-account.routes';

/** One area of the API: its routes, mounted under `/api` + `mount`. */
export interface ApiArea {
  mount: string;
  specs: RouteSpec[];
}

/** The API's areas. A new area is one *.routes.ts file and one line here. */
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

/**
 * The main API router (mounted at /api): every area's routes on this one router, so a request passes one
 * router below the app's, not one per area as well (each router level is per-request work: matching, URL
 * trimming, its own next() loop; docs/performance.md).
 */
export function createApiRouter(areas: ApiArea[], chain: RouteChain): Router {
  const api = Router();
  // The hot path's areas first: areas' paths are disjoint, so their order only decides how many routes the
  // router tries before the right one (the OpenAPI document keeps the areas' own order). Within an area the
  // declared order is kept.
  const first = ['/streaming-sessions', '/credits'];
  const rank = (area: ApiArea) => (first.includes(area.mount) ? first.indexOf(area.mount) : first.length);
  for (const area of [...areas].sort((a, b) => rank(a) - rank(b))) {
    if (area.specs.some((spec) => !spec.path.startsWith(`/api${area.mount}/`) && spec.path !== `/api${area.mount}`)) {
      throw new Error(`area ${area.mount} has a route outside it`);
    }
    mountRoutes(api, area.specs, '/api', chain);
  }
  return api;
}

/** Routes outside /api: liveness and readiness probes. */
export function probeRoutes(db: Database, lifecycle: Lifecycle): RouteSpec[] {
  return healthRoutes(new HealthController(db, lifecycle));
}
