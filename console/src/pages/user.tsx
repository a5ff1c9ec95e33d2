import { useEffect, useRef, useState } from 'preact/hooks';
import { AccountingError, api, collectPages, dailyByModel, randomId } from '../api';
import { StackedDailyChart } from '../chart';
import { budgetStatusColumns } from './budgets';
import { Credits, DataTable, ErrorBox, Loading, PagedTable, Section, Stats, Time, useAsync, useCursorList } from '../components';
import { formatCount, utcDay } from '../format';
import type { PageProps } from '.';
import { AdjustForm, RefundForm, RevokeForm, SchedulesSection } from './corrections';
import { RangeForm } from './range';
import { rememberUser } from './users';

type Balance = Awaited<ReturnType<typeof loadBalance>>;
const loadBalance = (userId: string) => api.call('get', '/api/credits/balance/{userId}', { params: { userId } });

export function UserPage({ params, me }: PageProps) {
  const userId = params[0];
  // Bumped after a write, so every section reloads.
  const [version, setVersion] = useState(0);
  // A lot or usage record picked from a table, prefilled into the revoke or refund form.
  const [lotId, setLotId] = useState('');
  const [recordId, setRecordId] = useState('');
  const reload = () => setVersion((v) => v + 1);
  const pick = (set: (id: string) => void, formId: string) => (id: string) => {
    set(id);
    document.getElementById(formId)?.focus();
  };
  const balance = useAsync(() => loadBalance(userId), [userId, version]);
  useEffect(() => rememberUser(userId), [userId]);
  const unknown = balance.error instanceof AccountingError && balance.error.code === 'NOT_FOUND';
  const known = !!balance.data;

  return (
    <>
      <h1 tabIndex={-1}>
        User <span class="id">{userId}</span>
      </h1>
      {unknown && (
        <p class="notice" role="note">
          This user has never been seen by the service. Allocating credits below creates it.
        </p>
      )}
      <ErrorBox error={balance.error} />
      {!known && balance.loading && <Loading what="the balance" />}
      <div class="grid">
        {balance.data && <BalanceSection balance={balance.data} />}
        <AllocateForm userId={userId} onDone={reload} />
      </div>
      {known && (
        <>
          <LotsSection balance={balance.data!} onRevoke={pick(setLotId, 'revoke-lot')} />
          <div class="grid">
            <AdjustForm userId={userId} onDone={reload} />
            <RevokeForm userId={userId} lotId={lotId} onDone={reload} />
            <RefundForm userId={userId} recordId={recordId} onDone={reload} />
          </div>
          {balance.data!.budgets.length > 0 && <BudgetsSection balance={balance.data!} />}
          {me.role === 'admin' ? (
            <ActiveSessions userId={userId} version={version} />
          ) : (
            <p class="notice" role="note">
              Active sessions are listed for admins only; your token is a supervisor&rsquo;s.
            </p>
          )}
          <UsageSection userId={userId} version={version} />
          <RecordsSection userId={userId} version={version} onRefund={pick(setRecordId, 'refund-record')} />
          <LedgerSection userId={userId} version={version} />
          <SchedulesSection userId={userId} version={version} onDone={reload} />
        </>
      )}
    </>
  );
}

function BalanceSection({ balance }: { balance: Balance }) {
  return (
    <Section title="Balance">
      <Stats
        label="Balance"
        items={[
          { name: 'Available', value: <Credits value={balance.availableCredits} /> },
          { name: 'Reserved by sessions', value: <Credits value={balance.reservedCredits} /> },
          { name: 'Unpaid', value: <Credits value={balance.unpaidCredits} /> },
          {
            name: 'Expiring soon',
            value: (
              <>
                <Credits value={balance.expiringSoon.credits} />{' '}
                <span class="small muted">
                  before <Time iso={balance.expiringSoon.before} />
                </span>
              </>
            ),
          },
        ]}
      />
    </Section>
  );
}

function BudgetsSection({ balance }: { balance: Balance }) {
  return (
    <Section title="Budgets that apply">
      <DataTable
        caption={`Budgets of this user${balance.orgId ? ` and of organization ${balance.orgId}` : ''}, current period`}
        rows={balance.budgets}
        rowKey={(b) => b.budgetId}
        empty="No budgets"
        columns={budgetStatusColumns}
      />
    </Section>
  );
}

