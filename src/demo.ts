/**
 * The README's quick start: the whole demo on the local provider. Creates the demo nodeset,
 * sets it up, deploys examples/hello, and prints the balancer's address and an answer through it.
 *   npm run demo          (root: LXC)
 *   npm run demo:clean    removes the demo's nodes, bridge and proxy
 */
import { request } from 'node:http';
import { join } from 'node:path';
import { main } from './cli.js';
import { projectRoot } from './paths.js';

const root = projectRoot();
const nodeset = join(root, 'nodesets/demo.conf');

async function step(args: string[]): Promise<void> {
  console.error(`\n$ silver ${args.join(' ')}`);
  const code = await main(args);
  if (code !== 0) process.exit(code);
}

function get(address: string, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: address, port: 80, path: '/', headers: { Host: host }, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(`${res.statusCode} ${body.trim()}`));
    })
      .on('error', reject)
      .end();
  });
}

// (create-node, setup-node and update in one command)
await step(['up', nodeset, join(root, 'examples/hello')]);

const captured: string[] = [];
await main(['list-nodes', '--json', nodeset], { io: { out: (t) => captured.push(t), err: () => undefined } });
const nodes = JSON.parse(captured.join('')) as { name: string; role: string; address: string }[];
const balancer = nodes.find((n) => n.role === 'balancer')!;
console.log(`\nThe demo runs. Balancer: http://${balancer.address}/ (host name demo.test)`);
for (let i = 0; i < 2; i++) console.log(`  ${await get(balancer.address, 'demo.test')}`);
console.log(`Try: curl -H 'Host: demo.test' http://${balancer.address}/`);
console.log('Remove it: npm run demo:clean');
