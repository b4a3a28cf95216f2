import { dirname, join } from 'node:path';
import type { ConfigHost } from '../config/host.js';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { Entry, Section } from '../ini/parse.js';

/**
 * `[access]`: people's own public keys — never a shared private key (seed 002). `deployers =
 * FILE...` go into the deploy user's authorized_keys on every node, `admins = FILE...` into
 * root's (none by default); silver's own key stays in both. A key removed from the list is
 * removed from the nodes at the next setup-node.
 */
export interface Access {
  deployers: string[];
  admins: string[];
}

const KEY_TYPES = ['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com'];

/** One public key line as `TYPE BASE64 [COMMENT]`, or why it is not one (no options, no control characters). */
export function publicKeyLine(line: string): { key: string } | { error: string } {
  const parts = line.trim().split(/\s+/);
  const [type, blob, ...comment] = parts;
  if (!type || !KEY_TYPES.includes(type)) return { error: `not an SSH public key (a line must start with one of ${KEY_TYPES.slice(0, 3).join(', ')}, …; options such as command= are not taken)` };
  if (!blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return { error: `the ${type} key's data is not base64` };
  const raw = Buffer.from(blob, 'base64');
  const len = raw.length >= 4 ? raw.readUInt32BE(0) : -1;
  if (len < 1 || raw.subarray(4, 4 + len).toString('latin1') !== type) return { error: `the key's data is not a ${type} key` };
  const text = comment.join(' ').replace(/[^\x20-\x7e]/g, '').slice(0, 100);
  return { key: text ? `${type} ${blob} ${text}` : `${type} ${blob}` };
}

/** The keys of `[access]`, each file read relative to the file that names it; problems located. */
export function resolveAccess(section: Section | undefined, value: (s: Section, e: Entry) => string | null, host: ConfigHost, diagnostics: Diagnostic[]): Access {
  const out: Access = { deployers: [], admins: [] };
  if (!section) return out;
  for (const key of ['deployers', 'admins'] as const) {
    const entry = section.entries.get(key);
    if (!entry) continue;
    const v = value(section, entry);
    if (v === null) continue;
    for (const path of v.split(/\s+/).filter(Boolean)) {
      const full = path.startsWith('/') ? path : join(dirname(entry.file), path);
      const text = host.readFile(full);
      if (text === undefined) {
        diagnostics.push(diagnostic(entry.file, entry.line, key, `cannot read ${path}`));
        continue;
      }
      if (/PRIVATE KEY/.test(text)) {
        diagnostics.push(diagnostic(entry.file, entry.line, key, `${path} is a private key: name the .pub file`));
        continue;
      }
      const lines = text.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));
      if (lines.length === 0) diagnostics.push(diagnostic(entry.file, entry.line, key, `${path} holds no public key`));
      for (const l of lines) {
        const r = publicKeyLine(l);
        if ('error' in r) diagnostics.push(diagnostic(entry.file, entry.line, key, `${path}: ${r.error}`));
        else if (!out[key].includes(r.key)) out[key].push(r.key);
      }
    }
  }
  return out;
}
