/**
 * cloud-init prints the host keys to the serial console between these markers; EC2 gives the
 * console back (GetConsoleOutput, base64) a while after boot. ed25519 is preferred.
 */
const BEGIN = '-----BEGIN SSH HOST KEY KEYS-----';
const END = '-----END SSH HOST KEY KEYS-----';
const PREFERENCE = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

/** `type base64` of the preferred host key in the last block of the console output, or null. */
export function hostKeyFromConsole(output: string): string | null {
  const start = output.lastIndexOf(BEGIN);
  if (start < 0) return null;
  const end = output.indexOf(END, start);
  if (end < 0) return null;
  const block = output.slice(start + BEGIN.length, end);
  const keys = [...block.matchAll(/(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) (AAAA[A-Za-z0-9+/]+={0,3})/g)];
  for (const type of PREFERENCE) {
    const m = keys.find((k) => k[1] === type);
    if (m) return `${m[1]} ${m[2]}`;
  }
  return null;
}

/** GetConsoleOutput's `Output` is base64. */
export function decodeConsole(output: string | undefined): string {
  return output ? Buffer.from(output, 'base64').toString('utf8') : '';
}
