/**
 * Simulated nodes for `npm run bench:client` (client-sim.ts starts this in a process of its own):
 * COUNT `ssh2` servers on 127.0.0.1, one port and one ed25519 host key each, that let in the
 * deploy key and answer what a no-op `silver setup-node` sends as a set-up node does when nothing
 * changes:
 *
 * - the probe (`sh -s` or `sudo -n sh -s`, the script on standard input; src/setup/fast-path.ts):
 *   the fingerprint holds, so `silver-fast: hit`, then for each layer the probe holds (`printf
 *   'silver-layer-begin: %s\n' L`, or both markers in one printf for a layer without probe.sh)
 *   the begin marker and after the layer's time `silver-layer-end: L 0`; no `silver-changed:`
 *   line; on stderr the node's replica of the shared state when the probe asks for it (the apps
 *   record an update leaves, framed by the probe's nonce, counted as a state read); exit 0;
 * - a full node script (`echo "silver-layer-begin: L"` for each layer) the same way, without the
 *   hit line (silver sends one only when a probe misses: counted as unexpected here);
 * - `…/silver-state get apps maintenance` (the balancer's own replica; through `sudo -n` unless
 *   the session is root's): the apps record an update leaves (`== apps` and its JSON line), no
 *   maintenance record;
 * - anything else: exit 127 and counted as unexpected (the benchmark fails on any).
 *
 * Protocol on standard input/output, one JSON line each: the first input line is the settings
 * ({ count, deployKey, layerMs }); once every server listens it prints { nodes: [{ port, hostKey }] }.
 * Each later input line `stats` is answered with the counters; `reset` zeroes them. It ends when
 * its standard input closes (the benchmark ended, however it ended), on SIGTERM, or after
 * `maxSeconds`.
 */
import { createInterface } from 'node:readline';
import ssh2 from 'ssh2';
import { ed25519Pair } from '../src/ssh/keygen.js';

interface Settings {
  count: number;
  /** The deploy key's public line (the only key let in). */
  deployKey: string;
  /** How long each layer of the script takes on a node (a real no-op: about 0.1–0.3 s each). */
  layerMs: number;
  maxSeconds: number;
}

