import test from 'ava';
import ssh2 from 'ssh2';
import { loginKey, sshConnect, sshExec, type SshTarget } from '../../src/ssh/connect.js';
import { ed25519Pair } from '../../src/ssh/keygen.js';

const deploy = ed25519Pair('silver-deploy');
const host = ed25519Pair('root@node');

/** An SSH server on loopback that lets in the deploy key only with a signature it checked. */
async function server(t: { teardown(f: () => void): void }): Promise<{ port: number; verified: boolean[] }> {
  const allowed = ssh2.utils.parseKey(deploy.public) as ssh2.ParsedKey;
  const verified: boolean[] = [];
  const srv = new ssh2.Server({ hostKeys: [host.private] }, (client) => {
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method !== 'publickey' || !ctx.key.data.equals(allowed.getPublicSSH())) return ctx.reject(['publickey']);
      if (!ctx.signature) return ctx.accept();
      const ok = allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true;
      verified.push(ok);
      return ok ? ctx.accept() : ctx.reject(['publickey']);
    });
    client.on('ready', () =>
      client.on('session', (accept) =>
        accept().on('exec', (acceptExec, _r, info) => {
          const ch = acceptExec();
          ch.write(`ran ${info.command}\n`);
          ch.exit(0);
          ch.end();
        }),
      ),
    );
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => srv.close());
  return { port: (srv.address() as { port: number }).port, verified };
}

const target = (port: number, hostKey = host.public): SshTarget => ({ name: 'node1', host: '127.0.0.1', port, username: 'admin', privateKey: deploy.private, hostKey, timeoutMs: 5000 });

test('logs in with the deploy key (a signature the server checks) and runs a command', async (t) => {
  const { port, verified } = await server(t);
  const client = await sshConnect(target(port));
  const r = await sshExec(client, 'true');
  client.end();
  t.deepEqual(r, { code: 0, stdout: 'ran true\n', stderr: '' });
  t.deepEqual(verified, [true]);
});

test('a host key other than the pinned one is refused', async (t) => {
  const { port } = await server(t);
  await t.throwsAsync(sshConnect(target(port, ed25519Pair('other').public)), { name: 'HostKeyMismatch' });
});

test('the login key is read once per key, and signs as the key does', (t) => {
  const key = loginKey(deploy.private);
  t.is(loginKey(deploy.private), key);
  const data = Buffer.from('session id and request');
  const pub = ssh2.utils.parseKey(deploy.public) as ssh2.ParsedKey;
  t.true(pub.verify(data, key.sign(data) as Buffer));
  t.is(key.getPublicSSH().toString('base64'), pub.getPublicSSH().toString('base64'));
});

test('a deploy key that cannot be read fails the connection, not the process', async (t) => {
  await t.throwsAsync(sshConnect({ ...target(1), privateKey: 'not a key' }), { message: /deploy key cannot be read/ });
});