function LotsSection({ balance, onRevoke }: { balance: Balance; onRevoke: (id: string) => void }) {
  return (
    <Section title="Lots">
      <DataTable
        caption="Unexpired lots with credits left, in consumption order"
        rows={balance.allocations}
        rowKey={(a) => a.id}
        empty="No lots with credits left"
        columns={[
          { header: 'Lot', cell: (a) => <code>{a.id}</code> },
          { header: 'Remaining', numeric: true, cell: (a) => <Credits value={a.remainingCredits} /> },
          { header: 'Granted', numeric: true, cell: (a) => <Credits value={a.totalCredits} /> },
          { header: 'Expires', cell: (a) => <Time iso={a.expiresAt} /> },
          { header: 'Granted by', cell: (a) => a.allocatedBy },
          { header: 'Created', cell: (a) => <Time iso={a.createdAt} /> },
          { header: 'Note', cell: (a) => a.note ?? '' },
          {
            header: 'Revoke',
            cell: (a) => (
              <button type="button" class="link" aria-label={`Revoke lot ${a.id}`} onClick={() => onRevoke(a.id)}>
                Revoke…
              </button>
            ),
          },
        ]}
      />
    </Section>
  );
}

/**
 * Allocate credits. One Idempotency-Key per intended grant: a resubmission of the same values (after a
 * network error, a double click) reuses it, so the grant happens once; new values get a new key.
 */
function AllocateForm({ userId, onDone }: { userId: string; onDone: () => void }) {
  const [credits, setCredits] = useState('');
  const [expiry, setExpiry] = useState<'none' | 'days' | 'at'>('none');
  const [days, setDays] = useState('30');
  const [at, setAt] = useState('');
  const [note, setNote] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<Awaited<ReturnType<typeof allocate>> | null>(null);
  const pending = useRef<{ body: string; key: string } | null>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    const body: Parameters<typeof allocate>[0] = { userId, credits: credits.trim() };
    if (expiry === 'days') body.expiresInDays = Number(days);
    if (expiry === 'at') body.expiresAt = at ? new Date(at).toISOString() : at;
    if (note.trim()) body.note = note.trim();
    const text = JSON.stringify(body);
    if (pending.current?.body !== text) pending.current = { body: text, key: randomId() };
    setBusy(true);
    setError(undefined);
    try {
      setResult(await allocate(body, pending.current.key));
      pending.current = null;
      setCredits('');
      setNote('');
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Section title="Allocate credits">
      <form onSubmit={submit} class="stack">
        <label for="alloc-credits">Credits</label>
        <input
          id="alloc-credits"
          name="credits"
          inputMode="decimal"
          autoComplete="off"
          required
          pattern="\d+(\.\d{1,6})?"
          aria-describedby="alloc-credits-help"
          value={credits}
          onInput={(e) => setCredits(e.currentTarget.value)}
        />
        <span id="alloc-credits-help" class="small muted">
          Up to 6 decimal places, e.g. 12.5
        </span>
        <fieldset>
          <legend>Expiry</legend>
          <label class="choice">
            <input type="radio" name="expiry" value="none" checked={expiry === 'none'} onChange={() => setExpiry('none')} /> Never
          </label>
          <label class="choice">
            <input type="radio" name="expiry" value="days" checked={expiry === 'days'} onChange={() => setExpiry('days')} /> After a number of days
          </label>
          <label class="choice">
            <input type="radio" name="expiry" value="at" checked={expiry === 'at'} onChange={() => setExpiry('at')} /> At a time (your time zone)
          </label>
        </fieldset>
        {expiry === 'days' && (
          <>
            <label for="alloc-days">Expires in days</label>
            <input id="alloc-days" name="expiresInDays" type="number" min={1} max={36500} required value={days} onInput={(e) => setDays(e.currentTarget.value)} />
          </>
        )}
        {expiry === 'at' && (
          <>
            <label for="alloc-at">Expires at</label>
            <input id="alloc-at" name="expiresAt" type="datetime-local" required value={at} onInput={(e) => setAt(e.currentTarget.value)} />
          </>
        )}
        <label for="alloc-note">Note (optional)</label>
        <input id="alloc-note" name="note" maxLength={500} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Allocating…' : 'Allocate'}
        </button>
      </form>
      <div aria-live="polite">
        {result && (
          <p class="ok" data-testid="allocate-result">
            Allocated <Credits value={result.allocation.totalCredits} />. New balance: <strong><Credits value={result.balance.availableCredits} /></strong> available,{' '}
            <Credits value={result.balance.reservedCredits} /> reserved.
          </p>
        )}
      </div>
    </Section>
  );
}

const allocate = (body: { userId: string; credits: string; expiresInDays?: number; expiresAt?: string; note?: string }, idempotencyKey: string) =>
  api.call('post', '/api/credits/allocate', { body, idempotencyKey });

/**
 * The user's active sessions. The API lists every user's active sessions (admin) without a user filter,
 * so this reads up to 10 pages of 500 and keeps this user's.
 */
