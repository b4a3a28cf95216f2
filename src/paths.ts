import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project's root folder (the one with package.json), found from this compiled module. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'setup-layers'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the silverlining project root from ' + fileURLToPath(import.meta.url));
}
