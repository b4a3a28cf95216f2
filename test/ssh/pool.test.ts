import test from 'ava';
import { EventEmitter } from 'node:events';
import type ssh2 from 'ssh2';
import { HANDSHAKES, SshPool } from '../../src/ssh/pool.js';
import type { SshTarget } from '../../src/ssh/connect.js';

const targets = (n: number): SshTarget[] => Array.from({ length: n }, (_, i) => ({ name: `app${i}`, host: '127.0.0.1', username: 'admin', privateKey: 'k', hostKey: 'ssh-ed25519 AAAA' }));

test('connections to many nodes at once: at most HANDSHAKES handshakes under way, every node connected once', async (t) => {
  let inFlight = 0;
  let most = 0;
  const opened: string[] = [];
  const pool = new SshPool(targets(300), {
    connect: async (target) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      opened.push(target.name);
      return Object.assign(new EventEmitter(), { end: () => undefined }) as unknown as ssh2.Client;
    },
  });
  const clients = await Promise.all(targets(300).map((x) => pool.connection(x.name)));
  t.is(most, HANDSHAKES);
  t.is(new Set(opened).size, 300);
  t.is(opened.length, 300);
  // (a node asked again gets the connection it has)
  t.is(await pool.connection('app7'), clients[7]!);
  await pool.close();
});
