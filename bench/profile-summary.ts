/**
 * Summarizes a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time by package or source
 * area and the top functions, as a share of the process's busy (non-idle) time.
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile> [topN] [skipSeconds] [untilSeconds] [requests]
 * skipSeconds leaves out the start (module loading, migrations check, warm-up); untilSeconds the end, so one
 * scenario's window can be cut out of a run (seconds since the process started, from the run's log lines).
 * With `requests` (served in that window) every line also says how many microseconds per request it is.
 *
 * "By middleware" charges every sample to the Express middleware or handler it ran under: the innermost
 * frame on its stack that the router's Layer called. A middleware's figure is its own work, not the rest
 * of the chain it hands on to with next() (that runs under the next Layer). Samples outside any
 * middleware (socket reads and writes, the HTTP parser, pg's protocol, code after an `await`) are charged
 * to the innermost frame outside Node's internals, by package or source area.
 */
import fs from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** node_modules/<pkg> (scoped too), src/<dir>, dist/src/<dir>, node: internals, or the V8 pseudo-frames. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return `(${functionName || 'anonymous'})`;
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1];
  const src = /\/(?:dist\/)?(src\/[^/]+|bench)\//.exec(url);
  if (src) return src[1];
  if (url.startsWith('node:')) return 'node internals';
  return url;
}

const isLayerCall = (node: ProfileNode | undefined) =>
  !!node && /^handle(Request|Error|_request|_error)$/.test(node.callFrame.functionName) && /router\/lib\/layer\.js$/.test(node.callFrame.url);

const shortUrl = (url: string) => url.replace(/^.*\/(node_modules|src|dist)\//, '$1/');

/** What a sample's time is charged to in the "by middleware" view. */
function middlewareOf(id: number, byId: Map<number, ProfileNode>, parent: Map<number, number>): string {
  const leaf = byId.get(id)!;
  if (!leaf.callFrame.url) return `(${leaf.callFrame.functionName || 'anonymous'})`; // GC, program
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    if (isLayerCall(byId.get(parent.get(cur) ?? -1))) {
      const f = byId.get(cur)!.callFrame;
      return `middleware ${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    }
  }
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const f = byId.get(cur)!.callFrame;
    if (f.url && !f.url.startsWith('node:')) return `outside middleware: ${areaOf(f.url, f.functionName)}`;
  }
  return 'outside middleware: node internals';
}

export function summarize(profile: Profile, top = 25, skipSeconds = 0, untilSeconds = Infinity) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let elapsedUs = 0;
  profile.samples.forEach((id, i) => {
    elapsedUs += profile.timeDeltas[i] ?? 0;
    if (elapsedUs < skipSeconds * 1e6 || elapsedUs > untilSeconds * 1e6) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  const middleware = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const fn = `${functionName || '(anonymous)'} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
    const mw = middlewareOf(id, byId, parent);
    middleware.set(mw, (middleware.get(mw) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / busy }));
  return { busyMs: busy / 1000, idleMs: idle / 1000, areas: rank(areas), functions: rank(fns), middleware: rank(middleware) };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js <file.cpuprofile> [topN] [skipSeconds] [untilSeconds] [requests]');
    process.exit(2);
  }
  const [top, skip, until, requests] = [process.argv[3] ?? 25, process.argv[4] ?? 0, process.argv[5] ?? Infinity, process.argv[6] ?? NaN].map(Number);
  const s = summarize(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile, top, skip, until);
  const line = (x: { pct: number; ms: number; name: string }) =>
    `  ${x.pct.toFixed(1).padStart(5)}%${requests > 0 ? `  ${((1000 * x.ms) / requests).toFixed(1).padStart(6)} µs/req` : ''}  ${x.name}`;
  const perRequest = requests > 0 ? `, ${((1000 * s.busyMs) / requests).toFixed(0)} µs busy per request` : '';
  console.log(`busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms${perRequest}\n\nself time by area:`);
  for (const a of s.areas) console.log(line(a));
  console.log('\nby middleware (its own work, not the rest of the chain):');
  for (const m of s.middleware) console.log(line(m));
  console.log('\ntop functions (self time):');
  for (const f of s.functions) console.log(line(f));
}
