import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Received {
  id: string;
  timestamp: string;
  body: { id: string; type: string; userId: string | null; data: Record<string, unknown> };
  /** The exact bytes received (the signed payload). */
  raw: string;
}

/**
 * A real webhook receiver on loopback (node:http). Every request's signature is verified with the
 * `standardwebhooks` package against the endpoint's secret; `invalid` counts the ones that fail (answered 400).
 * `mode`: ok (204), fail (500), redirect (302 elsewhere), hang (holds the response until release()).
 * `delayMs` > 0 (mode ok): the request is counted as received at once and answered that much later, so a
 * sender can die while its request is in flight (`inFlight` lists the webhook-ids of those).
 */
export class Receiver {
  readonly received: Received[] = [];
  invalid = 0;
  mode: 'ok' | 'fail' | 'redirect' | 'hang' = 'ok';
  delayMs = 0;
  readonly inFlight = new Set<string>();
  secret = '';
  private server: http.Server | null = null;
  private held: http.ServerResponse[] = [];
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        if (this.mode === 'hang') {
          this.held.push(res);
          this.accept(req, raw);
          return;
        }
        if (this.mode === 'fail') return res.writeHead(500).end('nope');
        if (this.mode === 'redirect') return res.writeHead(302, { location: `${this.url}/elsewhere` }).end();
        // As a real receiver does: a request that does not verify is refused (and counted in `invalid`).
        if (!this.accept(req, raw)) return res.writeHead(400).end('bad signature');
        if (this.delayMs > 0) {
          const id = String(req.headers['webhook-id']);
          this.inFlight.add(id);
          setTimeout(() => {
            this.inFlight.delete(id);
            if (!res.destroyed) res.writeHead(204).end();
          }, this.delayMs);
          return;
        }
        res.writeHead(204).end();
      });
    });
    this.server.keepAliveTimeout = 500;
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Answers every held request with 204. */
  release(): void {
    for (const res of this.held.splice(0)) res.writeHead(204).end();
  }

  get heldCount(): number {
    return this.held.length;
  }

  async stop(): Promise<void> {
    this.release();
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Distinct webhook-ids received, and how many arrived more than once. */
  stats(): { distinct: number; duplicates: number } {
    const ids = new Set(this.received.map((r) => r.id));
    return { distinct: ids.size, duplicates: this.received.length - ids.size };
  }

  private accept(req: http.IncomingMessage, raw: string): boolean {
    const headers = {
      'webhook-id': String(req.headers['webhook-id']),
      'webhook-timestamp': String(req.headers['webhook-timestamp']),
      'webhook-signature': String(req.headers['webhook-signature']),
    };
    try {
      const body = new Webhook(this.secret).verify(raw, headers) as Received['body'];
      this.received.push({ id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], body, raw });
      return true;
    } catch {
      this.invalid++;
      return false;
    }
  }
}
