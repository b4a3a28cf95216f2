import { keepalivedConf, vrrpPeer } from './keepalived.js';
import { backupVars, type BackupWiring } from './backup-wiring.js';
import { tlsWiringVars, type TlsWiring } from './acme-pair.js';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layerPackages, layersRoot } from '../layers.js';
import type { Nodeset, Role } from '../nodeset/types.js';
import { quoteArg } from '../ssh/quote.js';
import { fileVars, haproxyCfg, md5, nginxFrontConf, type BalancerTls } from './render.js';
import { assignment, scriptBytes, sharedText, type ScriptLine } from './script-bytes.js';
import { SERVICES } from '../services/index.js';
import { modesSummary, restoreEntries, type ModeState } from '../deploy/modes.js';

/** A node as setup sees it: its spec plus the address the provider gave it. */
export interface AddressedNode {
  name: string;
  role: Role;
  address: string;
}

/** The layers a node gets, in order: base, wiring, then its role's layer. */
export function layersFor(role: Role): string[] {
  const roleLayer = role.startsWith('service:') ? `service/${role.slice('service:'.length)}` : role;
  return ['base', 'wire', roleLayer];
}

/** `/etc/silverlining/nodeset.conf` in the design notes' format: `role = name address`. */
export function nodesetConf(nodes: readonly AddressedNode[]): string {
  return nodes.map((n) => `${n.role.replace(':', '.')} = ${n.name} ${n.address}`).join('\n');
}

/** The lines of the managed `/etc/hosts` block: address, full name, and the short name when unique. */
export function hostsLines(nodes: readonly AddressedNode[]): string {
  const shortCount = new Map<string, number>();
  for (const n of nodes) {
    const s = n.name.split('.')[0]!;
    shortCount.set(s, (shortCount.get(s) ?? 0) + 1);
  }
  return nodes
    .map((n) => {
      const s = n.name.split('.')[0]!;
      return s !== n.name && shortCount.get(s) === 1 ? `${n.address} ${n.name} ${s}` : `${n.address} ${n.name}`;
    })
    .join('\n');
}

/**
 * The variables one layer's script gets on one node. `appHealth`: app name → its app.ini
 * `health_check` path, for the balancer's checks (missing: `/`). `modes`: the nodeset's
 * maintenance record (checked: `sanitizeModes`), which a balancer's layer writes into its modes'
 * files only where they are missing.
 */
export function layerVars(
  ns: Nodeset,
  node: AddressedNode,
  all: readonly AddressedNode[],
  layer: string,
  deployKey: string,
  check: boolean,
  appHealth: ReadonlyMap<string, string> = new Map(),
  modes: ModeState | null = null,
  backup: BackupWiring | null = null,
  /** tls = acme on a balancer: what silver kept, whether it orders, the pair's hand-over (acme-pair.ts). */
  tls: TlsWiring | null = null,
  /** The seq of the apps record `appHealth` comes from (0: none): a balancer takes a newer replica's paths after its write. */
  appsSeq = 0,
): Record<string, string> {
  const list = nodeList(all);
  const apps = [...new Set(ns.locations.map((l) => l.app))];
  return {
    SILVER_CHECK: check ? '1' : '0',
    SILVER_NODESET: ns.name,
    SILVER_NODE: node.name,
    SILVER_ROLE: node.role,
    SILVER_ADDRESS: node.address,
    SILVER_LAYER: layer,
    SILVER_PACKAGES: packagesOf(layer, layersRoot()).join(' '),
    ...authorizedVars(ns, deployKey),
    SILVER_APPS: apps.join(' '),
    SILVER_APPSERVER_ADDRS: list.appserverAddrs,
    SILVER_LOCATIONS: ns.locations.map((l) => `${l.host} ${l.path} ${l.app}`).join('\n'),
    SILVER_SET_ETC_HOSTS: ns.setEtcHosts ? 'true' : 'false',
    SILVER_HOSTS_LINES: list.hostsLines,
    SILVER_NODESET_CONF: list.conf,
    SILVER_NODESET_CONF_MD5: list.confMd5,
    ...roleUnits(node.role),
    ...firewall(ns, all, node, list),
    ...renderedFiles(ns, layer, list.appservers, appHealth, node, all, tls),
    ...(layer === 'balancer' ? { ...modeVars(modes), SILVER_APPS_SEQ: String(appsSeq) } : {}),
    ...backupVars(ns, node, layer, backup),
  };
}

