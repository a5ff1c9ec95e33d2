import fs from 'node:fs';
import path from 'node:path';
import { createTestContext, type TestContext } from '../support/context';
import { bindOf, callOf, LEDGER_FUNCTIONS, LEDGER_RESULT_COLUMNS, type LedgerFunction } from '../../src/ledger/ledger';

/**
 * The ledger gateway (src/ledger/ledger.ts) declares the argument list of every ledger function it calls and
 * builds its calls and binds from it. These tests hold that declaration to the live database's pg_proc, so the
 * TypeScript side cannot drift from a function's signature, and check that no other file calls the functions.
 */
describe('ledger gateway', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());

  it('When each declared function is looked up in pg_proc, then exactly one exists with the same argument names and types, and returns the columns the gateway reads', async () => {
    const names = Object.keys(LEDGER_FUNCTIONS);
    const rows = await ctx.db.query<{ name: string; args: string; columns: string[] | null; result: string }>(
      `SELECT p.proname AS name,
              pg_get_function_identity_arguments(p.oid) AS args,
              pg_get_function_result(p.oid) AS result,
              coalesce(
                (SELECT array_agg(x.n ORDER BY x.i) FROM unnest(p.proargnames, p.proargmodes::text[]) WITH ORDINALITY AS x(n, m, i)
                  WHERE x.m IN ('o', 't')),
                (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
                  WHERE t.oid = p.prorettype AND t.typrelid <> 0 AND a.attnum > 0 AND NOT a.attisdropped)
              ) AS columns
         FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
        WHERE ns.nspname = current_schema() AND p.proname = ANY($1)`,
      [names],
    );
    for (const name of names as LedgerFunction[]) {
      const found = rows.filter((row) => row.name === name);
      expect({ name, overloads: found.length }).toEqual({ name, overloads: 1 });
      const declared = LEDGER_FUNCTIONS[name].map(([arg, type]) => `${arg} ${type}`).join(', ');
      expect({ name, args: found[0].args }).toEqual({ name, args: declared });
      const columns = found[0].columns ?? [];
      for (const column of LEDGER_RESULT_COLUMNS[name]) expect({ name, column, present: columns.includes(column) }).toEqual({ name, column, present: true });
      // A function the gateway reads no columns of returns one value (or nothing).
      if (LEDGER_RESULT_COLUMNS[name].length === 0) expect({ name, scalar: columns.length }).toEqual({ name, scalar: 0 });
    }
  });

  it('When a call is built, then its binds follow the declared order and a missing argument is refused', () => {
    expect(callOf('acct_settle_unpaid')).toBe('acct_settle_unpaid($1::text, $2::bigint, $3::text)');
    expect(bindOf('acct_settle_unpaid', { p_actor: 'admin', p_max: 5n, p_user: 'u1' })).toEqual(['u1', '5', 'admin']);
    expect(() => bindOf('acct_settle_unpaid', { p_user: 'u1', p_max: 5n } as never)).toThrow(/p_actor is missing/);
    expect(bindOf('acct_event_emit', { p_type: 't', p_user: null, p_data: { a: 1 }, p_org: null })).toEqual(['t', null, '{"a":1}', null]);
  });

  it('When the TypeScript sources are searched, then only the gateway names a ledger function', () => {
    const root = path.join(__dirname, '../../src');
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if (entry.name.endsWith('.ts') && /acct_/.test(fs.readFileSync(full, 'utf8'))) offenders.push(path.relative(root, full));
      }
    };
    walk(root);
    expect(offenders).toEqual([path.join('ledger', 'ledger.ts')]);
  });
});
