import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { layersRoot } from '../layers.js';
import { helperNames, layerFile } from './plan.js';
import { assignment, scriptBytes, sharedText, type ScriptLine } from './script-bytes.js';
import { libSubset } from './lib-subset.js';

/**
 * The fast path of a no-op `setup-node` (see "the fingerprint" in setup-layers/lib.sh). silver
 * first sends each node a probe: the digest of everything its full script would hold, and the
 * layers' probe.sh. When the node's fingerprint holds — the same digest, nothing changed since
 * the last full run began — the node answers `silver-fast: hit` and runs only what no file shows
 * (the layers' probe.sh, between the usual layer markers); otherwise `silver-fast: miss`, and
 * silver sends the full script. A node that answers neither (an older node, a test's fake) gets
 * the full script too. Only a first line `silver-fast: hit` is a hit, and only the layers'
 * markers in order count (setup-node checks both).
 */

let code: string | undefined;

/**
 * The sum of the code that writes node scripts (this folder's modules and the shell quoting):
 * another silver, or another build, that would send another script has another digest.
 */
function codeSum(): string {
  if (code === undefined) {
    const here = dirname(fileURLToPath(import.meta.url));
    const h = createHash('sha256');
    for (const file of [...readdirSync(here).filter((f) => /\.[jt]s$/.test(f)).sort().map((f) => join(here, f)), join(here, '..', 'ssh', `quote${extname(fileURLToPath(import.meta.url))}`)]) {
      h.update(`${file.slice(here.length)}\0`).update(readFileSync(file)).update('\0');
    }
    code = h.digest('hex');
  }
  return code;
}

export const FAST_HIT = 'silver-fast: hit';

const probes = new Map<string, string>();

/** A layer's probe.sh ('' when it has none), read once. */
function layerProbe(layer: string, root: string): string {
  const path = join(root, layer, 'probe.sh');
  let text = probes.get(path);
  if (text === undefined) probes.set(path, (text = existsSync(path) ? layerFile(path) : ''));
  return text;
}

const treeSums = new Map<string, string>();

/** The sum of what a layer's own files hold: setup.sh, probe.sh, its helpers. */
function layerSum(layer: string, root: string): string {
  const key = join(root, layer);
  let sum = treeSums.get(key);
  if (sum === undefined) {
    const h = createHash('sha256');
    h.update(`setup.sh\0${layerFile(join(root, layer, 'setup.sh'))}\0probe.sh\0${layerProbe(layer, root)}\0`);
    for (const name of helperNames(layer, root)) h.update(`bin/${name}\0${layerFile(join(root, layer, 'bin', name))}\0`);
    sum = h.digest('hex');
    treeSums.set(key, sum);
  }
  return sum;
}

/**
 * The digest of a node's full script: lib.sh, each layer's files and variables (all but
 * SILVER_CHECK: a check-only run may take the fast path of the real one).
 */
export function nodeDigest(layers: readonly { layer: string; vars: Record<string, string> }[], root = layersRoot()): string {
  const h = createHash('sha256');
  h.update(`${codeSum()}\0${layerFile(join(root, 'lib.sh'))}\0`);
  for (const { layer, vars } of layers) {
    h.update(`layer ${layer} ${layerSum(layer, root)}\0`);
    for (const key of Object.keys(vars).sort()) if (key !== 'SILVER_CHECK') h.update(`${JSON.stringify([key, valueSum(vars[key]!)])}\0`);
  }
  return h.digest('hex');
}

const longSums = new Map<string, string>();

/**
 * A value as the digest takes it: a short one itself, a long one (the node list, as long as the
 * nodeset, in every node's variables) by its sum, made once for all nodes.
 */
function valueSum(value: string): string {
  if (value.length < 1024) return `=${value}`;
  let sum = longSums.get(value);
  if (sum === undefined) {
    if (longSums.size >= 256) longSums.clear();
    sum = `#${createHash('sha256').update(value).digest('hex')}`;
    longSums.set(value, sum);
  }
  return sum;
}

