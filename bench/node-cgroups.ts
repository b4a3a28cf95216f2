import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** What the benchmarks read of the nodes themselves: their LXC containers' control groups. */

const LXC = '/var/lib/silverlining/lxc';

/** The nodeset's containers: their names begin with `s-NODESET-`. */
export function containers(prefix: string): string[] {
  return execFileSync('lxc-ls', ['-P', LXC, '-1']).toString().split('\n').filter((n) => n.startsWith(prefix));
}

/** The nodes' peak memory: the sum of their memory cgroups' high-water marks (cgroup v1 or v2). */
export function nodesPeakMB(prefix: string): number {
  let total = 0;
  for (const name of containers(prefix)) {
    for (const f of [`/sys/fs/cgroup/memory/lxc.payload.${name}/memory.max_usage_in_bytes`, `/sys/fs/cgroup/lxc.payload.${name}/memory.peak`]) {
      if (existsSync(f)) {
        total += Number(readFileSync(f, 'utf8').trim());
        break;
      }
    }
  }
  return total / (1 << 20);
}

/** The CPU seconds the nodes' containers have used so far, in all (cgroup v1 cpuacct, or v2 cpu.stat). */
export function nodesCpuSeconds(prefix: string): number {
  return cpuSeconds(containers(prefix));
}

/** The CPU seconds these containers have used so far, in all. */
export function cpuSeconds(names: readonly string[]): number {
  let total = 0;
  for (const name of names) {
    const v1 = `/sys/fs/cgroup/cpuacct/lxc.payload.${name}/cpuacct.usage`;
    const v2 = `/sys/fs/cgroup/lxc.payload.${name}/cpu.stat`;
    if (existsSync(v1)) total += Number(readFileSync(v1, 'utf8').trim()) / 1e9;
    else if (existsSync(v2)) total += Number(/^usage_usec (\d+)$/m.exec(readFileSync(v2, 'utf8'))?.[1] ?? 0) / 1e6;
  }
  return total;
}
