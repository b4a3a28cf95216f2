import test from 'ava';
import { EventEmitter } from 'node:events';
import { onJsonLines } from '../../src/ssh/keeper.js';

/** A socket that hands over the given chunks as they would arrive. */
function feed(chunks: string[]): unknown[] {
  const sock = Object.assign(new EventEmitter(), { setEncoding: () => sock });
  const got: unknown[] = [];
  onJsonLines(sock as never, (m) => got.push(m));
  for (const c of chunks) sock.emit('data', c);
  return got;
}

test('JSON lines are read whole, however the chunks fall', (t) => {
  const big = 'x'.repeat(200_000);
  const text = `${JSON.stringify({ id: 1, stdin: big })}\n{"id":2}\n{"id":3}\n`;
  const expected = [{ id: 1, stdin: big }, { id: 2 }, { id: 3 }];
  t.deepEqual(feed([text]), expected);
  // many small chunks, a line ending exactly at a chunk's end, and one starting in the middle of a chunk
  const chunks: string[] = [];
  for (let i = 0; i < text.length; i += 4096) chunks.push(text.slice(i, i + 4096));
  t.deepEqual(feed(chunks), expected);
  const end1 = text.indexOf('\n') + 1;
  t.deepEqual(feed([text.slice(0, end1), text.slice(end1, end1 + 3), text.slice(end1 + 3)]), expected);
});

test('a line that is not JSON is skipped, the next one read; a last line without its end waits', (t) => {
  t.deepEqual(feed(['not json\n{"id"', ':4}\n{"id":5}']), [{ id: 4 }]);
});
