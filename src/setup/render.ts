import { createHash } from 'node:crypto';
import type { Nodeset } from '../nodeset/types.js';

/**
 * Configuration files silver renders itself and sends with their MD5 sums: a node compares a
 * sum it read with one `md5sum` call instead of reading and comparing the file in the shell.
 */
export function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

/** A rendered file as layer variables: its content and its MD5 sum (for `ensure_known`). */
export function fileVars(name: string, content: string): Record<string, string> {
  return { [name]: content, [`${name}_MD5`]: md5(content) };
}

const HEALTH = '\tlocation = /.silver/health { access_log off; default_type text/plain; return 200 "ok\\n"; }';

/**
 * The header by which a balancer names the location (routeId) it routed a request to. The app servers' nginx routes by the path as it decodes and resolves it, the
 * balancer by the path as sent: `/blog/../x` or `/%62log/x` would otherwise reach through one
 * location's backend — its maintenance or read-only mode — the app of another. nginx answers 421
 * to a request whose header names another location than the one it chose; a request without it
 * (a nodeset without a balancer, or a balancer of an older silver while setup-node runs) passes:
 * the balancer sets it on every request, whatever the client sent.
 */
export const ROUTE_HEADER = 'X-Silver-Backend';

/**
 * A location's name in ROUTE_HEADER: of its host and path alone (`loc_` and 12 hex digits of
 * their sha256), so that it stays the same when other locations come or go — an app server and a
 * balancer set up a moment apart (or a balancer setup-node could not reach) still agree.
 */
export function routeId(location: { host: string; path: string }): string {
  return `loc_${createHash('sha256').update(`${location.host} ${location.path}`).digest('hex').slice(0, 12)}`;
}

/**
 * An app server's front proxy: one server per host name, a location per app, the health URL.
 * `balanced`: a balancer sets the scheme and the client's address (only the nodeset's nodes reach
 * port 80 then); without one the clients come straight here, and what an app is told of them is
 * this proxy's own word — never a client's X-Forwarded-Proto or X-Forwarded-For.
 */
export function nginxFrontConf(ns: Pick<Nodeset, 'locations'>, balanced = true): string {
  const out = [
    '# managed by silver: the front proxy of this app server',
    'include /etc/silverlining/nginx/upstream-*.conf;',
    ...(balanced ? ['map $http_x_forwarded_proto $silver_proto {', '\tdefault $http_x_forwarded_proto;', '\t""      $scheme;', '}'] : []),
    'server {',
    '\tlisten 80 default_server;',
    '\tserver_name _;',
    HEALTH,
    '\tlocation / { default_type text/plain; return 404 "no application here\\n"; }',
    '}',
  ];
  // Host names in byte order, each once (as `sort -u` under LC_ALL=C would give them).
  const hosts = [...new Set(ns.locations.map((l) => l.host))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const host of hosts) {
    out.push('server {', '\tlisten 80;', `\tserver_name ${host};`, HEALTH);
    ns.locations.filter((x) => x.host === host).forEach((l, i) => {
      // Files of the app's active static folder first (when it has one), the app second.
      out.push(
        `\tlocation ${l.path} {`,
        `\t\tif ($http_${ROUTE_HEADER.toLowerCase().replaceAll('-', '_')} !~ "^(${routeId(l)})?$") { return 421 "misdirected request\\n"; }`,
        `\t\talias /var/lib/silverlining/apps/${l.app}/static-active/;`,
        `\t\ttry_files $uri @silver_${i + 1};`,
        '\t\tdisable_symlinks if_not_owner;',
        '\t\tadd_header Cache-Control "public, max-age=300";',
        '\t}',
        `\tlocation @silver_${i + 1} {`,
        `\t\tproxy_pass http://silver_app_${l.app};`,
        '\t\tproxy_http_version 1.1;',
        '\t\tproxy_set_header Connection "";',
        '\t\tproxy_set_header Host $host;',
        `\t\tproxy_set_header X-Forwarded-For ${balanced ? '$proxy_add_x_forwarded_for' : '$remote_addr'};`,
        `\t\tproxy_set_header X-Forwarded-Proto ${balanced ? '$silver_proto' : '$scheme'};`,
        `\t\tproxy_set_header X-Forwarded-Prefix ${l.path};`,
        // (the header silver's own requests to an app's update_fetch carry, never a client's)
        '\t\tproxy_set_header X-Silverlining-Update "";',
        '\t\tproxy_next_upstream error timeout http_502;',
        // (a connect on loopback is at once; one that hangs is a port another app holds, whose
        // handshake the firewall drops: see silver-deploy's listeners_sync)
        '\t\tproxy_connect_timeout 5s;',
        // (an app's X-Accel-Redirect would send the request on to another app's named location
        // on this host, past its route check and the balancer's modes for that app)
        '\t\tproxy_ignore_headers X-Accel-Redirect;',
        '\t}',
      );
    });
    out.push('}');
  }
  return `${out.join('\n')}\n`;
}

