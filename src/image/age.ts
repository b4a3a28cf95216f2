import type { Nodeset } from '../nodeset/types.js';
import { IMAGE_MAX_DAYS, parseImageName, type ImageLabels } from './strip.js';

/**
 * The warning about a baked image older than IMAGE_MAX_DAYS (its packages lack the security
 * updates since), or null. create-node asks the provider for the image's labels (a cloud's own
 * creation time); plan reads them from the image's name alone, making no provider call.
 */
export function oldImageWarning(image: string, labels: ImageLabels, now: number, file: string): string | null {
  const days = (now - Date.parse(labels.built)) / 86400_000;
  if (!(days > IMAGE_MAX_DAYS)) return null;
  return `silver: image ${image} was baked ${Math.floor(days)} days ago: it lacks the security updates since; bake a new one (silver image bake ${file} --role ${labels.role})`;
}

/** The warnings about the baked images a nodeset names (`image =` of the provider or a tier), by name. */
export function namedImageWarnings(ns: Nodeset, now: number): string[] {
  const provider = ns.provider.settings['image'];
  const names = new Set([...(typeof provider === 'string' ? [provider.trim()] : []), ...ns.nodes.flatMap((n) => (n.image ? [n.image] : []))]);
  return [...names].flatMap((name) => {
    const labels = parseImageName(name);
    const warning = labels && oldImageWarning(name, labels, now, ns.file);
    return warning ? [warning] : [];
  });
}