/** What every node's variables hold of the whole node list (each as long as the list). */
interface NodeList {
  appservers: AddressedNode[];
  appserverAddrs: string;
  nodeAddrs: string;
  hostsLines: string;
  conf: string;
  confMd5: string;
}

const lists = new WeakMap<readonly AddressedNode[], NodeList>();

/**
 * The node list's parts of the variables, made once per list rather than once per node and
 * layer (which grew with the square of the nodes). `all` is read-only: the same array is the
 * same list.
 */
function nodeList(all: readonly AddressedNode[]): NodeList {
  let list = lists.get(all);
  if (!list) {
    const appservers = all.filter((n) => n.role === 'appserver');
    const conf = nodesetConf(all);
    list = {
      appservers,
      appserverAddrs: appservers.map((n) => n.address).join(' '),
      nodeAddrs: [...new Set(all.map((n) => n.address))].join(' '),
      hostsLines: hostsLines(all),
      conf,
      confMd5: md5(`${conf}\n`),
    };
    lists.set(all, list);
  }
  return list;
}

/** The deploy user's keys (silver's, then the deployers'), and the admins' for root. */
function authorizedVars(ns: Nodeset, deployKey: string): Record<string, string> {
  const keys = `${[deployKey.trim(), ...(ns.access?.deployers ?? [])].join('\n')}\n`;
  const admins = ns.access?.admins ?? [];
  return { SILVER_AUTHORIZED: keys, SILVER_AUTHORIZED_MD5: md5(keys), SILVER_ADMIN_KEYS: admins.length ? `${admins.join('\n')}\n` : '' };
}

/**
 * The base layer's firewall: with a balancer in the nodeset, an app server's port 80 is open to
 * the nodeset's own nodes only (the balancer's modes cannot be walked around); without one, to
 * everyone (the app servers are the site).
 */
function firewall(ns: Nodeset, all: readonly AddressedNode[], node: AddressedNode, list: NodeList): Record<string, string> {
  return {
    SILVER_BALANCED: hasBalancer(ns) ? '1' : '0',
    SILVER_NODE_ADDRS: list.nodeAddrs,
    // (a balancer pair: VRRP from the other balancer)
    SILVER_VRRP_PEER: vrrpPeer(ns, node, all),
  };
}

/** The balancer layer's copy of the nodeset's modes, for `silver-balancer mode restore`. */
function modeVars(modes: ModeState | null): Record<string, string> {
  const m = modes ?? { modes: {}, allow: [] };
  return {
    SILVER_MODES: restoreEntries(m).join(' '),
    SILVER_ALLOW: m.allow.join(' '),
    SILVER_MODES_SUMMARY: modesSummary(m),
  };
}

/**
 * What the base layer needs of the node's role, from the service descriptors: the port a
 * service node serves (empty for other roles) and the units of other roles, kept off.
 */
function roleUnits(role: string): Record<string, string> {
  const units: [string, string][] = [['appserver', 'nginx'], ['balancer', 'haproxy'], ['balancer', 'keepalived'], ...[...SERVICES.values()].map((s): [string, string] => [`service:${s.name}`, s.unit])];
  const svc = role.startsWith('service:') ? SERVICES.get(role.slice('service:'.length)) : undefined;
  return {
    SILVER_SERVICE_PORT: svc ? String(svc.port) : '',
    SILVER_UNITS_OFF: units.filter(([r]) => r !== role).map(([, u]) => u).join(' '),
  };
}

/** The nodeset has a balancer: its app servers serve the nodeset's own nodes alone. */
function hasBalancer(ns: Nodeset): boolean {
  return ns.nodes.some((n) => n.role === 'balancer');
}

