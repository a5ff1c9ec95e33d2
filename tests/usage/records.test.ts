import request from 'supertest';
import { csvField } from '../../src/services/usage.service';
import { createTestContext, type TestContext } from '../support/context';
import { userWithRole } from '../support/tokens';
import { recordAt } from './helpers';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const list = (auth: string, query: Record<string, string | number> = {}) =>
  request(ctx.app).get('/api/usage/records').query(query).set('Authorization', auth);

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF) into rows of fields. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field !== '' || row.length > 0) throw new Error('CSV does not end with CRLF');
  return rows;
}

/** Inserts n records for a user in ONE transaction through acct_record_usage, so they share created_at. */
async function bulkRecords(userId: string, n: number, at: string) {
  await ctx.db.query(`INSERT INTO user_accounts (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING 1`, [userId]);
  await ctx.db.transaction(async (tx) => {
    // Arrangement, not the code under test: not bound by the service's statement timeout on a busy machine.
    await ctx.db.query(`SET LOCAL statement_timeout = '120s'`, [], tx);
    await ctx.db.query(`ALTER TABLE usage_records ALTER COLUMN created_at SET DEFAULT '${at}'::timestamptz`, [], tx);
    await ctx.db.query(
      `SELECT acct_record_usage($1, NULL, 'chat', 'completion', 'gpt-4o', 1, i, i, 0, i, 0, i, NULL, 'test')
         FROM generate_series(1, $2::int) AS i`,
      [userId, n],
      tx,
    );
    await ctx.db.query(`ALTER TABLE usage_records ALTER COLUMN created_at SET DEFAULT now()`, [], tx);
  });
}

