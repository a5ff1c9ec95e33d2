import { OpenAPIRegistry, OpenApiGeneratorV3, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import type { ZodObject, ZodType } from 'zod';
import { version } from '../package.json';
import type { ErrorCode } from './lib/errors';
import { STATUS_OF } from './lib/http-status';
import type { RouteSpec } from './routes/route-table';
import { errorResponse, z } from './schemas/common';

/** What each error code means, shown in the responses that can carry it. */
const ERROR_MEANING: Record<ErrorCode, string> = {
  VALIDATION_ERROR: 'the body, query, path or a header is not valid (every problem is listed in details.problems)',
  INVALID_JSON: 'the body is not parsable JSON',
  UNKNOWN_MODEL: 'the model has no price',
  UNAUTHENTICATED: 'missing, malformed, expired or wrongly signed token',
  INSUFFICIENT_CREDITS: 'not enough available credits (details: requiredCredits, availableCredits); nothing was held',
  BUDGET_EXCEEDED:
    'a budget that applies would be exceeded (details: budgetId, scope, period, limitCredits, spentCredits, heldCredits, resetsAt); nothing was held or recorded',
  UNPAID_LIMIT: 'the user\'s unpaid credits are above UNPAID_LIMIT_CREDITS (details: unpaidCredits); nothing was written',
  FORBIDDEN: 'the role is too low for this route',
  NOT_FOUND: 'unknown user, session or route (or one that belongs to someone else)',
  SESSION_NOT_ACTIVE: 'the session is already finalized, aborted or expired',
  IDEMPOTENCY_IN_PROGRESS: 'a request with the same Idempotency-Key is still running; retry later with the same key',
  CONFLICT: 'the request conflicts with the current state',
  PAYLOAD_TOO_LARGE: 'the body is over the size limit',
  HEADERS_TOO_LARGE: 'the request headers are over 16 KB (answered before routing, by any path)',
  UNSUPPORTED_MEDIA_TYPE: 'the body is not application/json',
  IDEMPOTENCY_KEY_REUSED: 'the Idempotency-Key was already used with a different request',
  RATE_LIMITED: 'too many requests; wait Retry-After seconds',
  SERVICE_UNAVAILABLE: "the database is unavailable or the account is busy (on /metrics: the workers' metrics could not be gathered); nothing was changed, retry later",
  INTERNAL: 'unexpected error (no internals are revealed; quote the requestId)',
};

const TAG_DESCRIPTIONS: Record<string, string> = {
  Operations: 'Health, readiness, metrics and this document',
  Accounts: 'The caller as mirrored from the token',
  Credits: 'Balances, allocations, checks, costs and the ledger',
  Models: 'Model prices',
  'Streaming sessions': 'Two-phase holds around a streamed model call: initialize, then finalize or abort',
  Usage: 'Usage records and statistics',
  Admin: 'Reconciliation and system-wide views',
  Budgets: 'Spend caps per user or organization, per calendar period (docs/budgets.md)',
};

const bearerSecurity = [{ bearerAuth: [] as string[] }];

/** `/api/credits/balance/:userId` -> `/api/credits/balance/{userId}`. */
export function toOpenApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Names of the `:params` in an Express path. */
function pathParams(expressPath: string): string[] {
  return [...expressPath.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);
}

/** A stable operationId from method and path: `post /api/credits/allocate` -> `postCreditsAllocate`. */
export function operationIdOf(spec: Pick<RouteSpec, 'method' | 'path'>): string {
  const words = spec.path
    .split('/')
    .filter((segment) => segment && segment !== 'api')
    .map((segment) => (segment.startsWith(':') ? `by-${segment.slice(1)}` : segment))
    .flatMap((segment) => segment.split(/[^A-Za-z0-9]+/))
    .filter(Boolean);
  return spec.method + words.map((w) => w[0].toUpperCase() + w.slice(1)).join('');
}

/** Every error code a route can answer with: its own plus the ones its shape implies. */
export function errorCodesOf(spec: RouteSpec): ErrorCode[] {
  const codes = new Set<ErrorCode>(spec.errors ?? []);
  const request = spec.request ?? {};
  if (request.body || request.query || request.params || spec.idempotent) codes.add('VALIDATION_ERROR');
  if (request.body) ['INVALID_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'].forEach((c) => codes.add(c as ErrorCode));
  if (spec.access !== 'public') {
    codes.add('UNAUTHENTICATED');
    // The database is behind every authenticated route (the caller is mirrored on first sight).
    codes.add('SERVICE_UNAVAILABLE');
  }
  if (spec.access === 'supervisor' || spec.access === 'admin') codes.add('FORBIDDEN');
  if (spec.idempotent) {
    codes.add('IDEMPOTENCY_IN_PROGRESS');
    codes.add('IDEMPOTENCY_KEY_REUSED');
  }
  // Rate limits cover /api (per IP) and every authenticated route (per user).
  if (spec.path.startsWith('/api')) codes.add('RATE_LIMITED');
  codes.add('INTERNAL');
  return [...codes];
}

const retryAfterHeader = z.object({
  'Retry-After': z.string().openapi({ description: 'Seconds to wait before retrying', example: '30' }),
});
const replayedHeader = z.object({
  'Idempotent-Replayed': z
    .string()
    .optional()
    .openapi({ description: '`true` when this response is the stored answer to an earlier request with the same Idempotency-Key' }),
});
const idempotencyKeyHeader = z.object({
  'Idempotency-Key': z
    .string()
    .min(1)
    .max(255)
    .optional()
    .openapi({
      description:
        'Makes the request safe to retry: the same key with the same body replays the first response; with another body it is refused (422). Keys are scoped to the caller and kept at least 24 h.',
      example: 'c3f9f1d2-allocate-42',
    }),
});

function asObject(schema: ZodType | undefined): ZodObject | undefined {
  return schema as ZodObject | undefined;
}

function routeConfig(spec: RouteSpec): RouteConfig {
  const request: NonNullable<RouteConfig['request']> = {};
  const declaredParams = asObject(spec.request?.params);
  const missingParams = pathParams(spec.path).filter((name) => !declaredParams?.shape || !(name in declaredParams.shape));
  if (declaredParams || missingParams.length) {
    // Every path parameter must be described; the ones without a schema are plain strings.
    const extra = Object.fromEntries(missingParams.map((name) => [name, z.string()]));
    request.params = declaredParams ? declaredParams.extend(extra) : z.object(extra);
  }
  if (spec.request?.query) request.query = asObject(spec.request.query);
  if (spec.request?.body) request.body = { required: true, content: { 'application/json': { schema: spec.request.body } } };
  if (spec.idempotent) request.headers = idempotencyKeyHeader;

  const responses: RouteConfig['responses'] = {};
  for (const [status, response] of Object.entries(spec.responses)) {
    const success = Number(status) < 300;
    responses[status] = {
      description: response.description,
      ...(success && spec.idempotent ? { headers: replayedHeader } : {}),
      ...(response.schema ? { content: { [response.contentType ?? 'application/json']: { schema: response.schema } } } : {}),
    };
  }
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodesOf(spec)) byStatus.set(STATUS_OF[code], [...(byStatus.get(STATUS_OF[code]) ?? []), code]);
  for (const [status, codes] of [...byStatus.entries()].sort(([a], [b]) => a - b)) {
    if (responses[status]) continue; // the route describes this status itself (e.g. /ready's 503)
    responses[status] = {
      description: codes.map((code) => `\`${code}\`: ${ERROR_MEANING[code]}`).join('; '),
      ...(status === 429 || status === 503 ? { headers: retryAfterHeader } : {}),
      content: { 'application/json': { schema: errorResponse } },
    };
  }

  return {
    method: spec.method,
    path: toOpenApiPath(spec.path),
    operationId: operationIdOf(spec),
    summary: spec.summary,
    description: describe(spec),
    tags: spec.tags,
    ...(spec.access === 'public' ? { security: [] } : { security: bearerSecurity }),
    request,
    responses,
  };
}

