import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every package that package-lock.json installs (each `node_modules/...` entry, nested ones
 * included) is checked against a table of known advisories: a package at a version inside a
 * vulnerable range fails the test. `npm audit` needs a network service; this needs only the lock.
 *
 * The table is written by hand from the GitHub advisory database (GHSA ids; a CVE id where the
 * GHSA id was not checked; one Snyk id for mocha, which has no GitHub-reviewed entry) and holds
 * the critical and high ones of the packages silver's tree has or had, plus the moderate ones of
 * pkgcloud's old tree (request, tough-cookie, xml2js, ms) that made silver move off them. It is a
 * floor, not a replacement for `npm audit` where that can run.
 */

type Severity = 'critical' | 'high' | 'moderate' | 'low';

interface Advisory {
  name: string;
  /** Vulnerable versions: comparator sets (`<`, `<=`, `>`, `>=`, `=` or a bare version) joined by `||`. */
  range: string;
  /** First fixed version(s), comma-separated, or 'none' when no release fixes it. */
  fixed: string;
  id: string;
  severity: Severity;
  summary: string;
}

const SEPT_2025_MALWARE = 'malware: release published from a hijacked maintainer account (2025-09-08)';

export const ADVISORIES: Advisory[] = [
  // pkgcloud's old tree
  { name: 'form-data', range: '<2.5.4 || >=3.0.0 <3.0.4 || >=4.0.0 <4.0.4', fixed: '2.5.4, 3.0.4, 4.0.4', id: 'GHSA-fjxv-7rqg-78g4', severity: 'critical', summary: 'multipart boundary chosen with Math.random (predictable)' },
  { name: 'request', range: '<=2.88.2', fixed: 'none', id: 'GHSA-p8p7-x288-28g6', severity: 'moderate', summary: 'SSRF through a cross-protocol redirect; package deprecated, no fixed release' },
  { name: '@cypress/request', range: '<3.0.0', fixed: '3.0.0', id: 'CVE-2023-28155', severity: 'moderate', summary: 'the request SSRF, fixed in the fork' },
  { name: 'tough-cookie', range: '<4.1.3', fixed: '4.1.3', id: 'GHSA-72xf-g2v4-qvf3', severity: 'moderate', summary: 'prototype pollution in CookieJar (rejectPublicSuffixes=false)' },
  { name: 'qs', range: '<6.2.4 || >=6.3.0 <6.3.3 || >=6.4.0 <6.4.1 || >=6.5.0 <6.5.3 || >=6.6.0 <6.6.1 || >=6.7.0 <6.7.3 || >=6.8.0 <6.8.3 || >=6.9.0 <6.9.7 || >=6.10.0 <6.10.3', fixed: '6.2.4, 6.3.3, 6.4.1, 6.5.3, 6.6.1, 6.7.3, 6.8.3, 6.9.7, 6.10.3', id: 'GHSA-hrpp-h998-j3pp', severity: 'high', summary: 'prototype pollution through __proto__ keys' },
  { name: 'qs', range: '<6.14.1', fixed: '6.14.1', id: 'GHSA-6rw7-vpxm-498p', severity: 'high', summary: 'arrayLimit bypassed by bracket notation: memory exhaustion' },
  { name: 'ip', range: '<=2.0.1', fixed: 'none', id: 'GHSA-2p57-rm9w-gvfp', severity: 'high', summary: 'isPublic() calls non-canonical forms of private addresses public (SSRF); every release affected' },
  { name: 'xml2js', range: '<0.5.0', fixed: '0.5.0', id: 'GHSA-776f-qx25-q3cc', severity: 'moderate', summary: 'prototype pollution through __proto__ element names' },
  { name: 'node-forge', range: '<1.3.0', fixed: '1.3.0', id: 'GHSA-cfm4-qjh2-4765', severity: 'high', summary: 'RSA PKCS#1 v1.5 signature verification accepts forged signatures' },
  { name: 'node-forge', range: '<1.3.2', fixed: '1.3.2', id: 'GHSA-554w-wpv2-vw27', severity: 'high', summary: 'ASN.1 parser: unbounded recursion (stack exhaustion)' },
  { name: 'node-forge', range: '<1.3.2', fixed: '1.3.2', id: 'GHSA-5gfm-wpxj-wjgq', severity: 'high', summary: 'ASN.1 validator desynchronization (signature/authentication bypass)' },
  { name: 'node-forge', range: '<1.4.0', fixed: '1.4.0', id: 'CVE-2026-33896', severity: 'critical', summary: 'verifyCertificateChain() lets a certificate without basicConstraints/keyUsage act as a CA' },
  { name: 'json-bigint', range: '<1.0.0', fixed: '1.0.0', id: 'CVE-2020-8237', severity: 'high', summary: 'prototype pollution through parsed __proto__ keys' },
  { name: 'date-and-time', range: '<0.14.2', fixed: '0.14.2', id: 'GHSA-r92x-f52r-x54g', severity: 'high', summary: 'ReDoS in date parsing' },
  { name: 'fast-json-patch', range: '<3.1.1', fixed: '3.1.1', id: 'GHSA-8gh8-hqwg-xf34', severity: 'high', summary: 'prototype pollution through patch paths' },
  { name: 'json-schema', range: '<0.4.0', fixed: '0.4.0', id: 'GHSA-896r-f27r-55mw', severity: 'critical', summary: 'prototype pollution in validate()' },
  { name: 'aws-sdk', range: '<2.814.0', fixed: '2.814.0', id: 'GHSA-rrc9-gqf8-8rwg', severity: 'high', summary: 'prototype pollution in config loading' },
  { name: 'https-proxy-agent', range: '<2.2.3', fixed: '2.2.3', id: 'GHSA-pc5p-h8pf-mvwp', severity: 'high', summary: 'machine-in-the-middle: TLS not enforced after CONNECT' },
  { name: 'node-fetch', range: '<2.6.7 || >=3.0.0 <3.1.1', fixed: '2.6.7, 3.1.1', id: 'GHSA-r683-j2x4-v87g', severity: 'high', summary: 'forwards secure headers to a third-party host on redirect' },
  { name: 'dot-prop', range: '<4.2.1 || >=5.0.0 <5.1.1', fixed: '4.2.1, 5.1.1', id: 'GHSA-ff7x-qrg7-qggm', severity: 'high', summary: 'prototype pollution' },
  { name: 'sshpk', range: '<1.13.2', fixed: '1.13.2', id: 'GHSA-2m39-62fm-q8r3', severity: 'high', summary: 'ReDoS in key parsing' },
  { name: 'semver', range: '<5.7.2 || >=6.0.0 <6.3.1 || >=7.0.0 <7.5.2', fixed: '5.7.2, 6.3.1, 7.5.2', id: 'GHSA-c2qf-rxjj-qqgw', severity: 'high', summary: 'ReDoS in range parsing' },
  { name: 'async', range: '<2.6.4 || >=3.0.0 <3.2.2', fixed: '2.6.4, 3.2.2', id: 'GHSA-fwr7-v2mv-hh25', severity: 'high', summary: 'prototype pollution in mapValues()' },
  { name: 'lodash', range: '<4.17.12', fixed: '4.17.12', id: 'GHSA-jf85-cpcp-j695', severity: 'critical', summary: 'prototype pollution in defaultsDeep()' },
  { name: 'lodash', range: '<4.17.21', fixed: '4.17.21', id: 'GHSA-35jh-r3h4-6jhm', severity: 'high', summary: 'command injection through template()' },
  { name: 'json5', range: '<1.0.2 || >=2.0.0 <2.2.2', fixed: '1.0.2, 2.2.2', id: 'GHSA-9c47-m6qq-7p4h', severity: 'high', summary: 'prototype pollution through parse()' },
  // mocha 2.x, which liboneandone (a pkgcloud dependency) lists as a run-time dependency, and its tree
  { name: 'mocha', range: '<10.1.0', fixed: '10.1.0', id: 'SNYK-JS-MOCHA-2863123', severity: 'high', summary: 'ReDoS in utils.clean(); 2.x also brings growl, minimist 0.0.8, debug 2, minimatch 0.3, diff 1.4 along' },
  { name: 'growl', range: '<1.10.0', fixed: '1.10.0', id: 'CVE-2017-16042', severity: 'critical', summary: 'command injection: arguments passed unsanitized to exec' },
  { name: 'minimist', range: '<0.2.4 || >=1.0.0 <1.2.6', fixed: '0.2.4, 1.2.6', id: 'GHSA-xvch-5gv4-984h', severity: 'critical', summary: 'prototype pollution through argument names' },
  { name: 'minimatch', range: '<3.0.2', fixed: '3.0.2', id: 'GHSA-hxm2-r34f-qmc5', severity: 'high', summary: 'ReDoS through long patterns' },
  { name: 'minimatch', range: '<3.0.5', fixed: '3.0.5', id: 'GHSA-f8q6-p94x-37v3', severity: 'high', summary: 'ReDoS in braceExpand()' },
  { name: 'diff', range: '<3.5.0', fixed: '3.5.0', id: 'GHSA-h6ch-v84p-w6p9', severity: 'high', summary: 'ReDoS in line splitting' },
  { name: 'debug', range: '<2.6.9 || >=3.0.0 <3.1.0 || >=4.0.0 <4.3.1', fixed: '2.6.9, 3.1.0, 4.3.1', id: 'GHSA-gxpj-cx7g-858c', severity: 'low', summary: 'ReDoS in the %o formatter' },
  { name: 'ms', range: '<2.0.0', fixed: '2.0.0', id: 'CVE-2017-20162', severity: 'moderate', summary: 'ReDoS in parse()' },
  // the rest of the tree (ava, the AWS SDK, ssh2, TypeScript tooling)
  { name: 'cross-spawn', range: '<6.0.6 || >=7.0.0 <7.0.5', fixed: '6.0.6, 7.0.5', id: 'GHSA-3xgq-45jj-v275', severity: 'high', summary: 'ReDoS in argument escaping' },
  { name: 'braces', range: '<3.0.3', fixed: '3.0.3', id: 'GHSA-grv7-fg5c-xmjg', severity: 'high', summary: 'unbounded memory use on unbalanced braces' },
  { name: 'glob', range: '>=10.2.0 <10.5.0 || >=11.0.0 <11.1.0', fixed: '10.5.0, 11.1.0', id: 'GHSA-5j98-mcp5-4vw2', severity: 'high', summary: 'CLI: -c/--cmd runs matches through a shell' },
  { name: 'debug', range: '=4.4.2', fixed: '4.4.3', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'chalk', range: '=5.6.1', fixed: '5.6.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'ansi-styles', range: '=6.2.2', fixed: '6.2.3', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'ansi-regex', range: '=6.2.1', fixed: '6.2.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'strip-ansi', range: '=7.1.1', fixed: '7.1.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'supports-color', range: '=10.2.1', fixed: '10.2.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'wrap-ansi', range: '=9.0.1', fixed: '9.0.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
  { name: 'slice-ansi', range: '=7.1.1', fixed: '7.1.2', id: 'malware', severity: 'critical', summary: SEPT_2025_MALWARE },
];

/**
 * Packages that the lock links to a folder of this repository instead of a registry release,
 * through package.json's overrides. Advisories about the registry package do not apply to them;
 * any other link fails the check (npm has written links to folders that do not exist for file:
 * overrides).
 */
export const IN_REPO_REPLACEMENTS: Record<string, string> = {
  'vendor/ip-strict': 'ip',
  'vendor/stub-mocha': 'mocha',
};

/** The last commit whose package-lock.json predates the pkgcloud overrides. */

// ---- versions and ranges (a small subset of semver: enough for the table above) ----

interface Version {
  major: number;
  minor: number;
  patch: number;
  pre: string[];
}

export function parseVersion(v: string): Version | null {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(v.trim());
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre: m[4] ? m[4].split('.') : [] };
}