describe('GET /api/usage/records', () => {
  test('When a user pages through records, then every record comes once, newest first, ties broken by id', async () => {
    const amy = userWithRole('user');
    // Three records share one microsecond; the cursor must still not skip or repeat any.
    const ids = [
      await recordAt(ctx.db, '2026-08-01T10:00:00.000001Z', { userId: amy.id, credits: 1n }),
      await recordAt(ctx.db, '2026-08-01T10:00:00.000002Z', { userId: amy.id, credits: 2n }),
      await recordAt(ctx.db, '2026-08-01T10:00:00.000002Z', { userId: amy.id, credits: 3n }),
      await recordAt(ctx.db, '2026-08-01T10:00:00.000002Z', { userId: amy.id, credits: 4n }),
      await recordAt(ctx.db, '2026-08-02T00:00:00Z', { userId: amy.id, credits: 5n }),
      await recordAt(ctx.db, '2026-08-03T00:00:00Z', { userId: amy.id, credits: 6n }),
      await recordAt(ctx.db, '2026-08-04T00:00:00Z', { userId: amy.id, credits: 7n }),
    ];
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const res = await list(amy.auth, cursor ? { limit: 2, cursor } : { limit: 2 });
      expect(res.status).toBe(200);
      seen.push(...res.body.data.map((r: { id: string }) => r.id));
      cursor = res.body.nextCursor ?? undefined;
      pages++;
    } while (cursor && pages < 10);

    expect(pages).toBe(4);
    expect(seen).toEqual([ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]]);
  });

  test('When records are listed, then each has the record shape', async () => {
    const ben = userWithRole('user');
    await recordAt(ctx.db, '2026-08-05T12:00:00Z', { userId: ben.id, credits: 1_500_000n, modelId: 'gpt-4o', inputTokens: 10, outputTokens: 20, metadata: { a: 1 } });
    const res = await list(ben.auth);
    expect(res.body).toEqual({
      data: [
        {
          id: expect.any(String),
          userId: ben.id,
          sessionId: null,
          service: 'chat',
          operation: 'completion',
          modelId: 'gpt-4o',
          priceVersion: null,
          inputTokens: 10,
          outputTokens: 20,
          cachedInputTokens: 0,
          cacheWriteTokens: 0,
          cacheWrite1hTokens: 0,
          reasoningTokens: 0,
          credits: 1.5,
          chargedCredits: 0,
          unpaidCredits: 1.5,
          refundedCredits: 0,
          metadata: { a: 1 },
          recordedBy: 'test',
          createdAt: '2026-08-05T12:00:00.000Z',
          occurredAt: '2026-08-05T12:00:00.000Z',
          recordedAt: expect.any(String),
        },
      ],
      nextCursor: null,
    });
  });

  test('When from and to are given, then only records inside them (exact instants, both included) are listed', async () => {
    const cleo = userWithRole('user');
    await recordAt(ctx.db, '2026-08-10T09:59:59.999999Z', { userId: cleo.id, credits: 1n });
    const inside = await recordAt(ctx.db, '2026-08-10T10:00:00Z', { userId: cleo.id, credits: 2n });
    const edge = await recordAt(ctx.db, '2026-08-10T11:00:00Z', { userId: cleo.id, credits: 3n });
    await recordAt(ctx.db, '2026-08-10T11:00:00.000001Z', { userId: cleo.id, credits: 4n });

    const res = await list(cleo.auth, { from: '2026-08-10T15:30:00+05:30', to: '2026-08-10T03:00:00-08:00' });

    expect(res.status).toBe(200);
    expect(res.body.data.map((r: { id: string }) => r.id)).toEqual([edge, inside]);

    const wholeDay = await list(cleo.auth, { from: '2026-08-10', to: '2026-08-10' });
    expect(wholeDay.body.data).toHaveLength(4);
  });

  test('When limit is above 500, then 400 (not silently capped); 500 is accepted', async () => {
    const dora = userWithRole('user');
    const tooMany = await list(dora.auth, { limit: 1_000_000 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.error.details.problems).toEqual([expect.objectContaining({ path: 'limit' })]);
    expect((await list(dora.auth, { limit: 500 })).status).toBe(200);
    expect((await list(dora.auth, { limit: 0 })).status).toBe(400);
  });

  test('When the cursor was not issued by the service, then 400', async () => {
    const eve = userWithRole('user');
    for (const cursor of ['garbage', Buffer.from('[1]').toString('base64url'), Buffer.from('["x","y"]').toString('base64url')]) {
      const res = await list(eve.auth, { cursor });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
    }
  });

  test('When from is after to, then 400', async () => {
    const res = await list(userWithRole('user').auth, { from: '2026-08-02', to: '2026-08-01' });
    expect(res.status).toBe(400);
  });

  test("When a user lists, then only their own records; naming another user is 403", async () => {
    const fay = userWithRole('user');
    const gus = userWithRole('user');
    await recordAt(ctx.db, '2026-08-06T00:00:00Z', { userId: fay.id, credits: 1n });
    await recordAt(ctx.db, '2026-08-06T00:00:00Z', { userId: gus.id, credits: 1n });

    const own = await list(fay.auth);
    expect(own.body.data.map((r: { userId: string }) => r.userId)).toEqual([fay.id]);

    const other = await list(fay.auth, { userId: gus.id });
    expect(other.status).toBe(403);
    const otherCsv = await list(fay.auth, { userId: gus.id, format: 'csv' });
    expect(otherCsv.status).toBe(403);
  });

  test("When a supervisor names a user, then that user's records; a user never seen is 404", async () => {
    const supervisor = userWithRole('supervisor');
    const hal = userWithRole('user');
    await recordAt(ctx.db, '2026-08-06T00:00:00Z', { userId: hal.id, credits: 1n });

    const res = await list(supervisor.auth, { userId: hal.id });
    expect(res.status).toBe(200);
    expect(res.body.data.map((r: { userId: string }) => r.userId)).toEqual([hal.id]);

    const missing = await list(supervisor.auth, { userId: 'never-seen' });
    expect(missing.status).toBe(404);
  });
});

