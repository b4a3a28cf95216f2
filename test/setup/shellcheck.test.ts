import test from 'ava';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layerNames, layersRoot } from '../../src/layers.js';

// shellcheck (as POSIX sh, every severity) on every shell script under setup-layers/: each
// layer's setup.sh as silver sends it, after lib.sh (one concatenation per layer, findings
// mapped back to the file and line they are in), each `#!/bin/sh` helper in a bin/ folder, and
// the scripts beside lib.sh (strip-image.sh).
// A finding is fixed, or disabled on its line with the reason (`# shellcheck disable=SCxxxx # ...`).

const haveShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

interface Comment {
  file: string;
  line: number;
  column: number;
  level: string;
  code: number;
  message: string;
}

/** shellcheck -s sh on these files: its comments (exit 0: none, 1: some, else it failed). */
function shellcheck(files: string[]): Promise<Comment[]> {
  return new Promise((resolve, reject) => {
    execFile('shellcheck', ['-s', 'sh', '-S', 'style', '-f', 'json1', ...files], { maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (err as { code?: number }).code : 0;
      if (code !== 0 && code !== 1) return reject(new Error(`shellcheck failed (exit ${code}): ${stderr}`));
      try {
        resolve((JSON.parse(stdout) as { comments: Comment[] }).comments);
      } catch {
        reject(new Error(`shellcheck said: ${stdout}${stderr}`));
      }
    });
  });
}

/** The `#!/bin/sh` helpers of every layer (paths under setup-layers/); python ones left out. */
function shellHelpers(root: string): string[] {
  return layerNames(root).flatMap((layer) => {
    const dir = join(root, layer, 'bin');
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .sort()
      .map((name) => `${layer}/bin/${name}`)
      .filter((path) => readFileSync(join(root, path), 'utf8').startsWith('#!/bin/sh\n'));
  });
}

if (!haveShellcheck) {
  test.skip('shellcheck on setup-layers/: skipped, shellcheck is not installed (Debian package shellcheck)', () => undefined);
} else {
  test('shellcheck finds nothing in setup-layers/: each layer\'s lib.sh + setup.sh, every #!/bin/sh helper, strip-image.sh', async (t) => {
    const root = layersRoot();
    const scratch = mkdtempSync(join(tmpdir(), 'silver-shellcheck-'));
    t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

    // Where each line of a checked file comes from: [file it is checked as, source, first line].
    const origin = new Map<string, { parts: [string, number][] }>();
    const lib = readFileSync(join(root, 'lib.sh'), 'utf8');
    const libLines = lib.split('\n').length - 1;
    t.true(lib.endsWith('\n'));
    const files: string[] = [];
    const layers = layerNames(root).filter((layer) => existsSync(join(root, layer, 'setup.sh')));
    for (const layer of layers) {
      const file = join(scratch, `${layer.replace('/', '-')}.sh`);
      writeFileSync(file, lib + readFileSync(join(root, layer, 'setup.sh'), 'utf8'));
      origin.set(file, { parts: [['lib.sh', 0], [`${layer}/setup.sh`, libLines]] });
      files.push(file);
    }
    const helpers = shellHelpers(root);
    for (const helper of helpers) {
      const file = join(root, helper);
      origin.set(file, { parts: [[helper, 0]] });
      files.push(file);
    }
    const own = readdirSync(root).filter((f) => f.endsWith('.sh') && f !== 'lib.sh').sort();
    for (const script of own) {
      origin.set(join(root, script), { parts: [[script, 0]] });
      files.push(join(root, script));
    }
    // (nothing left out by mistake)
    t.deepEqual(own, ['strip-image.sh']);
    t.true(layers.includes('base') && layers.includes('appserver') && layers.includes('wire'), layers.join(' '));
    t.true(helpers.includes('appserver/bin/silver-deploy') && helpers.includes('base/bin/silver-state'), helpers.join(' '));
    t.false(helpers.includes('balancer/bin/silver-balancer'), 'a python helper is not a shell script');

    // It does report what it should (the same options on a known finding).
    const probe = join(scratch, 'probe.sh');
    writeFileSync(probe, '#!/bin/sh\necho $1\n');
    t.deepEqual(
      (await shellcheck([probe])).map((c) => c.code),
      [2086],
    );

    const findings = new Set<string>();
    for (const c of await shellcheck(files)) {
      const parts = origin.get(c.file)?.parts ?? [[c.file, 0]];
      const [name, offset] = [...parts].reverse().find(([, first]) => c.line > first)!;
      findings.add(`setup-layers/${name}:${c.line - offset}:${c.column}: ${c.level}: ${c.message} [SC${c.code}]`);
    }
    t.deepEqual([...findings], [], `shellcheck -s sh:\n${[...findings].join('\n')}`);
  });
}
