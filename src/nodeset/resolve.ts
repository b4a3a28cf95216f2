import { dirname, join, relative } from 'node:path';
import { resolveAccess } from './access.js';
import { SERVICES } from '../services/index.js';
import type { ConfigHost } from '../config/host.js';
import { InterpolationError, Interpolator } from '../config/interpolate.js';
import { loadLayered } from '../config/load.js';
import { ConfigError, diagnostic, type Diagnostic } from '../diagnostics.js';
import type { Entry, IniDocument, Section } from '../ini/parse.js';
import { LOCAL_CAPACITY, resolveProvider } from './provider-config.js';
import { parseRollout, type BatchEntry } from './rollout.js';
import type { BackupSchedule, TlsSettings, Location, NodeSpec, Nodeset, Role, Size } from './types.js';
import { DEFAULT_ACME_DIRECTORY } from './types.js';
import { Secret } from '../secret.js';

const PEM_CERTS = /^(-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n)+$/;
import { appNameProblem, backupCalendarProblem, checkHostname, DEFAULT_BACKUP_KEEP, LOCATION_PATH, NODESET_NAME, parseBool, parseCount, parseSize } from './values.js';

/** Services the setup layers know how to run. */
export const KNOWN_SERVICES = [...SERVICES.keys()].sort();

const SECTION_KEYS: Record<string, string[]> = {
  general: ['name', 'base_domain', 'set_etc_hosts', 'extends'],
  appserver: ['locations', 'nodes', 'size', 'node_name', 'load_balancer', 'image', 'rollout'],
  balancer: ['node_name', 'size', 'hostnames', 'image', 'tls', 'hsts', 'acme_directory', 'acme_email', 'acme_ca_bundle', 'nodes', 'virtual_address'],
  service: ['nodes', 'size', 'node_name', 'backup', 'backup_keep'],
  access: ['deployers', 'admins'],
};

/** Reads, merges and resolves a nodeset file; throws ConfigError with every problem found. */
export function loadNodeset(path: string, host: ConfigHost, cwd = process.cwd()): Nodeset {
  const display = path.startsWith('/') ? relative(cwd, path) || path : path;
  const loaded = loadLayered(path, host, display.startsWith('..') ? path : display);
  if (loaded.diagnostics.length > 0 && loaded.doc.sections.size === 0) throw new ConfigError(loaded.diagnostics);
  const { nodeset, diagnostics } = resolveNodeset(loaded.doc, path, host);
  const all = [...loaded.diagnostics, ...diagnostics];
  if (all.length > 0 || !nodeset) throw new ConfigError(all);
  return nodeset;
}

/** Pure resolution of a merged document into a typed nodeset, with every problem located. */
export function resolveNodeset(doc: IniDocument, path: string, host: ConfigHost): { nodeset: Nodeset | null; diagnostics: Diagnostic[] } {
  const r = new Resolution(doc, host);
  const nodeset = r.run(path);
  return { nodeset, diagnostics: r.diagnostics };
}

interface TierSpec {
  role: Role;
  section: Section;
  count: number;
  prefix: string;
}

class Resolution {
  readonly diagnostics: Diagnostic[] = [];
  private readonly values: Interpolator;

  constructor(
    private readonly doc: IniDocument,
    private readonly host: ConfigHost,
  ) {
    this.values = new Interpolator(doc, host.env);
  }