const STATE_GET = '/usr/local/lib/silverlining/bin/silver-state get apps maintenance';
const APPS_RECORD = '== apps\n{"seq":1,"health":{"hello":"/health"}}\n\n';
const BEGIN = /^echo "silver-layer-begin: (\S+)"$/gm;
const PROBE_BEGIN = /^printf 'silver-layer-begin: %s\\n(?:silver-layer-end: %s 0\\n)?' (\S+)(?: \S+)?$/gm;
const PROBE = /^fast_probe [0-9a-f]{64} /m;
const DUMP = /^\{ printf '== silver-state %s\\n' ([0-9a-f]+); \S+ get apps maintenance < \/dev\/null/m;

const stats = { connections: 0, ready: 0, open: 0, peakOpen: 0, authFailures: 0, scripts: 0, layers: 0, stateReads: 0, unexpected: [] as string[], scriptBytes: 0 };

function reset(): void {
  Object.assign(stats, { connections: 0, ready: 0, peakOpen: stats.open, authFailures: 0, scripts: 0, layers: 0, stateReads: 0, unexpected: [], scriptBytes: 0 });
}

/** The layers a node script (or a probe) runs, in order, as its markers name them. */
function layersOf(script: string): string[] {
  return [...script.matchAll(PROBE.test(script) ? PROBE_BEGIN : BEGIN)].map((m) => m[1]!);
}

function answerScript(stream: ssh2.ServerChannel, layerMs: number): void {
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  stream.on('end', () => {
    const script = Buffer.concat(chunks).toString('utf8');
    stats.scripts++;
    stats.scriptBytes += script.length;
    const layers = layersOf(script);
    const probe = PROBE.test(script);
    // (a script without lib.sh or without layers is not what silver sends: a failure, as sh would
    // give; a full script after a hit is not what silver sends either)
    if (layers.length === 0 || !script.includes('\nfast_probe() {') || !probe) {
      stats.unexpected.push(probe || layers.length === 0 ? `script without layers (${script.length} bytes)` : 'a full node script after a hit');
      stream.stderr.write('sim: not a node script\n');
      stream.exit(2);
      stream.end();
      return;
    }
    const dump = DUMP.exec(script);
    if (dump) {
      stats.stateReads++;
      stream.stderr.write(`== silver-state ${dump[1]}\n${APPS_RECORD}== silver-state-end ${dump[1]} 0\n`);
    }
    stream.write('silver-fast: hit\n');
    const next = (i: number) => {
      if (i === layers.length) {
        stream.exit(0);
        stream.end();
        return;
      }
      stream.write(`silver-layer-begin: ${layers[i]}\n`);
      setTimeout(() => {
        stats.layers++;
        stream.write(`silver-layer-end: ${layers[i]} 0\n`);
        next(i + 1);
      }, layerMs);
    };
    next(0);
  });
}

function answer(command: string, stream: ssh2.ServerChannel, layerMs: number): void {
  if (command === 'sh -s' || command === 'sudo -n sh -s') return answerScript(stream, layerMs);
  stream.on('data', () => undefined);
  if (command === STATE_GET || command === `sudo -n ${STATE_GET}`) {
    stats.stateReads++;
    stream.write(APPS_RECORD);
    stream.exit(0);
  } else {
    stats.unexpected.push(command.slice(0, 200));
    stream.stderr.write(`sim: unexpected command\n`);
    stream.exit(127);
  }
  stream.end();
}

function serve(settings: Settings, hostKey: string, allowed: ssh2.ParsedKey): Promise<ssh2.Server> {
  const server = new ssh2.Server({ hostKeys: [hostKey] }, (client) => {
    stats.connections++;
    stats.open++;
    stats.peakOpen = Math.max(stats.peakOpen, stats.open);
    client.on('close', () => stats.open--);
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || ctx.key.algo !== allowed.type || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject(['publickey']);
      if (ctx.signature && allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) {
        stats.authFailures++;
        return ctx.reject(['publickey']);
      }
      ctx.accept();
    });
    client.on('ready', () => {
      stats.ready++;
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => answer(info.command, acceptExec(), settings.layerMs));
      });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

async function start(settings: Settings): Promise<void> {
  const parsed = ssh2.utils.parseKey(settings.deployKey);
  if (parsed instanceof Error) throw parsed;
  const allowed = Array.isArray(parsed) ? parsed[0]! : parsed;
  const nodes: { port: number; hostKey: string }[] = [];
  const servers: ssh2.Server[] = [];
  for (let i = 0; i < settings.count; i++) {
    const pair = ed25519Pair(`root@sim${i}`);
    const server = await serve(settings, pair.private, allowed);
    servers.push(server);
    nodes.push({ port: (server.address() as { port: number }).port, hostKey: pair.public.split(' ').slice(0, 2).join(' ') });
  }
  const end = () => {
    for (const s of servers) s.close();
    process.exit(0);
  };
  process.on('SIGTERM', end);
  setTimeout(end, settings.maxSeconds * 1000).unref();
  process.stdout.write(`${JSON.stringify({ nodes })}\n`);
}

const lines = createInterface({ input: process.stdin });
let started = false;
lines.on('line', (line) => {
  if (!started) {
    started = true;
    start(JSON.parse(line) as Settings).catch((e: Error) => {
      process.stderr.write(`sim-nodes: ${e.message}\n`);
      process.exit(1);
    });
  } else if (line === 'stats') process.stdout.write(`${JSON.stringify(stats)}\n`);
  else if (line === 'reset') {
    reset();
    process.stdout.write('{"reset":true}\n');
  }
});
// The benchmark went away (ended, crashed or was killed): so do the nodes.
lines.on('close', () => process.exit(0));
