import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { devSignIn, devSignInAvailable, fetchMe, setUnauthenticatedHandler, tokenStore, type Me } from './api';
import { ErrorBox } from './components';
import { matchRoute, pages, roleAllows } from './pages';
import './styles.css';

type Auth = { state: 'checking' } | { state: 'signed-out'; error?: unknown } | { state: 'refused'; me: Me } | { state: 'signed-in'; me: Me };

function useHash(): [string, (hash: string) => void] {
  const [hash, setHash] = useState(window.location.hash || '#/');
  useEffect(() => {
    const onChange = () => setHash(window.location.hash || '#/');
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return [hash, (next: string) => (window.location.hash = next)];
}

function App() {
  const [auth, setAuth] = useState<Auth>({ state: tokenStore.get() ? 'checking' : 'signed-out' });
  const [hash, navigate] = useHash();

  const check = async () => {
    setAuth({ state: 'checking' });
    try {
      const me = await fetchMe();
      if (me.role === 'admin' || me.role === 'supervisor') setAuth({ state: 'signed-in', me });
      else {
        tokenStore.clear();
        setAuth({ state: 'refused', me });
      }
    } catch (error) {
      tokenStore.clear();
      setAuth({ state: 'signed-out', error });
    }
  };

  useEffect(() => {
    setUnauthenticatedHandler((message) => {
      tokenStore.clear();
      setAuth({ state: 'signed-out', error: new Error(`Signed out: ${message}`) });
    });
    if (tokenStore.get()) void check();
  }, []);

  const signOut = () => {
    tokenStore.clear();
    setAuth({ state: 'signed-out' });
  };

  if (auth.state === 'checking') return <Shell><p role="status">Checking your token…</p></Shell>;
  if (auth.state === 'signed-out') return <Shell><SignIn error={auth.error} onToken={(t) => (tokenStore.set(t), void check())} /></Shell>;
  if (auth.state === 'refused') {
    return (
      <Shell>
        <h1 tabIndex={-1}>Access refused</h1>
        <div class="error" role="alert">
          <p>
            This console is for supervisors and admins. The token you gave is for <strong>{auth.me.userId}</strong> with the role{' '}
            <strong>{auth.me.role}</strong>.
          </p>
        </div>
        <button type="button" onClick={signOut}>
          Sign in with another token
        </button>
      </Shell>
    );
  }
  return <SignedIn me={auth.me} hash={hash} navigate={navigate} signOut={signOut} />;
}

function Shell({ children, nav }: { children: preact.ComponentChildren; nav?: preact.ComponentChildren }) {
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">Accounting console</span>
        {nav}
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}

function SignedIn({ me, hash, navigate, signOut }: { me: Me; hash: string; navigate: (h: string) => void; signOut: () => void }) {
  const route = matchRoute(hash);
  const heading = useRef<HTMLDivElement>(null);
  const firstRender = useRef(true);
  useEffect(() => {
    document.title = `${route?.page.title ?? 'Not found'} · Accounting console`;
    // After a navigation (not on load), focus the new page's heading so keyboard and screen-reader users start there.
    if (!firstRender.current) heading.current?.querySelector<HTMLElement>('h1')?.focus();
    firstRender.current = false;
  }, [hash]);
  const current = route?.page;
  const nav = (
    <>
      <nav aria-label="Main">
        <ul>
          {pages
            .filter((p) => p.nav)
            .map((p) => (
              <li key={p.path}>
                <a href={`#${p.path}`} aria-current={current === p || (p.path !== '/' && current?.path.startsWith(`${p.path}/`)) ? 'page' : undefined}>
                  {p.nav}
                </a>
              </li>
            ))}
        </ul>
      </nav>
      <div class="who">
        <span>
          {me.userId} <span class="badge">{me.role}</span>
        </span>
        <button type="button" onClick={signOut}>
          Sign out
        </button>
      </div>
    </>
  );
  let body: preact.ComponentChildren;
  if (!route) body = <h1 tabIndex={-1}>Page not found</h1>;
  else if (!roleAllows(me.role, route.page.role)) {
    body = (
      <>
        <h1 tabIndex={-1}>{route.page.title}</h1>
        <p class="notice" role="note">
          This page needs the {route.page.role} role; your token is a {me.role}&rsquo;s. <a href="#/users">Go to users</a>.
        </p>
      </>
    );
  } else {
    const Page = route.page.component;
    body = <Page key={hash} params={route.params} me={me} navigate={navigate} />;
  }
  return (
    <Shell nav={nav}>
      <div ref={heading}>{body}</div>
    </Shell>
  );
}

function SignIn({ error, onToken }: { error?: unknown; onToken: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [devError, setDevError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  return (
    <div class="signin card">
      <h1 tabIndex={-1}>Sign in</h1>
      <p>Paste a bearer token (a JWT with the supervisor or admin role). It is kept in this tab only and sent to this service alone.</p>
      <ErrorBox error={error} />
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const value = token.trim().replace(/^Bearer\s+/i, '');
          if (value) onToken(value);
        }}
      >
        <label for="token">Bearer token</label>
        <textarea id="token" name="token" rows={4} autoComplete="off" spellcheck={false} required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
        <button type="submit">Sign in</button>
      </form>
      {devSignInAvailable() && (
        <div class="dev">
          <h2>Local development</h2>
          <p>This service runs with its own embedded database: sign in as a local admin without a token.</p>
          <ErrorBox error={devError} />
          <button
            type="button"
            disabled={busy}
            onClick={async () => {
              setBusy(true);
              try {
                onToken(await devSignIn());
              } catch (err) {
                setDevError(err);
                setBusy(false);
              }
            }}
          >
            Development sign-in
          </button>
        </div>
      )}
    </div>
  );
}

render(<App />, document.getElementById('app')!);
