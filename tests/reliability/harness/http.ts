import http from 'node:http';

export interface CallOptions {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  /** An object is sent as JSON; a string or Buffer is sent as is (with whatever Content-Type is given). */
  body?: unknown;
  timeoutMs?: number;
  agent?: http.Agent;
}

export interface CallResult {
  /** 0 when no response arrived (connection refused or cut, timeout). */
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: unknown;
  /** Transport failure, e.g. ECONNREFUSED, ECONNRESET, TIMEOUT. */
  error?: string;
}

/** Keep-alive connections for the load driver; idle sockets are dropped before the server's own 5 s. */
export const keepAliveAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity, timeout: 3_000 });

/**
 * One HTTP request over loopback with a hard timeout. Never throws: a failure to get a response is
 * reported as status 0 with `error`, so load drivers can count it rather than crash.
 */
export function call(baseUrl: string, options: CallOptions): Promise<CallResult> {
  const url = new URL(options.path, baseUrl);
  const headers: Record<string, string> = { ...options.headers };
  let payload: Buffer | undefined;
  if (options.body !== undefined) {
    if (Buffer.isBuffer(options.body)) payload = options.body;
    else if (typeof options.body === 'string') payload = Buffer.from(options.body);
    else {
      payload = Buffer.from(JSON.stringify(options.body));
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json';
    }
    headers['Content-Length'] = String(payload.length);
  }
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: CallResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const req = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method: options.method ?? 'GET',
        headers,
        agent: options.agent ?? keepAliveAgent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => finish({ status: 0, headers: {}, text: '', json: undefined, error: errorName(e) }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          finish({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: 0, headers: {}, text: '', json: undefined, error: 'TIMEOUT' });
    }, options.timeoutMs ?? 30_000);
    req.on('error', (e) => finish({ status: 0, headers: {}, text: '', json: undefined, error: errorName(e) }));
    if (payload) req.write(payload);
    req.end();
  });
}

function errorName(e: Error): string {
  return (e as NodeJS.ErrnoException).code ?? e.message;
}

/** Shorthand for a bearer-authenticated JSON request. */
export function api(baseUrl: string, token: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  return call(baseUrl, { method, path, body, headers: { Authorization: `Bearer ${token}`, ...headers } });
}

/**
 * Sends a complete request, then cuts the connection `cutAfterMs` later, whatever state it is in: the
 * client never learns whether the server acted (the classic reason to retry with an idempotency key).
 * Resolves with the response if it won the race, or status 0 / error 'CUT'.
 */
export function cutCall(baseUrl: string, options: CallOptions, cutAfterMs: number): Promise<CallResult> {
  const agent = new http.Agent({ keepAlive: false });
  const result = call(baseUrl, { ...options, agent, timeoutMs: cutAfterMs });
  return result.then((r) => (r.error === 'TIMEOUT' ? { ...r, error: 'CUT' } : r)).finally(() => agent.destroy());
}
