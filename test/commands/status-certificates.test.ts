import test from 'ava';
import { certificateLines } from '../../src/commands/status.js';

// silver status: each balancer's certificates (a pair's two have their own).

const cert = (end: string) => ({ notAfter: end, issuer: 'CN = Pebble Intermediate CA 1a2b' });

test('one balancer: one certificates line as before; a pair: a line per balancer, named', (t) => {
  t.deepEqual(certificateLines({ 'balancer.s.test': { 's.test': cert('Jan  1 00:00:00 2031 GMT'), 'w.s.test': null } }, false), [
    'certificates: s.test until Jan  1 00:00:00 2031 GMT (Pebble Intermediate CA 1a2b); w.s.test none yet (setup-node asks the ACME server)',
  ]);
  t.deepEqual(certificateLines({ 'balancer1.p.test': { 'p.test': cert('Jan  1 2031') }, 'balancer2.p.test': { 'p.test': cert('Feb  2 2031') } }, true), [
    'certificates on balancer1.p.test: p.test until Jan  1 2031 (Pebble Intermediate CA 1a2b)',
    'certificates on balancer2.p.test: p.test until Feb  2 2031 (Pebble Intermediate CA 1a2b)',
  ]);
  t.deepEqual(certificateLines({ 'balancer2.p.test': { 'p.test': cert('Feb  2 2031') } }, true), ['certificates on balancer2.p.test: p.test until Feb  2 2031 (Pebble Intermediate CA 1a2b)'], 'an unreadable balancer is left out, the other still named');
  t.deepEqual(certificateLines(undefined, false), []);
});
