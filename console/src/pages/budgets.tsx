import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api';
import { Credits, DataTable, ErrorBox, PagedTable, Section, Time, creditsPattern, useAsync, useCursorList, useIdempotentAction, userHref } from '../components';
import type { PageProps } from '.';

type Scope = Schemas['Budget']['scope'];
type Period = Schemas['Budget']['period'];

export function ScopeText({ scope }: { scope: Scope }) {
  return 'userId' in scope ? (
    <>
      user <a href={userHref(scope.userId)}>{scope.userId}</a>
    </>
  ) : (
    <>organization {scope.orgId}</>
  );
}

/** Columns of a budget status table (GET /api/budgets/status, and the balance's `budgets`). */
export const budgetStatusColumns: { header: string; cell: (b: Schemas['BudgetStatus']) => preact.ComponentChildren; numeric?: boolean }[] = [
  { header: 'Budget', cell: (b) => <code>{b.budgetId}</code> },
  { header: 'Scope', cell: (b) => <ScopeText scope={b.scope} /> },
  { header: 'Period', cell: (b) => b.period },
  { header: 'Model', cell: (b) => b.modelId ?? 'all' },
  { header: 'Limit', numeric: true, cell: (b) => <Credits value={b.limitCredits} /> },
  { header: 'Spent', numeric: true, cell: (b) => <Credits value={b.spentCredits} /> },
  { header: 'Held', numeric: true, cell: (b) => <Credits value={b.heldCredits} /> },
  { header: 'Remaining', numeric: true, cell: (b) => <Credits value={b.remainingCredits} /> },
  { header: 'Period start', cell: (b) => <Time iso={b.periodStart} /> },
  { header: 'Resets', cell: (b) => <Time iso={b.resetsAt} /> },
];

type Filter = { kind: 'all' | 'userId' | 'orgId'; id: string };
const filterQuery = (f: Filter) => (f.kind === 'all' || !f.id ? {} : f.kind === 'userId' ? { userId: f.id } : { orgId: f.id });

/** Budgets: list (all, or of a user or an organization) with their status, create, change a limit, delete. */
export function BudgetsPage(_props: PageProps) {
  const [filter, setFilter] = useState<Filter>({ kind: 'all', id: '' });
  const [draft, setDraft] = useState<Filter>(filter);
  const [version, setVersion] = useState(0);
  const [editing, setEditing] = useState<Schemas['Budget'] | null>(null);
  const [deleteError, setDeleteError] = useState<unknown>();
  const reload = () => setVersion((v) => v + 1);
  const list = useCursorList((cursor) => api.call('get', '/api/budgets', { query: { ...filterQuery(filter), limit: 50, cursor } }), [filter.kind, filter.id, version]);

  const remove = async (b: Schemas['Budget']) => {
    if (!window.confirm(`Delete budget ${b.id}? Its counters go with it; credits are untouched.`)) return;
    setDeleteError(undefined);
    try {
      await api.call('delete', '/api/budgets/{id}', { params: { id: b.id } });
      if (editing?.id === b.id) setEditing(null);
      reload();
    } catch (err) {
      setDeleteError(err);
    }
  };

  return (
    <>
      <h1 tabIndex={-1}>Budgets</h1>
      <Section title="Budgets">
        <form
          class="range"
          onSubmit={(e) => {
            e.preventDefault();
            setFilter({ kind: draft.kind, id: draft.id.trim() });
          }}
        >
          <label for="budget-filter-kind">
            Show
            <select id="budget-filter-kind" value={draft.kind} onChange={(e) => setDraft({ ...draft, kind: e.currentTarget.value as Filter['kind'] })}>
              <option value="all">all budgets</option>
              <option value="userId">of a user</option>
              <option value="orgId">of an organization</option>
            </select>
          </label>
          {draft.kind !== 'all' && (
            <label for="budget-filter-id">
              {draft.kind === 'userId' ? 'User id' : 'Organization id'}
              <input id="budget-filter-id" required autoComplete="off" value={draft.id} onInput={(e) => setDraft({ ...draft, id: e.currentTarget.value })} />
            </label>
          )}
          <button type="submit">Show</button>
        </form>
        <ErrorBox error={deleteError} />
        <PagedTable
          caption={filter.kind === 'all' ? 'Every budget' : `Budgets of ${filter.kind === 'userId' ? 'user' : 'organization'} ${filter.id}`}
          list={list}
          rowKey={(b) => b.id}
          empty="No budgets"
          columns={[
            { header: 'Budget', cell: (b) => <code>{b.id}</code> },
            { header: 'Scope', cell: (b) => <ScopeText scope={b.scope} /> },
            { header: 'Period', cell: (b) => `${b.period} (${b.timezone})` },
            { header: 'Model', cell: (b) => b.modelId ?? 'all' },
            { header: 'Limit', numeric: true, cell: (b) => <Credits value={b.limitCredits} /> },
            { header: 'By', cell: (b) => b.createdBy ?? '' },
            { header: 'Updated', cell: (b) => <Time iso={b.updatedAt} /> },
            {
              header: 'Actions',
              cell: (b) => (
                <span class="actions">
                  <button type="button" class="link" aria-label={`Change limit of budget ${b.id}`} onClick={() => setEditing(b)}>
                    Change limit
                  </button>
                  <button type="button" class="link" aria-label={`Delete budget ${b.id}`} onClick={() => void remove(b)}>
                    Delete
                  </button>
                </span>
              ),
            },
          ]}
        />
      </Section>
      {filter.kind !== 'all' && filter.id && <StatusSection filter={filter} version={version} />}
      <div class="grid">
        <CreateBudgetForm onDone={reload} />
        {editing && <EditLimitForm budget={editing} onDone={() => (setEditing(null), reload())} />}
      </div>
    </>
  );
}