function comparePre(a: string[], b: string[]): number {
  if (a.length === 0 || b.length === 0) return a.length === b.length ? 0 : a.length === 0 ? 1 : -1; // a release sorts after its prereleases
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x);
    const ny = /^\d+$/.test(y);
    if (nx && ny) {
      if (Number(x) !== Number(y)) return Number(x) < Number(y) ? -1 : 1;
    } else if (nx !== ny) {
      return nx ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return 0;
}

export function compareVersions(a: Version, b: Version): number {
  for (const k of ['major', 'minor', 'patch'] as const) {
    if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  }
  return comparePre(a.pre, b.pre);
}

/**
 * Whether version v is inside range. Unlike npm's semver.satisfies, a prerelease is compared
 * like any other version (a 1.0.0-rc.1 is inside "<1.0.0"): for advisories, erring towards a
 * finding is the point. Throws on a range it cannot read, so a typo in the table fails loudly.
 */
export function inRange(v: string, range: string): boolean {
  const ver = parseVersion(v);
  if (!ver) throw new Error(`not a version: ${JSON.stringify(v)}`);
  return parseRange(range).some((set) =>
    set.every(({ op, bound }) => {
      if (bound === null) return true;
      const cmp = compareVersions(ver, bound);
      switch (op) {
        case '<':
          return cmp < 0;
        case '<=':
          return cmp <= 0;
        case '>':
          return cmp > 0;
        case '>=':
          return cmp >= 0;
        default:
          return cmp === 0;
      }
    }),
  );
}

