/** Where setup-node installs silver's root-owned helpers; the deploy user's one sudo rule points here. */
export const HELPERS = '/usr/local/lib/silverlining/bin';

/** A helper run as root through `sudo -n` (never asks for a password; fails instead). */
export function sudoHelper(helper: string, ...args: string[]): string[] {
  return ['sudo', '-n', `${HELPERS}/${helper}`, ...args];
}

export const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
