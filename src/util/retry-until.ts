import { setTimeout as sleep } from 'node:timers/promises';

/** Calls `fn` until it resolves or the deadline passes; then rethrows its last error. */
export async function retryUntil<T>(deadline: number, now: () => number, fn: () => Promise<T>, intervalMs = 150): Promise<T> {
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if ((e as Error).name === 'HostKeyMismatch' || now() + intervalMs > deadline) throw e;
      await sleep(intervalMs);
    }
  }
}

/** Calls `fn` until it answers something other than null or the deadline passes; then its last answer (null). */
export async function pollUntil<T>(deadline: number, now: () => number, fn: () => Promise<T | null>, intervalMs = 150): Promise<T | null> {
  for (;;) {
    const value = await fn();
    if (value !== null || now() + intervalMs > deadline) return value;
    await sleep(intervalMs);
  }
}
