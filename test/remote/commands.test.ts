import test from 'ava';
import { dbEnsure } from '../../src/remote/commands/db.js';
import { deployVerbs } from '../../src/remote/commands/deploy.js';
import { stateVerbs } from '../../src/remote/commands/state.js';
import { mysql } from '../../src/services/mysql.js';
import { postgresql } from '../../src/services/postgresql.js';
import { serviceEnv } from '../../src/services/types.js';
import { quoteCommand } from '../../src/ssh/quote.js';

const D = ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-deploy'];
const S = ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-state'];
const I = 'blog.2026-12-02_001';

test('silver-deploy verbs are exact argv through sudo -n to the helper', (t) => {
  t.deepEqual(deployVerbs.stage('blog', I, 20001, '/health', "python3 app.py --name 'x'", ['python3-psycopg2']), [...D, 'stage', 'blog', I, '20001', '/health', Buffer.from("python3 app.py --name 'x'").toString('base64'), 'python3-psycopg2']);
  t.deepEqual(deployVerbs.env('blog', I), [...D, 'env', 'blog', I]);
  t.deepEqual(deployVerbs.start('blog', I), [...D, 'start', 'blog', I]);
  t.deepEqual(deployVerbs.stop('blog', I), [...D, 'stop', 'blog', I]);
  t.deepEqual(deployVerbs.stopAfter('blog', I, 500), [...D, 'stop-after', 'blog', I, '500']);
  t.deepEqual(deployVerbs.up('blog', I, 60), [...D, 'up', 'blog', I, '60']);
  t.deepEqual(deployVerbs.switchStop('blog', I, 500), [...D, 'switch-stop', 'blog', I, '500']);
  t.deepEqual(deployVerbs.wait('blog', I, '-', 60, '2xx'), [...D, 'wait', 'blog', I, '-', '60', '2xx']);
  t.deepEqual(deployVerbs.fetch('blog', I, '/setup stuff', 'primary'), [...D, 'fetch', 'blog', I, '/setup stuff', 'primary']);
  t.deepEqual(deployVerbs.fetchScript('blog', I, 'secondary', 'echo $HOME'), [...D, 'fetch-script', 'blog', I, 'secondary', Buffer.from('echo $HOME').toString('base64')]);
  t.deepEqual(deployVerbs.switch('blog', I), [...D, 'switch', 'blog', I]);
  t.deepEqual(deployVerbs.switch('blog', I, '-'), [...D, 'switch', 'blog', I, '-']);
  t.deepEqual(deployVerbs.unswitch('blog'), [...D, 'unswitch', 'blog']);
  t.deepEqual(deployVerbs.status(), [...D, 'status']);
  t.deepEqual(deployVerbs.prune('blog', 3), [...D, 'prune', 'blog', '3']);
  // Quoted once, at the boundary: what the node's shell gets back is the same argv.
  t.is(quoteCommand(deployVerbs.fetch('blog', I, '/setup stuff', 'primary')), `sudo -n /usr/local/lib/silverlining/bin/silver-deploy fetch blog ${I} '/setup stuff' primary`);
});

test('silver-state verbs: the holder goes base64-encoded, values on stdin', (t) => {
  t.deepEqual(stateVerbs.get('rollout', 'apps'), [...S, 'get', 'rollout', 'apps']);
  t.deepEqual(stateVerbs.put('rollout'), [...S, 'put', 'rollout']);
  t.deepEqual(stateVerbs.lock('abcdef0123456789', 30, 'ann@box pid 1: update x'), [...S, 'lock', 'abcdef0123456789', '30', Buffer.from('ann@box pid 1: update x').toString('base64')]);
  t.deepEqual(stateVerbs.lock('abcdef0123456789', 30, 'h', 'feedfeedfeedfeed'), [...S, 'lock', 'abcdef0123456789', '30', 'aA==', 'feedfeedfeedfeed']);
  t.deepEqual(stateVerbs.unlock('abcdef0123456789'), [...S, 'unlock', 'abcdef0123456789']);
  t.deepEqual(stateVerbs.breakLock(), [...S, 'unlock', '--force']);
});

test('each service is described once: helper, database naming, ensure arguments, environment', (t) => {
  t.deepEqual(dbEnsure(postgresql, 'my-app', ['10.0.0.2']), ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-db-postgresql', 'ensure', 'my-app']);
  t.deepEqual(dbEnsure(mysql, mysql.dbName('my-app'), ['10.0.0.2', '10.0.0.3']), ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-db-mysql', 'ensure', 'my_app', '10.0.0.2', '10.0.0.3']);
  t.deepEqual(serviceEnv(postgresql, 'blog', 'pw', 'db.x'), { CONFIG_PG_DBNAME: 'blog', CONFIG_PG_USER: 'blog', CONFIG_PG_PASSWORD: 'pw', CONFIG_PG_HOST: 'db.x', CONFIG_PG_PORT: '5432' });
  t.deepEqual(serviceEnv(mysql, 'blog', 'pw', 'db.x'), { CONFIG_MYSQL_DBNAME: 'blog', CONFIG_MYSQL_USER: 'blog', CONFIG_MYSQL_PASSWORD: 'pw', CONFIG_MYSQL_HOST: 'db.x', CONFIG_MYSQL_PORT: '3306' });
});
