import { z } from 'zod';
import type { HealthController } from '../controllers/health.controller';
import type { RouteSpec } from './route-table';

const readiness = z.object({
  status: z.enum(['ready', 'not_ready']),
  checks: z.object({ database: z.string(), migrations: z.string(), draining: z.boolean() }),
});

export function healthRoutes(health: HealthController): RouteSpec[] {
  return [
    {
      method: 'get',
      path: '/health',
      summary: 'Liveness: the process is up',
      tags: ['Operations'],
      access: 'public',
      responses: { 200: { description: 'Alive', schema: z.object({ status: z.literal('ok') }) } },
      handler: health.health,
    },
    {
      method: 'get',
      path: '/ready',
      summary: 'Readiness: database reachable, migrations applied, not draining',
      tags: ['Operations'],
      access: 'public',
      responses: {
        200: { description: 'Ready', schema: readiness },
        503: { description: 'Not ready', schema: readiness },
      },
      handler: health.ready,
    },
  ];
}
