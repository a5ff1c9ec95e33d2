import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Request, Response } from 'express';
import pino from 'pino';
import { pinoHttp } from 'pino-http';
import { routeLabel } from './metrics';

export type Logger = pino.Logger;

/** JSON logs; tokens and Authorization headers are redacted wherever they appear. */
export function createLogger(level: string, pretty = false, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'accounting-service' },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'token', '*.token', '*.authorization'],
      censor: '[redacted]',
    },
    transport: pretty && !destination ? { target: 'pino-pretty', options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l' } } : undefined,
  };
  return destination ? pino(options, destination) : pino(options);
}

const PROBES = new Set(['/health', '/ready', '/metrics']);

/**
 * One line per request: requestId, method, path (never the query string or any header, so tokens
 * cannot leak), route pattern, status, userId and durationMs. Probes log at debug, 5xx at error.
 */
export function createHttpLogger(logger: Logger) {
  return pinoHttp<IncomingMessage, ServerResponse>({
    logger,
    // The request-id middleware runs first; pino-http keeps its id.
    genReqId: (req) => (req as Request).id,
    customProps: (req) => ({ requestId: (req as Request).id }),
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, path: req.url.split('?')[0] }),
      res: () => undefined,
    },
    customAttributeKeys: { responseTime: 'durationMs' },
    customLogLevel: (req, res, error) => {
      if (error || res.statusCode >= 500) return 'error';
      const path = (req as Request).path;
      return PROBES.has(path) && res.statusCode < 400 ? 'debug' : 'info';
    },
    customSuccessObject: (req, res, value: Record<string, unknown>) => summary(req as Request, res as unknown as Response, value),
    customErrorObject: (req, res, _error, value: Record<string, unknown>) => summary(req as Request, res as unknown as Response, value),
    customSuccessMessage: (req, res) => `${req.method} ${routeLabel(req as Request, res as unknown as Response)} ${res.statusCode}`,
    customErrorMessage: (req, res) => `${req.method} ${routeLabel(req as Request, res as unknown as Response)} ${res.statusCode}`,
  });
}

function summary(req: Request, res: Response, value: Record<string, unknown>) {
  return {
    route: routeLabel(req, res),
    status: res.statusCode,
    userId: req.auth?.userId,
    durationMs: value.durationMs,
    ...(res.statusCode === 429 ? { rateLimited: true } : {}),
  };
}
