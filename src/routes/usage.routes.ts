import { UsageController } from '../controllers/usage.controller';
import {
  recordUsageBody,
  recordUsageResponse,
  recordsPage,
  recordsQuery,
  statsParams,
  statsQuery,
  systemStatsResponse,
  userStatsResponse,
} from '../schemas/usage.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

const csvDescription =
  'With format=csv: text/csv attachment, a header row then one row per record, newest first, credits as decimals';

/** /api/usage/* (issue #5). */
export function usageRoutes(services: Services): RouteSpec[] {
  const controller = new UsageController(services.usage);
  return [
    route({
      method: 'post',
      path: '/api/usage/record',
      summary: 'Record usage and charge it; any shortfall is recorded as unpaid (never refused)',
      tags: ['Usage'],
      access: 'user',
      idempotent: true,
      request: { body: recordUsageBody },
      responses: { 201: { description: 'Recorded (and charged as far as credits allowed)', schema: recordUsageResponse } },
      errors: ['VALIDATION_ERROR', 'UNKNOWN_MODEL', 'UNPAID_LIMIT', 'BUDGET_EXCEEDED', 'FORBIDDEN', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.record,
    }),
    route({
      method: 'get',
      path: '/api/usage/stats',
      summary: "The caller's usage statistics over whole UTC days (default: the last 30)",
      tags: ['Usage'],
      access: 'user',
      request: { query: statsQuery },
      responses: { 200: { description: 'Statistics', schema: userStatsResponse } },
      errors: ['VALIDATION_ERROR'],
      handle: controller.stats,
    }),
    route({
      method: 'get',
      path: '/api/usage/stats/:userId',
      summary: "A user's usage statistics over whole UTC days",
      tags: ['Usage'],
      access: 'supervisor',
      request: { params: statsParams, query: statsQuery },
      responses: { 200: { description: 'Statistics', schema: userStatsResponse } },
      errors: ['VALIDATION_ERROR', 'NOT_FOUND'],
      handle: controller.stats,
    }),
    route({
      method: 'get',
      path: '/api/usage/system-stats',
      summary: 'System-wide usage over whole UTC days, plus credits and sessions as of now',
      tags: ['Usage'],
      access: 'admin',
      request: { query: statsQuery },
      responses: { 200: { description: 'System statistics', schema: systemStatsResponse } },
      errors: ['VALIDATION_ERROR'],
      handle: controller.systemStats,
    }),
    route({
      method: 'get',
      path: '/api/usage/records',
      summary: 'Usage records, newest first (own; supervisors and admins may pass userId), or a CSV download',
      tags: ['Usage'],
      access: 'user',
      request: { query: recordsQuery },
      // One content type per status in RouteSpec: the JSON page is the schema, the CSV variant is described.
      responses: { 200: { description: `A page of records. ${csvDescription}`, schema: recordsPage } },
      errors: ['VALIDATION_ERROR', 'FORBIDDEN', 'NOT_FOUND'],
      handle: controller.records,
    }),
  ];
}
