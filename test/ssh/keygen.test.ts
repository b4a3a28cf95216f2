import test from 'ava';
import ssh2 from 'ssh2';
import { ed25519Pair } from '../../src/ssh/keygen.js';
import type { KeyPair } from '../../src/provider.js';

/** A pair as ssh2 makes it for a public key that starts with a zero byte: 31 bytes left. */
function strippedPair(): KeyPair {
  const good = ssh2.utils.generateKeyPairSync('ed25519');
  const blob = Buffer.from(good.public.split(' ')[1]!, 'base64');
  const short = Buffer.concat([blob.subarray(0, 15), Buffer.from([0, 0, 0, 31]), blob.subarray(20)]);
  return { private: good.private.replace(/[A-Za-z0-9+/]{20,}/, 'AAAA'), public: `ssh-ed25519 ${short.toString('base64')}` };
}

test('a pair ssh2 cannot read is made again', (t) => {
  // (the good one made by ed25519Pair itself: one straight from ssh2 is unreadable one time in 256)
  const made: KeyPair[] = [strippedPair(), strippedPair(), ed25519Pair('root@a')];
  const comments: string[] = [];
  const pair = ed25519Pair('root@a', (c) => {
    comments.push(c);
    return made.shift()!;
  });
  t.deepEqual(comments, ['root@a', 'root@a', 'root@a']);
  t.false(ssh2.utils.parseKey(pair.private) instanceof Error);
  t.regex(pair.public, /^ssh-ed25519 \S+ root@a$/);
});

test('every generated pair is readable (ssh2 alone fails about one in 256)', (t) => {
  for (let i = 0; i < 1500; i++) {
    const pair = ed25519Pair('x');
    const pub = ssh2.utils.parseKey(pair.public);
    if (pub instanceof Error || ssh2.utils.parseKey(pair.private) instanceof Error) return t.fail(`pair ${i} unreadable`);
    t.is((Array.isArray(pub) ? pub[0]! : pub).getPublicSSH().length, 51, `pair ${i}: a 32-byte key`);
  }
});

test('a generator that never makes a readable pair is an error, not a loop', (t) => {
  t.throws(() => ed25519Pair('x', () => strippedPair()), { message: /readable ed25519/ });
});