function ActiveSessions({ userId, version }: { userId: string; version: number }) {
  const sessions = useAsync(
    () => collectPages((cursor) => api.call('get', '/api/streaming-sessions/active/all', { query: { limit: 500, cursor } }), 10),
    [userId, version],
  );
  const mine = sessions.data?.items.filter((s) => s.userId === userId) ?? [];
  return (
    <Section title="Active sessions">
      <ErrorBox error={sessions.error} />
      <DataTable
        caption="This user's active streaming sessions"
        rows={mine}
        rowKey={(s) => s.sessionId}
        empty={sessions.loading ? 'Loading…' : 'No active sessions'}
        columns={[
          { header: 'Session', cell: (s) => <code>{s.sessionId}</code> },
          { header: 'Model', cell: (s) => s.modelId },
          { header: 'Held', numeric: true, cell: (s) => <Credits value={s.allocatedCredits} /> },
          { header: 'Opened', cell: (s) => <Time iso={s.createdAt} /> },
          { header: 'Expires', cell: (s) => <Time iso={s.expiresAt} /> },
        ]}
      />
      {sessions.data && !sessions.data.complete && <p class="notice">Only the oldest 5,000 active sessions of the system were searched.</p>}
      <button type="button" class="link" onClick={sessions.reload}>
        Refresh
      </button>
    </Section>
  );
}

function UsageSection({ userId, version }: { userId: string; version: number }) {
  const [range, setRange] = useState({ from: utcDay(-13), to: utcDay(0) });
  const chart = useAsync(
    () => dailyByModel(range.from, range.to, (day) => api.call('get', '/api/usage/stats/{userId}', { params: { userId }, query: { from: day, to: day } })),
    [userId, range.from, range.to, version],
  );
  return (
    <Section title="Usage by day and model">
      <RangeForm range={range} onChange={setRange} />
      <ErrorBox error={chart.error} />
      {chart.loading && <Loading what="usage" />}
      {chart.data && <StackedDailyChart data={chart.data} label="Credits used" />}
    </Section>
  );
}

function RecordsSection({ userId, version, onRefund }: { userId: string; version: number; onRefund: (id: string) => void }) {
  const list = useCursorList((cursor) => api.call('get', '/api/usage/records', { query: { userId, limit: 20, cursor } }), [userId, version]);
  return (
    <Section title="Usage records">
      <PagedTable
        caption="Usage records, newest first"
        list={list}
        rowKey={(r) => r.id}
        empty="No usage recorded"
        columns={[
          { header: 'When', cell: (r) => <Time iso={r.createdAt} /> },
          { header: 'Service / operation', cell: (r) => `${r.service} / ${r.operation}` },
          { header: 'Model', cell: (r) => (r.modelId ? `${r.modelId} v${r.priceVersion}` : '') },
          { header: 'Input tokens', numeric: true, cell: (r) => formatCount(r.inputTokens) },
          { header: 'Output tokens', numeric: true, cell: (r) => formatCount(r.outputTokens) },
          { header: 'Credits', numeric: true, cell: (r) => <Credits value={r.credits} /> },
          { header: 'Unpaid', numeric: true, cell: (r) => <Credits value={r.unpaidCredits} /> },
          { header: 'Refunded', numeric: true, cell: (r) => <Credits value={r.refundedCredits} /> },
          { header: 'Session', cell: (r) => (r.sessionId ? <code>{r.sessionId}</code> : '') },
          { header: 'Record', cell: (r) => <code>{r.id}</code> },
          {
            header: 'Refund',
            cell: (r) => (
              <button type="button" class="link" aria-label={`Refund record ${r.id}`} onClick={() => onRefund(r.id)}>
                Refund…
              </button>
            ),
          },
        ]}
      />
    </Section>
  );
}

function LedgerSection({ userId, version }: { userId: string; version: number }) {
  const list = useCursorList((cursor) => api.call('get', '/api/credits/transactions', { query: { userId, limit: 20, cursor } }), [userId, version]);
  return (
    <Section title="Ledger">
      <PagedTable
        caption="Ledger entries, newest first"
        list={list}
        rowKey={(t) => t.id}
        empty="No ledger entries"
        columns={[
          { header: 'When', cell: (t) => <Time iso={t.createdAt} /> },
          { header: 'Type', cell: (t) => <span class={`tag ${t.type}`}>{t.type}</span> },
          { header: 'Credits', numeric: true, cell: (t) => <Credits value={t.credits} /> },
          { header: 'Change', numeric: true, cell: (t) => <Credits value={t.balanceChange} /> },
          { header: 'Lot', cell: (t) => (t.allocationId ? <code>{t.allocationId}</code> : '') },
          { header: 'Session', cell: (t) => (t.sessionId ? <code>{t.sessionId}</code> : '') },
          { header: 'By', cell: (t) => t.actorId ?? '' },
          { header: 'Note', cell: (t) => t.note ?? '' },
        ]}
      />
    </Section>
  );
}
