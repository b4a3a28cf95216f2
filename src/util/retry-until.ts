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
