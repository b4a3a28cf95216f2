import type { ConfigHost } from '../config/host.js';
import { Interpolator } from '../config/interpolate.js';
import { ConfigError, ExitError, type Diagnostic } from '../diagnostics.js';
import { parseIni } from '../ini/parse.js';
import { resolveProvider, userConfigPath } from '../nodeset/provider-config.js';
import type { ProviderConfig } from '../nodeset/types.js';
import { table } from '../output/table.js';
import type { Flavor } from '../provider.js';

/** A provider named on the command line: `[provider:NAME]` of ~/.silverlining.conf, or a bare type. */
export function providerByName(name: string, host: ConfigHost): ProviderConfig {
  const known = ['local', 'ec2', 'openstack', 'rackspace', 'kvm'];
  const text = known.includes(name) && !host.readFile(userConfigPath(host))?.includes(`[provider:${name}]`)
    ? `[provider]\nprovider = ${name}\n`
    : `[provider]\nname = ${name}\n`;
  const { doc } = parseIni(text, '--provider');
  const diagnostics: Diagnostic[] = [];
  const config = resolveProvider(doc.sections.get('provider'), '--provider', new Interpolator(doc, host.env), host, diagnostics);
  if (diagnostics.length > 0) throw new ConfigError(diagnostics);
  return config;
}

export function renderSizes(flavors: Flavor[]): string {
  if (flavors.length === 0) throw new ExitError('the provider lists no sizes', 1);
  return table(
    ['ID', 'RAM', 'DEFAULT', 'DESCRIPTION'],
    [...flavors].sort((a, b) => a.ramMb - b.ramMb).map((f) => [f.id, `${f.ramMb} MB`, f.default ? 'yes' : '', f.description ?? '']),
  );
}
