import type { RequestHandler } from 'express';

/**
 * Runs middlewares one after the other as a single router layer: each mounted layer (and each handler of a
 * route) is per-request work for the router (matching, its next() machinery). Behaves as the same handlers
 * mounted one after the other: an error (or 'route'/'router') passed to next() skips the rest and goes to the
 * outer next, and a handler's rejected promise goes to next(error) as Express 5 does for each layer.
 */
export function inSeries(handlers: RequestHandler[]): RequestHandler {
  return handlers.reduceRight<RequestHandler>(
    (rest, handler) => (req, res, next) => {
      const result: unknown = handler(req, res, (error?: unknown) => (error === undefined ? rest(req, res, next) : next(error)));
      if (result !== null && typeof result === 'object' && typeof (result as Promise<unknown>).then === 'function') {
        (result as Promise<unknown>).then(undefined, (error: unknown) => next(error || new Error('Rejected promise')));
      }
    },
    (_req, _res, next) => next(),
  );
}
