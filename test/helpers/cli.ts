import { execFile } from 'node:child_process';
import { join } from 'node:path';

const BIN = join(process.cwd(), 'bin/silver.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `silver` binary. */
export function silver(args: string[], env: Record<string, string> = {}, timeoutMs = 15 * 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, SILVER_PERSIST: '0', ...env }, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? Number((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a shell command on one node (as the provider's admin user) through `silver exec`. */
export async function onNode(file: string, env: Record<string, string>, node: string, command: string): Promise<{ code: number; out: string }> {
  const r = await silver(['exec', file, '--node', node, '--json', '--', 'sh', '-c', command], env);
  const [o] = JSON.parse(r.stdout) as { code: number; stdout: string }[];
  return { code: o!.code, out: o!.stdout };
}

/** Runs the real `silver` binary with `input` on its standard input (a secret for KEY=-, a pipe for run). */
export function silverInput(args: string[], input: string, env: Record<string, string> = {}, timeoutMs = 15 * 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, SILVER_PERSIST: '0', ...env }, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? Number((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}
