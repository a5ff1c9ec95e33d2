import { Writable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { createHttpLogger, createLogger } from '../../src/lib/logger';
import { requestId } from '../../src/middleware/request-id.middleware';

// In production (LOG_LEVEL=warn) the request logger only writes 5xx lines, without pino-http's
// per-request work; those lines must still carry what the access log promises.
function appLoggingAt(level: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  const app = express();
  app.use(requestId);
  app.use(createHttpLogger(createLogger(level, false, sink)));
  app.get('/fine', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/broken', (_req, res) => {
    res.status(503).json({ error: { code: 'SERVICE_UNAVAILABLE' } });
  });
  return { app, lines };
}

describe('request log lines at warn level', () => {
  test('When a request succeeds at LOG_LEVEL=warn, then nothing is written', async () => {
    const { app, lines } = appLoggingAt('warn');

    const res = await request(app).get('/fine');

    expect(res.status).toBe(200);
    expect(lines).toEqual([]);
  });

  test('When a request ends in a 5xx at LOG_LEVEL=warn, then one error line has its id, path, route, status and duration', async () => {
    const { app, lines } = appLoggingAt('warn');

    await request(app).get('/broken?token=secret').set('X-Request-Id', 'req-warn-503');

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 50, requestId: 'req-warn-503', req: { method: 'GET', path: '/broken' }, status: 503 });
    expect(typeof lines[0].durationMs).toBe('number');
    expect(JSON.stringify(lines[0])).not.toContain('secret');
  });

  test('When the level is info, then successful requests are logged too (pino-http)', async () => {
    const { app, lines } = appLoggingAt('info');

    await request(app).get('/fine').set('X-Request-Id', 'req-info-200');

    expect(lines.find((l) => l.requestId === 'req-info-200')).toMatchObject({ level: 30, status: 200 });
  });
});
