import { createTestContext, type TestContext } from '../support/context';

/** What information_schema calls each Sequelize type the models use. */
const PG_TYPE: Record<string, string> = {
  BIGINT: 'bigint',
  INTEGER: 'integer',
  SMALLINT: 'smallint',
  TEXT: 'text',
  DATE: 'timestamp with time zone',
  DATEONLY: 'date',
  JSONB: 'jsonb',
  JSON: 'json',
  BOOLEAN: 'boolean',
  DECIMAL: 'numeric',
};

interface Column {
  column: string;
  type: string;
  nullable: boolean;
}

/** Models are the application's view of the tables: they must not drift from what the migrations built. */
describe('models and tables', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx.close());

  it('When the database is migrated, then every model has exactly its table columns, with the same types and nullability', async () => {
    const rows = await ctx.db.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
      `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public'`,
    );
    const models = Object.values(ctx.db.models);
    expect(models.length).toBeGreaterThanOrEqual(14);
    for (const model of models) {
      const table = model.getTableName() as string;
      const actual: Column[] = rows
        .filter((r) => r.table_name === table)
        .map((r) => ({ column: r.column_name, type: r.data_type, nullable: r.is_nullable === 'YES' }))
        .sort((a, b) => a.column.localeCompare(b.column));
      const attributes = Object.values(model.getAttributes()) as Array<{ field?: string; type: unknown; allowNull?: boolean }>;
      const declared: Column[] = attributes
        .map((a) => ({ column: a.field!, type: PG_TYPE[(a.type as { key: string }).key] ?? (a.type as { key: string }).key, nullable: a.allowNull !== false }))
        .sort((a, b) => a.column.localeCompare(b.column));
      expect({ table, columns: declared }).toEqual({ table, columns: actual });
    }
  });

  it('When a table holds money or usage, then it has a model (only migration bookkeeping is left out)', async () => {
    // Partitioned tables count once, by their parent (their monthly partitions are parts of it).
    const tables = (
      await ctx.db.query<{ tablename: string }>(
        `SELECT relname AS tablename FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND NOT relispartition`,
      )
    ).map((r) => r.tablename);
    const modelled = new Set(Object.values(ctx.db.models).map((m) => m.getTableName() as string));
    const bookkeeping = new Set(['SequelizeMeta', 'repeatable_migrations']);
    expect(tables.filter((t) => !modelled.has(t) && !bookkeeping.has(t)).sort()).toEqual([]);
  });
});
