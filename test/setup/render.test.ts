import test from 'ava';
import { haproxyCfg, md5, nginxFrontConf, routeId } from '../../src/setup/render.js';

const loc = (host: string, path: string, app: string) => ({ host, path, app });

test('the front proxy has a server per host name, in byte order, and a location per app in file order', (t) => {
  const conf = nginxFrontConf({ locations: [loc('www.b.com', '/', 'blog'), loc('a.com', '/wiki/', 'wiki'), loc('www.b.com', '/api/', 'api'), loc('a.com', '/', 'site')] as never });
  const servers = [...conf.matchAll(/server_name (\S+);/g)].map((m) => m[1]);
  t.deepEqual(servers, ['_', 'a.com', 'www.b.com']);
  const bHost = conf.slice(conf.indexOf('server_name www.b.com'));
  t.deepEqual([...bHost.matchAll(/location (\/\S*) \{/g)].map((m) => m[1]), ['/', '/api/']);
  // The app's static files first, then the app, through a named location per location.
  t.regex(conf, /location \/wiki\/ \{\n\t\tif \(\$http_x_silver_backend !~ "\^\(loc_[0-9a-f]{12}\)\?\$"\) \{ return 421 "misdirected request\\n"; \}\n\t\talias \/var\/lib\/silverlining\/apps\/wiki\/static-active\/;\n\t\ttry_files \$uri @silver_1;\n[\s\S]*?\}\n\tlocation @silver_1 \{\n\t\tproxy_pass http:\/\/silver_app_wiki;[\s\S]*?X-Forwarded-Prefix \/wiki\/;/);
  // Attack: a path the balancer routes to one location and nginx, decoding and resolving it, to
  // another (/blog/../x, /%62log/x) would reach an app past its own location's mode: each location
  // answers 421 unless the balancer's route header names its backend (or there is none).
  // (named by host and path alone: the same whatever other locations come or go)
  t.deepEqual([...conf.matchAll(/if \(\$http_x_silver_backend !~ "\^\((\S+)\)\?\$"\)/g)].map((m) => m[1]), [loc('a.com', '/wiki/', 'wiki'), loc('a.com', '/', 'site'), loc('www.b.com', '/', 'blog'), loc('www.b.com', '/api/', 'api')].map(routeId));
  t.is(routeId(loc('a.com', '/wiki/', 'wiki')), routeId(loc('a.com', '/wiki/', 'other')));
  t.not(routeId(loc('a.com', '/wiki/', 'wiki')), routeId(loc('a.com', '/wiki2/', 'wiki')));
  t.true(conf.includes('\tlocation = /.silver/health { access_log off; default_type text/plain; return 200 "ok\\n"; }'));
  t.true(conf.endsWith('}\n'));
  t.is(md5(conf), md5(nginxFrontConf({ locations: [loc('www.b.com', '/', 'blog'), loc('a.com', '/wiki/', 'wiki'), loc('www.b.com', '/api/', 'api'), loc('a.com', '/', 'site')] as never })));
});

const servers = [
  { name: 'app1.foobar.com', address: '10.4.3.2' },
  { name: 'app2.foobar.com', address: '10.4.3.3' },
];
const locations = [loc('foobar.com', '/', 'blog'), loc('foobar.com', '/wiki/', 'wiki'), loc('www.foobar.com', '/', 'blog'), loc('foobar.com', '/wiki/api/', 'api')];

/** The lines of one section of a configuration, its header first. */
function section(cfg: string, header: string): string[] {
  const start = cfg.indexOf(`\n${header}\n`);
  if (start < 0) return [];
  const end = cfg.indexOf('\n\n', start + 1);
  return cfg.slice(start + 1, end < 0 ? cfg.length - 1 : end).split('\n');
}

test('the balancer has a backend per location, named by app and its location count, checking the app\'s health path under the location', (t) => {
  const cfg = haproxyCfg(['foobar.com', 'www.foobar.com'], servers, locations, new Map([['wiki', '/health'], ['blog', '/status/ok']]));
  t.deepEqual([...cfg.matchAll(/^backend (\S+)$/gm)].map((m) => m[1]), ['unknown_host', 'app_blog_1', 'app_wiki_1', 'app_blog_2', 'app_api_1']);
  t.deepEqual(section(cfg, 'backend app_wiki_1').filter((l) => !/silver_mode|silver_(allowed|reads|upgrade)/.test(l)), [
    'backend app_wiki_1',
    '\t# silver-location wiki foobar.com /wiki/',
    `\thttp-request set-header X-Silver-Backend ${routeId(loc('foobar.com', '/wiki/', 'wiki'))}`,
    '\tbalance roundrobin',
    '\toption httpchk',
    `\thttp-check send meth GET uri /wiki/health ver HTTP/1.1 hdr Host foobar.com hdr X-Silver-Backend ${routeId(loc('foobar.com', '/wiki/', 'wiki'))}`,
    '\thttp-check expect rstatus ^2',
    '\tdefault-server inter 1s fastinter 500ms downinter 1s fall 2 rise 2',
    '\tserver app1.foobar.com 10.4.3.2:80 check',
    '\tserver app2.foobar.com 10.4.3.3:80 check',
  ]);
  t.true(section(cfg, 'backend app_blog_1').includes(`\thttp-check send meth GET uri /status/ok ver HTTP/1.1 hdr Host foobar.com hdr X-Silver-Backend ${routeId(loc('foobar.com', '/', 'blog'))}`));
  t.true(section(cfg, 'backend app_blog_2').includes(`\thttp-check send meth GET uri /status/ok ver HTTP/1.1 hdr Host www.foobar.com hdr X-Silver-Backend ${routeId(loc('www.foobar.com', '/', 'blog'))}`));
  // An app without a health path is checked at its location's root.
  t.true(section(cfg, 'backend app_api_1').includes(`\thttp-check send meth GET uri /wiki/api/ ver HTTP/1.1 hdr Host foobar.com hdr X-Silver-Backend ${routeId(loc('foobar.com', '/wiki/api/', 'api'))}`));
  t.true(cfg.endsWith('\tserver app2.foobar.com 10.4.3.3:80 check\n'));
  // Retries and redispatch stay in the defaults.
  t.regex(cfg, /\n\toption redispatch 1\n\tretry-on conn-failure empty-response response-timeout 502 503\n/);
});

test('the balancer routes a known host by path, longest first, and 404s other hosts and paths no location has', (t) => {
  const cfg = haproxyCfg(['foobar.com', 'www.foobar.com'], servers, locations, new Map());
  t.deepEqual(section(cfg, 'frontend www'), [
    'frontend www',
    '\tbind :80',
    '\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }',
    // (more than one Host value refused; the scheme and host the apps see are the balancer's)
    '\thttp-request deny deny_status 400 if { req.hdr_cnt(host) gt 1 }',
    '\thttp-request set-header X-Forwarded-Proto http if !{ ssl_fc }',
    '\thttp-request del-header X-Forwarded-Host',
    '\thttp-request del-header X-Forwarded-For',
    '\thttp-request del-header Forwarded',
    '\thttp-request del-header X-Real-IP',
    '\thttp-request disable-l7-retry unless { method GET HEAD OPTIONS }',
    // (the Host header whole: req.hdr would split it at commas)
    '\tacl silver_host req.fhdr(host),field(1,:) -i foobar.com www.foobar.com',
    '\tuse_backend unknown_host if !silver_host',
    '\tuse_backend app_api_1 if { req.fhdr(host),field(1,:) -i foobar.com } { path_beg /wiki/api/ }',
    '\tuse_backend app_wiki_1 if { req.fhdr(host),field(1,:) -i foobar.com } { path_beg /wiki/ }',
    '\tuse_backend app_blog_1 if { req.fhdr(host),field(1,:) -i foobar.com } { path_beg / }',
    '\tuse_backend app_blog_2 if { req.fhdr(host),field(1,:) -i www.foobar.com } { path_beg / }',
    '\tdefault_backend unknown_host',
  ]);
  t.deepEqual(section(cfg, 'backend unknown_host'), ['backend unknown_host', '\thttp-request return status 404 content-type text/plain string "unknown host"']);
  // A host with no location of its own, known to the balancer, matches nothing: 404.
  const narrow = haproxyCfg(['foobar.com', 'other.com'], servers, [loc('foobar.com', '/wiki/', 'wiki')], new Map());
  t.notRegex(narrow, /other\.com \}/);
  t.regex(narrow, /\{ path_beg \/wiki\/ \}\n\tdefault_backend unknown_host\n/);
});

test('a wildcard host name is a suffix match (HAProxy -m end), beside the exact ones: "*.foobar.com" literally would match nothing', (t) => {
  const cfg = haproxyCfg(['foobar.com', '*.foobar.com'], servers, [loc('www.foobar.com', '/', 'site')], new Map());
  t.deepEqual(section(cfg, 'frontend www').filter((l) => l.includes('silver_host')), [
    '\tacl silver_host req.fhdr(host),field(1,:) -i foobar.com',
    '\tacl silver_host req.fhdr(host),field(1,:) -i -m end .foobar.com',
    '\tuse_backend unknown_host if !silver_host',
  ]);
  t.notRegex(cfg, /\*\.foobar\.com/);
});

test('the balancer without host names routes by location only; without locations it answers 404 to all', (t) => {
  const noNames = haproxyCfg([], servers, [loc('a.com', '/', 'site')], new Map());
  t.notRegex(noNames, /acl silver_host|!silver_host/);
  t.regex(noNames, /\tuse_backend app_site_1 if \{ req\.fhdr\(host\),field\(1,:\) -i a\.com \} \{ path_beg \/ \}\n\tdefault_backend unknown_host\n/);
  const empty = haproxyCfg(['foobar.com'], servers, [], new Map());
  t.deepEqual([...empty.matchAll(/^backend (\S+)$/gm)].map((m) => m[1]), ['unknown_host']);
  t.regex(empty, /\tuse_backend unknown_host if !silver_host\n\tdefault_backend unknown_host\n/);
  t.true(empty.endsWith('string "unknown host"\n'));
});

test('HTTPS: port 443 with a certificate folder, modern TLS only, the ACME answers on port 80 before anything else, every other plain request redirected, HSTS, the scheme for the apps', (t) => {
  const cfg = haproxyCfg(['foobar.com', 'www.foobar.com'], servers, locations, new Map(), { hosts: ['foobar.com', 'www.foobar.com'], hsts: 600 });
  const www = section(cfg, 'frontend www');
  t.deepEqual(www.slice(0, 11), [
    'frontend www',
    '\tbind :80',
    '\tbind :443 ssl crt /etc/haproxy/silver-default.pem crt /etc/haproxy/certs/ alpn http/1.1',
    '\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }',
    '\tacl silver_acme path_beg /.well-known/acme-challenge/',
    '\thttp-request set-var(txn.acme) path,field(4,/),map(/etc/haproxy/silver-acme.map) if !{ ssl_fc } silver_acme',
    '\thttp-request return status 200 content-type text/plain lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
    // (a token it does not have: a 404 here, never a redirect to an app's HTTPS)
    '\thttp-request return status 404 content-type text/plain string "no such challenge" if !{ ssl_fc } silver_acme',
    '\thttp-request redirect scheme https code 301 if !{ ssl_fc }',
    '\thttp-request set-header X-Forwarded-Proto https if { ssl_fc }',
    '\thttp-response set-header Strict-Transport-Security "max-age=600" if { ssl_fc }',
  ]);
  t.regex(cfg, /^\tssl-default-bind-options ssl-min-ver TLSv1\.2 no-tls-tickets$/m);
  t.regex(cfg, /^\toption forwardfor$/m);
  const plain = haproxyCfg(['foobar.com'], servers, locations, new Map());
  t.false(plain.includes(':443') || plain.includes('ssl-default'), 'no TLS without tls =');
});

test('HTTPS on a balancer pair with tls = acme: a validation request without an answer here goes to the peer, marked; a marked one gets a 404 (no loop); only plain-HTTP challenge paths', (t) => {
  const cfg = haproxyCfg(['foobar.com'], servers, locations, new Map(), { hosts: ['foobar.com'], hsts: null, acmePeer: '10.4.3.12' });
  const www = section(cfg, 'frontend www');
  t.deepEqual(www.slice(0, 19), [
    'frontend www',
    '\tbind :80',
    '\tbind :443 ssl crt /etc/haproxy/silver-default.pem crt /etc/haproxy/certs/ alpn http/1.1',
    '\thttp-request return status 200 content-type text/plain string "ok" if { path /.silver/balancer-health }',
    '\tacl silver_acme path_beg /.well-known/acme-challenge/',
    '\tacl silver_acme_forwarded req.hdr(X-Silver-Acme-Peer) -m found',
    '\thttp-request set-var(txn.acme) path,field(4,/),map(/etc/haproxy/silver-acme.map) if !{ ssl_fc } silver_acme',
    '\thttp-request return status 200 content-type text/plain lf-string "%[var(txn.acme)]" if { var(txn.acme) -m found }',
    '\thttp-request return status 404 content-type text/plain string "no such challenge" if !{ ssl_fc } silver_acme silver_acme_forwarded',
    '\thttp-request redirect scheme https code 301 if !{ ssl_fc } !silver_acme',
    '\thttp-request set-header X-Forwarded-Proto https if { ssl_fc }',
    '\thttp-request deny deny_status 400 if { req.hdr_cnt(host) gt 1 }',
    '\thttp-request set-header X-Forwarded-Proto http if !{ ssl_fc }',
    '\thttp-request del-header X-Forwarded-Host',
    '\thttp-request del-header X-Forwarded-For',
    '\thttp-request del-header Forwarded',
    '\thttp-request del-header X-Real-IP',
    '\thttp-request disable-l7-retry unless { method GET HEAD OPTIONS }',
    // (before the host names' routes: the first use_backend that matches wins)
    '\tuse_backend acme_peer if !{ ssl_fc } silver_acme',
  ]);
  t.is(www[19], '\tacl silver_host req.fhdr(host),field(1,:) -i foobar.com');
  t.deepEqual(section(cfg, 'backend acme_peer'), ['backend acme_peer', '\thttp-request set-header X-Silver-Acme-Peer 1', '\tserver peer 10.4.3.12:80']);
  // One balancer (or tls = FILE on a pair): no forwarding; a token it does not have is a 404, every
  // other plain request redirected.
  for (const tls of [{ hosts: ['foobar.com'], hsts: null }, { hosts: ['foobar.com'], hsts: null, acmePeer: null }]) {
    const single = haproxyCfg(['foobar.com'], servers, locations, new Map(), tls);
    t.false(/acme_peer|silver_acme_forwarded|X-Silver-Acme-Peer/.test(single));
    t.regex(single, /^\thttp-request return status 404 content-type text\/plain string "no such challenge" if !\{ ssl_fc \} silver_acme\n\thttp-request redirect scheme https code 301 if !\{ ssl_fc \}$/m);
  }
});

test('attack: the front proxy passes no client\'s X-Silverlining-Update to an app (the header silver\'s own update_fetch requests carry): every app location clears it', (t) => {
  const conf = nginxFrontConf({ locations: [loc('a.com', '/', 'site'), loc('a.com', '/wiki/', 'wiki')] as never });
  const named = [...conf.matchAll(/\tlocation @silver_\d+ \{\n([\s\S]*?)\n\t\}/g)].map((m) => m[1]!);
  t.is(named.length, 2);
  for (const block of named) t.true(block.includes('\t\tproxy_set_header X-Silverlining-Update "";'), block);
});

test('attack: the front proxy does not act on an app\'s X-Accel-Redirect (to another app\'s named location on the host, past its route check and the balancer\'s modes for it)', (t) => {
  const conf = nginxFrontConf({ locations: [loc('r.test', '/', 'main'), loc('r.test', '/blog/', 'blog')] as never });
  const named = [...conf.matchAll(/\tlocation @silver_\d+ \{\n([\s\S]*?)\n\t\}/g)].map((m) => m[1]!);
  t.is(named.length, 2);
  for (const block of named) t.true(block.includes('\t\tproxy_ignore_headers X-Accel-Redirect;'), block);
});

test('attack: without a balancer the clients reach the front proxy straight, and what an app is told of them is its own word: the scheme it served, the address it saw — never a client\'s X-Forwarded-Proto or X-Forwarded-For; behind one, the balancer\'s', (t) => {
  const locations = [loc('a.com', '/', 'site')] as never;
  const alone = nginxFrontConf({ locations }, false);
  t.false(alone.includes('$http_x_forwarded_proto'), alone);
  t.true(alone.includes('\t\tproxy_set_header X-Forwarded-Proto $scheme;'));
  t.true(alone.includes('\t\tproxy_set_header X-Forwarded-For $remote_addr;'));
  const behind = nginxFrontConf({ locations }, true);
  t.true(behind.includes('map $http_x_forwarded_proto $silver_proto {'));
  t.true(behind.includes('\t\tproxy_set_header X-Forwarded-Proto $silver_proto;'));
  t.true(behind.includes('\t\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'));
});