/** Files silver renders for a layer (content and MD5 sum as variables, for `ensure_known`). */
function renderedFiles(ns: Nodeset, layer: string, appservers: readonly AddressedNode[], appHealth: ReadonlyMap<string, string>, node: AddressedNode, all: readonly AddressedNode[], tls: TlsWiring | null): Record<string, string> {
  if (layer === 'appserver') return fileVars('SILVER_NGINX_CONF', nginxFrontConf(ns, hasBalancer(ns)));
  if (layer === 'balancer') {
    const vrrp = keepalivedConf(ns, node, all);
    return { ...fileVars('SILVER_HAPROXY_CFG', haproxyCfg(ns.hostnames, appservers, ns.locations, appHealth, tlsOf(ns, node, all))), ...tlsVars(ns, tls), SILVER_VRRP: vrrp ? '1' : '0', ...fileVars('SILVER_KEEPALIVED_CONF', vrrp ?? '') };
  }
  return {};
}

/**
 * The balancer's TLS: its host names (every one redirected to HTTPS), HSTS, and with tls = acme
 * on a pair the other balancer's address (the validation requests this one cannot answer go
 * there: each balancer has its own ACME client, and the ACME server reaches the address holder).
 */
function tlsOf(ns: Nodeset, node: AddressedNode, all: readonly AddressedNode[]): BalancerTls | null {
  if (!ns.tls) return null;
  return { hosts: ns.tls.hosts, hsts: ns.tls.hsts, acmePeer: ns.tls.mode === 'acme' ? vrrpPeer(ns, node, all) || null : null };
}

/**
 * What the balancer layer takes for TLS: the mode, the hosts, and for `acme` what silver-acme
 * reads (acme.conf: the ACME server, the hosts, a pair's virtual address; the ACME server's CA
 * bundle), for a file the PEM (a secret: only here, in the node script on standard input).
 */
function tlsVars(ns: Nodeset, wiring: TlsWiring | null): Record<string, string> {
  const tls = ns.tls;
  if (!tls) return { SILVER_TLS: 'off' };
  const base = { SILVER_TLS: tls.mode, SILVER_TLS_HOSTS: tls.hosts.join(' ') };
  if (tls.mode === 'file') return { ...base, ...fileVars('SILVER_TLS_PEM', tls.pem!.reveal()) };
  const a = tls.acme!;
  // (a pair: the ACME server validates at the virtual address, which decides which balancer
  // renews; silver-acme checks that it passes a validation request on to this balancer before it
  // orders, and hands the certificate to the peer)
  const peer = wiring?.peer?.address;
  const conf = [`directory ${a.directory}`, `email ${a.email ?? '-'}`, `ca ${a.ca ? '/etc/silverlining/acme-ca.pem' : '-'}`, ...(ns.virtualAddress ? [`via ${ns.virtualAddress}`] : []), ...(peer ? [`peer ${peer}`] : []), ...tls.hosts.map((h) => `host ${h}`), ''].join('\n');
  return { ...base, ...fileVars('SILVER_ACME_CONF', conf), ...fileVars('SILVER_ACME_CA', a.ca ?? ''), ...tlsWiringVars(wiring ?? { state: null, order: true, peer: null }) };
}

/** What `make` gives for `key`, made once (the layers' files do not change while silver runs). */
function once<V>(map: Map<string, V>, key: string, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
  }
  return v;
}

const files = new Map<string, string>();
/** A file of the layers' tree, read once. */
export const layerFile = (path: string): string => once(files, path, () => readFileSync(path, 'utf8'));

const packageLists = new Map<string, string[]>();
const packagesOf = (layer: string, root: string): string[] => once(packageLists, join(root, layer), () => layerPackages(layer, root));

const HELPERS = '/usr/local/lib/silverlining/bin';

const helperLists = new Map<string, string[]>();

/** The names of a layer's `bin/` helpers. */
export function helperNames(layer: string, root: string): string[] {
  const dir = join(root, layer, 'bin');
  // (files only: a folder a tool left there, such as Python's __pycache__, is no helper)
  return once(helperLists, dir, () => (existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name).sort() : []));
}

const installs = new Map<string, string[]>();

/** The layer's `bin/` helpers, installed root-owned where the deploy user's sudo rule points. */
function helperInstalls(layer: string, root: string): string[] {
  return once(installs, join(root, layer), () =>
    helperNames(layer, root).map((name) => {
      const raw = layerFile(join(root, layer, 'bin', name));
      const text = raw.endsWith('\n') ? raw : `${raw}\n`;
      return `ensure_dir ${HELPERS} 755 root:root\nensure_known ${HELPERS}/${name} 755 root:root ${md5(text)} ${quoteArg(text)}`;
    }),
  );
}

