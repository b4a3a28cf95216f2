import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { realHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';

// What silver reads as configuration from the real file system: regular files of at most 16 MiB.

test('attack: extends = /dev/zero (or a FIFO, a folder, a huge file) is a located error at once, never a read until memory runs out', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const host = realHost({ HOME: dir });
  t.is(host.readFile('/dev/zero'), undefined);
  t.is(host.readFile(dir), undefined);
  writeFileSync(join(dir, 'big.conf'), Buffer.alloc((16 << 20) + 1, 0x20));
  t.is(host.readFile(join(dir, 'big.conf')), undefined);
  writeFileSync(join(dir, 'ok.conf'), '[general]\nname = x\n');
  t.is(host.readFile(join(dir, 'ok.conf')), '[general]\nname = x\n');
  for (const target of ['/dev/zero', 'big.conf']) {
    writeFileSync(join(dir, 'set.conf'), `[general]\nextends = ${target}\nname = shop\nbase_domain = shop.test\n[appserver]\n`);
    const e = t.throws(() => loadNodeset(join(dir, 'set.conf'), host));
    t.regex(e!.message, new RegExp(`set\\.conf:2: extends: ${target.replace(/[./]/g, '\\$&')}: no such file \\(looked for .*a configuration is a regular file of at most 16 MiB\\)`), target);
  }
});