/** A location as the balancer routes it. */
export interface BalancedLocation {
  host: string;
  path: string;
  app: string;
}

/**
 * The balancer's maintenance and read-only modes (`silver maintenance`, `silver-balancer mode`):
 * a map from an app name, or `*` for every app, to `MODE:RETRY_AFTER:MESSAGE` (MESSAGE: base64
 * of the HTML-escaped text, so the value holds no space, `%`, `"`, `\` or `;`), and the
 * addresses a maintenance lets through (`src -f`). Changed at run time through the admin socket
 * (no reload) and in these files, so a mode survives a restart; every app backend reads them.
 */
export const MODES_MAP = '/etc/haproxy/silver-modes.map';
/** HTTPS: a PEM (chain and key) per host, and the ACME HTTP-01 answers (`silver-acme`). */
export const CERTS_DIR = '/etc/haproxy/certs';
/**
 * The balancer's self-signed certificate for names without one of their own: the first `crt` of
 * the bind line, so HAProxy's default whatever the names in CERTS_DIR (a folder is read in
 * order: `0-a.example.pem` would come first there).
 */
export const DEFAULT_CERT = '/etc/haproxy/silver-default.pem';
export const ACME_MAP = '/etc/haproxy/silver-acme.map';

/** HTTPS on the balancer: its host names (each redirected to HTTPS), HSTS, and a pair's peer. */
export interface BalancerTls {
  hosts: readonly string[];
  hsts: number | null;
  /**
   * tls = acme on a balancer pair: the other balancer's private address, where a validation
   * request this one has no answer for is forwarded (each balancer runs its own ACME client; the
   * ACME server reaches whichever holds the virtual address). null: one balancer, or tls = FILE.
   */
  acmePeer?: string | null;
}

/** The header a validation request forwarded to the peer carries: it is never forwarded again. */
export const ACME_PEER_HEADER = 'X-Silver-Acme-Peer';

/**
 * The frontend's TLS part: port 443 with a certificate per host (SNI; the self-signed default
 * for others), the ACME server's HTTP-01 requests answered from ACME_MAP (on port 80, before
 * anything else), every other plain HTTP request redirected to HTTPS (301), HSTS when asked, and
 * the scheme for the apps in X-Forwarded-Proto. A pair (acmePeer): a plain-HTTP validation
 * request whose token is not in this balancer's map goes to the peer (backend acme_peer), marked
 * with ACME_PEER_HEADER; one that already carries it gets a 404 here (no loop).
 */