const pathLists = new Map<string, string[]>();

/**
 * The absolute paths a layer's setup.sh gives to a helper (all arguments, or only the first):
 * literal ones, and ones ending in `$app`, one per app (`for app in $SILVER_APPS; do prestat …`).
 * The node script reads them all at once before the layers run: `prestat` paths (modes and
 * owners) and `ensure_known` files (sums).
 */
function scriptPaths(layer: string, root: string, helper: 'prestat' | 'ensure_known', apps: readonly string[]): string[] {
  return once(pathLists, [root, layer, helper, ...apps].join('\n'), () => {
    const text = layerFile(join(root, layer, 'setup.sh')).replace(/\\\n/g, ' ');
    const out: string[] = [];
    for (const m of text.matchAll(new RegExp(`(?:^|;|do)\\s*${helper}\\s+([^;\\n]*)`, 'gm'))) {
      const words = m[1]!.trim().split(/\s+/);
      for (const w of helper === 'prestat' ? words : words.slice(0, 1)) {
        if (/^\/[^$'"`\\]*$/.test(w)) out.push(w);
        else if (/^\/[^$'"`\\]*\$app$/.test(w)) out.push(...apps.map((a) => w.replace(/\$app$/, a)));
      }
    }
    return out;
  });
}

function assignments(vars: Record<string, string>): ScriptLine[] {
  return Object.entries(vars).map(([k, v]) => assignment(k, v));
}

/** The variables every layer has, with the same value in each. */
function sharedVars(layers: readonly { vars: Record<string, string> }[]): Record<string, string> {
  const [first, ...rest] = layers;
  return Object.fromEntries(Object.entries(first?.vars ?? {}).filter(([k, v]) => rest.every((l) => l.vars[k] === v)));
}

/** A layer's lines: its variables, lib.sh (in a node script: strict mode, lib.sh came first), its helpers, its setup.sh. */
function layerLines(layer: string, vars: Record<string, string>, root: string, withLib: boolean): ScriptLine[] {
  return [
    `# silver layer ${layer}`,
    ...assignments(vars),
    ...(withLib ? [sharedText(layerFile(join(root, 'lib.sh')))] : ['set -eu', 'CHECK=${SILVER_CHECK:-0}']),
    ...helperInstalls(layer, root).map(sharedText),
    sharedText(layerFile(join(root, layer, 'setup.sh'))),
  ];
}

/** The whole script sent to `sh -s`: the variables, lib.sh, the layer's helpers, then its setup.sh. */
export function layerScript(layer: string, vars: Record<string, string>, root = layersRoot(), withLib = true): string {
  return scriptBytes(layerLines(layer, vars, root, withLib)).toString('utf8');
}

export interface LayerOutput {
  changes: string[];
}

/** The changes a layer reported on stdout (`silver-changed:` or, checking only, `silver-would:`). */
export function parseLayerOutput(stdout: string): LayerOutput {
  return { changes: stdout.split('\n').map(changeOf).filter((c): c is string => c !== null) };
}

/** The change a line reports, or null. */
function changeOf(line: string): string | null {
  const m = /^silver-(?:changed|would): (.+)$/.exec(line);
  return m ? m[1]! : null;
}

/**
 * All of a node's layers as one script, so a node costs one remote command: each layer runs in
 * its own subshell between markers (`silver-layer-begin: L`, `silver-layer-end: L RC`), and
 * the first layer that fails stops the rest. silver times the layers by the markers' arrival.
 */
export function nodeScript(layers: { layer: string; vars: Record<string, string> }[], root = layersRoot(), digest?: string, lock?: { token: string; holder: string; ttl: number; repair: boolean }): Buffer {
  // lib.sh once; the installed packages, modes and sums of all layers read once; each layer
  // then runs in a subshell that inherits them.
  const names = layers.map(({ layer }) => layer);
  const shared = sharedVars(layers);
  const apps = (layers[0]?.vars['SILVER_APPS'] ?? '').split(' ').filter(Boolean);
  const packages = [...new Set(names.flatMap((layer) => packagesOf(layer, root)))];
  const helpers = names.flatMap((layer) => helperNames(layer, root).map((n) => `${HELPERS}/${n}`));
  const known = [...helpers, ...names.flatMap((layer) => scriptPaths(layer, root, 'ensure_known', apps))];
  const stat = [...new Set([...(helpers.length ? [HELPERS] : []), ...known, ...names.flatMap((layer) => scriptPaths(layer, root, 'prestat', apps))])];
  const lines: ScriptLine[] = [
    `SILVER_CHECK=${quoteArg(layers[0]?.vars['SILVER_CHECK'] ?? '0')}`,
    // (the run's deploy lock, which a node that gets silver-state now takes at once, and which
    // `silver-deploy repair` acts under when it is setup-node's own: setup-lock.ts)
    ...(lock?.repair ? [`SILVER_REPAIR_TOKEN=${quoteArg(lock.token)}`] : []),
    ...(lock ? [`SILVER_LOCK_TOKEN=${quoteArg(lock.token)}`, `SILVER_LOCK_HOLDER=${quoteArg(Buffer.from(lock.holder, 'utf8').toString('base64'))}`, `SILVER_LOCK_TTL=${lock.ttl}`, `SILVER_FRESH_STATE=0; [ -e ${HELPERS}/silver-state ] || SILVER_FRESH_STATE=1`] : []),
    // Marks that a layer changed something, for the caches below (see layer_begin in lib.sh);
    // in /run, which only root may write (a name in /tmp could be a planted link). Removed when
    // the node script ends (the layers' subshells do not run this trap).
    'SILVER_STALE=/run/silver-stale.$$',
    `trap '[ ! -e "$SILVER_STALE" ] || rm -f "$SILVER_STALE"' EXIT`,
    sharedText(layerFile(join(root, 'lib.sh'))),
    // (the fingerprint of the last full run is gone before this one changes anything)
    'fingerprint_begin',
    'set +e',
    `pkg_cache ${packages.map(quoteArg).join(' ')}`,
    `prestat ${stat.join(' ')}`,
    `prehash ${known.join(' ')}`,
    // The variables all layers share (the node list among them: as long as the nodeset) once,
    // for the layers' subshells to inherit.
    ...assignments(shared),
  ];
  for (const { layer, vars } of layers) {
    const own = Object.fromEntries(Object.entries(vars).filter(([k]) => !(k in shared)));
    lines.push(
      `echo "silver-layer-begin: ${layer}"`,
      '(',
      `layer_begin ${layer}`,
      ...layerLines(layer, own, root, false),
      // (reached only when the layer's script ran whole: set -e)
      'layer_end',
      ')',
      `_rc=$?; echo "silver-layer-end: ${layer} $_rc"`,
      '[ "$_rc" -eq 0 ] || exit "$_rc"',
    );
  }
  // (with the digest of these inputs, which setup-node's probe sends: see fast-path.ts; and the
  // firewall's watcher, once every layer's change to the tables is made: see nft_watch_arm)
  if (digest) lines.push('nft_watch_arm', `fingerprint_end ${digest}`);
  return scriptBytes(lines);
}

export interface LayerEnd {
  layer: string;
  code: number;
  ms: number;
  changes: string[];
}

/** Reads a node script's stdout as it arrives; calls `onEnd` for each finished layer. */
export class LayerStream {
  private buffer = '';
  private changes: string[] = [];
  private began: number;
  readonly ended: LayerEnd[] = [];

  constructor(
    private readonly onEnd: (end: LayerEnd) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.began = now();
  }

  write(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      this.line(line);
    }
  }

  private line(line: string): void {
    const change = changeOf(line);
    if (change !== null) {
      this.changes.push(change);
      return;
    }
    if (line.startsWith('silver-layer-begin: ')) {
      this.changes = [];
      this.began = this.now();
      return;
    }
    const end = /^silver-layer-end: (\S+) (\d+)$/.exec(line);
    if (end) {
      const e = { layer: end[1]!, code: Number(end[2]), ms: this.now() - this.began, changes: this.changes };
      this.ended.push(e);
      this.changes = [];
      this.onEnd(e);
    }
  }
}
