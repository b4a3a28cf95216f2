import test from 'ava';
import { silver } from '../helpers/cli.js';

test('list-sizes shows the flavors of the nodeset\'s provider, smallest first, with the default', async (t) => {
  const r = await silver(['list-sizes', 'nodesets/demo.conf']);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.regex(lines[0]!, /^ID\s+RAM\s+DEFAULT/);
  t.regex(lines[1]!, /^128M\s+128 MB/);
  t.regex(r.stdout, /^512M\s+512 MB\s+yes/m);
});

test('list-images and list-sizes --provider take a provider by name, and refuse an unknown one', async (t) => {
  const images = await silver(['list-images', '--provider', 'local', '--json']);
  t.deepEqual(JSON.parse(images.stdout), ['debian-bookworm']);
  const unknown = await silver(['list-sizes', '--provider', 'nosuch'], { SILVERLINING_CONFIG: '/nonexistent/silver.conf' });
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /provider "nosuch" needs \/nonexistent\/silver\.conf, which cannot be read/);
});
