import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { Credits, ErrorBox, PagedTable, Section, Time, creditsPattern, localInputToIso, useCursorList, useIdempotentAction } from '../components';

/**
 * The user page's corrections (adjust, revoke a lot, refund a usage record) and recurring grants. Each
 * write sends an Idempotency-Key (useIdempotentAction) and shows the balance after it.
 */

const loadBalance = (userId: string) => api.call('get', '/api/credits/balance/{userId}', { params: { userId } });
type Balance = Awaited<ReturnType<typeof loadBalance>>;

function NewBalance({ balance, testId }: { balance: Balance; testId: string }) {
  return (
    <span data-testid={testId}>
      New balance: <strong><Credits value={balance.availableCredits} /></strong> available, <Credits value={balance.reservedCredits} /> reserved,{' '}
      <Credits value={balance.unpaidCredits} /> unpaid.
    </span>
  );
}

type AdjustBody = { userId: string; credits: string; reason: string; expiresAt?: string };

/** POST /api/credits/adjust: a positive amount adds a lot, a negative one takes from available lots. */
export function AdjustForm({ userId, onDone }: { userId: string; onDone: () => void }) {
  const [credits, setCredits] = useState('');
  const [reason, setReason] = useState('');
  const [at, setAt] = useState('');
  const action = useIdempotentAction((body: AdjustBody, idempotencyKey: string) => api.call('post', '/api/credits/adjust', { body, idempotencyKey }));
  const submit = async (e: Event) => {
    e.preventDefault();
    const body: AdjustBody = { userId, credits: credits.trim(), reason: reason.trim() };
    if (at) body.expiresAt = localInputToIso(at);
    if (await action.run(body)) {
      setCredits('');
      setReason('');
      setAt('');
      onDone();
    }
  };
  return (
    <Section title="Adjust credits">
      <form onSubmit={submit} class="stack">
        <label for="adjust-credits">Adjustment (credits)</label>
        <input
          id="adjust-credits"
          name="credits"
          inputMode="decimal"
          autoComplete="off"
          required
          pattern={creditsPattern(true)}
          aria-describedby="adjust-credits-help"
          value={credits}
          onInput={(e) => setCredits(e.currentTarget.value)}
        />
        <span id="adjust-credits-help" class="small muted">
          Positive adds a lot; negative (e.g. -2.5) takes from available lots, soonest-expiring first.
        </span>
        <label for="adjust-reason">Reason</label>
        <input id="adjust-reason" name="reason" required maxLength={1000} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        <label for="adjust-expires">Expires at (optional, positive only; your time zone)</label>
        <input id="adjust-expires" name="expiresAt" type="datetime-local" value={at} onInput={(e) => setAt(e.currentTarget.value)} />
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Adjusting…' : 'Adjust'}
        </button>
      </form>
      <div aria-live="polite">
        {action.result && (
          <p class="ok" data-testid="adjust-result">
            Adjusted by <Credits value={action.result.credits} />
            {action.result.settledCredits ? (
              <>
                {' '}
                (<Credits value={action.result.settledCredits} /> paid unpaid usage)
              </>
            ) : null}
            . <NewBalance balance={action.result.balance} testId="adjust-balance" />
          </p>
        )}
      </div>
    </Section>
  );
}

type RevokeBody = { allocationId: string; reason: string; credits?: string };

/** POST /api/credits/allocations/:id/revoke: voids what is left of a lot (or part of it). */
export function RevokeForm({ userId, lotId, onDone }: { userId: string; lotId: string; onDone: () => void }) {
  const [allocationId, setAllocationId] = useState(lotId);
  const [credits, setCredits] = useState('');
  const [reason, setReason] = useState('');
  useEffect(() => setAllocationId(lotId), [lotId]);
  const action = useIdempotentAction(async ({ allocationId: id, ...body }: RevokeBody, idempotencyKey: string) => {
    const revoked = await api.call('post', '/api/credits/allocations/{id}/revoke', { params: { id }, body, idempotencyKey });
    return { revoked, balance: await loadBalance(userId) };
  });
  const submit = async (e: Event) => {
    e.preventDefault();
    const body: RevokeBody = { allocationId: allocationId.trim(), reason: reason.trim() };
    if (credits.trim()) body.credits = credits.trim();
    if (await action.run(body)) {
      setCredits('');
      setReason('');
      onDone();
    }
  };
  return (
    <Section title="Revoke a lot">
      <form onSubmit={submit} class="stack">
        <label for="revoke-lot">Lot id</label>
        <input id="revoke-lot" name="allocationId" required autoComplete="off" value={allocationId} onInput={(e) => setAllocationId(e.currentTarget.value)} />
        <label for="revoke-credits">Credits to revoke (optional; default: all that is left)</label>
        <input id="revoke-credits" name="credits" inputMode="decimal" autoComplete="off" pattern={creditsPattern()} value={credits} onInput={(e) => setCredits(e.currentTarget.value)} />
        <label for="revoke-reason">Reason</label>
        <input id="revoke-reason" name="reason" required maxLength={1000} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Revoking…' : 'Revoke'}
        </button>
      </form>
      <div aria-live="polite">
        {action.result && (
          <p class="ok" data-testid="revoke-result">
            Revoked <Credits value={action.result.revoked.revokedCredits} /> of lot <code>{action.result.revoked.allocationId}</code>
            {action.result.revoked.heldCredits ? (
              <>
                {' '}
                (<Credits value={action.result.revoked.heldCredits} /> held by active sessions, not revocable)
              </>
            ) : null}
            . <NewBalance balance={action.result.balance} testId="revoke-balance" />
          </p>
        )}
      </div>
    </Section>
  );
}

