import { isBuilder } from '../../src/image/builder.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { Call, FakeNodes } from './fake-nodes.js';

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });

/** The packages a fake builder has installed. */
export const BUILDER_PACKAGES = ['haproxy 2.6.12-1', 'nginx 1.22.1-9'];

/**
 * A builder node (`silver image bake`) among the fake nodes: it answers setup-node's script
 * (each layer ending with `layerCode`'s exit code, 0 by default), dpkg-query, the record's tee
 * and the strip, as root or through sudo. What each got on standard input is kept by step:
 * `setup`, `record`, `strip`.
 */
export function answerBuilder(nodes: FakeNodes, opts: { layerCode?: (layer: string) => number } = {}): Map<string, string> {
  const stdins = new Map<string, string>();
  nodes.answerOther = (call: Call, stdin?: string | Buffer) => {
    if (!isBuilder(call.node)) return null;
    const argv = call.argv[0] === 'sudo' && call.argv[1] === '-n' ? call.argv.slice(2) : call.argv;
    const text = String(stdin ?? '');
    if (argv.join(' ') === 'sh -s') {
      stdins.set('setup', text);
      const out: string[] = [];
      for (const [, layer] of text.matchAll(/^echo "silver-layer-begin: (\S+)"$/gm)) {
        const code = opts.layerCode?.(layer!) ?? 0;
        out.push(`silver-layer-begin: ${layer}`, `silver-layer-end: ${layer} ${code}`);
        if (code !== 0) return { code, stdout: `${out.join('\n')}\n`, stderr: `${layer}: apt-get failed` };
      }
      return ok(`${out.join('\n')}\n`);
    }
    if (argv[0] === 'dpkg-query') return ok(BUILDER_PACKAGES.map((p) => `${p}\n`).join(''));
    if (argv[0] === 'tee') {
      stdins.set('record', text);
      return ok(text);
    }
    if (argv[0] === 'sh' && argv[1] === '-s' && argv[2] === '--') {
      stdins.set('strip', text);
      return ok();
    }
    return null;
  };
  return stdins;
}