/**
 * The node's replica of the shared state, read by the probe (a session less a node when a
 * balancer's layer needs the state): `command` (silver-state get, as the probe's root runs it)
 * on standard error, between lines that name `nonce` and, at the end, its exit code. The
 * records are the deploy user's to write: they never reach standard output, where the hit is
 * decided, and without the run's nonce they cannot end the frame early.
 */
export interface StateDump {
  nonce: string;
  command: string;
}

function dumpLine(d: StateDump): string {
  return `{ printf '== silver-state %s\\n' ${d.nonce}; ${d.command} < /dev/null 2> /dev/null; printf '== silver-state-end %s %s\\n' ${d.nonce} "$?"; } >&2`;
}

/**
 * The replica a probe dumped (`silver-state get`'s output; null when the frame is missing, cut
 * short or its command failed) and the standard error without it.
 */
export function takeStateDump(stderr: string, nonce: string): { dump: string | null; rest: string } {
  const begin = `== silver-state ${nonce}\n`;
  const at = stderr.indexOf(begin);
  if (at < 0) return { dump: null, rest: stderr };
  const end = new RegExp(`^== silver-state-end ${nonce} (\\d+)$\\n?`, 'm');
  const m = end.exec(stderr.slice(at + begin.length));
  if (!m) return { dump: null, rest: stderr.slice(0, at) };
  const body = stderr.slice(at + begin.length, at + begin.length + m.index);
  const rest = stderr.slice(0, at) + stderr.slice(at + begin.length + m.index + m[0].length);
  return { dump: m[1] === '0' ? body : null, rest };
}

/**
 * A hit whatever the digest the node recorded (a balancer's, whose inputs wait for the other
 * nodes' replicas): the node's digest then follows the hit on its line, and silver takes the hit
 * only when the inputs, once known, have that digest (recordedDigest).
 */
export const ANY_DIGEST = null;

/** The digest a hit line of a probe with ANY_DIGEST names, or null when the line is no such hit. */
export function recordedDigest(line: string): string | null {
  const m = /^silver-fast: hit ([0-9a-f]{64})$/.exec(line);
  return m ? m[1]! : null;
}

/**
 * The probe a node gets first: lib.sh, the fingerprint's check, then each layer's probe.sh (and,
 * first of all, the state's dump when asked for). `digest` ANY_DIGEST: see there. `repairToken`:
 * the run's own deploy lock, which repair acts under (setup-lock.ts), never part of the digest.
 */
export function probeScript(layers: readonly string[], digest: string | null, check: boolean, root = layersRoot(), dump?: StateDump, repairToken?: string): Buffer {
  const lines: ScriptLine[] = [
    ...(dump ? [dumpLine(dump)] : []),
    assignment('SILVER_CHECK', check ? '1' : '0'),
    ...(repairToken ? [assignment('SILVER_REPAIR_TOKEN', repairToken)] : []),
    // (of lib.sh, what the probe calls: the fingerprint's check and what the layers' probes use)
    sharedText(libSubset(layerFile(join(root, 'lib.sh')), ['fast_probe', ...layers.map((l) => layerProbe(l, root))].join('\n'))),
    `fast_probe ${digest ?? "'*'"} || { echo "silver-fast: miss ($_MISS)"; exit 0; }`,
    digest === null ? `echo "${FAST_HIT} $FP_DIGEST"` : `echo "${FAST_HIT}"`,
    // (the probes run in the probe's own shell, under set -e: a layer's that fails ends the probe
    // there, without its end marker — a failed layer, as silver reads it; a probe.sh never exits)
    'set -eu',
  ];
  for (const layer of layers) {
    const probe = layerProbe(layer, root);
    lines.push(
      ...(probe ? [`printf 'silver-layer-begin: %s\\n' ${layer}`, assignment('SILVER_LAYER', layer), sharedText(probe), `printf 'silver-layer-end: %s 0\\n' ${layer}`] : [`printf 'silver-layer-begin: %s\\nsilver-layer-end: %s 0\\n' ${layer} ${layer}`]),
    );
  }
  return scriptBytes(lines);
}
