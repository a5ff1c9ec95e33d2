import type { RequestHandler } from 'express';
import { idempotencyOf, send } from '../middleware/idempotency.middleware';
import type { AbortSessionBody, ExtendSessionBody, FinalizeSessionBody, InitializeSessionBody } from '../schemas/streaming-session.schemas';
import type { StreamingSessionService } from '../services/streaming-session.service';

type Page = { limit: number; cursor?: string };

export class StreamingSessionController {
  constructor(private readonly sessions: StreamingSessionService) {}

  initialize: RequestHandler = async (req, res) => {
    send(res, await this.sessions.initializeSession(req.auth!, req.valid.body as InitializeSessionBody, idempotencyOf(req)));
  };

  finalize: RequestHandler = async (req, res) => {
    send(res, await this.sessions.finalizeSession(req.auth!, req.valid.body as FinalizeSessionBody, idempotencyOf(req)));
  };

  abort: RequestHandler = async (req, res) => {
    send(res, await this.sessions.abortSession(req.auth!, req.valid.body as AbortSessionBody, idempotencyOf(req)));
  };

  extend: RequestHandler = async (req, res) => {
    send(res, await this.sessions.extend(req.auth!, req.valid.body as ExtendSessionBody, idempotencyOf(req)));
  };

  active: RequestHandler = async (req, res) => {
    const { limit, cursor } = req.valid.query as Page;
    res.json(await this.sessions.getActiveSessions(req.auth!.userId, limit, cursor));
  };

  allActive: RequestHandler = async (req, res) => {
    const { limit, cursor } = req.valid.query as Page;
    res.json(await this.sessions.getAllActiveSessions(limit, cursor));
  };
}
