import test from 'ava';
import { SharedState } from '../../src/deploy/shared-state.js';
import { Remote } from '../../src/remote/executor.js';
import { FakeNodes } from '../helpers/fake-nodes.js';

// readQuorum: a majority of the nodes asked first (the first ones listed), the others only when
// one of those does not answer; the newest copy of each key wins, as with read.

const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

function nodes(seqs: Record<string, number>) {
  const f = new FakeNodes();
  for (const [node, seq] of Object.entries(seqs)) f.state.set(node, new Map([['apps', JSON.stringify({ seq })]]));
  return f;
}

const asked = (f: FakeNodes) => f.calls.map((c) => c.node).sort();

test('a majority answers: only they are asked; the newest copy among them wins', async (t) => {
  const f = nodes({ n1: 1, n2: 3, n3: 2, n4: 9, n5: 9 });
  const st = new SharedState(new Remote(f), { nodeset: 'x', total: 5, nodes: NODES, say: () => undefined });
  const recs = await st.readQuorum<{ seq: number }>('apps');
  t.deepEqual(asked(f), ['n1', 'n2', 'n3']);
  t.is(recs.get('apps')!.seq, 3);
});

test('one of the majority does not answer: the others are asked too; too few answers is an error', async (t) => {
  const f = nodes({ n1: 1, n2: 3, n3: 2, n4: 5, n5: 4 });
  f.down = new Set(['n2']);
  const st = new SharedState(new Remote(f), { nodeset: 'x', total: 5, nodes: NODES, say: () => undefined });
  const recs = await st.readQuorum<{ seq: number }>('apps');
  t.deepEqual(asked(f), NODES);
  t.is(recs.get('apps')!.seq, 5);
  f.down = new Set(['n1', 'n2', 'n3']);
  await t.throwsAsync(st.readQuorum('apps'), { message: /read on 2 of 5 nodes; it needs 3/ });
});
