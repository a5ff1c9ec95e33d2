import type { Response } from 'express';
import { send } from '../middleware/idempotency.middleware';
import type { Input } from '../routes/route-table';
import type { Page } from '../schemas/common';
import type { AbortSessionBody, ExtendSessionBody, FinalizeSessionBody, InitializeSessionBody } from '../schemas/streaming-session.schemas';
import type { StreamingSessionService } from '../services/streaming-session.service';

export class StreamingSessionController {
  constructor(private readonly sessions: StreamingSessionService) {}

  initialize = async ({ body, caller, idempotency }: Input<{ body: InitializeSessionBody }>, res: Response) => {
    send(res, await this.sessions.initializeSession(caller, body, idempotency));
  };

  finalize = async ({ body, caller, idempotency }: Input<{ body: FinalizeSessionBody }>, res: Response) => {
    send(res, await this.sessions.finalizeSession(caller, body, idempotency));
  };

  abort = async ({ body, caller, idempotency }: Input<{ body: AbortSessionBody }>, res: Response) => {
    send(res, await this.sessions.abortSession(caller, body, idempotency));
  };

  extend = async ({ body, caller, idempotency }: Input<{ body: ExtendSessionBody }>, res: Response) => {
    send(res, await this.sessions.extend(caller, body, idempotency));
  };

  active = async ({ query, caller }: Input<{ query: Page }>, res: Response) => {
    res.json(await this.sessions.getActiveSessions(caller.userId, query.limit, query.cursor));
  };

  allActive = async ({ query }: Input<{ query: Page }>, res: Response) => {
    res.json(await this.sessions.getAllActiveSessions(query.limit, query.cursor));
  };
}
