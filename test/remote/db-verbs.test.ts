import test from 'ava';
import { dbEnsure, dbVerbs, scratchDatabase } from '../../src/remote/commands/db.js';
import { mysql } from '../../src/services/mysql.js';
import { postgresql } from '../../src/services/postgresql.js';
import { quoteCommand } from '../../src/ssh/quote.js';

const P = ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-db-postgresql'];
const M = ['sudo', '-n', '/usr/local/lib/silverlining/bin/silver-db-mysql'];
const SHA = 'ab'.repeat(32);

test('silver-db-* backup verbs are exact argv through sudo -n to the service helper', (t) => {
  t.deepEqual(dbVerbs.list(postgresql), [...P, 'list']);
  t.deepEqual(dbVerbs.dump(postgresql, 'hello', '0123456789ab'), [...P, 'dump', 'hello', '0123456789ab']);
  t.deepEqual(dbVerbs.get(postgresql, '0123456789ab', 16777216, 4096), [...P, 'get', '0123456789ab', '16777216', '4096']);
  t.deepEqual(dbVerbs.put(postgresql, '0123456789ab', 0), [...P, 'put', '0123456789ab', '0']);
  t.deepEqual(dbVerbs.load(postgresql, 'hello', '0123456789ab', 'silver_verify_hello_0a1b2c3d', SHA), [...P, 'load', 'hello', '0123456789ab', 'silver_verify_hello_0a1b2c3d', SHA]);
  t.deepEqual(dbVerbs.restore(postgresql, 'hello', '0123456789ab', 'silver_restore_hello_0a1b2c3d'), [...P, 'restore', 'hello', '0123456789ab', 'silver_restore_hello_0a1b2c3d']);
  t.deepEqual(dbVerbs.drop(postgresql, 'hello', 'silver_verify_hello_0a1b2c3d'), [...P, 'drop', 'hello', 'silver_verify_hello_0a1b2c3d']);
  t.deepEqual(dbVerbs.forget(postgresql, '0123456789ab'), [...P, 'forget', '0123456789ab']);
  t.deepEqual(dbVerbs.dump(mysql, mysql.dbName('my-blog'), '0123456789ab'), [...M, 'dump', 'my_blog', '0123456789ab']);
  t.deepEqual(dbVerbs.load(mysql, 'my_blog', '0123456789ab', 'silver_restore_my_blog_0a1b2c3d', SHA), [...M, 'load', 'my_blog', '0123456789ab', 'silver_restore_my_blog_0a1b2c3d', SHA]);
  t.deepEqual(dbEnsure(mysql, 'my_blog', ['10.0.0.2']), [...M, 'ensure', 'my_blog', '10.0.0.2']);
  // Nothing needs quoting: every argument is a word the remote shell keeps as it is.
  t.is(quoteCommand(dbVerbs.load(postgresql, 'my-app', 'abcdefabcdef', 'silver_verify_my-app_00000000', SHA)), `sudo -n /usr/local/lib/silverlining/bin/silver-db-postgresql load my-app abcdefabcdef silver_verify_my-app_00000000 ${SHA}`);
});

test('throw-away databases are named silver_verify_DB_X or silver_restore_DB_X', (t) => {
  t.is(scratchDatabase('verify', 'hello', '0a1b2c3d'), 'silver_verify_hello_0a1b2c3d');
  t.is(scratchDatabase('restore', 'my_blog', 'ffffffff'), 'silver_restore_my_blog_ffffffff');
  t.throws(() => scratchDatabase('verify', 'hello', 'x; DROP'));
});
