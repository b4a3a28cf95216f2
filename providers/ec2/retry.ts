import pRetry from 'p-retry';
import { REDACTED, type Secret } from '../../src/secret.js';

/**
 * Every EC2 call goes through `call()`: throttling, 5xx and network errors are retried with
 * exponential backoff (p-retry); anything else is reported at once as an `Ec2Error` whose
 * message names the call. Secret values are scrubbed from every message.
 */
export interface RetryOptions {
  retries: number;
  /** Milliseconds before the first retry; doubles (`factor`) up to `maxTimeout`. */
  minTimeout: number;
  maxTimeout: number;
  factor: number;
  randomize: boolean;
}

export const DEFAULT_RETRY: RetryOptions = { retries: 6, minTimeout: 1000, maxTimeout: 20_000, factor: 2, randomize: true };

const THROTTLING = new Set([
  'RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'ThrottledException', 'TooManyRequestsException',
  'RequestThrottled', 'RequestThrottledException', 'EC2ThrottledException', 'SlowDown', 'PriorRequestNotComplete',
  'BandwidthLimitExceeded', 'InternalError', 'InternalFailure', 'ServiceUnavailable', 'Unavailable',
]);
const NETWORK = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'NetworkingError',
]);

interface AwsLikeError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/** The AWS error code (`InvalidAMIID.NotFound`), or the Node error code for network errors. */
export function errorCode(e: unknown): string {
  const x = (e ?? {}) as AwsLikeError;
  return x.Code ?? (x.name && x.name !== 'Error' ? x.name : undefined) ?? x.code ?? 'Error';
}

export function isTransient(e: unknown): boolean {
  const x = (e ?? {}) as AwsLikeError;
  const status = x.$metadata?.httpStatusCode ?? 0;
  return THROTTLING.has(errorCode(e)) || NETWORK.has(errorCode(e)) || (x.code !== undefined && NETWORK.has(x.code)) || status >= 500 || status === 429;
}

/** An EC2 call that failed: `code` is the AWS error code, `call` the operation's name. */
export class Ec2Error extends Error {
  override readonly name = 'Ec2Error';
  constructor(message: string, readonly call: string, readonly code: string) {
    super(message);
  }
}

export function redact(text: string, secrets: readonly Secret[]): string {
  let out = text;
  for (const s of secrets) {
    const value = s.reveal();
    if (value) out = out.split(value).join(REDACTED);
  }
  return out;
}

function hint(code: string, message: string): string {
  if (/region is missing/i.test(message)) return ' (set region in the provider section, or AWS_REGION)';
  if (/could not load credentials/i.test(message) || code === 'CredentialsProviderError') {
    return ' (set username and secret in the provider section, or profile, or the usual AWS_* variables)';
  }
  if (code === 'AuthFailure' || code === 'UnauthorizedOperation') return ' (check the credentials and their IAM permissions)';
  return '';
}

/** Runs `fn` (one EC2 request named `name`) with retries on transient errors. */
export async function withRetry<T>(name: string, fn: () => Promise<T>, options: RetryOptions, secrets: readonly Secret[]): Promise<T> {
  let attempts = 0;
  try {
    return await pRetry(
      () => {
        attempts++;
        return fn();
      },
      { ...options, shouldRetry: ({ error }) => isTransient(error) },
    );
  } catch (e) {
    const code = errorCode(e);
    const message = (e as AwsLikeError)?.message ?? String(e);
    const tries = attempts > 1 ? ` (gave up after ${attempts} attempts)` : '';
    throw new Ec2Error(redact(`ec2 ${name} failed: ${code}: ${message}${hint(code, message)}${tries}`, secrets), name, code);
  }
}