function tlsFrontend(tls: BalancerTls): string[] {
  const peer = tls.acmePeer ?? null;
  return [
    `\tbind :443 ssl crt ${DEFAULT_CERT} crt ${CERTS_DIR}/ alpn http/1.1`,
    '\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }',
    '\tacl silver_acme path_beg /.well-known/acme-challenge/',
    ...(peer ? [`\tacl silver_acme_forwarded req.hdr(${ACME_PEER_HEADER}) -m found`] : []),
    `\thttp-request set-var(txn.acme) path,field(4,/),map(${ACME_MAP}) if !{ ssl_fc } silver_acme`,
    '\thttp-request return status 200 content-type text/plain lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
    ...(peer
      ? [
          '\thttp-request return status 404 content-type text/plain string "no such challenge" if !{ ssl_fc } silver_acme silver_acme_forwarded',
          '\thttp-request redirect scheme https code 301 if !{ ssl_fc } !silver_acme',
        ]
      : [
          // (a token this balancer does not have is never redirected to HTTPS, where an app would
          // answer it — for an ACME account of its own, or to use up the CA's limits for the
          // domain: the validation requests are the balancer's)
          '\thttp-request return status 404 content-type text/plain string "no such challenge" if !{ ssl_fc } silver_acme',
          '\thttp-request redirect scheme https code 301 if !{ ssl_fc }',
        ]),
    '\thttp-request set-header X-Forwarded-Proto https if { ssl_fc }',
    ...(tls.hsts ? [`\thttp-response set-header Strict-Transport-Security "max-age=${tls.hsts}" if { ssl_fc }`] : []),
    ...REQUEST_RULES,
    // (before the host names' routes: the first use_backend that matches wins)
    ...(peer ? ['\tuse_backend acme_peer if !{ ssl_fc } silver_acme'] : []),
  ];
}

/**
 * What every request goes through before it is routed. The Host header whole: req.hdr splits a
 * value at its commas, and `Host: a.test:1,b.test` would match b.test's rules while nginx serves
 * a.test — a request with more than one value is refused (routes read req.fhdr). And what the apps
 * are told of the request is the balancer's to say, not the client's: the scheme, the client's
 * address, no forwarded host; and a request that is not safe to repeat is not repeated.
 */
const REQUEST_RULES = [
  '\thttp-request deny deny_status 400 if { req.hdr_cnt(host) gt 1 }',
  '\thttp-request set-header X-Forwarded-Proto http if !{ ssl_fc }',
  '\thttp-request del-header X-Forwarded-Host',
  // (the client's address is the balancer's to say: option forwardfor adds it after these go —
  // a client's own X-Forwarded-For, Forwarded or X-Real-IP would tell an app any address)
  '\thttp-request del-header X-Forwarded-For',
  '\thttp-request del-header Forwarded',
  '\thttp-request del-header X-Real-IP',
  // (a request the app may have acted upon — it answered 502 or 503, or nothing in time — is
  // sent again only when it is safe to repeat; a connection that failed is retried for any)
  '\thttp-request disable-l7-retry unless { method GET HEAD OPTIONS }',
];

/** A pair's peer for the validation requests this balancer cannot answer (see tlsFrontend). */
function acmePeerBackend(peer: string): string[] {
  return ['backend acme_peer', `\thttp-request set-header ${ACME_PEER_HEADER} 1`, `\tserver peer ${peer}:80`];
}

/** Modern TLS only (Mozilla's "intermediate": TLS 1.2 and 1.3, forward-secret AEAD ciphers). */
const TLS_GLOBAL = [
  '\tssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets',
  '\tssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
  '\tssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
];

/** The apps' own pages (`silver-balancer page`, from each app's maintenance.html). */
export const PAGES_MAP = '/etc/haproxy/silver-pages.map';
export const ALLOW_ACL = '/etc/haproxy/silver-allow.acl';

/**
 * The balancer's HAProxy configuration: port 80 for the nodeset's host names, one backend per
 * location (`app_<app>_<i>`, i counting that app's locations from 1) over the app servers (in
 * nodeset.conf's order), each checked with its app's `health_check` under the location's path,
 * with retries and redispatch, so that a server leaving rotation fails no request; in each, the
 * app's maintenance or read-only mode (see MODES_MAP). `health`: app name → health_check path
 * (missing: `/`).
 */
