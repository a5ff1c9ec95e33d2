import type { RequestHandler, Response } from 'express';
import { AppError } from '../lib/errors';
import { STATUS_OF_EFFECT } from '../lib/http-status';
import { writeJson } from '../lib/json-response';
import { routeLabel } from '../lib/metrics';
import { requestHash, type Outcome } from '../services/idempotency.service';

const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * Reads the optional Idempotency-Key header (1-255 printable ASCII characters) on routes that move money
 * and fingerprints the validated request (with the route's full pattern). The service stores the key in its
 * own transaction.
 */
export const readIdempotencyKey: RequestHandler = (req, res, next) => {
  const key = req.header('idempotency-key');
  if (key === undefined) return next();
  if (!KEY.test(key)) {
    return next(
      new AppError('VALIDATION_ERROR', 'The request is not valid', {
        problems: [{ location: 'headers', path: 'Idempotency-Key', message: 'must be 1-255 printable ASCII characters' }],
      }),
    );
  }
  // The route's declared pattern plus its parameters: the same key on /records/1/refund and
  // /records/2/refund is a different request (422), not a replay; /api/Credits/allocate (routes match
  // case-insensitively) is the same request as /api/credits/allocate.
  const params = req.params && Object.keys(req.params).length > 0 ? ` ${JSON.stringify(req.params)}` : '';
  const route = routeLabel(req, res);
  req.idempotency = { key, requestHash: requestHash(req.method, `${route}${params}`, req.body) };
  next();
};

/** The idempotency context for services: the caller plus the key, when the request carried one. */
export const idempotencyOf = (req: Express.Request) =>
  req.idempotency && req.auth ? { callerId: req.auth.userId, ...req.idempotency } : undefined;

/** Sends an operation's outcome: its status chosen by what it did (lib/http-status.ts), replays marked as the contract asks. */
export function send(res: Response, outcome: Outcome): void {
  if (outcome.replayed) res.setHeader('Idempotent-Replayed', 'true');
  if (outcome.effect === 'deleted') res.status(STATUS_OF_EFFECT.deleted).end();
  else writeJson(res, STATUS_OF_EFFECT[outcome.effect], outcome.body);
}
