import type { EC2ClientConfig } from '@aws-sdk/client-ec2';
import type { ProviderConfig } from '../../src/nodeset/types.js';
import { Secret } from '../../src/secret.js';

/**
 * The `[provider]` settings of an ec2 nodeset. Nothing is required: without `region`,
 * `username`/`secret` or `profile`, the AWS SDK's usual chain (environment, ~/.aws, instance
 * role) decides. Secrets stay `Secret` objects; only the credential provider reveals them.
 */
export interface Ec2Settings {
  region: string | null;
  endpoint: string | null;
  profile: string | null;
  accessKeyId: string | null;
  secretAccessKey: Secret | null;
  sessionToken: Secret | null;
  image: string | null;
  /** A key pair name chosen by the user; null: `silver-<nodeset>`, made by silver. */
  keyName: string | null;
  subnetId: string | null;
  /** Security group ids (`sg-...`) or names, from a comma-separated `security_group`. */
  securityGroups: string[];
  availabilityZone: string | null;
}

export function ec2Settings(config: ProviderConfig): Ec2Settings {
  const text = (key: string): string | null => {
    const v = config.settings[key];
    const s = v instanceof Secret ? v.reveal() : v;
    return s && s.trim() ? s.trim() : null;
  };
  const secret = (key: string): Secret | null => {
    const v = config.settings[key];
    if (v instanceof Secret) return v.reveal() ? v : null;
    return v ? new Secret(v) : null;
  };
  const s: Ec2Settings = {
    region: text('region'),
    endpoint: text('endpoint'),
    profile: text('profile'),
    accessKeyId: text('username'),
    secretAccessKey: secret('secret'),
    sessionToken: secret('session_token'),
    image: text('image'),
    keyName: text('key_name'),
    subnetId: text('subnet_id'),
    securityGroups: (text('security_group') ?? '').split(',').map((g) => g.trim()).filter(Boolean),
    availabilityZone: text('availability_zone'),
  };
  if (!!s.accessKeyId !== !!s.secretAccessKey) {
    throw new Error('ec2 provider: set both username (the access key id) and secret (the secret access key), or neither to use the AWS SDK credential chain');
  }
  if (s.sessionToken && !s.accessKeyId) throw new Error('ec2 provider: session_token needs username and secret');
  if (s.endpoint && !/^https?:\/\//.test(s.endpoint)) throw new Error(`ec2 provider: endpoint must be an http(s) URL, got "${s.endpoint}"`);
  return s;
}

/** The secrets to scrub from any message. */
export function secretsOf(s: Ec2Settings): Secret[] {
  return [s.secretAccessKey, s.sessionToken].filter((x): x is Secret => x !== null);
}

export function clientConfig(s: Ec2Settings): EC2ClientConfig {
  const { accessKeyId, secretAccessKey, sessionToken } = s;
  return {
    ...(s.region ? { region: s.region } : {}),
    ...(s.endpoint ? { endpoint: s.endpoint } : {}),
    ...(s.profile ? { profile: s.profile } : {}),
    ...(accessKeyId && secretAccessKey
      ? {
          credentials: async () => ({
            accessKeyId,
            secretAccessKey: secretAccessKey.reveal(),
            ...(sessionToken ? { sessionToken: sessionToken.reveal() } : {}),
          }),
        }
      : {}),
    // One retry policy: p-retry in retry.ts (the SDK's own retries would multiply it).
    maxAttempts: 1,
  };
}

export function keyPairName(s: Ec2Settings, nodeset: string): string {
  return s.keyName ?? `silver-${nodeset}`;
}
