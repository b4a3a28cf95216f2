import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/util/exec.js';

/** The argv that writes a NoCloud seed image: an ISO 9660 volume labelled `cidata`. */
export function seedImageCommand(output: string, files: readonly string[]): string[] {
  return ['genisoimage', '-quiet', '-output', output, '-volid', 'cidata', '-joliet', '-rock', ...files];
}

/** Makes the seed ISO in a temporary folder, hands its path to `use`, then removes the folder. */
export async function withSeedImage<T>(files: Record<string, string>, use: (iso: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'silver-kvm-seed-'));
  try {
    const paths = Object.entries(files).map(([name, content]) => {
      const path = join(dir, name);
      writeFileSync(path, content, { mode: 0o600 });
      return path;
    });
    const iso = join(dir, 'seed.iso');
    const r = await run(seedImageCommand(iso, paths), { allowFailure: true });
    if (r.code === 127) throw new Error('kvm provider: genisoimage not found (install the Debian package genisoimage)');
    if (r.code !== 0) throw new Error(`kvm provider: genisoimage failed: ${r.stderr.trim()}`);
    return await use(iso);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a file in a temporary folder for a virsh command that reads one (define, net-define). */
export async function withTempFile<T>(name: string, content: string, use: (path: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'silver-kvm-'));
  try {
    const path = join(dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    return await use(path);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
