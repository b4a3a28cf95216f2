import { b64, sudoHelper } from './helpers.js';

/** The verbs of `silver-state` (setup-layers/base/bin): the nodeset's shared state on each node. */
const verb = (...args: string[]) => sudoHelper('silver-state', ...args);

export const stateVerbs = {
  get: (...keys: string[]) => verb('get', ...keys),
  /** The value goes on standard input. */
  put: (key: string, ifOlderThan?: number) => verb('put', key, ...(ifOlderThan === undefined ? [] : [String(ifOlderThan)])),
  lock: (token: string, ttlSeconds: number, holder: string, steal?: string) => verb('lock', token, String(ttlSeconds), b64(holder), ...(steal ? [steal] : [])),
  unlock: (token: string) => verb('unlock', token),
  breakLock: () => verb('unlock', '--force'),
  lockinfo: () => verb('lockinfo'),
  /** One line (on standard input) added to the log KEY. */
  append: (key: string) => verb('append', key),
  log: (key: string, lines: number) => verb('log', key, String(lines)),
};
