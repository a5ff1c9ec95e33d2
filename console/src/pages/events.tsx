import { useState } from 'preact/hooks';
import { api, type Schemas } from '../api';
import { PagedTable, Section, Time, useCursorList, userHref } from '../components';
import type { PageProps } from '.';

type EventType = Schemas['Event']['type'];

/** Every event type the API lists (the Event schema's enum). */
export const EVENT_TYPES: EventType[] = [
  'credits.granted',
  'credits.adjusted',
  'credits.low',
  'credits.depleted',
  'credits.expiring',
  'credits.expired',
  'session.expired',
  'session.overage',
  'usage.refunded',
  'budget.threshold',
  'webhook.disabled',
  'webhook.test',
];

type Filter = { type: EventType | ''; userId: string; after: string; limit: number };

/** The event log (GET /api/events): oldest first, filtered by type, user and "after an event id", paged with cursors. */
export function EventsPage(_props: PageProps) {
  const [filter, setFilter] = useState<Filter>({ type: '', userId: '', after: '', limit: 50 });
  const [draft, setDraft] = useState<Filter>(filter);
  const list = useCursorList(
    (cursor) =>
      api.call('get', '/api/events', {
        query: {
          limit: filter.limit,
          ...(filter.type ? { type: filter.type } : {}),
          ...(filter.userId ? { userId: filter.userId } : {}),
          // The cursor continues after the last event shown; `after` is where the first page starts.
          ...(cursor ? { cursor } : filter.after ? { after: filter.after } : {}),
        },
      }),
    [filter.type, filter.userId, filter.after, filter.limit],
  );
  return (
    <>
      <h1 tabIndex={-1}>Events</h1>
      <Section title="Event log">
        <form
          class="range"
          onSubmit={(e) => {
            e.preventDefault();
            setFilter({ type: draft.type, userId: draft.userId.trim(), after: draft.after.trim(), limit: draft.limit });
          }}
        >
          <label for="events-type">
            Type
            <select id="events-type" value={draft.type} onChange={(e) => setDraft({ ...draft, type: e.currentTarget.value as Filter['type'] })}>
              <option value="">any</option>
              {EVENT_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
          <label for="events-user">
            User id
            <input id="events-user" autoComplete="off" value={draft.userId} onInput={(e) => setDraft({ ...draft, userId: e.currentTarget.value })} />
          </label>
          <label for="events-after">
            After event id (e.g. evt_42)
            <input id="events-after" autoComplete="off" value={draft.after} onInput={(e) => setDraft({ ...draft, after: e.currentTarget.value })} />
          </label>
          <label for="events-limit">
            Per page
            <select id="events-limit" value={String(draft.limit)} onChange={(e) => setDraft({ ...draft, limit: Number(e.currentTarget.value) })}>
              {[10, 50, 200].map((n) => (
                <option key={n} value={String(n)}>
                  {n}
                </option>
              ))}
            </select>
          </label>
          <button type="submit">Filter</button>
        </form>
        <PagedTable
          caption="Events, oldest first"
          list={list}
          rowKey={(e) => e.id}
          empty="No events"
          columns={[
            { header: 'Event', cell: (e) => <code>{e.id}</code> },
            { header: 'Type', cell: (e) => <span class="tag">{e.type}</span> },
            { header: 'When', cell: (e) => <Time iso={e.createdAt} /> },
            { header: 'User', cell: (e) => (e.userId ? <a href={userHref(e.userId)}>{e.userId}</a> : '') },
            { header: 'Organization', cell: (e) => e.orgId ?? '' },
            { header: 'Data', cell: (e) => <code class="json">{JSON.stringify(e.data)}</code> },
          ]}
        />
      </Section>
    </>
  );
}
