import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline/promises';
import type { ConfigHost } from './config/host.js';
import { ExitError } from './diagnostics.js';
import type { ProviderConfig } from './nodeset/types.js';
import type { Io } from './output/io.js';
import type { Provider } from './provider.js';
import type { Runtime } from './runtime.js';
import { StateDir } from './state.js';

/** Providers load only when a nodeset uses them (pkgcloud, the AWS SDK stay out of other paths). */
const PROVIDERS: Record<string, () => Promise<{ createProvider(config: ProviderConfig, state: StateDir): Provider }>> = {
  local: () => import('../providers/local/index.js'),
  ec2: () => import('../providers/ec2/index.js'),
  openstack: () => import('../providers/openstack/index.js'),
  rackspace: () => import('../providers/rackspace/index.js'),
  kvm: () => import('../providers/kvm/index.js'),
};

export function defaultRuntime(io: Io, host: ConfigHost): Runtime {
  const state = StateDir.fromEnv(host.env as NodeJS.ProcessEnv);
  return {
    io,
    host,
    state,
    async providerFor(config) {
      const load = PROVIDERS[config.type];
      if (!load) throw new ExitError(`provider "${config.type}" is not available in this version of silver (available: ${Object.keys(PROVIDERS).join(', ')})`, 1);
      return (await load()).createProvider(config, state);
    },
    // (ssh2 loads when a command first needs it, not at start-up)
    sshProbe: async (target) => (await import('./ssh/connect.js')).sshProbe(target),
    attach: (target, command, opts) => {
      // (ssh2 loads only for the commands that attach)
      let handle: import('./ssh/attach.js').AttachHandle | null = null;
      let stopped = false;
      const done = import('./ssh/attach.js').then((m) => {
        handle = m.sshAttach(target, command, opts);
        if (stopped) handle.stop();
        return handle.done;
      });
      return {
        done,
        stop: () => {
          stopped = true;
          handle?.stop();
        },
        resize: (rows, cols) => handle?.resize(rows, cols),
      };
    },
    executor: async (nodeset, targets) => {
      const executor = await (await import('./ssh/keeper.js')).openExecutor(state.root, nodeset, targets, host.env as NodeJS.ProcessEnv);
      if (!host.env['SILVER_TIMING']) return executor;
      const { timedExecutor } = await import('./remote/timing.js');
      return timedExecutor(executor, () => performance.now(), (line) => process.stderr.write(`${line}\n`));
    },
    onInterrupt(handler) {
      const signals = ['SIGINT', 'SIGTERM'] as const;
      const on = (sig: string) => handler(sig);
      for (const s of signals) process.on(s, on);
      return () => {
        for (const s of signals) process.off(s, on);
      };
    },
    now: () => Date.now(),
    async confirm(question) {
      if (!process.stdin.isTTY) return false;
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
      } finally {
        rl.close();
      }
    },
  };
}
