import { createRequire } from 'node:module';
import type { Request, RequestHandler, Response } from 'express';
import pino from 'pino';
import { routeLabel } from './metrics';

/**
 * pino-http, loaded without its type declarations: they retype every IncomingMessage's `id` as
 * string | number | object, which breaks `req.id: string` across the code base. Only the options
 * used below are typed here.
 */
interface HttpLoggerOptions {
  logger: pino.Logger;
  genReqId(req: Request): string;
  customProps(req: Request): Record<string, unknown>;
  serializers: Record<string, (value: never) => unknown>;
  customAttributeKeys: { responseTime: string };
  customLogLevel(req: Request, res: Response, error?: Error): pino.LevelWithSilent;
  customSuccessObject(req: Request, res: Response, value: Record<string, unknown>): Record<string, unknown>;
  customErrorObject(req: Request, res: Response, error: Error, value: Record<string, unknown>): Record<string, unknown>;
  customSuccessMessage(req: Request, res: Response): string;
  customErrorMessage(req: Request, res: Response): string;
}
const { pinoHttp } = createRequire(__filename)('pino-http') as { pinoHttp(options: HttpLoggerOptions): RequestHandler };

export type Logger = pino.Logger;

/**
 * JSON logs; tokens and Authorization headers are redacted wherever they appear.
 *
 * Without `destination`, lines go to stdout synchronously (pino.destination with sync: true), each written
 * before the logging call returns — as Node writes process.stdout to a pipe on Linux. pino's own default
 * destination writes asynchronously, and at process.exit it writes synchronously only what is not yet in a
 * write under way: a line still being written (e.g. retried after a full pipe) then lands after later lines,
 * or is lost (sonic-boom issue 101). The shutdown logs its last line right before process.exit, so its
 * order — "listener closed …" before "shutdown complete" — held only when the earlier write had finished.
 */
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
  if (options.transport) return pino(options);
  return pino(options, destination ?? pino.destination({ dest: 1, sync: true }));
}

const PROBES = new Set(['/health', '/ready', '/metrics']);

/**
 * One line per request: requestId, method, path (never the query string or any header, so tokens
 * cannot leak), route pattern, status, userId and durationMs. Probes log at debug, 5xx at error.
 */
export function createHttpLogger(logger: Logger): RequestHandler {
  // At warn and above, the only lines pino-http would write are the 5xx ones (error): skip its per-request
  // child logger, serializers and listeners (~5% of a balance request's CPU, plus the garbage they leave)
  // and write just those lines, with the same fields.
  if (!logger.isLevelEnabled('info')) return errorLinesOnly(logger);
  return pinoHttp({
    logger,
    // The request-id middleware runs first; pino-http keeps its id.
    genReqId: (req) => req.id,
    customProps: (req) => ({ requestId: req.id }),
    serializers: {
      req: (req: { method: string; url: string }) => ({ method: req.method, path: req.url.split('?')[0] }),
      res: () => undefined,
    },
    customAttributeKeys: { responseTime: 'durationMs' },
    customLogLevel: (req, res, error) => {
      if (error || res.statusCode >= 500) return 'error';
      return PROBES.has(req.path) && res.statusCode < 400 ? 'debug' : 'info';
    },
    customSuccessObject: (req, res, value) => summary(req, res, value),
    customErrorObject: (req, res, _error, value) => summary(req, res, value),
    customSuccessMessage: (req, res) => `${req.method} ${routeLabel(req, res)} ${res.statusCode}`,
    customErrorMessage: (req, res) => `${req.method} ${routeLabel(req, res)} ${res.statusCode}`,
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

function errorLinesOnly(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      if (res.statusCode < 500) return;
      const durationMs = Math.round(performance.now() - started);
      logger.error(
        { requestId: req.id, req: { method: req.method, path: req.originalUrl.split('?')[0] }, ...summary(req, res, { durationMs }) },
        `${req.method} ${routeLabel(req, res)} ${res.statusCode}`,
      );
    });
    next();
  };
}
