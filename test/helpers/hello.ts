import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderConfig } from '../../src/nodeset/types.js';

/**
 * The nodeset the deploy e2e tests share: two app servers serving one app (examples/hello), PostgreSQL, a
 * balancer, on the test's own bridge and subnet.
 */
export function helloNodeset(name: string, domain: string, config: ProviderConfig, app = 'hello'): string {
  return `[general]
name = ${name}
base_domain = ${domain}
[provider]
provider = local
bridge = ${config.settings['bridge']}
subnet = ${config.settings['subnet']}
proxy_port = ${config.settings['proxy_port']}
[appserver]
nodes = 2
size = ram 256MB
locations = http://${domain}/ ${app}
[service:postgresql]
node_name = db.${domain}
[balancer]
`;
}

/** A copy of the example app in `dir` with its VERSION set (and optional extra files). */
export function helloVersion(dir: string, v: string, extra: Record<string, string> = {}): string {
  const d = join(dir, `hello-v${v}-${Object.keys(extra).length}`);
  cpSync(join(process.cwd(), 'examples/hello'), d, { recursive: true });
  writeFileSync(join(d, 'VERSION'), `${v}\n`);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(d, name), text);
  return d;
}

/** The version an answer of the example app names. */
export const versionOf = (body: string): string => /version (\S+),/.exec(body)?.[1] ?? body.slice(0, 40);
