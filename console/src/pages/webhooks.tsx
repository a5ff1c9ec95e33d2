import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api';
import { DataTable, ErrorBox, Loading, PagedTable, Section, Time, useAsync, useCursorList, useIdempotentAction } from '../components';
import type { PageProps } from '.';
import { EVENT_TYPES } from './events';

type Webhook = Schemas['Webhook'];
type Delivery = Schemas['WebhookDelivery'];
/** Types an endpoint may subscribe to (webhook.test goes only to the endpoint tested). */
const SUBSCRIBABLE = EVENT_TYPES.filter((t) => t !== 'webhook.test') as Exclude<(typeof EVENT_TYPES)[number], 'webhook.test'>[];
type Subscription = '*' | (typeof SUBSCRIBABLE)[number];

const webhookHref = (id: string) => `#/webhooks/${encodeURIComponent(id)}`;

/** Picks "every event" or a set of types; `prefix` keeps ids unique on the page. */
function EventsPicker({ prefix, value, onChange }: { prefix: string; value: Subscription[]; onChange: (v: Subscription[]) => void }) {
  const all = value.includes('*');
  return (
    <fieldset>
      <legend>Events</legend>
      <label class="choice">
        <input type="checkbox" id={`${prefix}-all`} checked={all} onChange={(e) => onChange(e.currentTarget.checked ? ['*'] : [])} /> Every event (*)
      </label>
      {!all &&
        SUBSCRIBABLE.map((t) => (
          <label class="choice" key={t}>
            <input
              type="checkbox"
              checked={value.includes(t)}
              onChange={(e) => onChange(e.currentTarget.checked ? [...value, t] : value.filter((v) => v !== t))}
            />{' '}
            {t}
          </label>
        ))}
    </fieldset>
  );
}

/** Webhook endpoints: list (paged) and create (the secret is shown once). */
export function WebhooksPage(_props: PageProps) {
  const [version, setVersion] = useState(0);
  const list = useCursorList((cursor) => api.call('get', '/api/webhooks', { query: { limit: 50, cursor } }), [version]);
  return (
    <>
      <h1 tabIndex={-1}>Webhooks</h1>
      <Section title="Endpoints">
        <PagedTable
          caption="Webhook endpoints"
          list={list}
          rowKey={(w) => w.id}
          empty="No webhook endpoints"
          columns={[
            { header: 'Endpoint', cell: (w) => <a href={webhookHref(w.id)}>{w.url}</a> },
            { header: 'Events', cell: (w) => w.events.join(', ') },
            { header: 'State', cell: (w) => <WebhookState webhook={w} /> },
            { header: 'Failures in a row', numeric: true, cell: (w) => String(w.consecutiveFailures) },
            { header: 'Description', cell: (w) => w.description ?? '' },
            { header: 'Created', cell: (w) => <Time iso={w.createdAt} /> },
          ]}
        />
      </Section>
      <CreateWebhookForm onDone={() => setVersion((v) => v + 1)} />
    </>
  );
}

function WebhookState({ webhook }: { webhook: Webhook }) {
  return webhook.enabled ? <span class="ok">enabled</span> : <span class="bad">disabled{webhook.disabledReason ? `: ${webhook.disabledReason}` : ''}</span>;
}

type CreateBody = { url: string; events: Subscription[]; description?: string };

function CreateWebhookForm({ onDone }: { onDone: () => void }) {
  const [url, setUrl] = useState('');
  const [events, setEvents] = useState<Subscription[]>(['*']);
  const [description, setDescription] = useState('');
  const action = useIdempotentAction((body: CreateBody, idempotencyKey: string) => api.call('post', '/api/webhooks', { body, idempotencyKey }));
  const submit = async (e: Event) => {
    e.preventDefault();
    const body: CreateBody = { url: url.trim(), events };
    if (description.trim()) body.description = description.trim();
    if (await action.run(body)) {
      setUrl('');
      setDescription('');
      onDone();
    }
  };
  const created = action.result;
  return (
    <Section title="New endpoint">
      <form onSubmit={submit} class="stack">
        <label for="webhook-url">URL</label>
        <input id="webhook-url" name="url" type="url" required autoComplete="off" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        <EventsPicker prefix="webhook-new" value={events} onChange={setEvents} />
        <label for="webhook-description">Description (optional)</label>
        <input id="webhook-description" name="description" maxLength={500} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        <ErrorBox error={action.error} />
        <button type="submit" disabled={action.busy || events.length === 0}>
          {action.busy ? 'Creating…' : 'Create endpoint'}
        </button>
      </form>
      <div aria-live="polite">
        {created && (
          <div class="ok" data-testid="webhook-created">
            <p>
              Endpoint <a href={webhookHref(created.id)}>{created.url}</a> created. Its signing secret is shown <strong>only now</strong>; store it where
              the receiver can read it:
            </p>
            <p>
              <code data-testid="webhook-secret">{created.secret}</code>
            </p>
          </div>
        )}
      </div>
    </Section>
  );
}

