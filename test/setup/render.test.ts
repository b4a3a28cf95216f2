import test from 'ava';
import { haproxyCfg, md5, nginxFrontConf } from '../../src/setup/render.js';

const loc = (host: string, path: string, app: string) => ({ host, path, app });

test('the front proxy has a server per host name, in byte order, and a location per app in file order', (t) => {
  const conf = nginxFrontConf({ locations: [loc('www.b.com', '/', 'blog'), loc('a.com', '/wiki/', 'wiki'), loc('www.b.com', '/api/', 'api'), loc('a.com', '/', 'site')] as never });
  const servers = [...conf.matchAll(/server_name (\S+);/g)].map((m) => m[1]);
  t.deepEqual(servers, ['_', 'a.com', 'www.b.com']);
  const bHost = conf.slice(conf.indexOf('server_name www.b.com'));
  t.deepEqual([...bHost.matchAll(/location (\/\S*) \{/g)].map((m) => m[1]), ['/', '/api/']);
  t.regex(conf, /location \/wiki\/ \{\n\t\tproxy_pass http:\/\/silver_app_wiki;[\s\S]*?X-Forwarded-Prefix \/wiki\/;/);
  t.true(conf.includes('\tlocation = /.silver/health { access_log off; default_type text/plain; return 200 "ok\\n"; }'));
  t.true(conf.endsWith('}\n'));
  t.is(md5(conf), md5(nginxFrontConf({ locations: [loc('www.b.com', '/', 'blog'), loc('a.com', '/wiki/', 'wiki'), loc('www.b.com', '/api/', 'api'), loc('a.com', '/', 'site')] as never })));
});

test('the balancer routes its host names to the app servers, with health checks, and 404s other hosts', (t) => {
  const cfg = haproxyCfg(['foobar.com', 'www.foobar.com'], [
    { name: 'app1.foobar.com', address: '10.4.3.2' },
    { name: 'app2.foobar.com', address: '10.4.3.3' },
  ]);
  t.regex(cfg, /\tacl silver_host req\.hdr\(host\),field\(1,:\) -i foobar\.com www\.foobar\.com\n\tuse_backend appservers if silver_host\n\tdefault_backend unknown_host\n/);
  t.regex(cfg, /\tserver app1\.foobar\.com 10\.4\.3\.2:80 check\n\tserver app2\.foobar\.com 10\.4\.3\.3:80 check\n$/);
  t.regex(cfg, /http-check send meth GET uri \/\.silver\/health/);
  const noNames = haproxyCfg([], []);
  t.regex(noNames, /\tdefault_backend appservers\n/);
  t.notRegex(noNames, /acl silver_host/);
});