describe('GET /api/usage/records?format=csv', () => {
  test('When a CSV is asked for, then it is a download with a header row and every record, escaped and with decimal credits', async () => {
    const ian = userWithRole('user');
    const tricky = { note: 'a, "quoted"\nline', n: 1 };
    const first = await recordAt(ctx.db, '2026-09-01T00:00:00Z', { userId: ian.id, service: 'search', operation: 'query', credits: 1n, metadata: tricky });
    const second = await recordAt(ctx.db, '2026-09-02T00:00:00Z', { userId: ian.id, credits: 1_500_000n, modelId: 'gpt-4o', inputTokens: 7, outputTokens: 9 });

    const res = await list(ian.auth, { format: 'csv' }).buffer(true).parse((response, done) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => done(null, text));
    });

    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="usage-.*\.csv"$/);
    const rows = parseCsv(res.body as string);
    expect(rows[0]).toEqual([
      'id', 'created_at', 'user_id', 'service', 'operation', 'model_id', 'price_version', 'input_tokens', 'output_tokens',
      'cached_input_tokens', 'cache_write_tokens', 'cache_write_1h_tokens', 'reasoning_tokens', 'credits', 'charged_credits',
      'unpaid_credits', 'refunded_credits', 'session_id', 'recorded_by', 'metadata', 'recorded_at',
    ]);
    expect(rows.slice(1)).toEqual([
      [second, '2026-09-02T00:00:00.000Z', ian.id, 'chat', 'completion', 'gpt-4o', '', '7', '9', '0', '0', '0', '0', '1.5', '0', '1.5', '0', '', 'test', '', expect.any(String)],
      [first, '2026-09-01T00:00:00.000Z', ian.id, 'search', 'query', '', '', '0', '0', '0', '0', '0', '0', '0.000001', '0', '0.000001', '0', '', 'test', expect.any(String), expect.any(String)],
    ]);
    expect(JSON.parse(rows[2][19])).toEqual(tricky);
  });

  test('When the range holds more records than one page, then the CSV still has each exactly once, in order', async () => {
    const jo = userWithRole('user');
    // 2,500 records with the same created_at: pages of 1,000 must continue on id alone.
    await bulkRecords(jo.id, 2500, '2026-09-10T00:00:00Z');
    await recordAt(ctx.db, '2026-09-11T00:00:00Z', { userId: jo.id, credits: 1n });

    const res = await list(jo.auth, { format: 'csv', from: '2026-09-10', to: '2026-09-10' }).buffer(true).parse((response, done) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => done(null, text));
    });

    const rows = parseCsv(res.body as string).slice(1);
    expect(rows).toHaveLength(2500);
    const ids = rows.map((r) => BigInt(r[0]));
    expect(new Set(ids).size).toBe(2500);
    expect(ids.every((id, i) => i === 0 || ids[i - 1] > id)).toBe(true);
  });

  test('When the CSV request carries a cursor, then a forged one is a 400 and an issued one starts the export after it', async () => {
    const kim = userWithRole('user');
    const older = await recordAt(ctx.db, '2026-09-03T00:00:00Z', { userId: kim.id, credits: 1n });
    await recordAt(ctx.db, '2026-09-04T00:00:00Z', { userId: kim.id, credits: 2n });
    const forged = await list(kim.auth, { format: 'csv', cursor: 'bogus' });
    expect(forged.status).toBe(400);
    expect(forged.body.error.details.problems[0]).toMatchObject({ location: 'query', path: 'cursor' });
    const page = await list(kim.auth, { limit: 1 });
    const after = await list(kim.auth, { format: 'csv', cursor: page.body.nextCursor });
    expect(after.status).toBe(200);
    expect(parseCsv(after.text).slice(1).map((row) => row[0])).toEqual([older]);
  });

  test('When a user has no records, then the CSV is just the header', async () => {
    const res = await list(userWithRole('user').auth, { format: 'csv' });
    expect(res.status).toBe(200);
    expect(res.text.split('\r\n')).toEqual([expect.stringMatching(/^id,created_at,/), '']);
  });
});

describe('csvField', () => {
  test.each([
    [null, ''],
    ['plain', 'plain'],
    ['a,b', '"a,b"'],
    ['say "hi"', '"say ""hi"""'],
    ['two\nlines', '"two\nlines"'],
    ['=HYPERLINK("x")', `"'=HYPERLINK(""x"")"`],
    ['-1+1', "'-1+1"],
    ['@cmd', "'@cmd"],
    [42, '42'],
  ])('When the value is %p, then the field is %p', (value, expected) => {
    expect(csvField(value)).toBe(expected);
  });
});
