/**
 * Prints a token the running service accepts (same config: JWT_SECRET, or the local generated secret in
 * embedded mode). `npm run token -- --help` lists the options.
 */
import 'dotenv/config';
import { parseArgs } from 'node:util';
import jwt from 'jsonwebtoken';
import { loadConfig } from '../src/config';

const USAGE = `Usage: npm run token -- --sub <user id> [--role user|supervisor|admin] [--email <address>]
                       [--username <name>] [--expires-in <duration>]

Prints a JWT signed with the service's own secret (JWT_SECRET, or the generated local one).

  --sub <user id>          the user the token is for (default: alice)
  --role <role>            user (default), supervisor or admin
  --email <address>        the email claim (default: none)
  --username <name>        the username claim (default: the --sub value)
  --expires-in <duration>  lifetime: seconds, or a number with s, m, h or d (default: 12h)
  -h, --help               show this help

Example: npm run token -- --sub alice --role admin`;

const ROLES = ['user', 'supervisor', 'admin'];

/** A usage mistake: the message and the usage go to stderr, exit code 2 (as most command-line tools do). */
class UsageError extends Error {}

function parse(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        sub: { type: 'string' },
        role: { type: 'string' },
        email: { type: 'string' },
        username: { type: 'string' },
        'expires-in': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    // parseArgs names the bad option; its codes say which kind of mistake it was.
    const code = (error as { code?: string }).code;
    const message = (error as Error).message;
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const word = /'([^']*)'/.exec(message)?.[1];
      throw new UsageError(`unexpected argument ${JSON.stringify(word)}: options need their name, e.g. --sub ${word ?? 'alice'}`);
    }
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const option = /'([^']*)'/.exec(message)?.[1];
      const known = ['--sub', '--role', '--email', '--username', '--expires-in', '--help'];
      const near = option && option.length > 3 ? known.find((k) => k.startsWith(option)) : undefined;
      throw new UsageError(`unknown option ${option}${near ? ` (did you mean ${near}?)` : ''}`);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const option = /'(--[a-z-]+)/.exec(message)?.[1] ?? 'an option';
      throw new UsageError(`${option} needs a value`);
    }
    throw new UsageError(message);
  }
  const values = parsed.values;
  // parseArgs takes `--sub --role` as sub="--role"; a value that looks like an option is a missing value.
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === 'string' && (value.startsWith('-') || value.trim() === '')) throw new UsageError(`--${name} needs a value`);
  }
  if (values.role !== undefined && !ROLES.includes(values.role)) {
    throw new UsageError(`--role must be user, supervisor or admin, got ${JSON.stringify(values.role)}`);
  }
  const expiresIn = values['expires-in'];
  if (expiresIn !== undefined && !/^\d+(s|m|h|d)?$/.test(expiresIn)) {
    throw new UsageError(`--expires-in must be seconds or a number with s, m, h or d (e.g. 30m), got ${JSON.stringify(expiresIn)}`);
  }
  return values;
}

function main(): number {
  let options: ReturnType<typeof parse>;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`token: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  // Config problems (a malformed variable, RS256) are not usage mistakes: exit 1 with one line.
  try {
    const config = loadConfig();
    if (config.jwt.algorithm !== 'HS256') {
      console.error('token: JWT_ALGORITHM=RS256: tokens come from the Authentication service (this service has only the public key).');
      return 1;
    }
    const sub = options.sub ?? 'alice';
    const expiresIn = options['expires-in'] ?? '12h';
    const token = jwt.sign(
      { sub, role: options.role ?? 'user', email: options.email, username: options.username ?? sub },
      config.jwt.key,
      {
        algorithm: 'HS256',
        // A bare number is seconds for jsonwebtoken only as a number, not as a string.
        expiresIn: (/^\d+$/.test(expiresIn) ? Number(expiresIn) : expiresIn) as jwt.SignOptions['expiresIn'],
        ...(config.jwt.issuer ? { issuer: config.jwt.issuer } : {}),
        ...(config.jwt.audience ? { audience: config.jwt.audience } : {}),
      },
    );
    process.stdout.write(token + '\n');
    return 0;
  } catch (error) {
    console.error(`token: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

process.exitCode = main();
