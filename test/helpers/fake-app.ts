import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AppConfig } from '../../src/app/app-ini.js';

/** The instance the simulated app servers serve, and the one a first update on 2026-12-02 makes. */
export const OLD = 'hello.2026-12-01_001';
export const NEW = 'hello.2026-12-02_001';

/** The app the deploy unit tests roll out: `hello` (PostgreSQL, update_fetch /setup) in a fresh folder. */
export function fakeApp(): AppConfig {
  const dir = mkdtempSync(join(tmpdir(), 'silver-app-'));
  writeFileSync(join(dir, 'app.py'), 'print(1)\n');
  return {
    dir, file: join(dir, 'app.ini'), name: 'hello', runner: 'python3 app.py', services: ['postgresql'],
    updateFetch: [{ kind: 'path', path: '/setup' }], healthCheck: '/health', packages: [], defaultLocation: null,
    migrate: null, migrateMode: 'online', static: null, maintenancePage: null,
  };
}