  run(path: string): Nodeset | null {
    this.checkSectionsAndKeys();
    const general = this.doc.sections.get('general');
    const name = this.required(general, 'general', 'name', (v) => (NODESET_NAME.test(v) ? null : `"${v}" must be lowercase letters, digits and "-", at most 40 characters`));
    const baseDomain = this.optional(general, 'base_domain', (v) => checkHostname(v));
    const setEtcHosts = this.bool(general, 'set_etc_hosts') ?? true;
    const provider = resolveProvider(this.doc.sections.get('provider'), path, this.values, this.host, this.diagnostics);
    const defaultSize = this.providerSize(provider.settings['size']);

    const appserver = this.doc.sections.get('appserver');
    const balancer = this.doc.sections.get('balancer');
    const tiers: TierSpec[] = [];
    if (appserver) tiers.push({ role: 'appserver', section: appserver, count: this.count(appserver) ?? 1, prefix: 'app' });
    const services: string[] = [];
    const backupSchedules: Record<string, BackupSchedule> = {};
    for (const section of this.doc.sections.values()) {
      if (!section.name.startsWith('service:')) continue;
      const svc = section.name.slice('service:'.length);
      services.push(svc);
      tiers.push({ role: `service:${svc}`, section, count: this.count(section) ?? 1, prefix: svc });
      const schedule = this.backupSchedule(section);
      if (schedule) backupSchedules[svc] = schedule;
    }

    const appCount = appserver ? (this.count(appserver) ?? 1) : 0;
    const explicitLb = appserver ? this.bool(appserver, 'load_balancer') : null;
    const loadBalancer = explicitLb ?? (appCount > 1 || balancer !== undefined);
    if (explicitLb === false && balancer) {
      const e = appserver!.entries.get('load_balancer')!;
      this.diagnostics.push(diagnostic(e.file, e.line, 'load_balancer', 'is false but the nodeset has a [balancer] section'));
    }
    if (loadBalancer && appCount === 0) {
      const where = balancer ?? appserver;
      if (where) this.diagnostics.push(diagnostic(where.file, where.line, balancer ? '[balancer]' : 'load_balancer', 'a load balancer needs at least one app server'));
    }

    const locations = appserver ? this.locations(appserver) : [];
    const rollout = appserver ? this.rollout(appserver) : null;
    const nodes: NodeSpec[] = [];
    for (const tier of tiers) nodes.push(...this.expandTier(tier, baseDomain, defaultSize));
    let hostnames: string[] = [];
    let virtualAddress: string | null = null;
    if (loadBalancer) {
      const section = balancer ?? this.implicitBalancer(appserver);
      if (section) {
        const pair = balancer ? this.balancerPair(balancer, provider) : null;
        if (pair) virtualAddress = pair;
        nodes.push(...this.expandTier({ role: 'balancer', section, count: pair ? 2 : 1, prefix: 'balancer' }, baseDomain, defaultSize));
        hostnames = this.hostnames(balancer, locations);
      }
    }
    const tls = this.tls(balancer, appserver, locations, loadBalancer, hostnames);
    const access = resolveAccess(this.doc.sections.get('access'), (s, e) => this.value(s, e), this.host, this.diagnostics);
    this.checkUniqueNames(nodes);
    if (provider.type === 'local' && nodes.length > LOCAL_CAPACITY) {
      const where = appserver ?? general;
      if (where) this.diagnostics.push(diagnostic(where.file, where.line, `[${where.name}]`, `the nodeset has ${nodes.length} nodes; the local provider's /24 holds ${LOCAL_CAPACITY}`));
    }
    if (nodes.length === 0 && general && this.diagnostics.length === 0) {
      this.diagnostics.push(diagnostic(general.file, general.line, '[general]', 'the nodeset implies no nodes: add an [appserver] or [service:NAME] section'));
    }

    if (this.diagnostics.length > 0 || name === null) return null;
    return { name, file: path, baseDomain, setEtcHosts, provider, loadBalancer, nodes, locations, hostnames, services, backupSchedules, ...(tls ? { tls } : {}), ...(virtualAddress ? { virtualAddress } : {}), ...(access.deployers.length || access.admins.length ? { access } : {}), ...(rollout ? { rollout } : {}) };
  }

  /** `rollout = 1, 25%` of [appserver]: the activation batches (absent: null, one at a time). */
  private rollout(section: Section): BatchEntry[] | null {
    const problem = (v: string) => {
      const parsed = parseRollout(v);
      return parsed.ok ? null : parsed.error;
    };
    const v = this.optional(section, 'rollout', problem);
    const parsed = v === null ? null : parseRollout(v);
    return parsed?.ok ? parsed.value : null;
  }

