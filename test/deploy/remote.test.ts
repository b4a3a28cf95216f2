import test from 'ava';
import { freePort, nextInstanceName, parseStatus } from '../../src/deploy/remote.js';

test('instance names: APP.YYYY-MM-DD_NNN, counting up per day across all nodes', (t) => {
  const day = new Date('2026-11-22T10:00:00Z');
  t.is(nextInstanceName('blog', day, []), 'blog.2026-11-22_001');
  t.is(nextInstanceName('blog', day, ['blog.2026-11-22_001', 'blog.2026-11-22_007', 'blog.2026-11-21_009', 'wiki.2026-11-22_020']), 'blog.2026-11-22_008');
});

test('a port no instance uses', (t) => {
  t.is(freePort([]), 20001);
  t.is(freePort([20001, 20002, 20004]), 20003);
});

test('status lines parse into apps and instances', (t) => {
  const s = parseStatus('app blog active blog.2026-11-22_002 previous blog.2026-11-22_001 health unhealthy:500 code aaa static - instances blog.2026-11-22_001:20001:inactive blog.2026-11-22_002:20002:active\napp wiki active - previous - health - instances\n');
  t.deepEqual(s, [
    { app: 'blog', active: 'blog.2026-11-22_002', previous: 'blog.2026-11-22_001', health: 'unhealthy:500', code: 'aaa', static: null, instances: [{ name: 'blog.2026-11-22_001', port: 20001, running: false }, { name: 'blog.2026-11-22_002', port: 20002, running: true }] },
    { app: 'wiki', active: null, previous: null, health: null, code: null, static: null, instances: [] },
  ]);
});