export function haproxyCfg(
  hostnames: readonly string[],
  appservers: readonly { name: string; address: string }[],
  locations: readonly BalancedLocation[],
  health: ReadonlyMap<string, string>,
  /** HTTPS (`tls =`): the host names (each redirected to HTTPS), HSTS, a pair's peer; null: HTTP only. */
  tls: BalancerTls | null = null,
): string {
  const named = backendNames(locations);
  const out = [
    '# managed by silver',
    'global',
    '\tlog /dev/log local0 warning',
    '\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners',
    '\tstats timeout 30s',
    '\tuser haproxy',
    '\tgroup haproxy',
    '\tdaemon',
    ...(tls ? TLS_GLOBAL : []),
    '',
    'defaults',
    '\tmode http',
    '\tlog global',
    '\toption httplog',
    // (the client's address for the apps, through the app servers' front proxy)
    '\toption forwardfor',
    '\toption dontlognull',
    '\ttimeout connect 2s',
    '\ttimeout client 30s',
    '\ttimeout server 60s',
    '\ttimeout http-request 10s',
    '\tretries 3',
    '\toption redispatch 1',
    '\tretry-on conn-failure empty-response response-timeout 502 503',
    '\thttp-reuse safe',
    // A reload (setup-node, set-health) keeps the old process's idle keep-alive connections
    // open until their next request, answered with Connection: close, instead of closing them
    // under a client that is just sending one (which it would see as a reset).
    '\toption idle-close-on-response',
    '',
    'frontend www',
    '\tbind :80',
    ...(tls ? tlsFrontend(tls) : ['\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }', ...REQUEST_RULES]),
    ...frontendRoutes(hostnames, named),
    '',
    'backend unknown_host',
    '\thttp-request return status 404 content-type text/plain string "unknown host"',
  ];
  if (tls?.acmePeer) out.push('', ...acmePeerBackend(tls.acmePeer));
  for (const { backend, location } of named) out.push('', ...locationBackend(backend, location, appservers, health.get(location.app) ?? '/'));
  return `${out.join('\n')}\n`;
}

/** The locations with their backends' names, in nodeset order. */
function backendNames(locations: readonly BalancedLocation[]): { backend: string; location: BalancedLocation }[] {
  const count = new Map<string, number>();
  return locations.map((location) => {
    const i = (count.get(location.app) ?? 0) + 1;
    count.set(location.app, i);
    return { backend: `app_${location.app}_${i}`, location };
  });
}

/**
 * The frontend's routing: other host names 404 (when the nodeset names some), then each host's
 * locations, longest path first; whatever matches no location 404s too.
 */
function frontendRoutes(hostnames: readonly string[], named: readonly { backend: string; location: BalancedLocation }[]): string[] {
  const out: string[] = [];
  if (hostnames.length > 0) {
    // (a wildcard `*.shop.test` is any name that ends in `.shop.test`: HAProxy's -m end)
    const exact = hostnames.filter((h) => !h.startsWith('*.'));
    const wild = hostnames.filter((h) => h.startsWith('*.')).map((h) => h.slice(1));
    if (exact.length) out.push(`\tacl silver_host req.fhdr(host),field(1,:) -i ${exact.join(' ')}`);
    if (wild.length) out.push(`\tacl silver_host req.fhdr(host),field(1,:) -i -m end ${wild.join(' ')}`);
    out.push('\tuse_backend unknown_host if !silver_host');
  }
  const hosts = [...new Set(named.map((n) => n.location.host))];
  for (const host of hosts) {
    // (a stable sort: equal lengths keep nodeset order)
    const own = named.filter((n) => n.location.host === host).sort((a, b) => b.location.path.length - a.location.path.length);
    for (const { backend, location } of own) {
      out.push(`\tuse_backend ${backend} if { req.fhdr(host),field(1,:) -i ${host} } { path_beg ${location.path} }`);
    }
  }
  out.push('\tdefault_backend unknown_host');
  return out;
}

