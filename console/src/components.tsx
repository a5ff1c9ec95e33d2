import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { describeError, randomId } from './api';
import { formatCredits, localTime, utcTime, type CreditsValue } from './format';

/** A time in the viewer's zone; the UTC instant on hover. */
export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return <span class="muted">never</span>;
  return (
    <time dateTime={iso} title={utcTime(iso)}>
      {localTime(iso)}
    </time>
  );
}

/** Exact credits as the API gave them. */
export function Credits({ value }: { value: CreditsValue }) {
  return <span class="num">{formatCredits(value)}</span>;
}

/** The API's error, as it said it: code, message, listed problems, request id. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const { title, problems, requestId } = describeError(error);
  return (
    <div class="error" role="alert">
      <strong>{title}</strong>
      {problems.length > 0 && (
        <ul>
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      {requestId && <div class="muted small">Request id: {requestId}</div>}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

/** Runs `load` when `deps` change; keeps the last result, the error and a reload function. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: undefined }));
    load().then(
      (data) => mine === generation.current && setState({ data, loading: false }),
      (error: unknown) => mine === generation.current && setState({ error, loading: false }),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

type Page<T> = { data: T[]; nextCursor: string | null };

/**
 * A list paged with the API's cursors: "Next" follows nextCursor, "Previous" goes back to the cursor
 * that produced the page before (a stack of cursors, since the API's cursors only go forwards).
 */
export function useCursorList<T>(fetchPage: (cursor?: string) => Promise<Page<T>>, deps: unknown[]) {
  const [stack, setStack] = useState<(string | undefined)[]>([undefined]);
  useEffect(() => setStack([undefined]), deps);
  const cursor = stack[stack.length - 1];
  const result = useAsync(() => fetchPage(cursor), [...deps, cursor]);
  return {
    ...result,
    pageNumber: stack.length,
    next: result.data?.nextCursor ? () => setStack((s) => [...s, result.data!.nextCursor!]) : undefined,
    previous: stack.length > 1 ? () => setStack((s) => s.slice(0, -1)) : undefined,
    first: () => setStack([undefined]),
  };
}

/** A table of a cursor list with its pager; `columns` give the header and the cell of each row. */
export function PagedTable<T>({
  caption,
  list,
  columns,
  rowKey,
  empty,
}: {
  caption: string;
  list: ReturnType<typeof useCursorList<T>>;
  columns: { header: string; cell: (row: T) => ComponentChildren; numeric?: boolean }[];
  rowKey: (row: T) => string;
  empty: string;
}) {
  return (
    <div class="paged">
      <ErrorBox error={list.error} />
      <DataTable caption={caption} rows={list.data?.data ?? []} columns={columns} rowKey={rowKey} empty={list.loading ? 'Loading…' : empty} />
      <nav class="pager" aria-label={`${caption}: pages`}>
        <button type="button" onClick={list.previous} disabled={!list.previous}>
          Previous
        </button>
        <span aria-live="polite">Page {list.pageNumber}</span>
        <button type="button" onClick={list.next} disabled={!list.next}>
          Next
        </button>
        <button type="button" class="link" onClick={list.reload}>
          Refresh
        </button>
      </nav>
    </div>
  );
}

export function DataTable<T>({
  caption,
  rows,
  columns,
  rowKey,
  empty,
}: {
  caption: string;
  rows: T[];
  columns: { header: string; cell: (row: T) => ComponentChildren; numeric?: boolean }[];
  rowKey: (row: T) => string;
  empty: string;
}) {
  return (
    // A focusable, labelled scroll region: wide tables scroll sideways on a narrow window.
    <div class="table-wrap" tabIndex={0} role="region" aria-label={caption}>
      <table>
        <caption>{caption}</caption>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.header} scope="col" class={c.numeric ? 'num' : undefined}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 ? (
            <tr>
              <td colSpan={columns.length} class="muted">
                {empty}
              </td>
            </tr>
          ) : (
            rows.map((row) => (
              <tr key={rowKey(row)}>
                {columns.map((c) => (
                  <td key={c.header} class={c.numeric ? 'num' : undefined}>
                    {c.cell(row)}
                  </td>
                ))}
              </tr>
            ))
          )}
        </tbody>
      </table>
    </div>
  );
}

/** Label/value pairs, e.g. a balance. */
export function Stats({ label, items }: { label: string; items: { name: string; value: ComponentChildren }[] }) {
  return (
    <dl class="stats" aria-label={label}>
      {items.map((item) => (
        <div key={item.name} class="stat">
          <dt>{item.name}</dt>
          <dd>{item.value}</dd>
        </div>
      ))}
    </dl>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  const headingId = `h-${(id ?? title).toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section aria-labelledby={headingId} class="card">
      <h2 id={headingId}>{title}</h2>
      {children}
    </section>
  );
}

/** Shown on a page the signed-in role may not use. */
export function AdminOnly({ what }: { what: string }) {
  return (
    <p class="notice" role="note">
      {what} needs the admin role; your token is a supervisor&rsquo;s.
    </p>
  );
}

export const userHref = (userId: string) => `#/users/${encodeURIComponent(userId)}`;

/**
 * A write that sends an Idempotency-Key: one key per intended change. Submitting the same values again
 * (after a network error, a double click) reuses the key, so the change happens once; new values get a
 * new key. Keeps the last result and error for the form to show.
 */
export function useIdempotentAction<B, R>(send: (body: B, idempotencyKey: string) => Promise<R>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<R | null>(null);
  const pending = useRef<{ body: string; key: string } | null>(null);
  const run = async (body: B): Promise<R | undefined> => {
    const text = JSON.stringify(body);
    if (pending.current?.body !== text) pending.current = { body: text, key: randomId() };
    setBusy(true);
    setError(undefined);
    try {
      const value = await send(body, pending.current.key);
      pending.current = null;
      setResult(value);
      return value;
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  };
  return { run, busy, error, result, reset: () => (setResult(null), setError(undefined)) };
}

/** Decimal credits as the API accepts them (at most 6 decimals); `signed` allows a leading minus. */
export const creditsPattern = (signed = false) => (signed ? '-?\\d+(\\.\\d{1,6})?' : '\\d+(\\.\\d{1,6})?');

/** A datetime-local value (the viewer's zone) as an ISO instant; an empty value stays empty. */
export const localInputToIso = (value: string) => (value ? new Date(value).toISOString() : '');