/** A range as comparator sets; the whole range is read before any of it is used. */
function parseRange(range: string): { op: string; bound: Version | null }[][] {
  return range.split('||').map((set) => {
    const comparators = set.trim().split(/\s+/).filter(Boolean);
    if (comparators.length === 0) throw new Error(`empty comparator set in ${JSON.stringify(range)}`);
    return comparators.map((c) => {
      if (c === '*') return { op: '*', bound: null };
      const m = /^(<=|>=|<|>|=)?(.+)$/.exec(c);
      const bound = m && parseVersion(m[2]!);
      if (!m || !bound) throw new Error(`cannot read comparator ${JSON.stringify(c)} in ${JSON.stringify(range)}`);
      return { op: m[1] ?? '=', bound };
    });
  });
}

// ---- the lockfile ----

interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  link?: boolean;
}

interface Lock {
  lockfileVersion?: number;
  packages?: Record<string, LockEntry>;
}

export interface Installed {
  /** The lock's key: node_modules/a/node_modules/b. */
  path: string;
  /** The package's own name (an npm: alias installs @cypress/request at node_modules/request). */
  name: string;
  version: string | null;
  /** For a link: the folder it points to, relative to the project. */
  linkTo: string | null;
}

/** Every node_modules/... entry of a package-lock.json (lockfileVersion 2 or 3), nested ones included. */
export function installedPackages(lockPath: string): Installed[] {
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as Lock;
  if (!lock.packages || (lock.lockfileVersion ?? 0) < 2) {
    throw new Error(`${lockPath}: no "packages" section (lockfileVersion ${lock.lockfileVersion ?? 'missing'}; 2 or 3 expected)`);
  }
  const out: Installed[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const at = path.lastIndexOf('node_modules/');
    if (at < 0) continue; // the root and in-repo folders: reached through their links
    const folderName = path.slice(at + 'node_modules/'.length);
    if (entry.link) {
      const target = entry.resolved ?? null;
      const targetEntry = target !== null ? lock.packages[target] : undefined;
      out.push({ path, name: targetEntry?.name ?? folderName, version: targetEntry?.version ?? null, linkTo: target });
    } else {
      out.push({ path, name: entry.name ?? folderName, version: entry.version ?? null, linkTo: null });
    }
  }
  return out;
}