function describe(spec: RouteSpec): string {
  const who =
    spec.access === 'public'
      ? 'No token needed.'
      : spec.access === 'user'
        ? 'Any authenticated caller.'
        : `Needs the ${spec.access} role${spec.access === 'supervisor' ? ' (or admin)' : ''}.`;
  return `${spec.summary}. ${who}${spec.idempotent ? ' Accepts an Idempotency-Key.' : ''}`;
}

/**
 * The OpenAPI 3 document of a route table: generated from the same zod schemas that validate the
 * requests, so it cannot drift from what the service enforces.
 */
export function buildOpenApiDocument(routes: RouteSpec[]) {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A JWT from the Authentication service: sub (user id), role (user | supervisor | admin), exp.',
  });
  registry.register('Error', errorResponse);
  for (const spec of routes) registry.registerPath(routeConfig(spec));

  const usedTags = [...new Set(routes.flatMap((r) => r.tags))];
  const document = new OpenApiGeneratorV3(registry.definitions).generateDocument({
    openapi: '3.0.3',
    info: {
      title: 'Accounting Service API',
      version,
      description:
        'Credit accounting for an LLM platform: balances, two-phase holds for streamed model calls, usage and an append-only ledger. ' +
        'Amounts are credits with at most 6 decimal places. Errors share one format: `{"error": {code, message, details, requestId}}` (`details` is `{}` when the code carries none).',
      contact: { name: 'Accounting service maintainers' },
      license: { name: 'UNLICENSED' },
    },
    servers: [{ url: '/', description: 'This service' }],
    tags: usedTags.map((name) => ({ name, description: TAG_DESCRIPTIONS[name] ?? name })),
  });
  return anyValueSchemas(document);
}

/**
 * z.unknown() renders as `{nullable: true}`, which OpenAPI 3.0 forbids without a `type` (Spectral:
 * "nullable cannot be used without type"). `{}` says what is meant: any JSON value.
 */
function anyValueSchemas<T>(node: T): T {
  if (Array.isArray(node)) return node.map(anyValueSchemas) as T;
  if (node === null || typeof node !== 'object') return node;
  const entries = Object.entries(node);
  if (entries.length === 1 && entries[0][0] === 'nullable' && entries[0][1] === true) return {} as T;
  return Object.fromEntries(entries.map(([key, value]) => [key, anyValueSchemas(value)])) as T;
}

export type OpenApiDocument = ReturnType<typeof buildOpenApiDocument>;
