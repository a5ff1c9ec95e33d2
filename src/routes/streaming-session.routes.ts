import { StreamingSessionController } from '../controllers/streaming-session.controller';
import { listQuery } from '../schemas/common';
import {
  abortSessionBody,
  activeSessionsPage,
  allActiveSessionsPage,
  extendSessionBody,
  finalizeSessionBody,
  initializeSessionBody,
  sessionResponse,
  settledSessionResponse,
} from '../schemas/streaming-session.schemas';
import type { Services } from '../services';
import { route, type RouteSpec } from './route-table';

const tags = ['Streaming sessions'];

/** /api/streaming-sessions/*: two-phase holds (initialize -> finalize | abort | expiry). */
export function streamingSessionRoutes(services: Services): RouteSpec[] {
  const controller = new StreamingSessionController(services.sessions);
  return [
    route({
      method: 'post',
      path: '/api/streaming-sessions/initialize',
      summary: 'Open a session: hold the estimated credits',
      tags,
      access: 'user',
      mirrorsUser: true,
      idempotent: true,
      request: { body: initializeSessionBody(services.sessions.maxTtlSeconds) },
      responses: {
        201: { description: 'Session opened; the estimate is held', schema: sessionResponse },
        200: { description: 'Same sessionId and body as an earlier request: that session, as it is now', schema: sessionResponse },
      },
      errors: ['UNKNOWN_MODEL', 'UNPAID_LIMIT', 'BUDGET_EXCEEDED', 'INSUFFICIENT_CREDITS', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.initialize,
    }),
    route({
      method: 'post',
      path: '/api/streaming-sessions/finalize',
      summary: 'Capture the real cost, release the rest of the hold, record the usage',
      tags,
      access: 'user',
      idempotent: true,
      request: { body: finalizeSessionBody },
      responses: {
        200: { description: 'Session completed (a repeated finalize returns the first result)', schema: settledSessionResponse },
      },
      errors: ['NOT_FOUND', 'SESSION_NOT_ACTIVE', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.finalize,
    }),
    route({
      method: 'post',
      path: '/api/streaming-sessions/extend',
      summary: 'Keep a long stream alive: a new TTL and/or a larger hold (all or nothing)',
      tags,
      access: 'user',
      idempotent: true,
      request: { body: extendSessionBody(services.sessions.maxTtlSeconds) },
      responses: { 200: { description: 'The session as extended', schema: sessionResponse } },
      errors: ['NOT_FOUND', 'SESSION_NOT_ACTIVE', 'BUDGET_EXCEEDED', 'INSUFFICIENT_CREDITS', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.extend,
    }),
    route({
      method: 'post',
      path: '/api/streaming-sessions/abort',
      summary: 'Stop a session: charge what was streamed (if given), release the rest',
      tags,
      access: 'user',
      idempotent: true,
      request: { body: abortSessionBody },
      responses: {
        200: { description: 'Session aborted (a repeated abort returns the first result)', schema: settledSessionResponse },
      },
      errors: ['NOT_FOUND', 'SESSION_NOT_ACTIVE', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_IN_PROGRESS'],
      handle: controller.abort,
    }),
    route({
      method: 'get',
      path: '/api/streaming-sessions/active',
      summary: "The caller's active sessions, oldest first",
      tags,
      access: 'user',
      request: { query: listQuery },
      responses: { 200: { description: 'Active sessions', schema: activeSessionsPage } },
      handle: controller.active,
    }),
    route({
      method: 'get',
      path: '/api/streaming-sessions/active/all',
      summary: 'Every active session, oldest first (admin)',
      tags,
      access: 'admin',
      request: { query: listQuery },
      responses: { 200: { description: 'Active sessions with their users', schema: allActiveSessionsPage } },
      handle: controller.allActive,
    }),
  ];
}