export interface Finding {
  path: string;
  name: string;
  version: string | null;
  problem: string;
}

/** What is wrong with a lockfile: packages inside an advisory's range, entries without a version, links out of bounds. */
export function auditLockfile(lockPath: string, projectDir: string, advisories: Advisory[] = ADVISORIES): Finding[] {
  const findings: Finding[] = [];
  for (const p of installedPackages(lockPath)) {
    if (p.linkTo !== null) {
      const expected = IN_REPO_REPLACEMENTS[p.linkTo];
      if (expected === undefined) {
        findings.push({ ...p, problem: `links to ${p.linkTo}, which is not one of silver's in-repo replacements (${Object.keys(IN_REPO_REPLACEMENTS).join(', ')})` });
      } else if (expected !== p.name) {
        findings.push({ ...p, problem: `links to ${p.linkTo}, the replacement for ${expected}, not for ${p.name}` });
      } else if (!existsSync(join(projectDir, p.linkTo, 'package.json'))) {
        findings.push({ ...p, problem: `links to ${p.linkTo}, which has no package.json in ${projectDir}` });
      }
      continue;
    }
    if (p.version === null || !parseVersion(p.version)) {
      findings.push({ ...p, problem: `has no readable version (${JSON.stringify(p.version)})` });
      continue;
    }
    for (const a of advisories) {
      if (a.name === p.name && inRange(p.version, a.range)) {
        findings.push({ ...p, problem: `is inside ${a.range}: ${a.id} (${a.severity}) ${a.summary}; fixed in ${a.fixed}` });
      }
    }
  }
  return findings;
}

function describe(findings: Finding[]): string {
  return findings.map((f) => `${f.path}: ${f.name}@${f.version ?? '?'} ${f.problem}`).join('\n');
}

const ROOT = process.cwd();

test('deps: no package in package-lock.json is at a version inside a known critical/high advisory range, and every link is an in-repo replacement', (t) => {
  const findings = auditLockfile(join(ROOT, 'package-lock.json'), ROOT);
  t.deepEqual(findings, [], `\n${describe(findings)}`);
  const installed = installedPackages(join(ROOT, 'package-lock.json'));
  t.true(installed.length > 100, 'the whole tree was read');
  t.true(installed.some((p) => p.name === 'pkgcloud'), 'pkgcloud is still installed');
  t.deepEqual(
    installed.filter((p) => p.linkTo !== null).map((p) => `${p.name} -> ${p.linkTo}`).sort(),
    ['ip -> vendor/ip-strict', 'mocha -> vendor/stub-mocha'],
  );
});

