import { createRequire } from 'node:module';
import type ssh2Types from 'ssh2';
import type { KeyPair } from '../provider.js';

type Generate = (comment: string) => KeyPair;

// ssh2 loads only when a key is generated: commands that find their keys start faster.
const ssh2Generate: Generate = (comment) => (createRequire(import.meta.url)('ssh2') as typeof ssh2Types).utils.generateKeyPairSync('ed25519', { comment });

/** Whether ssh2 (silver's SSH client) reads both halves of the pair. */
function readable(pair: KeyPair): boolean {
  const { parseKey } = (createRequire(import.meta.url)('ssh2') as typeof ssh2Types).utils;
  return !(parseKey(pair.private) instanceof Error) && !(parseKey(pair.public) instanceof Error);
}

/**
 * A new ed25519 key pair in OpenSSH format. ssh2's generator strips the leading zero bytes of
 * the public key, so about one pair in 256 carries a 31-byte key that neither ssh2 nor OpenSSH
 * reads (ssh2 issues 1390, 1513): such a pair is made again.
 */
export function ed25519Pair(comment: string, generate: Generate = ssh2Generate): KeyPair {
  for (let i = 0; i < 20; i++) {
    const pair = generate(comment);
    if (readable(pair)) return pair;
  }
  throw new Error('could not generate a readable ed25519 key pair');
}
