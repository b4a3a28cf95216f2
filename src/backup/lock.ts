import type { Session } from '../deploy/session.js';
import { holderText, type Lease } from '../deploy/shared-state.js';

/** SIGINT/SIGTERM (or a lost lock) stopped the work between two steps. */
export class Stopped extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'Stopped';
  }
}

/** Between steps: whether to go on. A signal or a lost lease makes `check` throw Stopped. */
export class Steps {
  signal: string | null = null;
  constructor(private readonly lease: Lease) {}

  check(): void {
    if (this.signal) throw new Stopped(`interrupted (${this.signal})`);
    if (this.lease.lost) throw new Stopped(`the deploy lock was lost: ${this.lease.lost}`);
  }
}

/**
 * Work under the nodeset's deploy lock (the same lease as update and rollback: a holder, a
 * heartbeat, taken over when stale). The first SIGINT/SIGTERM lets the current step end and
 * makes the next `steps.check()` throw, so the body puts back what it changed; a second one
 * ends silver at once. The lock is released in every case.
 */
export async function underDeployLock<T>(s: Session, what: string, body: (steps: Steps, lease: Lease) => Promise<T>): Promise<T> {
  let steps: Steps | null = null;
  let early: string | null = null;
  let signals = 0;
  const dispose = s.rt.onInterrupt((sig) => {
    if (++signals > 1) {
      s.rt.io.err(`silver: ${sig} again: stopping now`);
      process.exit(130);
    }
    s.rt.io.err(`silver: ${sig}: finishing the current step, then putting back what changed (again to abandon)`);
    if (steps) steps.signal = sig;
    else early = sig;
  });
  try {
    const lease = await s.state.lock(holderText(what, new Date(s.rt.now())));
    try {
      steps = new Steps(lease);
      steps.signal = early;
      return await body(steps, lease);
    } finally {
      await lease.release();
    }
  } finally {
    dispose();
  }
}
