import { silver } from './cli.js';

/** Creates and sets up a test nodeset's nodes; their addresses by name. Throws on a failure. */
export async function bringUp(file: string, env: Record<string, string>): Promise<Record<string, string>> {
  const c = await silver(['create-node', file], env);
  if (c.code !== 0) throw new Error(c.stderr);
  const s = await silver(['setup-node', file], env);
  if (s.code !== 0) throw new Error(s.stdout + s.stderr);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  return Object.fromEntries(nodes.map((n) => [n.name, n.address]));
}

/** Polls until `check` holds (bounded). */
export async function eventually(what: string, check: () => Promise<boolean>, seconds = 60): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`not within ${seconds}s: ${what}`);
}
