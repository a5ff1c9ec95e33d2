import crypto from 'node:crypto';
import type { RequestHandler } from 'express';
import { AppError } from '../lib/errors';
import type { Metrics } from '../lib/metrics';
import { buildOpenApiDocument, type OpenApiDocument } from '../openapi';
import type { RouteSpec } from '../routes/route-table';

/** Serves the OpenAPI document of the app's own route table and the Prometheus metrics. */
export class OperationsController {
  private document?: OpenApiDocument;

  constructor(
    private readonly routes: () => RouteSpec[],
    private readonly metrics: Metrics,
    private readonly metricsToken?: string,
  ) {}

  openapi: RequestHandler = (_req, res) => {
    // Built on first use: the route table is complete by then, and it never changes afterwards.
    this.document ??= buildOpenApiDocument(this.routes());
    res.json(this.document);
  };

  prometheus: RequestHandler = async (req, res) => {
    if (this.metricsToken && !sameSecret(req.headers.authorization, `Bearer ${this.metricsToken}`)) {
      throw new AppError('UNAUTHENTICATED', 'Metrics need Authorization: Bearer <METRICS_TOKEN>');
    }
    const body = await this.metrics.exposition();
    res.type(this.metrics.registry.contentType).send(body);
  };
}

function sameSecret(given: string | undefined, expected: string): boolean {
  const a = crypto.createHash('sha256').update(given ?? '').digest();
  const b = crypto.createHash('sha256').update(expected).digest();
  return crypto.timingSafeEqual(a, b);
}
