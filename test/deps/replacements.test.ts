import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * What pkgcloud gets in place of the packages that package.json's overrides replace, required
 * from pkgcloud's own folder as pkgcloud requires them.
 */
const fromPkgcloud = createRequire(join(process.cwd(), 'node_modules/pkgcloud/lib/pkgcloud/core/compute/index.js'));
const fromLiboneandone = createRequire(join(process.cwd(), 'node_modules/liboneandone/lib/req.js'));

interface IpApi {
  isPrivate(a: unknown): boolean;
  isPublic(a: unknown): boolean;
  isLoopback(a: unknown): boolean;
  isV4Format(a: unknown): boolean;
  isV6Format(a: unknown): boolean;
  toLong(a: string): number;
}

test('deps: pkgcloud\'s ip is the in-repo stand-in: ip 1.x ranges on canonical addresses, never public for other forms (GHSA-2p57-rm9w-gvfp)', (t) => {
  const ip = fromPkgcloud('ip') as IpApi;
  t.is(dirname(fromPkgcloud.resolve('ip')), join(process.cwd(), 'vendor/ip-strict'));
  const privateOnes = ['10.0.0.5', '172.16.1.1', '172.31.255.255', '192.168.1.1', '169.254.1.1', '127.0.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', 'fc00::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1', '000:0:0000::01'];
  const publicOnes = ['203.0.113.7', '8.8.8.8', '172.32.0.1', '100.64.0.1', '2001:db8::1', '2600::1'];
  for (const a of privateOnes) {
    t.true(ip.isPrivate(a), `${a} is private`);
    t.false(ip.isPublic(a), `${a} is not public`);
  }
  for (const a of publicOnes) {
    t.false(ip.isPrivate(a), `${a} is not private`);
    t.true(ip.isPublic(a), `${a} is public`);
  }
  // forms that ip 1.1.9 called public: shortened, octal, hex, a bare number; and no address at all
  for (const a of ['127.1', '012.1.2.3', '0x7f.1', '01200034567', '2130706433', 'x.y', '', undefined, null, 42]) {
    t.false(ip.isPublic(a), `${String(a)} is not public`);
    t.true(ip.isPrivate(a), `${String(a)} counts as not public`);
  }
  t.true(ip.isLoopback('127.0.0.2'));
  t.true(ip.isLoopback('::1'));
  t.false(ip.isLoopback('10.0.0.1'));
  t.true(ip.isV4Format('1.2.3.4'));
  t.false(ip.isV4Format('::1'));
  t.true(ip.isV6Format('::1'));
  t.throws(() => ip.toLong('1.2.3.4'), { message: /ip\.toLong\(\) is not provided by silver's stand-in/ });
  const compute = fromPkgcloud('./index.js') as { isPrivate: (a: string) => boolean; isPublic: (a: string) => boolean };
  t.is(compute.isPrivate, ip.isPrivate, 'pkgcloud\'s compute helpers are these functions');
  t.is(compute.isPublic, ip.isPublic);
});

test('deps: liboneandone\'s mocha is the stub, which throws when loaded', (t) => {
  t.is(dirname(fromLiboneandone.resolve('mocha')), join(process.cwd(), 'vendor/stub-mocha'));
  t.throws(() => fromLiboneandone('mocha'), { message: /mocha is not installed: silver replaces pkgcloud's run-time copy/ });
});

test('deps: pkgcloud\'s request is @cypress/request 4, with form-data 4 and tough-cookie 5', (t) => {
  const pkg = (req: NodeJS.Require, name: string) => JSON.parse(readFileSync(req.resolve(`${name}/package.json`), 'utf8')) as { name: string; version: string };
  const request = pkg(fromPkgcloud, 'request');
  t.is(request.name, '@cypress/request');
  t.regex(request.version, /^4\./);
  t.is(pkg(fromLiboneandone, 'request').name, '@cypress/request');
  const fromRequest = createRequire(fromPkgcloud.resolve('request'));
  t.regex(pkg(fromRequest, 'form-data').version, /^4\./);
  t.regex(pkg(fromRequest, 'tough-cookie').version, /^[5-9]\./);
  t.is(typeof fromPkgcloud('request'), 'function');
});
