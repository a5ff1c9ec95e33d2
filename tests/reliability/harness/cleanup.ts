/**
 * Last-resort cleanup: when the test process exits (normally, on a failed assertion, or on Ctrl-C) every
 * service process and database server the suite started is killed. Scenarios still stop them in afterAll;
 * this only guarantees nothing is left behind when that never runs.
 */
const hooks = new Set<() => void>();
let installed = false;

function runAll(): void {
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      /* best effort */
    }
  }
  hooks.clear();
}

/** Registers a synchronous hook; returns a function that unregisters it. */
export function onExit(hook: () => void): () => void {
  if (!installed) {
    installed = true;
    process.once('exit', runAll);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        runAll();
        process.exit(130);
      });
    }
  }
  hooks.add(hook);
  return () => hooks.delete(hook);
}
