import pino from 'pino';

export type Logger = pino.Logger;

/** JSON logs; tokens and Authorization headers are redacted wherever they appear. */
export function createLogger(level: string, pretty = false): Logger {
  return pino({
    level,
    base: { service: 'accounting-service' },
    redact: { paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'token', '*.token'], censor: '[redacted]' },
    transport: pretty ? { target: 'pino-pretty', options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l' } } : undefined,
  });
}