/** One endpoint: edit, enable/disable, delete, send a test event, deliveries with their attempts, retry. */
export function WebhookPage({ params, navigate }: PageProps) {
  const id = params[0];
  const [version, setVersion] = useState(0);
  const reload = () => setVersion((v) => v + 1);
  const webhook = useAsync(() => api.call('get', '/api/webhooks/{id}', { params: { id } }), [id, version]);
  const [actionError, setActionError] = useState<unknown>();
  const [tested, setTested] = useState<Delivery | null>(null);
  const [busy, setBusy] = useState(false);

  const act = async (work: () => Promise<unknown>) => {
    setBusy(true);
    setActionError(undefined);
    try {
      await work();
    } catch (err) {
      setActionError(err);
    } finally {
      setBusy(false);
    }
  };
  const test = () =>
    act(async () => {
      setTested(await api.call('post', '/api/webhooks/{id}/test', { params: { id } }));
      reload();
    });
  const remove = () =>
    act(async () => {
      if (!window.confirm(`Delete this endpoint and its deliveries?`)) return;
      await api.call('delete', '/api/webhooks/{id}', { params: { id } });
      navigate('#/webhooks');
    });
  const toggle = (enabled: boolean) =>
    act(async () => {
      await api.call('patch', '/api/webhooks/{id}', { params: { id }, body: { enabled } });
      reload();
    });

  const w = webhook.data;
  return (
    <>
      <h1 tabIndex={-1}>
        Webhook <span class="id">{w?.url ?? id}</span>
      </h1>
      <p>
        <a href="#/webhooks">All endpoints</a>
      </p>
      <ErrorBox error={webhook.error} />
      {!w && webhook.loading && <Loading what="the endpoint" />}
      {w && (
        <>
          <Section title="Endpoint">
            <dl class="stats" aria-label="Endpoint">
              <div class="stat">
                <dt>State</dt>
                <dd>
                  <WebhookState webhook={w} />
                </dd>
              </div>
              <div class="stat">
                <dt>Failures in a row</dt>
                <dd>{w.consecutiveFailures}</dd>
              </div>
              <div class="stat">
                <dt>Events</dt>
                <dd class="small">{w.events.join(', ')}</dd>
              </div>
              <div class="stat">
                <dt>Updated</dt>
                <dd class="small">
                  <Time iso={w.updatedAt} />
                </dd>
              </div>
            </dl>
            <div class="actions">
              <button type="button" disabled={busy} onClick={() => void test()}>
                Send a test event
              </button>
              <button type="button" class="link" disabled={busy} onClick={() => void toggle(!w.enabled)}>
                {w.enabled ? 'Disable' : 'Enable'}
              </button>
              <button type="button" class="link" disabled={busy} onClick={() => void remove()}>
                Delete endpoint
              </button>
            </div>
            <ErrorBox error={actionError} />
            <div aria-live="polite">
              {tested && (
                <p class={tested.status === 'succeeded' ? 'ok' : 'bad'} data-testid="webhook-test-result">
                  Test event {tested.eventId}: {tested.status}
                  {tested.lastStatusCode !== null ? `, HTTP ${tested.lastStatusCode}` : ''}
                  {tested.lastError ? `, ${tested.lastError}` : ''}.
                </p>
              )}
            </div>
          </Section>
          <EditWebhookForm webhook={w} onDone={reload} />
          <DeliveriesSection id={id} version={version} />
        </>
      )}
    </>
  );
}

