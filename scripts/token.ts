/**
 * Prints a token the running service accepts (same config: JWT_SECRET, or the local generated secret in
 * embedded mode). Usage: npm run token -- --sub alice --role admin [--email a@x] [--username alice] [--expires-in 1h]
 */
import 'dotenv/config';
import jwt from 'jsonwebtoken';
import { ConfigError, loadConfig } from '../src/config';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

try {
  const config = loadConfig();
  if (config.jwt.algorithm !== 'HS256') {
    console.error('JWT_ALGORITHM=RS256: tokens come from the Authentication service (this service has only the public key).');
    process.exit(1);
  }
  const role = arg('role') ?? 'user';
  if (!['user', 'supervisor', 'admin'].includes(role)) throw new Error('--role must be user, supervisor or admin');
  const token = jwt.sign(
    { sub: arg('sub') ?? 'alice', role, email: arg('email'), username: arg('username') ?? arg('sub') ?? 'alice' },
    config.jwt.key,
    {
      algorithm: 'HS256',
      expiresIn: (arg('expires-in') ?? '12h') as jwt.SignOptions['expiresIn'],
      ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
      ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
    },
  );
  process.stdout.write(token + '\n');
} catch (error) {
  console.error(error instanceof ConfigError || error instanceof Error ? error.message : error);
  process.exit(1);
}