/** The `http-check send` line of a location: its app's health path under the location's path (silver-balancer's check_line writes the same). */
function healthCheckLine(location: BalancedLocation, healthPath: string): string {
  return `\thttp-check send meth GET uri ${location.path.slice(0, -1)}${healthPath} ver HTTP/1.1 hdr Host ${location.host} hdr ${ROUTE_HEADER} ${routeId(location)}`;
}

/** The page a held-back request gets: the mode's message (HTML-escaped by silver-balancer). */
const MODE_PAGE =
  '<!DOCTYPE html><html><head><meta charset=utf-8><title>Service unavailable</title></head><body><p>%[var(txn.silver_mode),field(3,:),b64dec]</p></body></html>';
const modeReturn = (page: string) =>
  `http-request return status 503 content-type "text/html; charset=utf-8" lf-string "${page}" hdr Retry-After "%[var(txn.silver_mode),field(2,:)]" hdr Cache-Control no-store`;
const MODE_RETURN = modeReturn(MODE_PAGE);
/** The app's own page, when it shipped one (base64 in PAGES_MAP, checked by silver-balancer). */
const OWN_PAGE_RETURN = modeReturn('%[var(txn.silver_page),b64dec]');

/**
 * An app backend's modes: the app's own entry of MODES_MAP, else the `*` entry; in maintenance
 * every request but those from ALLOW_ACL's addresses, in read-only every request but GET, HEAD
 * and OPTIONS (and those asking for an upgrade: a WebSocket's tunnel carries writes), gets a 503
 * with Retry-After and the app's own page (PAGES_MAP) or else the message page, before any
 * server is chosen.
 * (Health checks are the balancer's own requests: http-request rules never see them.)
 */
function modeRules(app: string): string[] {
  return [
    `\thttp-request set-var(txn.silver_mode) str(${app}),map_str(${MODES_MAP})`,
    `\thttp-request set-var(txn.silver_mode) str(*),map_str(${MODES_MAP}) unless { var(txn.silver_mode) -m found }`,
    '\tacl silver_maintenance var(txn.silver_mode),field(1,:) -m str maintenance',
    '\tacl silver_read_only var(txn.silver_mode),field(1,:) -m str read-only',
    `\tacl silver_allowed src -f ${ALLOW_ACL}`,
    '\tacl silver_reads method GET HEAD OPTIONS',
    // (a GET that asks for an upgrade — a WebSocket — opens a tunnel that carries writes: no read)
    '\tacl silver_upgrade req.hdr(upgrade) -m found',
    `\thttp-request set-var(txn.silver_page) str(${app}),map_str(${PAGES_MAP}) if silver_maintenance !silver_allowed or silver_read_only !silver_reads or silver_read_only silver_upgrade`,
    `\t${OWN_PAGE_RETURN} if { var(txn.silver_page) -m found }`,
    `\t${MODE_RETURN} if silver_maintenance !silver_allowed`,
    `\t${MODE_RETURN} if silver_read_only !silver_reads`,
    `\t${MODE_RETURN} if silver_read_only silver_upgrade`,
  ];
}

/** One location's backend: a marker `silver-balancer set-health` finds, its modes, checks, the app servers. */
function locationBackend(backend: string, location: BalancedLocation, appservers: readonly { name: string; address: string }[], healthPath: string): string[] {
  return [
    `backend ${backend}`,
    `\t# silver-location ${location.app} ${location.host} ${location.path}`,
    `\thttp-request set-header ${ROUTE_HEADER} ${routeId(location)}`,
    ...modeRules(location.app),
    '\tbalance roundrobin',
    '\toption httpchk',
    healthCheckLine(location, healthPath),
    '\thttp-check expect rstatus ^2',
    '\tdefault-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2',
    ...appservers.map((a) => `\tserver ${a.name} ${a.address}:80 check`),
  ];
}