test('deps: the lockfile from before the pkgcloud overrides is flagged (the check can fail)', (t) => {
  // (its packages' names and versions, kept as a fixture: a clone without that history works too)
  const old = readFileSync(join(ROOT, 'test/fixtures/lock-before-overrides.json'), 'utf8');
  const dir = mkdtempSync(join(tmpdir(), 'silver-advisories-'));
  try {
    const path = join(dir, 'package-lock.json');
    writeFileSync(path, old);
    const findings = auditLockfile(path, ROOT);
    const flagged = [...new Set(findings.map((f) => `${f.name}@${f.version}`))].sort();
    t.deepEqual(flagged, [
      'date-and-time@0.6.3',
      'debug@2.2.0',
      'diff@1.4.0',
      'fast-json-patch@2.2.1',
      'form-data@2.3.3',
      'growl@1.9.2',
      'ip@1.1.9',
      'json-bigint@0.3.1',
      'minimatch@0.3.0',
      'minimist@0.0.8',
      'mocha@2.5.3',
      'ms@0.7.1',
      'node-forge@0.10.0',
      'qs@6.5.5',
      'request@2.88.2',
      'tough-cookie@2.5.0',
      'xml2js@0.4.23',
    ], `\n${describe(findings)}`);
    t.true(findings.some((f) => f.name === 'form-data' && f.problem.includes('GHSA-fjxv-7rqg-78g4')));
    t.false(flagged.includes('form-data@2.5.6'), 'form-data 2.5.6 (through @types/request) has the fix');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deps: a link to a folder that is not an in-repo replacement, or an entry without a version, is a finding', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-advisories-'));
  try {
    const path = join(dir, 'package-lock.json');
    writeFileSync(
      path,
      JSON.stringify({
        lockfileVersion: 3,
        packages: {
          '': { name: 'x' },
          'node_modules/ip': { resolved: 'node_modules/pkgcloud/vendor/ip-strict', link: true },
          'node_modules/pkgcloud/vendor/ip-strict': {},
          'node_modules/broken': {},
          'node_modules/mocha': { resolved: 'vendor/stub-mocha', link: true },
          'vendor/stub-mocha': { name: 'mocha', version: '0.0.0-silver.stub' },
          'node_modules/a/node_modules/minimist': { version: '1.2.5' },
          'node_modules/request': { name: '@cypress/request', version: '4.0.1' },
        },
      }),
    );
    const findings = auditLockfile(path, ROOT);
    t.deepEqual(
      findings.map((f) => f.path),
      ['node_modules/ip', 'node_modules/pkgcloud/vendor/ip-strict', 'node_modules/broken', 'node_modules/a/node_modules/minimist'],
      describe(findings),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('deps: range comparison: boundaries, || alternatives, prereleases; every table entry reads and its fixed versions are outside its range', (t) => {
  t.true(inRange('2.5.3', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.false(inRange('2.5.4', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.false(inRange('2.9.0', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.true(inRange('3.0.0', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.true(inRange('3.0.3', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.false(inRange('3.0.4', '<2.5.4 || >=3.0.0 <3.0.4'));
  t.true(inRange('2.0.1', '<=2.0.1'));
  t.false(inRange('2.0.2', '<=2.0.1'));
  t.true(inRange('4.4.2', '=4.4.2'));
  t.false(inRange('4.4.3', '4.4.2'));
  t.true(inRange('1.0.0-rc.1', '<1.0.0'), 'a prerelease of the fixed version is still vulnerable');
  t.true(inRange('1.0.0-alpha', '<1.0.0-beta'));
  t.true(inRange('1.0.0-2', '<1.0.0-10'), 'numeric prerelease identifiers compare as numbers');
  t.false(inRange('10.0.0', '<9.0.0'), 'numbers, not strings');
  t.true(inRange('6.17.1', '>6.2.0'));
  t.true(inRange('0.0.8', '*'));
  t.throws(() => inRange('1.2', '<2.0.0'), { message: /not a version/ });
  t.throws(() => inRange('1.2.0', '<2.0'), { message: /cannot read comparator/ });
  t.throws(() => inRange('1.2.0', '<2.0.0 ||'), { message: /empty comparator set/ });
  for (const a of ADVISORIES) {
    t.notThrows(() => inRange('0.0.0', a.range), `${a.name} ${a.id}: range reads`);
    if (a.fixed === 'none') continue;
    for (const f of a.fixed.split(',').map((s) => s.trim())) {
      t.truthy(parseVersion(f), `${a.name} ${a.id}: fixed version ${f} reads`);
      t.false(inRange(f, a.range), `${a.name} ${a.id}: fixed version ${f} is outside ${a.range}`);
    }
  }
});
