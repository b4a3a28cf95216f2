import type { NodeExecutor } from '../ssh/keeper.js';

/**
 * `SILVER_TIMING=1`: each remote command's start (since the first) and duration on standard
 * error, by node — where an update or a setup spends its time. Only the command's first words
 * are shown (helper and verb): never its input, never an argument that could carry data.
 */
export function timedExecutor(inner: NodeExecutor, now: () => number, write: (line: string) => void): NodeExecutor {
  const t0 = now();
  return {
    async exec(node, command, stdin, timeoutMs, onStdout) {
      const start = now();
      try {
        return await inner.exec(node, command, stdin, timeoutMs, onStdout);
      } finally {
        write(`timing: +${((start - t0) / 1000).toFixed(3)}s ${((now() - start) / 1000).toFixed(3)}s ${node}: ${summary(command)}`);
      }
    },
    close: () => inner.close(),
  };
}

/** `sudo -n /usr/local/lib/silverlining/bin/silver-deploy wait hello …` → `silver-deploy wait hello`. */
export function summary(command: string): string {
  const words = command.split(/\s+/).filter((w) => w && w !== 'sudo' && w !== '-n').map((w) => w.replace(/^.*\//, ''));
  return words.slice(0, 3).join(' ').slice(0, 60);
}
