import type { Nodeset } from './types.js';

/**
 * Warnings for apps that share a host name (`plan` prints them): a browser keeps one origin per
 * scheme, host and port, and cookies per host whatever the scheme or port, so a page of one app
 * runs where the other's does — it reads the other's cookies (those not marked HttpOnly) and calls
 * its pages as the visitor. Nothing in between can tell them apart; only host names of their own
 * do. Apps that trust each other (one site split in two) may share one.
 */
export function sharedOriginWarnings(ns: Nodeset): string[] {
  const byHost = new Map<string, Map<string, string[]>>();
  for (const l of ns.locations) {
    if (!l.host) continue;
    const apps = byHost.get(l.host) ?? new Map<string, string[]>();
    byHost.set(l.host, apps);
    const paths = apps.get(l.app) ?? [];
    if (!paths.includes(l.path)) paths.push(l.path);
    apps.set(l.app, paths);
  }
  const warnings: string[] = [];
  for (const [host, apps] of byHost) {
    if (apps.size < 2) continue;
    const which = [...apps].map(([app, paths]) => `${app} (${paths.join(', ')})`).join(', ');
    warnings.push(`${ns.file}: warning: apps ${which} share the host ${host}: a page of one runs in the others' origin, where it can read their cookies and call their pages as the visitor; give each its own host name unless they trust each other`);
  }
  return warnings;
}
