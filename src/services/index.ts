import { mysql } from './mysql.js';
import { postgresql } from './postgresql.js';
import type { ServiceDescriptor } from './types.js';

/** Every service silver knows, by name. */
export const SERVICES: ReadonlyMap<string, ServiceDescriptor> = new Map([mysql, postgresql].map((s) => [s.name, s]));

export function service(name: string): ServiceDescriptor {
  const s = SERVICES.get(name);
  if (!s) throw new Error(`unknown service ${name}`);
  return s;
}
