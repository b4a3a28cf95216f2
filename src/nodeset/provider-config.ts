import { parseSubnet } from '../../providers/local/config.js';
import { dirname, resolve as resolvePath } from 'node:path';
import type { ConfigHost } from '../config/host.js';
import { InterpolationError, Interpolator } from '../config/interpolate.js';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { parseIni, type Entry, type Section } from '../ini/parse.js';
import { isSecretKey, Secret } from '../secret.js';
import type { ProviderConfig, ProviderType } from './types.js';

/** The settings each provider accepts, besides `provider` and `name`. */
const COMMON = ['username', 'secret', 'secret_file', 'image', 'size', 'region', 'endpoint', 'key_name'];
export const PROVIDER_KEYS: Record<ProviderType, string[]> = {
  local: [...COMMON, 'bridge', 'subnet', 'proxy_port', 'lxc_path', 'mirror'],
  ec2: [...COMMON, 'subnet_id', 'security_group', 'availability_zone', 'session_token', 'profile'],
  openstack: [...COMMON, 'auth_url', 'tenant', 'project', 'domain', 'network', 'password'],
  rackspace: [...COMMON, 'auth_url', 'network', 'api_key'],
  kvm: [...COMMON, 'uri', 'pool', 'base_image', 'network', 'bridge', 'subnet'],
};

/** `$SILVER_CONFIG` (or, as before, `$SILVERLINING_CONFIG`), else `~/.silverlining.conf`. */
export function userConfigPath(host: ConfigHost): string {
  return host.env['SILVER_CONFIG'] ?? host.env['SILVERLINING_CONFIG'] ?? `${host.home}/.silverlining.conf`;
}

/**
 * The `[provider]` section of a nodeset, completed from `[provider:NAME]` of the user's
 * config when it names one. Inline keys win over the user's config. No section: `local`.
 */
export function resolveProvider(
  section: Section | undefined,
  nodesetFile: string,
  values: Interpolator,
  host: ConfigHost,
  diagnostics: Diagnostic[],
): ProviderConfig {
  const layers: { section: Section; values: Interpolator; baseDir: string }[] = [];
  let name: string | null = null;

  const nameEntry = section?.entries.get('name');
  if (section && nameEntry) {
    name = tryValue(values, 'provider', nameEntry, diagnostics);
    if (name !== null) {
      const path = userConfigPath(host);
      const text = host.readFile(path);
      if (text === undefined) {
        diagnostics.push(diagnostic(nameEntry.file, nameEntry.line, 'name', `provider "${name}" needs ${path}, which cannot be read`));
      } else {
        const user = parseIni(text, path);
        diagnostics.push(...user.diagnostics);
        const named = user.doc.sections.get(`provider:${name}`);
        if (!named) {
          diagnostics.push(diagnostic(nameEntry.file, nameEntry.line, 'name', `no [provider:${name}] section in ${path}`));
        } else {
          layers.push({ section: named, values: new Interpolator(user.doc, host.env), baseDir: dirname(path) });
        }
      }
    }
  }
  if (section) layers.push({ section, values, baseDir: dirname(nodesetFile) });

  // Later layers win.
  const merged = new Map<string, { entry: Entry; values: Interpolator; baseDir: string; section: string; layer: number }>();
  layers.forEach((layer, index) => {
    for (const [key, entry] of layer.section.entries) {
      if (layer.section === section && key === 'name') continue;
      merged.set(key, { entry, values: layer.values, baseDir: layer.baseDir, section: layer.section.name, layer: index });
    }
  });
  // `secret` and `secret_file` are one setting: the later layer's wins; both in one layer is an error.
  const secret = merged.get('secret');
  const secretFile = merged.get('secret_file');
  if (secret && secretFile) {
    if (secret.layer === secretFile.layer) {
      diagnostics.push(diagnostic(secretFile.entry.file, secretFile.entry.line, 'secret_file', 'set either secret or secret_file, not both'));
    }
    merged.delete(secret.layer >= secretFile.layer ? 'secret_file' : 'secret');
  }

  let type: ProviderType = 'local';
  const typeEntry = merged.get('provider');
  if (typeEntry) {
    const t = tryValue(typeEntry.values, typeEntry.section, typeEntry.entry, diagnostics);
    if (t !== null) {
      if (t in PROVIDER_KEYS) type = t as ProviderType;
      else {
        diagnostics.push(diagnostic(typeEntry.entry.file, typeEntry.entry.line, 'provider', `unknown provider "${t}" (known: ${Object.keys(PROVIDER_KEYS).join(', ')})`));
      }
    }
  }

  const allowed = PROVIDER_KEYS[type];
  const settings: Record<string, string | Secret> = {};
  for (const [key, m] of merged) {
    if (key === 'provider') continue;
    if (!allowed.includes(key)) {
      diagnostics.push(diagnostic(m.entry.file, m.entry.line, key, `unknown key for provider ${type} (known: ${allowed.join(', ')})`));
      continue;
    }
    const v = tryValue(m.values, m.section, m.entry, diagnostics);
    if (v === null) continue;
    if (key === 'secret_file') {
      const path = resolvePath(m.baseDir, v.replace(/^~(?=\/)/, host.home));
      const content = host.readFile(path);
      if (content === undefined) {
        diagnostics.push(diagnostic(m.entry.file, m.entry.line, key, `cannot read ${path}`));
        continue;
      }
      settings['secret_file'] = path;
      settings['secret'] = new Secret(content.trim());
      continue;
    }
    const problem = SETTING_CHECKS[type]?.[key]?.(v);
    if (problem) {
      diagnostics.push(diagnostic(m.entry.file, m.entry.line, key, problem));
      continue;
    }
    settings[key] = isSecretKey(key) ? new Secret(v) : v;
  }
  return { type, name, settings, ...(section ? {} : { implicit: true as const }) };
}

/** Settings checked where they are written (a bad one is a located error, not an internal one later). */
const SETTING_CHECKS: Partial<Record<ProviderType, Record<string, (v: string) => string | null>>> = {
  local: {
    bridge: (v) => (/^[a-zA-Z0-9_-]{1,15}$/.test(v) ? null : `must be an interface name of at most 15 letters, digits, _ or -, got "${v}"`),
    subnet: (v) => {
      try {
        parseSubnet(v);
        return null;
      } catch (e) {
        return (e as Error).message.replace(/^local provider: /, '');
      }
    },
    proxy_port: (v) => (/^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535 ? null : `must be a port number, got "${v}"`),
    lxc_path: (v) => (/^\/[A-Za-z0-9._/-]*$/.test(v) && !v.split('/').includes('..') ? null : `must be an absolute path of letters, digits and . _ / -, got "${v}"`),
    // (a Debian mirror's URL, as apt and debootstrap take it; its host is the one the package
    // proxy lets through)
    mirror: (v) => {
      let url: URL;
      try {
        url = new URL(v);
      } catch {
        return `must be an http or https URL of a Debian mirror (scheme, host and path), got "${v}"`;
      }
      return /^https?:$/.test(url.protocol) && url.hostname && !url.username && !url.password && !/[\s'"\\]/.test(v) ? null : `must be an http or https URL with a host and no user or password, got "${v}"`;
    },
  },
};

/** How many nodes the local provider's /24 holds (addresses .10 to .250). */
export const LOCAL_CAPACITY = 241;

function tryValue(values: Interpolator, section: string, entry: Entry, diagnostics: Diagnostic[]): string | null {
  try {
    return values.value(section, entry);
  } catch (e) {
    if (e instanceof InterpolationError) {
      diagnostics.push(e.diagnostic);
      return null;
    }
    throw e;
  }
}
