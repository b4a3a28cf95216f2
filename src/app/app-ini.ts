import { join } from 'node:path';
import type { ConfigHost } from '../config/host.js';
import { InterpolationError, Interpolator } from '../config/interpolate.js';
import { ConfigError, diagnostic, type Diagnostic } from '../diagnostics.js';
import { parseIni } from '../ini/parse.js';
import { KNOWN_SERVICES } from '../nodeset/resolve.js';
import { appNameProblem, LOCATION_PATH } from '../nodeset/values.js';

/** One `update_fetch` step: an HTTP path called on the new instance, or a command run in it. */
export type FetchStep = { kind: 'path'; path: string } | { kind: 'script'; command: string };

export interface AppConfig {
  dir: string;
  file: string;
  name: string;
  runner: string;
  services: string[];
  updateFetch: FetchStep[];
  healthCheck: string;
  packages: string[];
  defaultLocation: string | null;
  /** Run once per update on the primary, before any switch (a command, or a path on the new instance). */
  migrate: FetchStep | null;
  /** What the balancer holds back while the migration and the activations run. */
  migrateMode: MigrateMode;
  /** The folder (relative to the app, ending in `/`) the front proxy serves directly; null: none. */
  static: string | null;
  /** The app's own maintenance.html (what its held-back requests get instead of the message page); null: none. */
  maintenancePage: string | null;
  /** The line of each key in app.ini (for errors found later, against the nodeset). */
  lines?: Record<string, number>;
}

/** The page an app may ship at its root; at most MAX_PAGE bytes (the balancer's buffer holds it whole). */
export const PAGE_FILE = 'maintenance.html';
export const MAX_PAGE = 8192;

/** Why a maintenance.html cannot be served, or null. */
export function pageProblem(text: string): string | null {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes === 0 || bytes > MAX_PAGE) return `has ${bytes} bytes; a maintenance page must have 1 to ${MAX_PAGE}`;
  // (line breaks are served as spaces: HAProxy's formatted answers carry none)
  const bad = [...text].find((c) => /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(c));
  if (bad) return `holds a control character (U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})`;
  if (text.includes('\uFFFD')) return 'is not UTF-8 text';
  return null;
}

export type MigrateMode = 'online' | 'read-only' | 'maintenance';

const KEYS = ['app_name', 'runner', 'update_fetch', 'health_check', 'packages', 'default_location', 'migrate', 'migrate_mode', 'static'];

/** Whether DIR/REL, its links followed, is still inside DIR (a host that cannot tell: yes). */
function inside(host: ConfigHost, dir: string, rel: string): boolean {
  if (!host.realPath) return true;
  const root = host.realPath(dir);
  const target = host.realPath(join(dir, rel));
  return root !== undefined && target !== undefined && target.startsWith(`${root}/`);
}

