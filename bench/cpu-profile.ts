/**
 * Loaded with `node --import` (through NODE_OPTIONS, which does not take --cpu-prof) by
 * `BENCH_CLIENT_PROF=DIR npm run bench:client`: a CPU profile of this process, and of the
 * keeper it starts, written to DIR when it exits.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';

const dir = process.env['BENCH_CLIENT_PROF'];
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // (a session in this thread answers at once: the profile is written before the exit)
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(dir, `${process.argv[1]?.split('/').pop()}.${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