type RefundBody = { recordId: string; reason: string; credits?: string };

/** POST /api/usage/records/:id/refund: forgives unpaid credits first, then returns charged credits. */
export function RefundForm({ userId, recordId, onDone }: { userId: string; recordId: string; onDone: () => void }) {
  const [id, setId] = useState(recordId);
  const [credits, setCredits] = useState('');
  const [reason, setReason] = useState('');
  useEffect(() => setId(recordId), [recordId]);
  const action = useIdempotentAction(async ({ recordId: record, ...body }: RefundBody, idempotencyKey: string) => {
    const refunded = await api.call('post', '/api/usage/records/{id}/refund', { params: { id: record }, body, idempotencyKey });
    return { refunded, balance: await loadBalance(userId) };
  });
  const submit = async (e: Event) => {
    e.preventDefault();
    const body: RefundBody = { recordId: id.trim(), reason: reason.trim() };
    if (credits.trim()) body.credits = credits.trim();
    if (await action.run(body)) {
      setCredits('');
      setReason('');
      onDone();
    }
  };
  return (
    <Section title="Refund a usage record">
      <form onSubmit={submit} class="stack">
        <label for="refund-record">Usage record id</label>
        <input id="refund-record" name="recordId" required autoComplete="off" value={id} onInput={(e) => setId(e.currentTarget.value)} />
        <label for="refund-credits">Credits to refund (optional; default: all that is still refundable)</label>
        <input id="refund-credits" name="credits" inputMode="decimal" autoComplete="off" pattern={creditsPattern()} value={credits} onInput={(e) => setCredits(e.currentTarget.value)} />
        <label for="refund-reason">Reason</label>
        <input id="refund-reason" name="reason" required maxLength={1000} value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy}>
          {action.busy ? 'Refunding…' : 'Refund'}
        </button>
      </form>
      <div aria-live="polite">
        {action.result && (
          <p class="ok" data-testid="refund-result">
            Record <code>{action.result.refunded.id}</code>: <Credits value={action.result.refunded.refundedCredits} /> refunded in all (this time{' '}
            <Credits value={action.result.refunded.returnedCredits} /> returned to lots, <Credits value={action.result.refunded.forgivenCredits} /> unpaid
            forgiven). <NewBalance balance={action.result.balance} testId="refund-balance" />
          </p>
        )}
      </div>
    </Section>
  );
}

type ScheduleBody = {
  userId: string;
  credits: string;
  period: 'day' | 'week' | 'month';
  timezone?: string;
  expireAtPeriodEnd?: boolean;
  expiresInDays?: number;
  rolloverCapCredits?: string;
  startAt?: string;
};

