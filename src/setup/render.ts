import { createHash } from 'node:crypto';
import type { Nodeset } from '../nodeset/types.js';

/**
 * Configuration files silver renders itself and sends with their MD5 sums: a node compares a
 * sum it read with one `md5sum` call instead of reading and comparing the file in the shell.
 */
export function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}

const HEALTH = '\tlocation = /.silver/health { access_log off; default_type text/plain; return 200 "ok\\n"; }';

/** An app server's front proxy: one server per host name, a location per app, the health URL. */
export function nginxFrontConf(ns: Pick<Nodeset, 'locations'>): string {
  const out = [
    '# managed by silver: the front proxy of this app server',
    'include /etc/silverlining/nginx/upstream-*.conf;',
    'map $http_x_forwarded_proto $silver_proto {',
    '\tdefault $http_x_forwarded_proto;',
    '\t""      $scheme;',
    '}',
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
    for (const l of ns.locations.filter((x) => x.host === host)) {
      out.push(
        `\tlocation ${l.path} {`,
        `\t\tproxy_pass http://silver_app_${l.app};`,
        '\t\tproxy_http_version 1.1;',
        '\t\tproxy_set_header Connection "";',
        '\t\tproxy_set_header Host $host;',
        '\t\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;',
        '\t\tproxy_set_header X-Forwarded-Proto $silver_proto;',
        `\t\tproxy_set_header X-Forwarded-Prefix ${l.path};`,
        '\t\tproxy_next_upstream error timeout http_502;',
        '\t}',
      );
    }
    out.push('}');
  }
  return `${out.join('\n')}\n`;
}

/**
 * The balancer's HAProxy configuration: port 80 for the nodeset's host names, the app servers
 * (in nodeset.conf's order) with health checks, retries and redispatch, so that a server
 * leaving rotation fails no request.
 */
export function haproxyCfg(hostnames: readonly string[], appservers: readonly { name: string; address: string }[]): string {
  const out = [
    '# managed by silver',
    'global',
    '\tlog /dev/log local0 warning',
    '\tstats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners',
    '\tstats timeout 30s',
    '\tuser haproxy',
    '\tgroup haproxy',
    '\tdaemon',
    '',
    'defaults',
    '\tmode http',
    '\tlog global',
    '\toption httplog',
    '\toption dontlognull',
    '\ttimeout connect 2s',
    '\ttimeout client 30s',
    '\ttimeout server 60s',
    '\ttimeout http-request 10s',
    '\tretries 3',
    '\toption redispatch 1',
    '\tretry-on conn-failure empty-response response-timeout 502 503',
    '\thttp-reuse safe',
    '',
    'frontend www',
    '\tbind :80',
    '\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }',
  ];
  if (hostnames.length > 0) {
    out.push(`\tacl silver_host req.hdr(host),field(1,:) -i ${hostnames.join(' ')}`, '\tuse_backend appservers if silver_host', '\tdefault_backend unknown_host');
  } else {
    out.push('\tdefault_backend appservers');
  }
  out.push(
    '',
    'backend unknown_host',
    '\thttp-request return status 404 content-type text/plain string "unknown host"',
    '',
    'backend appservers',
    '\tbalance roundrobin',
    '\toption httpchk',
    '\thttp-check send meth GET uri /.silver/health ver HTTP/1.1 hdr Host silver-health',
    '\thttp-check expect status 200',
    '\tdefault-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2',
    ...appservers.map((a) => `\tserver ${a.name} ${a.address}:80 check`),
  );
  return `${out.join('\n')}\n`;
}
