/**
 * Summarizes a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time by package or source
 * area and the top functions, as a share of the process's busy (non-idle) time.
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile> [topN] [skipSeconds]
 * skipSeconds leaves out the start (module loading, migrations check, warm-up).
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

export function summarize(profile: Profile, top = 25, skipSeconds = 0) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let elapsedUs = 0;
  profile.samples.forEach((id, i) => {
    elapsedUs += profile.timeDeltas[i] ?? 0;
    if (elapsedUs < skipSeconds * 1e6) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
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
    const fn = `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*\/(node_modules|src|dist)\//, '$1/')}:${lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + us);
  }
  const rank = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / busy }));
  return { busyMs: busy / 1000, idleMs: idle / 1000, areas: rank(areas), functions: rank(fns) };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node dist/bench/profile-summary.js <file.cpuprofile> [topN] [skipSeconds]');
    process.exit(2);
  }
  const s = summarize(JSON.parse(fs.readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25), Number(process.argv[4] ?? 0));
  console.log(`busy ${s.busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms\n\nself time by area:`);
  for (const a of s.areas) console.log(`  ${a.pct.toFixed(1).padStart(5)}%  ${a.name}`);
  console.log('\ntop functions (self time):');
  for (const f of s.functions) console.log(`  ${f.pct.toFixed(1).padStart(5)}%  ${f.name}`);
}