/** Reads `DIR/app.ini` ([production]) with the nodeset's INI engine; throws ConfigError with every problem. */
export function loadApp(dir: string, host: ConfigHost): AppConfig {
  const file = join(dir, 'app.ini');
  const text = host.readFile(file);
  if (text === undefined) throw new ConfigError([diagnostic(file, 0, 'app.ini', 'cannot read app.ini: is this an application directory?')]);
  const { doc, diagnostics } = parseIni(text, file);
  const d: Diagnostic[] = [...diagnostics];
  const section = doc.sections.get('production');
  if (!section) throw new ConfigError([...d, diagnostic(file, 1, '[production]', 'missing section: app.ini needs [production]')]);
  // (no environment variable of the machine running silver: a hostile app.ini would read its
  // secrets into the runner; the app's own variables are the shell's at run time, $PORT)
  const values = new Interpolator(doc, {}, 'app.ini reads no environment variable of the machine running silver (the app\'s own, at run time: $NAME)');
  const get = (key: string): { value: string; line: number } | null => {
    const e = section.entries.get(key);
    if (!e) return null;
    try {
      return { value: values.value('production', e), line: e.line };
    } catch (err) {
      if (err instanceof InterpolationError) d.push(err.diagnostic);
      else throw err;
      return null;
    }
  };
  for (const [key, e] of section.entries) {
    if (KEYS.includes(key)) continue;
    if (key.startsWith('service.')) {
      const svc = key.slice('service.'.length);
      if (!KNOWN_SERVICES.includes(svc)) d.push(diagnostic(file, e.line, key, `unknown service "${svc}" (known: ${KNOWN_SERVICES.join(', ')})`));
      continue;
    }
    d.push(diagnostic(file, e.line, key, `unknown key in [production] (known: ${KEYS.join(', ')}, service.NAME)`));
  }
  for (const name of doc.sections.keys()) {
    if (name !== 'production') d.push(diagnostic(file, doc.sections.get(name)!.line, `[${name}]`, 'unknown section (app.ini has only [production])'));
  }

  const nameV = get('app_name');
  if (!nameV && !section.entries.has('app_name')) d.push(diagnostic(file, section.line, 'app_name', 'app_name is required'));
  else if (nameV && appNameProblem(nameV.value)) d.push(diagnostic(file, nameV.line, 'app_name', appNameProblem(nameV.value)!));

  const runnerV = get('runner');
  if (!runnerV && !section.entries.has('runner')) d.push(diagnostic(file, section.line, 'runner', 'runner is required: the command that starts an HTTP server on $PORT'));
  else if (runnerV && (runnerV.value.trim() === '' || /['\n%]/.test(runnerV.value))) {
    d.push(diagnostic(file, runnerV.line, 'runner', 'must be one line, not empty, without single quotes or %'));
  }

  const updateFetch: FetchStep[] = [];
  const fetchEntry = section.entries.get('update_fetch');
  const fetchV = fetchEntry ? get('update_fetch') : null;
  if (fetchEntry && fetchV) {
    // (the value as interpolated, line by line: `$$` is a `$`, `${production:KEY}` its value)
    const texts = fetchV.value.split('\n').map((t) => t.trim()).filter(Boolean);
    const lines = fetchEntry.lines.length === texts.length ? fetchEntry.lines.map((l, i) => ({ text: texts[i]!, line: l.line })) : texts.map((text) => ({ text, line: fetchEntry.line }));
    for (const item of lines) {
      for (const part of item.text.startsWith('script:') ? [item.text] : item.text.split(/\s+/).filter(Boolean)) {
        if (part.startsWith('script:')) {
          const command = part.slice('script:'.length).trim();
          if (!command) d.push(diagnostic(file, item.line, 'update_fetch', 'script: needs a command'));
          else updateFetch.push({ kind: 'script', command });
        } else if (LOCATION_PATH.test(part)) updateFetch.push({ kind: 'path', path: part });
        else d.push(diagnostic(file, item.line, 'update_fetch', `"${part}" must be a path starting with / or script:COMMAND`));
      }
    }
  }

  const healthV = get('health_check');
  const healthCheck = healthV?.value.trim() || '/';
  if (!LOCATION_PATH.test(healthCheck)) d.push(diagnostic(file, healthV?.line ?? section.line, 'health_check', `"${healthCheck}" must be a path starting with / (letters, digits, . _ ~ / % -)`));

  const packages = (get('packages')?.value ?? '').split(/\s+/).filter(Boolean);
  const pkgEntry = section.entries.get('packages');
  for (const p of packages) if (!/^[a-z0-9][a-z0-9+.-]*[a-z0-9+]$/.test(p)) d.push(diagnostic(file, pkgEntry?.line ?? section.line, 'packages', `"${p}" is not a Debian package name`));

  const services = [...section.entries.keys()].filter((k) => k.startsWith('service.')).map((k) => k.slice('service.'.length));
  const defaultLocation = get('default_location')?.value.trim() || null;

  let migrate: FetchStep | null = null;
  const migrateV = get('migrate');
  if (migrateV) {
    const text = migrateV.value.trim();
    if (text.startsWith('script:') && text.slice('script:'.length).trim()) migrate = { kind: 'script', command: text.slice('script:'.length).trim() };
    else if (LOCATION_PATH.test(text)) migrate = { kind: 'path', path: text };
    else d.push(diagnostic(file, migrateV.line, 'migrate', `"${text}" must be script:COMMAND or a path starting with /`));
  }
  const modeV = get('migrate_mode');
  const migrateMode = (modeV?.value.trim() || 'online') as MigrateMode;
  if (!['online', 'read-only', 'maintenance'].includes(migrateMode)) d.push(diagnostic(file, modeV!.line, 'migrate_mode', `must be online, read-only or maintenance, got "${migrateMode}"`));
  else if (migrateMode !== 'online' && !migrate) d.push(diagnostic(file, modeV!.line, 'migrate_mode', 'is only meaningful with migrate ='));

  const staticV = get('static');
  let staticDir: string | null = null;
  if (staticV) {
    const text = staticV.value.trim().replace(/^\.\//, '');
    const dirName = text.endsWith('/') ? text : `${text}/`;
    if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*\/$/.test(dirName) || dirName.split('/').some((p) => p === '..' || p === '.')) {
      // (`.` would be the app's whole folder — its code and app.ini served to anyone)
      d.push(diagnostic(file, staticV.line, 'static', `"${text}" must be a folder inside the app, not the app's own (letters, digits, . _ -)`));
    } else if (!host.isDirectory?.(join(dir, dirName)) && host.isDirectory) {
      d.push(diagnostic(file, staticV.line, 'static', `${join(dir, dirName)} is not a folder`));
    } else if (!inside(host, dir, dirName)) {
      d.push(diagnostic(file, staticV.line, 'static', `${join(dir, dirName)} leads out of the app's folder (a link): its files would be served to anyone`));
    } else staticDir = dirName;
  }

  const pageFile = join(dir, PAGE_FILE);
  let maintenancePage = host.readFile(pageFile) ?? null;
  if (maintenancePage !== null && !inside(host, dir, PAGE_FILE)) {
    d.push(diagnostic(pageFile, 1, PAGE_FILE, "leads out of the app's folder (a link): it would be served to anyone"));
    maintenancePage = null;
  }
  if (maintenancePage !== null && pageProblem(maintenancePage)) d.push(diagnostic(pageFile, 1, PAGE_FILE, pageProblem(maintenancePage)!));

  if (d.length > 0) throw new ConfigError(d);
  return {
    dir, file, name: nameV!.value, runner: runnerV!.value.trim(), services, updateFetch, healthCheck, packages, defaultLocation, migrate, migrateMode, static: staticDir, maintenancePage,
    lines: Object.fromEntries([...section.entries].map(([k, e]) => [k, e.line])),
  };
}
