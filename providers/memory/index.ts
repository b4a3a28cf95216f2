import type { ImageLabels, ImageRecord } from '../../src/image/strip.js';
import type { Nodeset } from '../../src/nodeset/types.js';
import type { CreatedNode, CreateRequest, Flavor, Provider, ProviderNode } from '../../src/provider.js';

/**
 * An in-memory provider: the reference implementation of the provider contract and the test
 * double for the commands' own logic. Not selectable from a nodeset file.
 */
export interface MemoryProviderOptions {
  /** Names whose creation fails, to test that other nodes still finish. */
  failOn?: Set<string>;
  /** A snapshot that fails with this message, to test that the builder still goes. */
  failSnapshot?: string;
}

export class MemoryProvider implements Provider {
  readonly type = 'memory';
  readonly adminUser = 'root';
  readonly nodes = new Map<string, ProviderNode & { hostKey: string }>();
  readonly calls: string[] = [];
  /** Images snapshotImage made, by name, with what they record. */
  readonly images = new Map<string, ImageRecord>();
  private next = 10;
  prepared = 0;
  released = 0;

  constructor(private readonly options: MemoryProviderOptions = {}) {}

  async prepare(_ns: Nodeset): Promise<void> {
    this.prepared++;
  }
  async listSizes(): Promise<Flavor[]> {
    return [
      { id: 'small', ramMb: 256 },
      { id: 'medium', ramMb: 1024 },
      { id: 'large', ramMb: 4096 },
    ];
  }
  async listImages(): Promise<string[]> {
    return ['debian-12', ...this.images.keys()];
  }
  async resolveImage(image: string | null): Promise<string> {
    if (image && this.images.has(image)) return image;
    if (image && image !== 'debian-12') throw new Error(`no image ${image}`);
    return 'debian-12';
  }
  async snapshotImage(builder: ProviderNode, record: ImageRecord): Promise<string> {
    this.calls.push(`snapshot ${builder.name} ${record.name}`);
    if (!this.nodes.has(builder.id)) throw new Error(`no node ${builder.id}`);
    if (this.options.failSnapshot) throw new Error(this.options.failSnapshot);
    this.images.set(record.name, record);
    return record.name;
  }
  async imageRecord(image: string): Promise<ImageLabels | null> {
    return this.images.get(image) ?? null;
  }
  async list(nodeset: string): Promise<ProviderNode[]> {
    this.calls.push(`list ${nodeset}`);
    return [...this.nodes.values()].filter((n) => n.nodeset === nodeset).map(({ hostKey: _h, ...n }) => ({ ...n }));
  }
  async create(req: CreateRequest): Promise<CreatedNode> {
    this.calls.push(`create ${req.labels.name} ${req.flavor.id}`);
    if (this.options.failOn?.has(req.labels.name)) throw new Error('simulated failure');
    const id = `mem-${req.labels.nodeset}-${req.labels.name}`;
    const node = { ...req.labels, id, state: 'running' as const, privateAddress: `10.0.0.${this.next++}`, publicAddress: null, hostKey: req.hostKey.public };
    this.nodes.set(id, node);
    const { hostKey: _h, ...plain } = node;
    return { node: plain, hostKey: req.hostKey.public };
  }
  async start(node: ProviderNode): Promise<ProviderNode> {
    const n = this.nodes.get(node.id);
    if (!n) throw new Error(`no node ${node.id}`);
    n.state = 'running';
    return { ...node, state: 'running' };
  }
  async waitReachable(node: ProviderNode): Promise<ProviderNode> {
    return node;
  }
  async hostKey(node: ProviderNode): Promise<string | null> {
    return this.nodes.get(node.id)?.hostKey ?? null;
  }
  async destroy(node: ProviderNode): Promise<void> {
    this.calls.push(`destroy ${node.name}`);
    this.nodes.delete(node.id);
  }
  async release(_nodeset: string): Promise<void> {
    this.released++;
  }
}
