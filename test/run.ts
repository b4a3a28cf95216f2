// The test command's launcher: AVA runs with TMPDIR on a directory of this run's own, removed when
// AVA ends (and on SIGINT/SIGTERM), so the temporary files, state directories and sockets the
// tests make do not pile up in /tmp. A run that was killed leaves its directory behind with its
// launcher's pid inside; the next run removes every such directory whose launcher is gone.
import { spawn } from 'node:child_process';
import { chmodSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PREFIX = 'silver-test-';
const OWNER = '.silver-test-pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Directories of earlier runs whose launcher is no longer running. */
export function leftovers(parent: string, isAlive: (pid: number) => boolean = alive): string[] {
  const gone: string[] = [];
  for (const name of readdirSync(parent)) {
    if (!name.startsWith(PREFIX)) continue;
    // (a real folder of this user's: another user's run, or a link, is never removed from here)
    const st = lstatSync(join(parent, name), { throwIfNoEntry: false });
    if (!st || !st.isDirectory() || st.uid !== process.getuid?.()) continue;
    let pid: number;
    try {
      pid = Number(readFileSync(join(parent, name, OWNER), 'utf8'));
    } catch {
      continue; // not ours, or not readable: left alone
    }
    if (Number.isInteger(pid) && pid > 0 && !isAlive(pid)) gone.push(join(parent, name));
  }
  return gone;
}

/** A fresh directory for one run, sticky and world-writable like /tmp: tests hand paths in it to other users. */
export function runDirectory(parent: string, pid: number): string {
  const dir = mkdtempSync(join(parent, PREFIX));
  chmodSync(dir, 0o1777);
  writeFileSync(join(dir, OWNER), String(pid));
  return dir;
}

/** Removes a run's folder; one that cannot be removed is said, and the tests go on. */
function remove(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    console.error(`test/run: ${dir} could not be removed: ${(e as Error).message}`);
  }
}

function main(): void {
  const parent = tmpdir();
  for (const dir of leftovers(parent)) remove(dir);
  const dir = runDirectory(parent, process.pid);
  const child = spawn(process.execPath, [join('node_modules', 'ava', 'entrypoints', 'cli.mjs'), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, TMPDIR: dir },
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (code, signal) => {
    remove(dir);
    process.exit(code ?? (signal ? 1 : 0));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
