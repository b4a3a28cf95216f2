import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What an app's folder holds, as two sums: its code (everything but the static folder, app.ini
 * included) and its static folder. An update whose code sum equals the active instance's and
 * whose static sum differs is static-only: the files switch, no process starts.
 */
export interface ContentSums {
  code: string;
  /** null when the app has no static folder. */
  static: string | null;
}

/** Every file under `dir` (sorted, `.git` left out) with a line of what it is: type, mode, content. */
function entries(dir: string, rel = ''): [string, string][] {
  const out: [string, string][] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    if (rel === '' && name === '.git') continue;
    const path = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, path));
    if (st.isDirectory()) out.push([`${path}/`, 'dir'], ...entries(dir, path));
    else if (st.isSymbolicLink()) out.push([path, `link ${readlinkSync(join(dir, path))}`]);
    else if (st.isFile()) out.push([path, `file ${st.mode & 0o111 ? 'x' : '-'} ${createHash('sha256').update(readFileSync(join(dir, path))).digest('hex')}`]);
    else out.push([path, `special ${st.mode}`]);
  }
  return out;
}

// (each entry as a JSON pair: names and link targets holding newlines cannot run into each other)
const sum = (list: [string, string][]) => createHash('sha256').update(list.map((e) => `${JSON.stringify(e)}\n`).join('')).digest('hex');

/** The code and static sums of an app folder; `staticDir`: relative, ending in `/` (or null). */
export function contentSums(dir: string, staticDir: string | null): ContentSums {
  const all = entries(dir);
  if (!staticDir) return { code: sum(all), static: null };
  return {
    code: sum(all.filter(([p]) => !p.startsWith(staticDir) && `${p}/` !== staticDir)),
    static: sum(all.filter(([p]) => p.startsWith(staticDir)).map(([p, w]) => [p.slice(staticDir.length), w])),
  };
}