function StatusSection({ filter, version }: { filter: Filter; version: number }) {
  const status = useAsync(() => api.call('get', '/api/budgets/status', { query: filterQuery(filter) }), [filter.kind, filter.id, version]);
  return (
    <Section title="Status in the current period">
      <ErrorBox error={status.error} />
      <DataTable
        caption={`Budgets that apply to ${filter.kind === 'userId' ? 'user' : 'organization'} ${filter.id}: spent, held and remaining this period`}
        rows={status.data?.data ?? []}
        rowKey={(b) => b.budgetId}
        empty={status.loading ? 'Loading…' : 'No budgets apply'}
        columns={budgetStatusColumns}
      />
    </Section>
  );
}

type CreateBody = { scope: Scope; period: Period; limitCredits: string; modelId?: string; timezone?: string };

function CreateBudgetForm({ onDone }: { onDone: () => void }) {
  const [kind, setKind] = useState<'userId' | 'orgId'>('userId');
  const [id, setId] = useState('');
  const [period, setPeriod] = useState<Period>('month');
  const [limit, setLimit] = useState('');
  const [modelId, setModelId] = useState('');
  const [timezone, setTimezone] = useState('UTC');
  const action = useIdempotentAction((body: CreateBody, idempotencyKey: string) => api.call('post', '/api/budgets', { body, idempotencyKey }));
  const submit = async (e: Event) => {
    e.preventDefault();
    const scope: Scope = kind === 'userId' ? { userId: id.trim() } : { orgId: id.trim() };
    const body: CreateBody = { scope, period, limitCredits: limit.trim() };
    if (modelId.trim()) body.modelId = modelId.trim();
    if (timezone.trim()) body.timezone = timezone.trim();
    if (await action.run(body)) {
      setLimit('');
      onDone();
    }
  };
  return (
    <Section title="New budget">
      <form onSubmit={submit} class="stack">
        <fieldset>
          <legend>For</legend>
          <label class="choice">
            <input type="radio" name="budget-scope" value="userId" checked={kind === 'userId'} onChange={() => setKind('userId')} /> A user
          </label>
          <label class="choice">
            <input type="radio" name="budget-scope" value="orgId" checked={kind === 'orgId'} onChange={() => setKind('orgId')} /> An organization
          </label>
        </fieldset>
        <label for="budget-scope-id">{kind === 'userId' ? 'User id' : 'Organization id'}</label>
        <input id="budget-scope-id" name="scopeId" required autoComplete="off" value={id} onInput={(e) => setId(e.currentTarget.value)} />
        <label for="budget-period">Period</label>
        <select id="budget-period" name="period" value={period} onChange={(e) => setPeriod(e.currentTarget.value as Period)}>
          <option value="day">day</option>
          <option value="week">week (from Monday)</option>
          <option value="month">month</option>
        </select>
        <label for="budget-limit">Limit (credits per period)</label>
        <input id="budget-limit" name="limitCredits" inputMode="decimal" autoComplete="off" required pattern={creditsPattern()} value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />
        <label for="budget-model">Model (optional; default: all models)</label>
        <input id="budget-model" name="modelId" autoComplete="off" value={modelId} onInput={(e) => setModelId(e.currentTarget.value)} />
        <label for="budget-tz">Time zone of the periods (IANA)</label>
        <input id="budget-tz" name="timezone" autoComplete="off" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Creating…' : 'Create budget'}
        </button>
      </form>
      <div aria-live="polite">
        {action.result && (
          <p class="ok" data-testid="budget-result">
            Budget <code>{action.result.id}</code> created: <Credits value={action.result.limitCredits} /> per {action.result.period} for{' '}
            <ScopeText scope={action.result.scope} />.
          </p>
        )}
      </div>
    </Section>
  );
}

function EditLimitForm({ budget, onDone }: { budget: Schemas['Budget']; onDone: () => void }) {
  const [limit, setLimit] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await api.call('patch', '/api/budgets/{id}', { params: { id: budget.id }, body: { limitCredits: limit.trim() } });
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Change a budget's limit">
      <p class="small">
        Budget <code>{budget.id}</code> (<ScopeText scope={budget.scope} />, {budget.period}), now <Credits value={budget.limitCredits} />. Spent and held
        stay; the next decision uses the new limit.
      </p>
      <form onSubmit={submit} class="stack">
        <label for="budget-new-limit">New limit (credits per period)</label>
        <input id="budget-new-limit" inputMode="decimal" autoComplete="off" required pattern={creditsPattern()} value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Save limit'}
        </button>
      </form>
    </Section>
  );
}
