import { STATUS_CODES } from 'node:http';
import pRetry from 'p-retry';
import type { Callback, Pending } from 'pkgcloud';
import type { Secret } from '../../src/secret.js';

/**
 * pkgcloud's callbacks as promises: every call has a timeout (some of its error paths never call
 * back, and it sets no timeout on its requests), 5xx, 429 and network errors are retried with
 * backoff, other failures are reported at once, naming the call. Messages never carry a secret.
 */

export class CloudCallError extends Error {
  constructor(
    message: string,
    /** The HTTP status of the answer, when there was one. */
    readonly status: number | null,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'CloudCallError';
  }
}

export interface CallerOptions {
  /** `openstack` or `rackspace`: starts every message. */
  prefix: string;
  authUrl: string;
  region: string | null;
  secrets: readonly (string | Secret)[];
  /** Milliseconds one attempt may take. */
  timeoutMs: number;
  retries: number;
  /** Milliseconds before the first retry; doubles for each next one. */
  retryMinMs: number;
  /** Told about each retry. */
  onRetry: (message: string) => void;
}

/** Network failures worth another attempt (ENOTFOUND is not: a wrong host name stays wrong). */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ESOCKETTIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * pkgcloud counts only the status codes of `failCodes` as errors and hands any other answer
 * (502, 504, 429...) on as a result, which then fails obscurely or never calls back. Every 4xx
 * and 5xx is an error.
 */
export const FAIL_CODES: Record<string, string> = Object.fromEntries(
  Array.from({ length: 200 }, (_, i) => 400 + i).map((code) => [String(code), STATUS_CODES[code] ?? 'Error']),
);

export class Caller {
  constructor(private readonly o: CallerOptions) {}

  /** One pkgcloud call, retried when the failure is transient. */
  call<T>(name: string, start: (cb: Callback<T>) => Pending | undefined | void): Promise<T> {
    return this.retry(name, () => this.once(name, start));
  }

  /** `attempt` again (told its number, from 1) while it fails transiently. */
  retry<T>(name: string, attempt: (n: number) => Promise<T>): Promise<T> {
    return pRetry(attempt, {
      retries: this.o.retries,
      minTimeout: this.o.retryMinMs,
      factor: 2,
      maxTimeout: 30_000,
      shouldRetry: ({ error }) => error instanceof CloudCallError && error.retryable,
      onFailedAttempt: ({ error, retriesLeft }) => {
        if (error instanceof CloudCallError && error.retryable && retriesLeft > 0) this.o.onRetry(`${error.message}; trying ${name} again`);
      },
    });
  }

  /** One attempt: resolves with pkgcloud's result, or rejects with a CloudCallError. */
  once<T>(name: string, start: (cb: Callback<T>) => Pending | undefined | void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let pending: Pending | undefined | void;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        try {
          pending?.abort?.(); // frees the socket of a request that hangs
        } catch {
          /* already finished */
        }
        reject(new CloudCallError(this.redact(`${this.o.prefix}: ${name} got no answer within ${seconds(this.o.timeoutMs)}`), null, false));
      }, this.o.timeoutMs);
      const finish = (err: unknown, value: T | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(this.describe(name, err));
        else resolve(value as T);
      };
      try {
        pending = start((err, value) => finish(err, value));
      } catch (e) {
        finish(e ?? new Error('failed'), undefined);
      }
    });
  }

  /** A one-line message naming the call; never the raw pkgcloud error (it holds headers and more). */
  describe(name: string, err: unknown): CloudCallError {
    const e = (typeof err === 'object' && err !== null ? err : {}) as { statusCode?: unknown; code?: unknown; message?: unknown; result?: unknown; href?: unknown };
    const p = this.o.prefix;
    const status = typeof e.statusCode === 'number' ? e.statusCode : null;
    let message: string;
    let retryable: boolean;
    if (status !== null) {
      const auth = typeof e.href === 'string' && /\/(v3\/auth\/tokens|v2\.0\/tokens)(\?|$)/.test(e.href);
      const what = auth ? `authentication at ${this.o.authUrl}` : name;
      const detail = bodyMessage(e.result);
      const hint = auth && status === 401 ? ' (check username and credentials)' : '';
      message = `${p}: ${what} failed: HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd() + (detail ? `: ${detail}` : '') + hint;
      retryable = status >= 500 || status === 429;
    } else {
      const text = typeof e.message === 'string' ? e.message : typeof err === 'string' ? err : 'unknown error';
      const code = typeof e.code === 'string' ? e.code : null;
      if (/matching endpoint|identify endpoint url/i.test(text)) {
        message = `${p}: the service catalog of ${this.o.authUrl} has no public compute endpoint${this.o.region ? ` in region "${this.o.region}"` : ' without a region'} (check region)`;
      } else {
        message = `${p}: ${name} failed: ${text}`;
      }
      retryable = code !== null && TRANSIENT.has(code);
    }
    return new CloudCallError(this.redact(message), status, retryable);
  }

  /** Replaces every secret (as is, JSON-escaped, URL-encoded) with [REDACTED]. */
  redact(text: string): string {
    let out = text;
    for (const s of this.o.secrets) {
      const value = typeof s === 'string' ? s : s.reveal();
      if (!value) continue;
      for (const form of new Set([value, value.trim(), JSON.stringify(value).slice(1, -1), encodeURIComponent(value)])) {
        if (form) out = out.split(form).join('[REDACTED]');
      }
    }
    return out;
  }
}

/** The message of a Nova or Keystone error body: `{"forbidden": {"message": ...}}`, `{"error": {...}}`. */
function bodyMessage(result: unknown): string {
  let m: unknown = null;
  if (typeof result === 'string') m = result;
  else if (result && typeof result === 'object') {
    const r = result as Record<string, unknown>;
    if (typeof r['message'] === 'string') m = r['message'];
    else {
      for (const v of Object.values(r)) {
        if (v && typeof v === 'object' && typeof (v as Record<string, unknown>)['message'] === 'string') {
          m = (v as Record<string, unknown>)['message'];
          break;
        }
        if (typeof v === 'string') {
          m = v;
          break;
        }
      }
    }
  }
  if (typeof m !== 'string') return '';
  const line = m.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? `${line.slice(0, 300)}...` : line;
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10}s` : `${ms}ms`;
}
