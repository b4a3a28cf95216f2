import { request, Agent, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface LoadResult {
  total: number;
  failed: number;
  /** The first few failures, for the assertion message. */
  failures: string[];
  /** How many answers carried each body prefix (e.g. the version an app served). */
  bodies: Map<string, number>;
}

/**
 * A bounded HTTP load loop against one of the project's own addresses: `concurrency` workers
 * send requests until stopped, `maxRequests` are sent, or `maxSeconds` pass, whichever is first.
 */
export function startLoad(
  address: string,
  hostHeader: string,
  opts: {
    concurrency?: number;
    maxRequests?: number;
    maxSeconds?: number;
    classify?: (body: string) => string;
    /** The method of each request (default GET); POST sends a small body. */
    method?: string;
    /** Whether an answer is what the test wants (default: 200). */
    accept?: (status: number, headers: Record<string, string | string[] | undefined>) => boolean;
  } = {},
) {
  const { concurrency = 6, maxRequests = 50_000, maxSeconds = 180, classify = (b) => b, method = 'GET', accept = (status: number) => status === 200 } = opts;
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const result: LoadResult = { total: 0, failed: 0, failures: [], bodies: new Map() };
  const deadline = Date.now() + maxSeconds * 1000;
  let stopping = false;
  const once = () =>
    new Promise<void>((resolve) => {
      const body = method === 'POST' ? 'a note' : '';
      const req = request({ host: address, port: 80, path: '/', method, headers: { Host: hostHeader, ...(body ? { 'Content-Length': String(body.length) } : {}) }, agent, timeout: 10_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          result.total++;
          if (!accept(res.statusCode ?? 0, res.headers)) {
            result.failed++;
            if (result.failures.length < 5) result.failures.push(`${res.statusCode}: ${text.slice(0, 120)}`);
          } else {
            const k = res.statusCode === 200 ? classify(text) : String(res.statusCode);
            result.bodies.set(k, (result.bodies.get(k) ?? 0) + 1);
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        result.total++;
        result.failed++;
        if (result.failures.length < 5) result.failures.push(e.message);
        resolve();
      });
      req.end(body);
    });
  const worker = async () => {
    while (!stopping && result.total < maxRequests && Date.now() < deadline) await once();
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    result,
    async stop(): Promise<LoadResult> {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
      return result;
    },
  };
}

/** One GET with a Host header (fetch() cannot set Host): status and body. */
export function httpGet(address: string, hostHeader: string, path = '/', method = 'GET', body = ''): Promise<{ status: number; body: string }> {
  const headers = { Host: hostHeader, ...(body ? { 'Content-Length': String(Buffer.byteLength(body)) } : {}) };
  return ask({ host: address, port: 80, path, method, headers }, body);
}

export interface Answer {
  status: number;
  body: string;
  /** Over TLS: the certificate the server showed (its names, issuer and SHA-256 fingerprint). */
  cert?: { subject: string; issuer: string; fingerprint: string };
}

/**
 * One request, over plain HTTP or (`tls`) HTTPS, with the caller's options (Host header, CA,
 * SNI name, ...): status, body and, over TLS, the server's certificate. 10 s at most.
 */
export function ask(opts: RequestOptions & { tls?: boolean; ca?: string; servername?: string; rejectUnauthorized?: boolean }, body = ''): Promise<Answer> {
  const { tls, ...rest } = opts;
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : request)({ timeout: 10_000, ...rest }, (res) => {
      let text = '';
      const peer = tls ? (res.socket as TLSSocket).getPeerCertificate() : null;
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text,
          ...(peer ? { cert: { subject: String(peer.subjectaltname ?? ''), issuer: String(peer.issuer?.CN ?? ''), fingerprint: String(peer.fingerprint256 ?? '') } } : {}),
        }),
      );
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A bounded probe of an address: `concurrency` clients, each request on a new connection, until
 * stopped (at most `maxSeconds`); when each failure happened (ms since the start), for a failover
 * window. `accept` tells a good answer (default 200).
 */
export function startProbe(address: string, hostHeader: string, opts: { concurrency?: number; path?: string; maxSeconds?: number; accept?: (status: number) => boolean } = {}) {
  const { concurrency = 6, path = '/', maxSeconds = 60, accept = (s: number) => s === 200 } = opts;
  const agent = new Agent({ keepAlive: false, maxSockets: concurrency });
  const failures: number[] = [];
  let ok = 0;
  let stopping = false;
  const t0 = Date.now();
  const once = () =>
    new Promise<void>((resolve) => {
      const req = request({ host: address, port: 80, path, headers: { Host: hostHeader }, agent, timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => {
          if (accept(res.statusCode ?? 0)) ok++;
          else failures.push(Date.now() - t0);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        failures.push(Date.now() - t0);
        resolve();
      });
      req.end();
    });
  const workers = Array.from({ length: concurrency }, async () => {
    while (!stopping && Date.now() - t0 < maxSeconds * 1000) await once();
  });
  return {
    /** ms since the probe started. */
    now: () => Date.now() - t0,
    async stop(): Promise<{ ok: number; failures: number[] }> {
      stopping = true;
      await Promise.all(workers);
      agent.destroy();
      return { ok, failures };
    },
  };
}
