import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';
import type { SshTarget } from '../../src/ssh/connect.js';
import { ed25519Pair } from '../../src/ssh/keygen.js';
import { keeperSocket, openExecutor, privateFolder, stopKeeper, tryConnect } from '../../src/ssh/keeper.js';

// The connection keeper (the real keeper-main.js, in a process of its own) against an SSH server
// on loopback: `sleep MS` answers after MS milliseconds, anything else at once.

const deploy = ed25519Pair('silver-deploy');
const host = ed25519Pair('root@node');

async function sshServer(t: { teardown(f: () => void): void }): Promise<number> {
  const srv = new ssh2.Server({ hostKeys: [host.private] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => (ctx.method === 'publickey' ? ctx.accept() : ctx.reject(['publickey'])));
    client.on('ready', () =>
      client.on('session', (accept) =>
        accept().on('exec', (acceptExec, _r, info) => {
          const ch = acceptExec();
          const m = /^sleep (\d+)$/.exec(info.command);
          setTimeout(() => {
            ch.write(`ran ${info.command}\n`);
            ch.exit(0);
            ch.end();
          }, m ? Number(m[1]) : 0);
        }),
      ),
    );
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => srv.close());
  return (srv.address() as { port: number }).port;
}

/** A keeper for one node on that server, started as silver starts it; its process and socket. */
async function keeper(t: { teardown(f: () => void): void }, idleSeconds: number, connectedIdleSeconds?: number) {
  const port = await sshServer(t);
  const root = mkdtempSync(join(tmpdir(), 'silver-keeper-'));
  const target: SshTarget = { name: 'node1', host: '127.0.0.1', port, username: 'silver', privateKey: deploy.private, hostKey: host.public, timeoutMs: 5000 };
  const socket = keeperSocket(root, 'ks', 'silver', deploy.private);
  mkdirSync(join(root, 'keep'), { mode: 0o700 });
  const main = fileURLToPath(new URL('../../src/ssh/keeper-main.js', import.meta.url));
  const child: ChildProcess = spawn(process.execPath, [main], { stdio: ['pipe', 'ignore', 'ignore'] });
  child.stdin!.end(JSON.stringify({ socket, idleSeconds, ...(connectedIdleSeconds ? { connectedIdleSeconds } : {}), privateKey: deploy.private, targets: [{ name: 'node1', host: '127.0.0.1', port, username: 'silver', hostKey: host.public }] }));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.teardown(() => {
    child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
  const env = { SILVER_PERSIST: '60' };
  const open = () => openExecutor(root, 'ks', [target], env);
  return { child, socket, exited, open, gone: () => child.exitCode !== null || child.signalCode !== null };
}

test('a quit (silver disconnect, delete-node) lets the commands running through the keeper finish; its socket goes at once, the keeper once they are done', async (t) => {
  const k = await keeper(t, 60);
  const running = await k.open();
  t.is((await running.exec('node1', 'true')).stdout, 'ran true\n');
  const step = running.exec('node1', 'sleep 700');
  await new Promise((r) => setTimeout(r, 100));
  t.true(await stopKeeper(k.socket));
  t.false(existsSync(k.socket), 'a new command finds no keeper: it makes its own connections');
  t.deepEqual(await step, { code: 0, stdout: 'ran sleep 700\n', stderr: '' }, 'the step under way was not cut short');
  t.false(k.gone(), 'still serving the command connected to it');
  await running.close();
  await k.exited;
  t.true(k.gone());
});

test('the keeper does not end for idleness while a command is connected to it', async (t) => {
  const k = await keeper(t, 1);
  const exec = await k.open();
  t.is((await exec.exec('node1', 'true')).code, 0);
  // (the command does its own work for longer than the keeper's idle time, then goes on)
  await new Promise((r) => setTimeout(r, 1600));
  t.false(k.gone());
  t.is((await exec.exec('node1', 'true')).stdout, 'ran true\n');
  await exec.close();
  await k.exited;
  t.pass('ended once idle with nobody connected');
});

test('a command whose keeper went away fails its next step at once (it never waits for an answer that cannot come)', async (t) => {
  const k = await keeper(t, 60);
  const exec = await k.open();
  t.is((await exec.exec('node1', 'true')).code, 0);
  k.child.kill('SIGTERM');
  await k.exited;
  for (let i = 0; i < 50 && (await tryConnect(k.socket, 50)); i++) await new Promise((r) => setTimeout(r, 20));
  const outcome = await Promise.race([
    exec.exec('node1', 'true').then(
      () => 'answered',
      (e: Error) => e.message,
    ),
    new Promise((r) => setTimeout(() => r('no answer within 3 s'), 3000)),
  ]);
  t.is(outcome, 'the connection keeper went away during the command');
  await exec.close();
});

test('a keep folder others can enter, or not this user\'s, is not trusted: the command makes its own connections and starts no keeper', async (t) => {
  const k = await keeper(t, 60);
  const dir = join(k.socket, '..');
  t.true(privateFolder(dir));
  chmodSync(dir, 0o755);
  t.false(privateFolder(dir));
  const exec = await k.open();
  t.is((await exec.exec('node1', 'true')).stdout, 'ran true\n', 'through connections of its own');
  t.is(exec.constructor.name, 'SshPool');
  await exec.close();
  chmodSync(dir, 0o700);
  t.true(privateFolder(dir));
  t.true(privateFolder(join(dir, 'absent')));
});

test('a command connected but doing nothing (suspended, hung) keeps the keeper no longer than its longer idle time; after a quit too', async (t) => {
  const k = await keeper(t, 60, 2);
  const exec = await k.open();
  t.is((await exec.exec('node1', 'true')).code, 0);
  t.true(await stopKeeper(k.socket));
  const t0 = Date.now();
  await k.exited;
  t.true(Date.now() - t0 >= 1500, 'it waited for the connected command a while');
  const r = await exec.exec('node1', 'true').then(() => 'answered', (e: Error) => e.message);
  t.is(r, 'the connection keeper went away during the command');
  await exec.close();
});
