import type { DescribeImagesCommandInput, Image, Tag } from '@aws-sdk/client-ec2';
import { BAKEABLE_ROLES, type ImageLabels, type ImageRecord } from '../../src/image/strip.js';
import { TAG } from './instances.js';

/**
 * The `image` setting: an AMI id (`ami-0123...`), a name pattern (`debian-12-amd64-*`), or an
 * owner and a name pattern (`136693071363/debian-12-amd64-*`, `amazon/al2023-ami-*`, `self/...`).
 * A pattern without owner is looked up among trusted owners only (yours, Amazon's, Debian's),
 * never among every public AMI. The newest available match (CreationDate) wins.
 */
export const DEBIAN_OWNER = '136693071363';
export const DEFAULT_IMAGE = `${DEBIAN_OWNER}/debian-12-amd64-*`;
const TRUSTED_OWNERS = ['self', 'amazon', DEBIAN_OWNER];

export type ImageSpec = { kind: 'id'; id: string } | { kind: 'name'; owners: string[]; pattern: string };

export function parseImage(image: string | null): ImageSpec {
  const text = image?.trim() || DEFAULT_IMAGE;
  if (/^ami-[0-9a-f]+$/.test(text)) return { kind: 'id', id: text };
  const owned = /^(\d{12}|self|amazon|aws-marketplace)\/(.+)$/.exec(text);
  if (owned) return { kind: 'name', owners: [owned[1]!], pattern: owned[2]! };
  return { kind: 'name', owners: TRUSTED_OWNERS, pattern: text };
}

/** The DescribeImages request for a spec (x86_64 and available only, for a name pattern). */
export function imagesRequest(spec: ImageSpec, states = ['available']): DescribeImagesCommandInput {
  if (spec.kind === 'id') return { ImageIds: [spec.id] };
  return {
    Owners: spec.owners,
    Filters: [
      { Name: 'name', Values: [spec.pattern] },
      { Name: 'state', Values: states },
      { Name: 'architecture', Values: ['x86_64'] },
    ],
  };
}

/** Newest first (CreationDate is ISO 8601, so it sorts as text). */
export function newestFirst(images: readonly Image[]): Image[] {
  return [...images].sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''));
}

export function describeSpec(spec: ImageSpec): string {
  return spec.kind === 'id' ? spec.id : `"${spec.pattern}" (owners: ${spec.owners.join(', ')})`;
}

/** Tags of a baked image and its snapshot: who made it, for which role, when, with how many packages. */
export const IMAGE_TAG = { baked: 'silver:baked', packages: 'silver:packages' } as const;

export function imageTags(r: ImageRecord): Tag[] {
  return [
    { Key: 'Name', Value: r.name },
    { Key: TAG.nodeset, Value: r.nodeset },
    { Key: TAG.role, Value: r.role },
    { Key: IMAGE_TAG.baked, Value: r.built },
    { Key: IMAGE_TAG.packages, Value: String(r.packages.length) },
  ];
}

/** A baked image's labels from its tags, its bake time EC2's own CreationDate; null for any other image. */
export function labelsOfImage(i: Image): ImageLabels | null {
  const get = (key: string) => i.Tags?.find((t) => t.Key === key)?.Value;
  const nodeset = get(TAG.nodeset);
  const role = get(TAG.role);
  const built = i.CreationDate ?? get(IMAGE_TAG.baked);
  if (!nodeset || !role || !BAKEABLE_ROLES.includes(role as never) || !built || !i.Name) return null;
  return { name: i.Name, nodeset, role, built };
}