/** The user's recurring grants: list (paged), create, stop. */
export function SchedulesSection({ userId, version, onDone }: { userId: string; version: number; onDone: () => void }) {
  const [mine, setMine] = useState(0);
  const list = useCursorList((cursor) => api.call('get', '/api/credits/schedules', { query: { userId, limit: 20, cursor } }), [userId, version, mine]);
  const [credits, setCredits] = useState('');
  const [period, setPeriod] = useState<ScheduleBody['period']>('month');
  const [timezone, setTimezone] = useState('UTC');
  const [expireAtPeriodEnd, setExpireAtPeriodEnd] = useState(false);
  const [cap, setCap] = useState('');
  const [expiresInDays, setExpiresInDays] = useState('');
  const [startAt, setStartAt] = useState('');
  const create = useIdempotentAction((body: ScheduleBody, idempotencyKey: string) => api.call('post', '/api/credits/schedules', { body, idempotencyKey }));
  const [stopError, setStopError] = useState<unknown>();

  const submit = async (e: Event) => {
    e.preventDefault();
    const body: ScheduleBody = { userId, credits: credits.trim(), period };
    if (timezone.trim()) body.timezone = timezone.trim();
    if (expireAtPeriodEnd) body.expireAtPeriodEnd = true;
    if (expiresInDays.trim()) body.expiresInDays = Number(expiresInDays);
    if (cap.trim()) body.rolloverCapCredits = cap.trim();
    if (startAt) body.startAt = localInputToIso(startAt);
    if (await create.run(body)) {
      setCredits('');
      setMine((v) => v + 1);
      onDone();
    }
  };
  const stop = async (id: string) => {
    if (!window.confirm(`Stop recurring grant ${id}? Grants already made stay.`)) return;
    setStopError(undefined);
    try {
      await api.call('delete', '/api/credits/schedules/{id}', { params: { id } });
      setMine((v) => v + 1);
    } catch (err) {
      setStopError(err);
    }
  };

  return (
    <Section title="Recurring grants">
      <ErrorBox error={stopError} />
      <PagedTable
        caption="Recurring grants of this user, oldest first"
        list={list}
        rowKey={(s) => s.id}
        empty="No recurring grants"
        columns={[
          { header: 'Schedule', cell: (s) => <code>{s.id}</code> },
          { header: 'Credits', numeric: true, cell: (s) => <Credits value={s.credits} /> },
          { header: 'Period', cell: (s) => `${s.period} (${s.timezone})` },
          { header: 'Next period', cell: (s) => <Time iso={s.nextPeriodStart} /> },
          { header: 'Expiry', cell: (s) => (s.expireAtPeriodEnd ? 'end of period' : s.expiresInDays ? `${s.expiresInDays} days` : 'never') },
          { header: 'Rollover cap', numeric: true, cell: (s) => (s.rolloverCapCredits === null ? '' : <Credits value={s.rolloverCapCredits} />) },
          { header: 'By', cell: (s) => s.createdBy },
          {
            header: 'Stopped',
            cell: (s) =>
              s.deletedAt ? (
                <Time iso={s.deletedAt} />
              ) : (
                <button type="button" class="link" aria-label={`Stop schedule ${s.id}`} onClick={() => void stop(s.id)}>
                  Stop
                </button>
              ),
          },
        ]}
      />
      <form onSubmit={submit} class="range">
        <label for="schedule-credits">
          Credits per period
          <input id="schedule-credits" name="credits" inputMode="decimal" autoComplete="off" required pattern={creditsPattern()} value={credits} onInput={(e) => setCredits(e.currentTarget.value)} />
        </label>
        <label for="schedule-period">
          Period
          <select id="schedule-period" name="period" value={period} onChange={(e) => setPeriod(e.currentTarget.value as ScheduleBody['period'])}>
            <option value="day">day</option>
            <option value="week">week (from Monday)</option>
            <option value="month">month</option>
          </select>
        </label>
        <label for="schedule-tz">
          Time zone (IANA)
          <input id="schedule-tz" name="timezone" autoComplete="off" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
        </label>
        <label for="schedule-cap">
          Rollover cap (optional)
          <input id="schedule-cap" name="rolloverCapCredits" inputMode="decimal" autoComplete="off" pattern={creditsPattern()} value={cap} onInput={(e) => setCap(e.currentTarget.value)} />
        </label>
        <label for="schedule-days">
          Each grant expires after days (optional)
          <input id="schedule-days" name="expiresInDays" type="number" min={1} max={36500} value={expiresInDays} onInput={(e) => setExpiresInDays(e.currentTarget.value)} />
        </label>
        <label for="schedule-start">
          Start (optional; your time zone)
          <input id="schedule-start" name="startAt" type="datetime-local" value={startAt} onInput={(e) => setStartAt(e.currentTarget.value)} />
        </label>
        <label class="choice" for="schedule-expire">
          <input id="schedule-expire" type="checkbox" checked={expireAtPeriodEnd} onChange={(e) => setExpireAtPeriodEnd(e.currentTarget.checked)} /> Each grant expires at its period&rsquo;s end
        </label>
        <button type="submit" disabled={create.busy}>
          {create.busy ? 'Creating…' : 'Create recurring grant'}
        </button>
      </form>
      <ErrorBox error={create.error} />
      <div aria-live="polite">
        {create.result && (
          <p class="ok" data-testid="schedule-result">
            Recurring grant <code>{create.result.id}</code> created: <Credits value={create.result.credits} /> per {create.result.period}.
          </p>
        )}
      </div>
    </Section>
  );
}
