import crypto from 'node:crypto';

/**
 * Webhook signing secrets: `whsec_` + base64 of 24 random bytes (the Standard Webhooks format the
 * `standardwebhooks` package reads). Stored AES-256-GCM encrypted under a key from configuration, so a
 * database dump alone cannot sign (the secret must be recoverable to sign, so it cannot be hashed).
 */
export function generateWebhookSecret(): string {
  return `whsec_${crypto.randomBytes(24).toString('base64')}`;
}

const VERSION = 'v1';

export function encryptSecret(secret: string, key: Buffer): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
  return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
}

/** Throws when the key is not the one the secret was encrypted with (GCM authentication fails). */
export function decryptSecret(stored: string, key: Buffer): string {
  const [version, payload] = stored.split(':');
  if (version !== VERSION || !payload) throw new Error('unknown webhook secret format');
  const raw = Buffer.from(payload, 'base64');
  const decipher = crypto.createDecipheriv('aes-256-gcm', key, raw.subarray(0, 12));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}
