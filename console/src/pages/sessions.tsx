import { api } from '../api';
import { Credits, PagedTable, Time, useCursorList, userHref } from '../components';
import type { PageProps } from '.';

/** Every active session, oldest first, paged with the API's cursors. */
export function SessionsPage(_props: PageProps) {
  const list = useCursorList((cursor) => api.call('get', '/api/streaming-sessions/active/all', { query: { limit: 50, cursor } }), []);
  return (
    <>
      <h1 tabIndex={-1}>Active sessions</h1>
      <PagedTable
        caption="Active streaming sessions, oldest first"
        list={list}
        rowKey={(s) => `${s.userId}\u0000${s.sessionId}`}
        empty="No active sessions"
        columns={[
          { header: 'Session', cell: (s) => <code>{s.sessionId}</code> },
          { header: 'User', cell: (s) => <a href={userHref(s.userId)}>{s.userId}</a> },
          { header: 'Model', cell: (s) => s.modelId },
          { header: 'Held', numeric: true, cell: (s) => <Credits value={s.allocatedCredits} /> },
          { header: 'Estimate', numeric: true, cell: (s) => <Credits value={s.estimatedCredits} /> },
          { header: 'Price version', numeric: true, cell: (s) => String(s.priceVersion) },
          { header: 'Opened', cell: (s) => <Time iso={s.createdAt} /> },
          { header: 'Expires', cell: (s) => <Time iso={s.expiresAt} /> },
        ]}
      />
    </>
  );
}
