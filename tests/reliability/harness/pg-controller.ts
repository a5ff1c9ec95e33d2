/**
 * Runs one embedded PostgreSQL (src/db/embedded-postgres.ts) in its own process and takes commands on
 * stdin, one JSON object per line: {"cmd":"start"} | {"cmd":"stop"}. Answers one JSON line each.
 *
 * Why a separate process: `embedded-postgres` is an ES module, which jest's module runtime cannot load
 * inside a test file; and if the test process dies, stdin closes and this process stops the server, so
 * no PostgreSQL outlives the suite.
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../../src/db/embedded-postgres';

const [dataDir, portText] = process.argv.slice(2);
const port = Number(portText);
let server: EmbeddedDatabase | undefined;

const reply = (message: object) => process.stdout.write(JSON.stringify(message) + '\n');

async function start(): Promise<void> {
  if (server) return;
  server = await startEmbeddedPostgres({
    dataDir,
    port,
    persistent: true,
    onLog: (m) => process.stderr.write(String(m)),
  });
}

async function stop(): Promise<void> {
  const s = server;
  server = undefined;
  await s?.stop();
}

let queue = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      const { cmd } = JSON.parse(line) as { cmd: string };
      if (cmd === 'start') await start();
      else if (cmd === 'stop') await stop();
      else throw new Error(`unknown command ${cmd}`);
      const pidFile = path.join(dataDir, 'postmaster.pid');
      reply({ ok: true, pid: server && fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]) : null });
    } catch (error) {
      reply({ ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  });
});
lines.on('close', () => {
  void queue.then(stop).finally(() => process.exit(0));
});
