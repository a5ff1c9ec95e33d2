import { useState } from 'preact/hooks';
import { api } from '../api';
import { Credits, DataTable, ErrorBox, Section, useAsync, userHref } from '../components';
import { formatCount } from '../format';
import type { PageProps } from '.';

const RECENT_KEY = 'accounting-console.recent-users';
const RECENT_MAX = 20;

/** Users opened in this tab, newest first (the API has no user list yet; see docs/console.md). */
export function recentUsers(): string[] {
  try {
    const parsed: unknown = JSON.parse(sessionStorage.getItem(RECENT_KEY) ?? '[]');
    return Array.isArray(parsed) ? parsed.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

export function rememberUser(userId: string): void {
  sessionStorage.setItem(RECENT_KEY, JSON.stringify([userId, ...recentUsers().filter((u) => u !== userId)].slice(0, RECENT_MAX)));
}

export function UsersPage({ me, navigate }: PageProps) {
  const [query, setQuery] = useState('');
  const recent = recentUsers();
  return (
    <>
      <h1 tabIndex={-1}>Users</h1>
      <Section title="Find a user">
        <form
          class="inline"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            const id = query.trim();
            if (id) navigate(userHref(id));
          }}
        >
          <label for="user-search">User id</label>
          <input id="user-search" name="userId" required maxLength={255} autoComplete="off" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
          <button type="submit">Open</button>
        </form>
        <p class="muted small">A user id is the token&rsquo;s subject (sub). Opening an unknown id lets you allocate credits to it, which creates the user.</p>
      </Section>
      <div class="grid">
        <Section title="Recently opened">
          {recent.length === 0 ? (
            <p class="muted">No users opened in this tab yet.</p>
          ) : (
            <ul class="plain">
              {recent.map((id) => (
                <li key={id}>
                  <a href={userHref(id)}>{id}</a>
                </li>
              ))}
            </ul>
          )}
        </Section>
        {me.role === 'admin' && <TopUsers />}
      </div>
    </>
  );
}

function TopUsers() {
  const stats = useAsync(() => api.call('get', '/api/usage/system-stats'), []);
  return (
    <Section title="Most active, last 30 days">
      <ErrorBox error={stats.error} />
      <DataTable
        caption="Users with the most credits used in the last 30 UTC days"
        rows={stats.data?.topUsers ?? []}
        rowKey={(u) => u.userId}
        empty={stats.loading ? 'Loading…' : 'No usage in the last 30 days'}
        columns={[
          { header: 'User', cell: (u) => <a href={userHref(u.userId)}>{u.userId}</a> },
          { header: 'Requests', numeric: true, cell: (u) => formatCount(u.requests) },
          { header: 'Credits', numeric: true, cell: (u) => <Credits value={u.credits} /> },
        ]}
      />
    </Section>
  );
}
