import type { ZodType } from 'zod';
import { createApp } from '../../../src/app';
import { loadConfig } from '../../../src/config';
import { createDatabase } from '../../../src/db/database';
import { createLogger } from '../../../src/lib/logger';
import type { RouteSpec } from '../../../src/routes/route-table';
import { TEST_JWT_SECRET } from '../../support/tokens';

/**
 * The service's own route table (buildRouteTable via createApp), read in the test process without
 * listening or connecting: the suite attacks every route the service declares, including ones added
 * after the suite was written.
 */
export async function loadRouteTable(): Promise<RouteSpec[]> {
  const url = 'postgres://nobody:nothing@127.0.0.1:1/none';
  const config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: url, JWT_SECRET: TEST_JWT_SECRET, LOG_LEVEL: 'silent' });
  const db = createDatabase({ url, poolMax: 1, statementTimeoutMs: 1000, lockTimeoutMs: 1000, acquireTimeoutMs: 1000 });
  try {
    return createApp({ config, db, logger: createLogger('silent') }).routes;
  } finally {
    await db.close();
  }
}

/** `/api/x/:userId` with params filled in (URL-encoded). */
export function fillPath(path: string, params: Record<string, string>): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => encodeURIComponent(params[name] ?? `unknown-${name}`));
}

export const paramNames = (path: string) => [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]);

// ---- zod introspection (zod v4 internals: `_zod.def`) -----------------------------------------------

interface Def {
  type: string;
  shape?: Record<string, ZodType>;
  innerType?: ZodType;
  in?: ZodType;
  out?: ZodType;
  options?: ZodType[];
  entries?: Record<string, string>;
  values?: unknown[];
  element?: ZodType;
}

export const defOf = (schema: ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Unwraps optional/default/nullable/pipe wrappers to the schema that describes the value. */
export function core(schema: ZodType): ZodType {
  let s = schema;
  for (;;) {
    const def = defOf(s);
    if (['optional', 'default', 'nullable', 'prefault', 'catch', 'readonly', 'nonoptional'].includes(def.type) && def.innerType) s = def.innerType;
    else if (def.type === 'pipe' && def.in) s = defOf(def.in).type === 'transform' ? def.out! : def.in;
    else return s;
  }
}

/** Field names of an object schema (empty for anything else). */
export function fieldsOf(schema: ZodType | undefined): Record<string, ZodType> {
  if (!schema) return {};
  const def = defOf(core(schema));
  if (def.type === 'object' && def.shape) return def.shape;
  if (def.type === 'union' && def.options) return Object.assign({}, ...def.options.map((o) => fieldsOf(o)));
  return {};
}

export const isOptional = (schema: ZodType) => ['optional', 'default', 'prefault'].includes(defOf(schema).type);

/**
 * A request that passes validation, built from the schema: known field names get meaningful values
 * (overrides first), other fields a value of their type. Used to reach the code behind validation.
 */
export function exampleFor(schema: ZodType | undefined, overrides: Record<string, unknown> = {}, includeOptional = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const def = schema ? defOf(core(schema)) : undefined;
  // A union of objects (e.g. {credits} | {modelId, tokens}): take the first alternative.
  if (def?.type === 'union' && def.options) return exampleFor(def.options[0], overrides, includeOptional);
  for (const [name, field] of Object.entries(fieldsOf(schema))) {
    if (name in overrides) {
      if (overrides[name] !== undefined) out[name] = overrides[name];
      continue;
    }
    if (isOptional(field) && !includeOptional) continue;
    out[name] = valueOfType(field, name);
  }
  return out;
}

function valueOfType(schema: ZodType, name: string): unknown {
  const def = defOf(core(schema));
  switch (def.type) {
    case 'string':
      return /At$|date|from|to/i.test(name) ? new Date(Date.now() + 86_400_000).toISOString() : `${name}-x`;
    case 'number':
    case 'int':
      return 1;
    case 'boolean':
      return true;
    case 'enum':
      return Object.values(def.entries ?? {})[0];
    case 'literal':
      return def.values?.[0];
    case 'union':
      return def.options ? valueOfType(def.options[0], name) : null;
    case 'array':
      return [];
    case 'object':
      return exampleFor(schema);
    case 'record':
      return {};
    default:
      return 1;
  }
}
