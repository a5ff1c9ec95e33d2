import { OperationsController } from '../controllers/operations.controller';
import type { Metrics } from '../lib/metrics';
import { z } from '../schemas/common';
import type { RouteSpec } from './route-table';

/** GET /api/openapi.json and GET /metrics (issue #8). Swagger UI at /api/docs is mounted by createApp. */
export function operationsRoutes(options: {
  routes: () => RouteSpec[];
  metrics: Metrics;
  metricsEnabled: boolean;
  metricsToken?: string;
}): RouteSpec[] {
  const controller = new OperationsController(options.routes, options.metrics, options.metricsToken);
  const specs: RouteSpec[] = [
    {
      method: 'get',
      path: '/api/openapi.json',
      summary: 'This OpenAPI 3 document',
      tags: ['Operations'],
      access: 'public',
      responses: {
        200: { description: 'The OpenAPI document, generated from the schemas that validate requests', schema: z.object({}).passthrough() },
      },
      handler: controller.openapi,
    },
  ];
  if (options.metricsEnabled) {
    specs.push({
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics',
      tags: ['Operations'],
      // With METRICS_TOKEN set, the handler asks for `Authorization: Bearer <METRICS_TOKEN>`.
      access: 'public',
      responses: {
        200: { description: 'Prometheus text exposition format', schema: z.string(), contentType: 'text/plain; version=0.0.4' },
      },
      // 503 only with WEB_CONCURRENCY > 1, when the workers' metrics cannot be gathered (docs/scaling.md).
      errors: [...(options.metricsToken ? ['UNAUTHENTICATED' as const] : []), 'SERVICE_UNAVAILABLE'],
      handler: controller.prometheus,
    });
  }
  return specs;
}