function EditWebhookForm({ webhook, onDone }: { webhook: Webhook; onDone: () => void }) {
  const [url, setUrl] = useState(webhook.url);
  const [events, setEvents] = useState<Subscription[]>(webhook.events as Subscription[]);
  const [description, setDescription] = useState(webhook.description ?? '');
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    try {
      await api.call('patch', '/api/webhooks/{id}', { params: { id: webhook.id }, body: { url: url.trim(), events, description: description.trim() || null } });
      setSaved(true);
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <Section title="Edit endpoint">
      <form onSubmit={submit} class="stack">
        <label for="webhook-edit-url">URL</label>
        <input id="webhook-edit-url" type="url" required value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
        <EventsPicker prefix="webhook-edit" value={events} onChange={setEvents} />
        <label for="webhook-edit-description">Description</label>
        <input id="webhook-edit-description" maxLength={500} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        <ErrorBox error={error} />
        <button type="submit" disabled={events.length === 0}>
          Save
        </button>
      </form>
      <div aria-live="polite">{saved && <p class="ok">Saved.</p>}</div>
    </Section>
  );
}

function DeliveriesSection({ id, version }: { id: string; version: number }) {
  const [status, setStatus] = useState<Delivery['status'] | ''>('');
  const [mine, setMine] = useState(0);
  const list = useCursorList(
    (cursor) => api.call('get', '/api/webhooks/{id}/deliveries', { params: { id }, query: { limit: 20, cursor, ...(status ? { status } : {}) } }),
    [id, version, status, mine],
  );
  const [retryError, setRetryError] = useState<unknown>();
  const [retried, setRetried] = useState<Delivery | null>(null);
  const retry = async (deliveryId: string) => {
    setRetryError(undefined);
    try {
      setRetried(await api.call('post', '/api/webhooks/{id}/deliveries/{deliveryId}/retry', { params: { id, deliveryId } }));
      setMine((v) => v + 1);
    } catch (err) {
      setRetryError(err);
    }
  };
  return (
    <Section title="Deliveries">
      <form class="range" onSubmit={(e) => e.preventDefault()}>
        <label for="deliveries-status">
          Status
          <select id="deliveries-status" value={status} onChange={(e) => setStatus(e.currentTarget.value as Delivery['status'] | '')}>
            <option value="">any</option>
            <option value="pending">pending</option>
            <option value="delivering">delivering</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
        </label>
      </form>
      <ErrorBox error={retryError} />
      <div aria-live="polite">
        {retried && (
          <p class="ok" data-testid="retry-result">
            Delivery {retried.id} is due again ({retried.status}); the dispatcher sends it on its next round.
          </p>
        )}
      </div>
      <PagedTable
        caption="Deliveries, newest first"
        list={list}
        rowKey={(d) => d.id}
        empty="No deliveries"
        columns={[
          { header: 'Delivery', cell: (d) => <code>{d.id}</code> },
          { header: 'Event', cell: (d) => `${d.eventType} (${d.eventId})` },
          { header: 'Status', cell: (d) => <span class={d.status === 'succeeded' ? 'ok' : d.status === 'failed' ? 'bad' : undefined}>{d.status}</span> },
          { header: 'Created', cell: (d) => <Time iso={d.createdAt} /> },
          { header: 'Delivered', cell: (d) => (d.deliveredAt ? <Time iso={d.deliveredAt} /> : d.nextAttemptAt ? <>next <Time iso={d.nextAttemptAt} /></> : '') },
          { header: 'Attempts', cell: (d) => <Attempts delivery={d} /> },
          {
            header: 'Retry',
            cell: (d) => (
              <button type="button" class="link" aria-label={`Retry delivery ${d.id}`} onClick={() => void retry(d.id)}>
                Retry
              </button>
            ),
          },
        ]}
      />
    </Section>
  );
}

function Attempts({ delivery }: { delivery: Delivery }) {
  if (delivery.attempts.length === 0) return <span class="muted">none yet</span>;
  return (
    <details>
      <summary>
        {delivery.attemptCount} attempt{delivery.attemptCount === 1 ? '' : 's'}, last {delivery.lastStatusCode ?? delivery.lastError ?? ''}
      </summary>
      <DataTable
        caption={`Attempts of delivery ${delivery.id}, newest first`}
        rows={delivery.attempts}
        rowKey={(a) => a.attemptedAt + a.durationMs}
        empty="none"
        columns={[
          { header: 'When', cell: (a) => <Time iso={a.attemptedAt} /> },
          { header: 'HTTP status', numeric: true, cell: (a) => (a.statusCode === null ? '' : String(a.statusCode)) },
          { header: 'Duration (ms)', numeric: true, cell: (a) => String(a.durationMs) },
          { header: 'Result', cell: (a) => (a.success ? <span class="ok">ok</span> : <span class="bad">{a.error ?? 'failed'}</span>) },
        ]}
      />
    </details>
  );
}
