import fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';

export type DatabaseSslMode = 'disable' | 'require' | 'verify-full';

/**
 * TLS options for the database connection (DATABASE_SSL, issue 12), in libpq's terms:
 * - disable: plain TCP;
 * - require: encrypted, the server's certificate is not checked (protects against passive listeners only);
 * - verify-full: the certificate must chain to DATABASE_SSL_CA (or the system CAs) and name the host the
 *   service connects to (Node's default checkServerIdentity), so an impostor database is refused.
 * DATABASE_SSL_CA is a PEM file path or the PEM text itself.
 */
export function databaseSslOptions(mode: DatabaseSslMode, ca?: string): ConnectionOptions | false {
  if (mode === 'disable') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  return { rejectUnauthorized: true, ...(ca ? { ca: readCa(ca) } : {}) };
}

function readCa(ca: string): string {
  return ca.includes('-----BEGIN') ? ca.replace(/\\n/g, '\n') : fs.readFileSync(ca, 'utf8');
}
