import { useState } from 'preact/hooks';
import { api, dailyByModel } from '../api';
import { StackedDailyChart } from '../chart';
import { Credits, DataTable, ErrorBox, Loading, Section, Stats, Time, useAsync, userHref } from '../components';
import { formatCount, utcDay } from '../format';
import type { PageProps } from '.';
import { RangeForm } from './range';

const RECONCILE_KEY = 'accounting-console.reconcile';
type ReconcileResult = Awaited<ReturnType<typeof runReconcile>> & { at: string };
const plural = (n: number, noun: string) => `${formatCount(n)} ${noun}${n === 1 ? '' : 's'}`;
const runReconcile = () => api.call('get', '/api/admin/reconcile');

export function OverviewPage(_props: PageProps) {
  const [range, setRange] = useState({ from: utcDay(-13), to: utcDay(0) });
  const stats = useAsync(() => api.call('get', '/api/usage/system-stats', { query: range }), [range.from, range.to]);
  const chart = useAsync(
    () => dailyByModel(range.from, range.to, (day) => api.call('get', '/api/usage/system-stats', { query: { from: day, to: day } })),
    [range.from, range.to],
  );
  const s = stats.data;

  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <RangeForm range={range} onChange={setRange} />
      <ErrorBox error={stats.error} />
      {!s && stats.loading && <Loading what="system statistics" />}
      {s && (
        <div class="grid">
          <Section title="Usage in the range">
            <Stats
              label="Usage in the range"
              items={[
                { name: 'Requests', value: formatCount(s.totals.requests) },
                { name: 'Credits used', value: <Credits value={s.totals.credits} /> },
                { name: 'Unpaid', value: <Credits value={s.totals.unpaidCredits} /> },
                { name: 'Active users', value: formatCount(s.totals.activeUsers) },
              ]}
            />
            <p class="muted small">
              <Time iso={s.from} /> to <Time iso={s.to} />
            </p>
          </Section>
          <Section title="Credits now">
            <Stats
              label="Credits now"
              items={[
                { name: 'Allocated (ever)', value: <Credits value={s.credits.allocated} /> },
                { name: 'Available', value: <Credits value={s.credits.available} /> },
                { name: 'Reserved', value: <Credits value={s.credits.reserved} /> },
                { name: 'Consumed', value: <Credits value={s.credits.consumed} /> },
                { name: 'Expired', value: <Credits value={s.credits.expired} /> },
                { name: 'Unpaid', value: <Credits value={s.credits.unpaid} /> },
              ]}
            />
          </Section>
          <Section title="Sessions by status">
            <Stats
              label="Sessions by status"
              items={[
                { name: 'Active', value: <a href="#/sessions">{formatCount(s.sessions.active)}</a> },
                { name: 'Completed', value: formatCount(s.sessions.completed) },
                { name: 'Aborted', value: formatCount(s.sessions.aborted) },
                { name: 'Expired', value: formatCount(s.sessions.expired) },
              ]}
            />
          </Section>
          <Reconcile />
        </div>
      )}
      <Section title="Daily credits by model">
        <ErrorBox error={chart.error} />
        {chart.loading && <Loading what="the chart" />}
        {chart.data && <StackedDailyChart data={chart.data} label="Credits used" />}
      </Section>
      {s && (
        <div class="grid">
          <Section title="Top users">
            <DataTable
              caption="Top users in the range, by credits"
              rows={s.topUsers}
              rowKey={(u) => u.userId}
              empty="No usage in this range"
              columns={[
                { header: 'User', cell: (u) => <a href={userHref(u.userId)}>{u.userId}</a> },
                { header: 'Requests', numeric: true, cell: (u) => formatCount(u.requests) },
                { header: 'Credits', numeric: true, cell: (u) => <Credits value={u.credits} /> },
                { header: 'Unpaid', numeric: true, cell: (u) => <Credits value={u.unpaidCredits} /> },
              ]}
            />
          </Section>
          <Section title="By model">
            <DataTable
              caption="Usage by model in the range"
              rows={s.byModel}
              rowKey={(m) => m.modelId ?? '(no model)'}
              empty="No usage in this range"
              columns={[
                { header: 'Model', cell: (m) => m.modelId ?? '(no model)' },
                { header: 'Requests', numeric: true, cell: (m) => formatCount(m.requests) },
                { header: 'Input tokens', numeric: true, cell: (m) => formatCount(m.inputTokens) },
                { header: 'Output tokens', numeric: true, cell: (m) => formatCount(m.outputTokens) },
                { header: 'Credits', numeric: true, cell: (m) => <Credits value={m.credits} /> },
              ]}
            />
          </Section>
        </div>
      )}
    </>
  );
}

/** Reconcile on demand (it recomputes every balance); the last result is remembered for this tab. */
function Reconcile() {
  const [result, setResult] = useState<ReconcileResult | null>(() => {
    const saved = sessionStorage.getItem(RECONCILE_KEY);
    return saved ? (JSON.parse(saved) as ReconcileResult) : null;
  });
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const r = { ...(await runReconcile()), at: new Date().toISOString() };
      sessionStorage.setItem(RECONCILE_KEY, JSON.stringify(r));
      setResult(r);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Reconcile">
      <div aria-live="polite">
        {result ? (
          <p class={result.ok ? 'ok' : 'bad'}>
            <strong>{result.ok ? 'Balanced' : `${result.discrepancies.length} discrepancies`}</strong>: {plural(result.checkedUsers, 'user')} and{' '}
            {plural(result.checkedAllocations, 'lot')} checked <Time iso={result.at} />.
          </p>
        ) : (
          <p class="muted">Not run in this tab yet.</p>
        )}
      </div>
      {result && result.discrepancies.length > 0 && (
        <DataTable
          caption="Discrepancies"
          rows={result.discrepancies}
          rowKey={(d) => `${d.kind}:${d.userId}:${d.allocationId}:${d.sessionId}`}
          empty="None"
          columns={[
            { header: 'Kind', cell: (d) => d.kind },
            { header: 'User', cell: (d) => (d.userId ? <a href={userHref(d.userId)}>{d.userId}</a> : '') },
            { header: 'Lot', cell: (d) => d.allocationId ?? '' },
            { header: 'Expected', numeric: true, cell: (d) => <Credits value={d.expected} /> },
            { header: 'Actual', numeric: true, cell: (d) => <Credits value={d.actual} /> },
          ]}
        />
      )}
      <ErrorBox error={error} />
      <button type="button" onClick={run} disabled={busy}>
        {busy ? 'Reconciling…' : 'Run reconcile'}
      </button>
    </Section>
  );
}
