import { createHash, randomBytes } from 'node:crypto';
import { dbVerbs } from '../remote/commands/db.js';
import type { Remote } from '../remote/executor.js';
import type { ServiceDescriptor } from '../services/types.js';
import { filePieces } from './store.js';

/**
 * How a dump travels. The executor hands a command's standard output over as UTF-8 text (and
 * the connection keeper as JSON strings), so bytes go as base64: the helper stages the dump in
 * a root-only file on the service node, and silver reads it off in pieces of PIECE bytes
 * (`get ID OFFSET LENGTH` prints base64, decoded here), each piece's length checked, the whole
 * checked against the size and sha256 the node computed. Restores go the other way: pieces on
 * standard input (`put ID OFFSET`, raw bytes; the keeper base64-encodes them itself), and the
 * node checks the sha256 before it loads anything. Pieces keep memory bounded and each command
 * short, whatever the size of the database.
 */
export const PIECE = 16 << 20;
/** A dump or a restore of a big database takes long; a piece does not. */
export const LONG_MS = 6 * 3600_000;
const PIECE_MS = 10 * 60_000;

/** A staged file's id on the node (12 of [a-z0-9]). */
export const stagedId = (): string => randomBytes(6).toString('hex');
/** The random end of a throw-away database's name (8 of [a-z0-9]). */
export const scratchSuffix = (): string => randomBytes(4).toString('hex');

/** Reads staged file `id` (`size` bytes) off the node into `sink`; its sha256 and size as received. */
export async function fetchStaged(remote: Remote, node: string, svc: ServiceDescriptor, id: string, size: number, sink: (chunk: Buffer) => void, piece = PIECE): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let offset = 0;
  while (offset < size) {
    const length = Math.min(piece, size - offset);
    const text = await remote.run(node, 'reading the dump', dbVerbs.get(svc, id, offset, length), undefined, PIECE_MS);
    const data = Buffer.from(text, 'base64');
    if (data.length !== length) throw new Error(`${node}: ${data.length} bytes of the dump arrived from byte ${offset}, not ${length}`);
    h.update(data);
    sink(data);
    offset += length;
  }
  return { sha256: h.digest('hex'), size: offset };
}

/** Sends a local file to the node as staged file `id`. */
export async function putStaged(remote: Remote, node: string, svc: ServiceDescriptor, id: string, path: string, piece = PIECE): Promise<void> {
  for (const { offset, data } of filePieces(path, piece)) await remote.run(node, 'sending the dump', dbVerbs.put(svc, id, offset), data, PIECE_MS);
}