  /**
   * HTTPS on the balancer: `tls = acme` (certificates from an ACME server for every name in
   * hostnames: acme_directory, default Let's Encrypt; acme_email; acme_ca_bundle, a PEM file on
   * this machine of CA certificates to trust for a private ACME server) or `tls = FILE` (one PEM
   * with the chain and the key, read like a secret); `hsts = SECONDS` (off by default). An
   * https:// location needs one of them.
   */
  private tls(balancer: Section | undefined, appserver: Section | undefined, locations: Location[], loadBalancer: boolean, hostnames: string[]): TlsSettings | null {
    const modeEntry = balancer?.entries.get('tls');
    const mode = this.optional(balancer, 'tls', () => null)?.trim() ?? 'off';
    const acmeKeys = ['acme_directory', 'acme_email', 'acme_ca_bundle'];
    for (const key of acmeKeys) {
      const e = balancer?.entries.get(key);
      if (e && mode !== 'acme') this.diagnostics.push(diagnostic(e.file, e.line, key, 'is only meaningful with tls = acme'));
    }
    const hstsEntry = balancer?.entries.get('hsts');
    if (hstsEntry && mode === 'off') this.diagnostics.push(diagnostic(hstsEntry.file, hstsEntry.line, 'hsts', 'is only meaningful with tls = acme or tls = FILE'));
    const https = locations.find((l) => l.scheme === 'https');
    if (mode === 'off') {
      if (https) {
        const e = appserver?.entries.get('locations');
        if (e) this.diagnostics.push(diagnostic(e.file, e.line, 'locations', `${https.url} needs HTTPS on the balancer: tls = acme (or tls = FILE) in [balancer]`));
      }
      return null;
    }
    if (!loadBalancer || !balancer) {
      const e = modeEntry ?? appserver?.entries.get('locations');
      if (e) this.diagnostics.push(diagnostic(e.file, e.line, e.key, 'HTTPS is served by the balancer: the nodeset needs a [balancer]'));
      return null;
    }
    let hsts: number | null = null;
    if (hstsEntry) {
      const v = this.value(balancer, hstsEntry)?.trim() ?? '';
      if (!/^(0|[1-9][0-9]{0,8})$/.test(v) || Number(v) > 63072000) this.diagnostics.push(diagnostic(hstsEntry.file, hstsEntry.line, 'hsts', `must be a whole number of seconds from 0 to 63072000, got "${v}"`));
      else hsts = Number(v) || null;
    }
    const file = (entry: Entry, path: string) => this.host.readFile(path.startsWith('/') ? path : join(dirname(entry.file), path));
    if (mode === 'acme') {
      // (HTTP-01, the challenge silver answers, gives no certificate for a wildcard name)
      const wild = hostnames.filter((h) => h.includes('*'));
      if (wild.length > 0) this.diagnostics.push(diagnostic(modeEntry!.file, modeEntry!.line, 'tls', `acme cannot get a certificate for ${wild.join(', ')} (a wildcard needs a DNS challenge): name the hosts, or use tls = FILE`));
      const directory = this.optional(balancer, 'acme_directory', (v) => (/^https:\/\/[A-Za-z0-9.-]+(:\d{1,5})?(\/[A-Za-z0-9._~\/-]*)?$/.test(v.trim()) ? null : `"${v}" must be an https:// URL of an ACME directory`))?.trim() ?? DEFAULT_ACME_DIRECTORY;
      const email = this.optional(balancer, 'acme_email', (v) => (/^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/.test(v.trim()) ? null : `"${v}" is not an e-mail address`))?.trim() ?? null;
      let ca: string | null = null;
      const caEntry = balancer.entries.get('acme_ca_bundle');
      const caPath = this.optional(balancer, 'acme_ca_bundle', () => null)?.trim();
      if (caPath && caEntry) {
        const text = file(caEntry, caPath);
        if (text === undefined) this.diagnostics.push(diagnostic(caEntry.file, caEntry.line, 'acme_ca_bundle', `cannot read ${caPath}`));
        else if (!PEM_CERTS.test(text.trim() + '\n')) this.diagnostics.push(diagnostic(caEntry.file, caEntry.line, 'acme_ca_bundle', `${caPath} is not a PEM file of certificates`));
        else ca = text.trim() + '\n';
      }
      return { mode: 'acme', hosts: hostnames, hsts, acme: { directory, email, ca }, pem: null };
    }
    const text = file(modeEntry!, mode);
    if (text === undefined) {
      this.diagnostics.push(diagnostic(modeEntry!.file, modeEntry!.line, 'tls', `must be acme, off, or a PEM file with the chain and the key: cannot read ${mode}`));
      return null;
    }
    if (!/-----BEGIN CERTIFICATE-----/.test(text) || !/-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text)) {
      this.diagnostics.push(diagnostic(modeEntry!.file, modeEntry!.line, 'tls', `${mode} must hold the certificate chain and its private key (PEM)`));
      return null;
    }
    return { mode: 'file', hosts: hostnames, hsts, acme: null, pem: new Secret(text.trim() + '\n') };
  }

  /**
   * `nodes = 2` and `virtual_address = ADDRESS` in [balancer]: a pair holding one address with
   * VRRP (keepalived). Layer-2 failover: the local provider only for now (its subnet, outside the
   * range it hands to nodes, .10-.250, and not the host's .1). The address, or null for one
   * balancer.
   */
  private balancerPair(balancer: Section, provider: { type: string; settings: Record<string, unknown> }): string | null {
    const countEntry = balancer.entries.get('nodes');
    const count = countEntry ? this.count(balancer) : 1;
    const vEntry = balancer.entries.get('virtual_address');
    if (count !== null && count !== 1 && count !== 2 && countEntry) this.diagnostics.push(diagnostic(countEntry.file, countEntry.line, 'nodes', 'a balancer tier has 1 node or a pair of 2'));
    if (count !== 2) {
      if (vEntry) this.diagnostics.push(diagnostic(vEntry.file, vEntry.line, 'virtual_address', 'is only meaningful with nodes = 2'));
      return null;
    }
    if (!vEntry) {
      this.diagnostics.push(diagnostic(countEntry!.file, countEntry!.line, 'nodes', 'a balancer pair needs virtual_address = ADDRESS (the address both hold in turn)'));
      return null;
    }
    const v = this.value(balancer, vEntry)?.trim() ?? '';
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v);
    if (!m || m.slice(1).some((o) => Number(o) > 255 || (o.length > 1 && o.startsWith('0')))) {
      this.diagnostics.push(diagnostic(vEntry.file, vEntry.line, 'virtual_address', `"${v}" is not an IPv4 address`));
      return null;
    }
    if (provider.type !== 'local') {
      this.diagnostics.push(diagnostic(vEntry.file, vEntry.line, 'virtual_address', `a balancer pair moves its address with VRRP on one network segment: not supported on the ${provider.type} provider yet (use the provider's floating address or load balancer; see the README)`));
      return null;
    }
    const subnet = String(provider.settings['subnet'] ?? '10.213.0.0/24');
    const prefix = subnet.split('.').slice(0, 3).join('.');
    const last = Number(m[4]);
    if (`${m[1]}.${m[2]}.${m[3]}` !== prefix || last < 2 || last > 254 || (last >= 10 && last <= 250)) {
      this.diagnostics.push(diagnostic(vEntry.file, vEntry.line, 'virtual_address', `${v} must be in the local subnet ${subnet}, outside the range it gives nodes (.10-.250) and not the host's .1: ${prefix}.2-.9 or .251-.254`));
      return null;
    }
    return v;
  }

  /** `backup = daily|hourly|weekly|CALENDAR` and `backup_keep = N` (default 7) of a [service:NAME]. */
  private backupSchedule(section: Section): BackupSchedule | null {
    const calendar = this.optional(section, 'backup', (v) => backupCalendarProblem(v));
    const keepEntry = section.entries.get('backup_keep');
    let keep = DEFAULT_BACKUP_KEEP;
    if (keepEntry) {
      const v = this.value(section, keepEntry);
      if (v !== null && (!/^[1-9][0-9]{0,3}$/.test(v.trim()) || Number(v) > 1000)) this.diagnostics.push(diagnostic(keepEntry.file, keepEntry.line, 'backup_keep', `must be a whole number from 1 to 1000, got "${v}"`));
      else if (v !== null) keep = Number(v);
      if (!section.entries.has('backup')) this.diagnostics.push(diagnostic(keepEntry.file, keepEntry.line, 'backup_keep', 'is only meaningful with backup ='));
    }
    return calendar ? { calendar: calendar.trim(), keep } : null;
  }

  private checkSectionsAndKeys(): void {
    if (!this.doc.sections.has('general')) {
      this.diagnostics.push(diagnostic(this.doc.file, 1, '[general]', 'missing section (it must give at least name)'));
    }
    for (const section of this.doc.sections.values()) {
      const kind = section.name.startsWith('service:') ? 'service' : section.name;
      if (section.name === 'provider' || section.name === 'vars' || section.name.startsWith('vars:')) continue;
      if (kind === 'service') {
        const svc = section.name.slice('service:'.length);
        if (!KNOWN_SERVICES.includes(svc)) {
          this.diagnostics.push(diagnostic(section.file, section.line, `[${section.name}]`, `unknown service "${svc}" (known: ${KNOWN_SERVICES.join(', ')})`));
        }
      }
      const keys = SECTION_KEYS[kind];
      if (!keys) {
        this.diagnostics.push(diagnostic(section.file, section.line, `[${section.name}]`, 'unknown section (known: general, provider, appserver, service:NAME, balancer, access, vars)'));
        continue;
      }
      for (const entry of section.entries.values()) {
        if (!keys.includes(entry.key)) {
          this.diagnostics.push(diagnostic(entry.file, entry.line, entry.key, `unknown key in [${section.name}] (known: ${keys.join(', ')})`));
        }
      }
      if (kind !== 'service' && kind !== 'appserver' && kind !== 'balancer') this.noNodeIndex(section);
    }
  }

  /** `{{n}}` only means something inside a tier section. */
  private noNodeIndex(section: Section): void {
    for (const entry of section.entries.values()) {
      if (entry.value.includes('{{')) {
        this.diagnostics.push(diagnostic(entry.file, entry.line, entry.key, '{{n}} is only defined in [appserver], [service:NAME] and [balancer]'));
      }
    }
  }

  private value(section: Section, entry: Entry): string | null {
    try {
      return this.values.value(section.name, entry);
    } catch (e) {
      if (e instanceof InterpolationError) {
        this.diagnostics.push(e.diagnostic);
        return null;
      }
      throw e;
    }
  }

  private optional(section: Section | undefined, key: string, check: (v: string) => string | null): string | null {
    const entry = section?.entries.get(key);
    if (!section || !entry) return null;
    const v = this.value(section, entry);
    if (v === null) return null;
    const problem = check(v);
    if (problem) {
      this.diagnostics.push(diagnostic(entry.file, entry.line, key, problem));
      return null;
    }
    return v;
  }

  private required(section: Section | undefined, sectionName: string, key: string, check: (v: string) => string | null): string | null {
    if (section && !section.entries.has(key)) {
      this.diagnostics.push(diagnostic(section.file, section.line, key, `[${sectionName}] ${key} is required`));
      return null;
    }
    return this.optional(section, key, check);
  }

  private bool(section: Section | undefined, key: string): boolean | null {
    const entry = section?.entries.get(key);
    if (!section || !entry) return null;
    const v = this.value(section, entry);
    if (v === null) return null;
    const parsed = parseBool(v);
    if (!parsed.ok) {
      this.diagnostics.push(diagnostic(entry.file, entry.line, key, parsed.error));
      return null;
    }
    return parsed.value;
  }

  private readonly counts = new Map<Section, number | null>();
  private count(section: Section): number | null {
    if (this.counts.has(section)) return this.counts.get(section)!;
    const entry = section.entries.get('nodes');
    let result: number | null = 1;
    if (entry) {
      const v = this.value(section, entry);
      const parsed = v === null ? null : parseCount(v);
      if (parsed && !parsed.ok) this.diagnostics.push(diagnostic(entry.file, entry.line, 'nodes', parsed.error));
      result = parsed?.ok ? parsed.value : null;
    }
    this.counts.set(section, result);
    return result;
  }

  private providerSize(value: unknown): Size | null {
    if (typeof value !== 'string') return null;
    const parsed = parseSize(value);
    if (!parsed.ok) {
      const entry = this.doc.sections.get('provider')?.entries.get('size');
      this.diagnostics.push(diagnostic(entry?.file ?? this.doc.file, entry?.line ?? 1, 'size', parsed.error));
      return null;
    }
    return parsed.value;
  }

  private expandTier(tier: TierSpec, baseDomain: string | null, defaultSize: Size | null): NodeSpec[] {
    const { section, count } = tier;
    const nameEntry = section.entries.get('node_name');
    let template: string | null;
    let where: { file: string; line: number; key: string };
    if (nameEntry) {
      template = this.value(section, nameEntry);
      where = { file: nameEntry.file, line: nameEntry.line, key: 'node_name' };
    } else if (baseDomain) {
      template = tier.role === 'appserver' || count > 1 ? `${tier.prefix}{{n}}.${baseDomain}` : `${tier.prefix}.${baseDomain}`;
      where = { file: section.file, line: section.line, key: 'node_name' };
    } else {
      const general = this.doc.sections.get('general');
      if (general && !general.entries.has('base_domain') || !general) {
        this.diagnostics.push(diagnostic(section.file, section.line, 'node_name', `[${section.name}] needs node_name, or base_domain in [general] to derive it`));
      }
      return [];
    }
    const sizeEntry = section.entries.get('size');
    const sizeTemplate = sizeEntry ? this.value(section, sizeEntry) : null;
    if (template === null || (sizeEntry && sizeTemplate === null)) return [];

    // A tier's own image (a baked one: `silver image bake`), over the provider's.
    const image = this.optional(section, 'image', (v) => (/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/.test(v.trim()) && !v.trim().split('/').includes('..') ? null : `"${v}" is not an image name`))?.trim() ?? null;
    const nodes: NodeSpec[] = [];
    for (let n = 1; n <= count; n++) {
      const name = this.fillIndex(template, n, where);
      if (name === null) return [];
      const problem = checkHostname(name);
      if (problem) {
        this.diagnostics.push(diagnostic(where.file, where.line, where.key, `node ${n}: ${problem}`));
        return [];
      }
      let size = defaultSize;
      if (sizeEntry && sizeTemplate !== null) {
        const text = this.fillIndex(sizeTemplate, n, { file: sizeEntry.file, line: sizeEntry.line, key: 'size' });
        if (text === null) return [];
        const parsed = parseSize(text);
        if (!parsed.ok) {
          this.diagnostics.push(diagnostic(sizeEntry.file, sizeEntry.line, 'size', parsed.error));
          return [];
        }
        size = parsed.value;
      }
      nodes.push({ name: name.toLowerCase(), role: tier.role, index: n, size, ...(image ? { image } : {}) });
    }
    return nodes;
  }

  private fillIndex(template: string, n: number, where: { file: string; line: number; key: string }): string | null {
    let bad: string | null = null;
    const out = template.replace(/\{\{\s*([^}]*?)\s*\}\}/g, (m, name: string) => {
      if (name === 'n') return String(n);
      bad = m;
      return m;
    });
    if (bad) {
      this.diagnostics.push(diagnostic(where.file, where.line, where.key, `unknown placeholder ${bad} (only {{n}} is defined)`));
      return null;
    }
    return out;
  }

  private locations(section: Section): Location[] {
    const entry = section.entries.get('locations');
    if (!entry) return [];
    const lines = this.valueLines(section, entry);
    if (lines === null) return [];
    const out: Location[] = [];
    const seen = new Map<string, number>();
    // (each database name's app, for the clash check: one lookup a location, not a scan)
    const byDb = new Map<string, string>();
    for (const item of lines) {
      const text = item.text;
      const parts = text.split(/\s+/).filter(Boolean);
      const fail = (message: string) => this.diagnostics.push(diagnostic(entry.file, item.line, 'locations', message));
      if (parts.length !== 2) {
        fail(`expected "URL APP_NAME", got "${text}"`);
        continue;
      }
      const [urlText, app] = parts as [string, string];
      let url: URL;
      if (!/^https?:\/\/[^/\s]/i.test(urlText)) {
        fail(`"${urlText}" must start with http:// or https:// and a host name`);
        continue;
      }
      try {
        url = new URL(urlText);
      } catch {
        fail(`"${urlText}" is not a URL`);
        continue;
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        fail(`"${urlText}" must start with http:// or https://`);
        continue;
      }
      const hostProblem = checkHostname(url.hostname);
      if (hostProblem) {
        fail(hostProblem);
        continue;
      }
      if (url.search || url.hash || url.username) {
        fail(`"${urlText}" must be scheme, host and path only`);
        continue;
      }
      if (appNameProblem(app)) {
        fail(appNameProblem(app)!);
        continue;
      }
      const path = url.pathname.endsWith('/') ? url.pathname : `${url.pathname}/`;
      // (no %: nginx matches the decoded path, HAProxy the raw one — such a location is never reached)
      if (!LOCATION_PATH.test(path) || path.includes('//') || path.includes('%')) {
        fail(`the path of "${urlText}" may hold only letters, digits and . _ ~ / - (it goes into nginx and HAProxy configurations; no %-escapes)`);
        continue;
      }
      const db = app.replaceAll('-', '_');
      const clash = byDb.get(db);
      if (clash !== undefined && clash !== app) {
        fail(`apps "${clash}" and "${app}" would share one database name (${db})`);
        continue;
      }
      if (url.port === '0') {
        fail(`"${urlText}": port 0 is no port`);
        continue;
      }
      const port = url.port ? Number(url.port) : null;
      const normal = `${url.protocol}//${url.hostname}${port ? `:${port}` : ''}${path}`;
      // (the balancer and the app servers' nginx route by host and path: a scheme or a port does
      // not tell two locations apart — each would be the same nginx location)
      const routed = `${url.hostname}${path}`;
      const dup = seen.get(routed);
      if (dup !== undefined) {
        fail(`${normal}: host ${url.hostname} and path ${path} are already mapped on line ${dup} (a scheme or a port does not tell locations apart: they are routed by host and path)`);
        continue;
      }
      seen.set(routed, item.line);
      byDb.set(db, app);
      out.push({ url: normal, scheme: url.protocol === 'https:' ? 'https' : 'http', host: url.hostname, port, path, app });
    }
    return out;
  }

  /** The resolved lines of a multi-line value, each with the line it came from. */
  private valueLines(section: Section, entry: Entry): { text: string; line: number }[] | null {
    const v = this.value(section, entry);
    if (v === null) return null;
    const texts = v.split('\n').map((t) => t.trim()).filter(Boolean);
    const same = texts.length === entry.lines.length;
    return texts.map((text, i) => ({ text, line: same ? entry.lines[i]!.line : entry.line }));
  }

  private implicitBalancer(appserver: Section | undefined): Section | undefined {
    return appserver ? { name: 'balancer', file: appserver.file, line: appserver.line, entries: new Map() } : undefined;
  }

  private hostnames(balancer: Section | undefined, locations: Location[]): string[] {
    const entry = balancer?.entries.get('hostnames');
    if (!balancer || !entry) return [...new Set(locations.map((l) => l.host))];
    const lines = this.valueLines(balancer, entry);
    if (lines === null) return [];
    const out: string[] = [];
    for (const item of lines) {
      for (const name of item.text.split(/\s+/).filter(Boolean)) {
        const problem = checkHostname(name, true);
        if (problem) this.diagnostics.push(diagnostic(entry.file, item.line, 'hostnames', problem));
        else if (!out.includes(name.toLowerCase())) out.push(name.toLowerCase());
      }
    }
    // (a location whose host none of them covers would answer 404 for ever, and get no certificate)
    const covered = (host: string) => out.some((h) => h === host || (h.startsWith('*.') && host.endsWith(h.slice(1))));
    for (const host of new Set(locations.map((l) => l.host))) {
      if (out.length > 0 && !covered(host)) this.diagnostics.push(diagnostic(entry.file, entry.line, 'hostnames', `${host} (the host of a location) is not among them: the balancer would answer it 404`));
    }
    return out;
  }

  private checkUniqueNames(nodes: NodeSpec[]): void {
    const byName = new Map<string, NodeSpec>();
    for (const node of nodes) {
      const prior = byName.get(node.name);
      if (prior) {
        const section = this.sectionOf(node.role);
        const entry = section?.entries.get('node_name');
        this.diagnostics.push(
          diagnostic(entry?.file ?? section?.file ?? this.doc.file, entry?.line ?? section?.line ?? 1, 'node_name',
            `duplicate node name ${node.name} (${node.role} ${node.index} and ${prior.role} ${prior.index}; use {{n}} for several nodes)`),
        );
        continue;
      }
      byName.set(node.name, node);
    }
  }

  private sectionOf(role: Role): Section | undefined {
    return this.doc.sections.get(role);
  }
}
