import crypto from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { isConnectionError, isPoolExhausted, pgErrorCode } from '../db/database';
import { writeJson } from '../lib/json-response';
import { AppError, errorEnvelope } from '../lib/errors';
import { STATUS_OF } from '../lib/http-status';
import { ledgerError } from '../ledger/ledger';
import type { Logger } from '../lib/logger';
import { routeLabel } from '../lib/metrics';

/** Turns anything thrown into an AppError. Internals (stacks, SQL, driver messages) never pass through. */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  // A refusal a ledger function raised (normally already mapped by the ledger gateway).
  const refused = ledgerError(error);
  if (refused instanceof AppError) return refused;
  const e = error as { type?: string; status?: number; statusCode?: number };
  // body-parser's errors carry a `type`.
  if (e?.type === 'entity.parse.failed') return new AppError('INVALID_JSON', 'The request body is not valid JSON');
  if (e?.type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', 'The request body is too large');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', 'The request body encoding is not supported');
  }
  if (isPoolExhausted(error)) {
    return new AppError('SERVICE_UNAVAILABLE', 'The service is busy; nothing was changed. Retry later.');
  }
  if (isConnectionError(error) || pgErrorCode(error) === '57014' /* statement timeout */) {
    return new AppError('SERVICE_UNAVAILABLE', 'The database is unavailable; nothing was changed. Retry later.');
  }
  if (pgErrorCode(error) === '55P03') {
    return new AppError('SERVICE_UNAVAILABLE', 'The account is busy; nothing was changed. Retry later.');
  }
  // Backstop: PostgreSQL data exceptions (class 22: bad encoding, out-of-range casts, overflow) come from
  // input the edge should have refused. The statement failed, so nothing changed: a 400, never a 500.
  if (pgErrorCode(error)?.startsWith('22')) {
    return new AppError('VALIDATION_ERROR', 'The request holds a value the database cannot store; nothing was changed');
  }
  if (error instanceof URIError && e?.status === 400) {
    // The router could not percent-decode a path parameter (e.g. %ED%A0%80, a lone surrogate in UTF-8).
    return new AppError('VALIDATION_ERROR', 'The request is not valid', {
      problems: [{ location: 'params', path: '', message: 'is not valid percent-encoded UTF-8' }],
    });
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return new AppError('VALIDATION_ERROR', 'The request could not be read');
  }
  return new AppError('INTERNAL', 'An unexpected error occurred');
}

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error, req, res, _next) => {
    const appError = toAppError(error);
    const status = STATUS_OF[appError.code];
    if (status >= 500) logger.error({ err: error, requestId: req.id, route: routeLabel(req, res) }, 'request failed');
    if (res.headersSent) return res.end();
    if (appError.code === 'SERVICE_UNAVAILABLE' && !res.getHeader('Retry-After')) res.setHeader('Retry-After', '1');
    if (appError.replayed) res.setHeader('Idempotent-Replayed', 'true');
    writeJson(res, status, errorEnvelope(appError, req.id));
  };
}

export const notFoundHandler: RequestHandler = (req, _res, next) =>
  next(new AppError('NOT_FOUND', `No route for ${req.method} ${req.path}`));

/**
 * What Node's HTTP parser refuses before Express sees a request (the server's 'clientError'): headers over
 * its 16 KB limit, malformed HTTP. Node would answer a bare status line; this answers in the API's error
 * format (431 HEADERS_TOO_LARGE, 400 VALIDATION_ERROR) and closes the connection, as Node does. A request
 * that timed out keeps Node's own 408; a socket that is already gone is just closed.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.writable) {
    socket.end('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    return;
  }
  if (!socket.writable || error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy();
    return;
  }
  const refusal =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError('HEADERS_TOO_LARGE', 'The request headers are too large (at most 16 KB in all)')
      : new AppError('VALIDATION_ERROR', 'The request is not valid HTTP');
  const status = STATUS_OF[refusal.code];
  const requestId = crypto.randomUUID();
  const body = JSON.stringify(errorEnvelope(refusal, requestId));
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
  );
}
