import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

/** Every child the benchmark starts, so that any way out (done, error, SIGINT) stops them all. */
const children = new Map<ChildProcess, string>();

export function track(child: ChildProcess, name: string): ChildProcess {
  children.set(child, name);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Starts `node <script>` with its output appended to `logFile`. */
export function startNode(name: string, script: string, env: NodeJS.ProcessEnv, logFile: string, nodeArgs: string[] = []): ChildProcess {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [...nodeArgs, script], { env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  return track(child, name);
}

export function forkNode(name: string, script: string, env: NodeJS.ProcessEnv): ChildProcess {
  return track(fork(script, [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }), name);
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopChild(child: ChildProcess, graceMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children.keys()].map((c) => stopChild(c)));
}

/** Last resort on process exit: whatever is still running gets SIGKILL (exit handlers cannot wait). */
process.on('exit', () => {
  for (const child of children.keys()) child.kill('SIGKILL');
});

/** Polls `url` until it answers 200, failing early if `child` exits. */
export async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${children.get(child) ?? 'child'} exited with code ${child.exitCode} before ${url} answered`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}

/** kB values of VmRSS and VmHWM from /proc/<pid>/status (Linux), or null when unreadable. */
export function readMemory(pid: number): { rssKb: number; hwmKb: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    const rssKb = field('VmRSS');
    const hwmKb = field('VmHWM');
    return Number.isFinite(rssKb) ? { rssKb, hwmKb: Number.isFinite(hwmKb) ? hwmKb : rssKb } : null;
  } catch {
    return null;
  }
}

/** Samples a process's RSS every `intervalMs`; keeps (time, kB) pairs for the soak's growth figure. */
export class RssSampler {
  readonly samples: { at: number; rssKb: number }[] = [];
  peakRssKb = 0;
  hwmKb = 0;
  private timer: NodeJS.Timeout;

  constructor(private readonly pid: number, intervalMs = 500) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    const m = readMemory(this.pid);
    if (!m) return;
    this.samples.push({ at: Date.now(), rssKb: m.rssKb });
    this.peakRssKb = Math.max(this.peakRssKb, m.rssKb);
    this.hwmKb = Math.max(this.hwmKb, m.hwmKb);
  }

  /** Mean RSS (kB) of the samples taken in [from, to). */
  meanBetween(from: number, to: number): number {
    const inWindow = this.samples.filter((s) => s.at >= from && s.at < to);
    return inWindow.length ? inWindow.reduce((sum, s) => sum + s.rssKb, 0) / inWindow.length : NaN;
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }
}
