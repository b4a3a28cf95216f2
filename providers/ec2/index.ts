import { randomUUID } from 'node:crypto';
import {
  CreateImageCommand, DeleteKeyPairCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand, EC2Client, GetConsoleOutputCommand, ImportKeyPairCommand, RunInstancesCommand,
  StartInstancesCommand, TerminateInstancesCommand, waitUntilImageAvailable, waitUntilInstanceRunning,
  type DescribeInstancesCommandInput, type Image, type Instance, type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import type { ImageLabels, ImageRecord } from '../../src/image/strip.js';
import type { Nodeset, ProviderConfig } from '../../src/nodeset/types.js';
import type { CreatedNode, CreateRequest, Flavor, Provider, ProviderNode } from '../../src/provider.js';
import type { Secret } from '../../src/secret.js';
import type { StateDir } from '../../src/state.js';
import { pollUntil } from '../../src/util/retry-until.js';
import { decodeConsole, hostKeyFromConsole } from './host-key.js';
import { describeSpec, IMAGE_TAG, imagesRequest, imageTags, labelsOfImage, newestFirst, parseImage, type ImageSpec } from './images.js';
import { flavorsOf, labelTags, LIVE_STATES, TAG, toNode } from './instances.js';
import { DEFAULT_RETRY, Ec2Error, withRetry, type RetryOptions } from './retry.js';
import { clientConfig, ec2Settings, keyPairName, secretsOf, type Ec2Settings } from './settings.js';

/**
 * The `ec2` provider: each node is an EC2 instance tagged with its labels (silver:nodeset,
 * silver:role, silver:name, silver:index, Name), launched with a key pair holding the deploy
 * key. Debian's cloud images log in as `admin`. The host key is read from the console output
 * when cloud-init has printed it there; otherwise silver pins the first key it sees.
 */
export interface Ec2Options {
  /** The EC2 client (tests pass a mocked one); default: built from the settings. */
  client?: EC2Client;
  /** The deploy public key, for `prepare()` to import before any node is created. */
  deployKey: () => string;
  retry?: Partial<RetryOptions>;
  /** Polling of the running waiter, in seconds (the SDK's unit). */
  waiter?: { minDelay: number; maxDelay: number };
  /** Polling of the image waiter (a bake), and how long it waits, in seconds. */
  imageWaiter?: { minDelay: number; maxDelay: number; maxWaitTime: number };
  /** How long hostKey() waits for cloud-init to print the host keys on the console, and how often it looks, in ms. */
  consoleWait?: { everyMs: number; maxMs: number };
}

export function createProvider(config: ProviderConfig, state: StateDir): Provider {
  return new Ec2Provider(ec2Settings(config), { deployKey: () => state.deployKey().public });
}

/** `type base64` of an OpenSSH public key line, for comparing keys whatever their comment. */
const keyBody = (line: string) => line.trim().split(/\s+/).slice(0, 2).join(' ');

export class Ec2Provider implements Provider {
  readonly type = 'ec2';
  readonly adminUser = 'admin';
  readonly client: EC2Client;
  private readonly retry: RetryOptions;
  private readonly waiter: { minDelay: number; maxDelay: number };
  private readonly imageWaiter: { minDelay: number; maxDelay: number; maxWaitTime: number };
  private readonly secrets: Secret[];
  private readonly keyPairs = new Map<string, Promise<void>>();
  private readonly images = new Map<string, Promise<Image>>();
  private sizes: Promise<Flavor[]> | null = null;

  constructor(readonly settings: Ec2Settings, private readonly options: Ec2Options) {
    this.client = options.client ?? new EC2Client(clientConfig(settings));
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.waiter = options.waiter ?? { minDelay: 5, maxDelay: 15 };
    this.imageWaiter = options.imageWaiter ?? { minDelay: 15, maxDelay: 60, maxWaitTime: 3600 };
    this.secrets = secretsOf(settings);
  }

  /** One EC2 request, retried on throttling and transient errors. */
  private call<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return withRetry(name, fn, this.retry, this.secrets);
  }

  /** Every page of a NextToken-paginated request. */
  private async pages<T extends { NextToken?: string | undefined }>(name: string, fetch: (token: string | undefined) => Promise<T>): Promise<T[]> {
    const out: T[] = [];
    let token: string | undefined;
    do {
      const t = token;
      const page = await this.call(name, () => fetch(t));
      out.push(page);
      token = page.NextToken;
    } while (token);
    return out;
  }

  async prepare(nodeset: Nodeset, report: (message: string) => void): Promise<void> {
    await this.ensureKeyPair(nodeset.name, this.options.deployKey(), report);
    const image = await this.image(this.settings.image);
    report(`ec2: image ${image.ImageId}${image.Name ? ` (${image.Name})` : ''}`);
  }

  /**
   * The key pair holding the deploy key, imported once. An existing key pair of that name is
   * reused; if EC2 shows it holds another key, that is an error (the nodes could not be reached).
   */
  private ensureKeyPair(nodeset: string, publicKey: string, report: (message: string) => void = () => undefined): Promise<void> {
    const name = keyPairName(this.settings, nodeset);
    const cacheKey = `${name}\n${keyBody(publicKey)}`;
    let done = this.keyPairs.get(cacheKey);
    if (!done) {
      done = this.importKeyPair(name, nodeset, publicKey, report);
      this.keyPairs.set(cacheKey, done);
      done.catch(() => this.keyPairs.delete(cacheKey));
    }
    return done;
  }

  private async importKeyPair(name: string, nodeset: string, publicKey: string, report: (message: string) => void): Promise<void> {
    try {
      const found = await this.call('DescribeKeyPairs', () => this.client.send(new DescribeKeyPairsCommand({ KeyNames: [name], IncludePublicKey: true })));
      const existing = found.KeyPairs?.find((k) => k.KeyName === name);
      if (existing) {
        if (existing.PublicKey && keyBody(existing.PublicKey) !== keyBody(publicKey)) {
          throw new Error(`ec2: key pair "${name}" exists but holds another public key than silver's deploy key; delete it (aws ec2 delete-key-pair --key-name ${name}) or set key_name`);
        }
        return;
      }
    } catch (e) {
      if (!(e instanceof Ec2Error && e.code === 'InvalidKeyPair.NotFound')) throw e;
    }
    try {
      await this.call('ImportKeyPair', () =>
        this.client.send(
          new ImportKeyPairCommand({
            KeyName: name,
            PublicKeyMaterial: new TextEncoder().encode(publicKey.trim()),
            TagSpecifications: [{ ResourceType: 'key-pair', Tags: [{ Key: TAG.nodeset, Value: nodeset }] }],
          }),
        ),
      );
      report(`ec2: imported the deploy key as key pair ${name}`);
    } catch (e) {
      // Imported meanwhile by another run: reuse it.
      if (!(e instanceof Ec2Error && e.code === 'InvalidKeyPair.Duplicate')) throw e;
    }
  }

  async listSizes(): Promise<Flavor[]> {
    if (!this.sizes) {
      this.sizes = this.pages('DescribeInstanceTypes', (NextToken) =>
        this.client.send(
          new DescribeInstanceTypesCommand({
            Filters: [
              { Name: 'current-generation', Values: ['true'] },
              { Name: 'processor-info.supported-architecture', Values: ['x86_64'] },
            ],
            MaxResults: 100,
            NextToken,
          }),
        ),
      ).then((pages) => flavorsOf(pages.flatMap((p) => p.InstanceTypes ?? [])));
      this.sizes.catch(() => (this.sizes = null));
    }
    return this.sizes;
  }

  /** The newest images matching the `image` setting (or Debian 12), as `ami-... name date`. */
  async listImages(): Promise<string[]> {
    const images = await this.describeImages(parseImage(this.settings.image));
    return images.slice(0, 20).map((i) => `${i.ImageId} ${i.Name ?? ''} ${i.CreationDate ?? ''}`.trim());
  }

  /** Available images of a spec (or in these states), newest first. */
  private async describeImages(spec: ImageSpec, states?: string[]): Promise<Image[]> {
    const pages = await this.pages('DescribeImages', (NextToken) => this.client.send(new DescribeImagesCommand({ ...imagesRequest(spec, states), NextToken })));
    return newestFirst(pages.flatMap((p) => p.Images ?? []).filter((i) => i.ImageId));
  }

  async resolveImage(image: string | null): Promise<string> {
    return (await this.image(image ?? this.settings.image)).ImageId!;
  }

  private image(setting: string | null): Promise<Image> {
    const spec = parseImage(setting);
    const key = JSON.stringify(spec);
    let found = this.images.get(key);
    if (!found) {
      found = this.describeImages(spec).then(([best]) => {
        if (!best) throw new Error(`ec2: no available image matches ${describeSpec(spec)} in this region`);
        return best;
      });
      this.images.set(key, found);
      found.catch(() => this.images.delete(key));
    }
    return found;
  }

  /** A baked image's labels from its tags (the bake time: EC2's CreationDate); null for other images. */
  async imageRecord(image: string): Promise<ImageLabels | null> {
    return labelsOfImage(await this.image(image));
  }

  /**
   * CreateImage of the stripped builder (EC2 stops it for a consistent snapshot, then boots it
   * again), tagged as the bake's; then the SDK's waiter until the AMI is available.
   */
  async snapshotImage(builder: ProviderNode, record: ImageRecord, report: (message: string) => void, signal?: AbortSignal): Promise<string> {
    const tags = imageTags(record);
    let id: string | undefined;
    try {
      const out = await this.call('CreateImage', () =>
        this.client.send(
          new CreateImageCommand({
            InstanceId: builder.id,
            Name: record.name,
            Description: `silver image bake: ${record.role} of nodeset ${record.nodeset}, ${record.packages.length} packages, ${record.built}`,
            TagSpecifications: [
              { ResourceType: 'image', Tags: tags },
              { ResourceType: 'snapshot', Tags: tags },
            ],
          }),
        ),
      );
      id = out.ImageId;
    } catch (e) {
      // A retried CreateImage whose first attempt went through: that image is this bake's.
      if (!(e instanceof Ec2Error && e.code === 'InvalidAMIName.Duplicate')) throw e;
      const [same] = await this.describeImages({ kind: 'name', owners: ['self'], pattern: record.name }, ['pending', 'available']);
      if (same?.Tags?.find((t) => t.Key === IMAGE_TAG.baked)?.Value !== record.built) throw e;
      id = same.ImageId;
    }
    if (!id) throw new Error(`ec2 CreateImage returned no image id for ${record.name}`);
    report(`ec2: image ${id} (${record.name}) is being made from ${builder.name} (${builder.id})`);
    const w = this.imageWaiter;
    try {
      await waitUntilImageAvailable({ client: this.client, ...w, ...(signal ? { abortSignal: signal } : {}) }, { ImageIds: [id] });
    } catch (e) {
      const now = (await this.call('DescribeImages', () => this.client.send(new DescribeImagesCommand({ ImageIds: [id] }))).catch(() => null))?.Images?.[0];
      const state = `state: ${now?.State ?? 'unknown'}${now?.StateReason?.Message ? `: ${now.StateReason.Message}` : ''}`;
      if ((e as Error).name === 'AbortError' || signal?.aborted) throw new Error(`ec2: stopped waiting for image ${id} (${record.name}, ${state}); EC2 may still complete it`);
      if ((e as Error).name === 'TimeoutError') throw new Error(`ec2: image ${id} (${record.name}) is not available after ${w.maxWaitTime}s (${state})`);
      throw new Error(`ec2: image ${id} (${record.name}) failed (${state})`);
    }
    return id;
  }

  private async instances(input: DescribeInstancesCommandInput): Promise<Instance[]> {
    const pages = await this.pages('DescribeInstances', (NextToken) => this.client.send(new DescribeInstancesCommand({ ...input, NextToken })));
    return pages.flatMap((p) => (p.Reservations ?? []).flatMap((r) => r.Instances ?? []));
  }

  async list(nodeset: string): Promise<ProviderNode[]> {
    const found = await this.instances({
      Filters: [
        { Name: `tag:${TAG.nodeset}`, Values: [nodeset] },
        { Name: 'instance-state-name', Values: LIVE_STATES },
      ],
      MaxResults: 1000,
    });
    return found.map(toNode).filter((n): n is ProviderNode => n !== null && n.nodeset === nodeset);
  }

  async create(req: CreateRequest): Promise<CreatedNode> {
    await this.ensureKeyPair(req.labels.nodeset, req.authorizedKey);
    const s = this.settings;
    const tags = labelTags(req.labels);
    const ids = s.securityGroups.filter((g) => g.startsWith('sg-'));
    const names = s.securityGroups.filter((g) => !g.startsWith('sg-'));
    const input: RunInstancesCommandInput = {
      ImageId: req.image,
      InstanceType: req.flavor.id as RunInstancesCommandInput['InstanceType'],
      MinCount: 1,
      MaxCount: 1,
      KeyName: keyPairName(s, req.labels.nodeset),
      // The same token on every retry: EC2 launches at most one instance for it.
      ClientToken: randomUUID(),
      MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
      TagSpecifications: [
        { ResourceType: 'instance', Tags: tags },
        { ResourceType: 'volume', Tags: tags },
      ],
      ...(s.subnetId ? { SubnetId: s.subnetId } : {}),
      ...(ids.length ? { SecurityGroupIds: ids } : {}),
      ...(names.length ? { SecurityGroups: names } : {}),
      ...(s.availabilityZone ? { Placement: { AvailabilityZone: s.availabilityZone } } : {}),
    };
    const out = await this.call('RunInstances', () => this.client.send(new RunInstancesCommand(input)));
    const instance = out.Instances?.[0];
    if (!instance?.InstanceId) throw new Error(`ec2 RunInstances returned no instance for ${req.labels.name}`);
    const node = toNode({ ...instance, Tags: instance.Tags?.length ? instance.Tags : tags, State: instance.State ?? { Name: 'pending' } });
    if (!node) throw new Error(`ec2 RunInstances: instance ${instance.InstanceId} for ${req.labels.name} is ${instance.State?.Name}`);
    return { node, hostKey: null };
  }

  async start(node: ProviderNode): Promise<ProviderNode> {
    await this.call('StartInstances', () => this.client.send(new StartInstancesCommand({ InstanceIds: [node.id] })));
    return { ...node, state: 'pending' };
  }

  /** Waits (SDK waiter, bounded by the timeout) until the instance runs; no TCP connection. */
  async waitReachable(node: ProviderNode, timeoutMs: number): Promise<ProviderNode> {
    const maxWaitTime = Math.max(1, timeoutMs / 1000);
    const minDelay = Math.min(this.waiter.minDelay, maxWaitTime / 2);
    const maxDelay = Math.max(minDelay, Math.min(this.waiter.maxDelay, maxWaitTime));
    let instance: Instance | undefined;
    try {
      const result = await waitUntilInstanceRunning({ client: this.client, maxWaitTime, minDelay, maxDelay }, { InstanceIds: [node.id] });
      instance = result.final?.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === node.id);
    } catch (e) {
      const now = (await this.instances({ InstanceIds: [node.id] }))[0];
      const state = now?.State?.Name ?? 'gone';
      const why = now?.StateReason?.Message ? `: ${now.StateReason.Message}` : '';
      if ((e as Error).name === 'TimeoutError') throw new Error(`ec2: ${node.name} (${node.id}) is not running after ${Math.round(maxWaitTime)}s (state: ${state}${why})`);
      throw new Error(`ec2: ${node.name} (${node.id}) will not run (state: ${state}${why})`);
    }
    if (!instance) instance = (await this.instances({ InstanceIds: [node.id] }))[0];
    return {
      ...node,
      state: 'running',
      privateAddress: instance?.PrivateIpAddress ?? node.privateAddress,
      publicAddress: instance?.PublicIpAddress ?? node.publicAddress,
    };
  }

  /**
   * The host key cloud-init prints on the console at first boot, read from the console's latest
   * output (`Latest`: the buffered output is what was there when the instance started, before
   * cloud-init printed anything; instance types without the Nitro hypervisor have only that),
   * looked for again until it is there or the wait ends (null then: silver pins the key on first
   * contact and says so).
   */
  async hostKey(node: ProviderNode, fresh = false): Promise<string | null> {
    const { everyMs, maxMs } = this.options.consoleWait ?? { everyMs: 3000, maxMs: 90_000 };
    // (only a node just made is waited for: any other has printed whatever it will)
    return pollUntil(Date.now() + (fresh ? maxMs : 0), Date.now, async () => hostKeyFromConsole(decodeConsole(await this.console(node))), everyMs);
  }

  /** Instances whose type has no latest console output (not Nitro): asked for the buffered one. */
  private readonly bufferedOnly = new Set<string>();

  /** The console's output: the latest where the instance type has it, else the buffered one. */
  private async console(node: ProviderNode): Promise<string | undefined> {
    const latest = !this.bufferedOnly.has(node.id);
    try {
      return (await this.call('GetConsoleOutput', () => this.client.send(new GetConsoleOutputCommand({ InstanceId: node.id, ...(latest ? { Latest: true } : {}) })))).Output;
    } catch (e) {
      if (!latest || !(e instanceof Ec2Error && /^Unsupported/.test(e.code))) throw e;
      this.bufferedOnly.add(node.id);
      return this.console(node);
    }
  }

  async destroy(node: ProviderNode): Promise<void> {
    try {
      await this.call('TerminateInstances', () => this.client.send(new TerminateInstancesCommand({ InstanceIds: [node.id] })));
    } catch (e) {
      if (!(e instanceof Ec2Error && e.code === 'InvalidInstanceID.NotFound')) throw e;
    }
  }

  /** Deletes the `silver-<nodeset>` key pair once no node of the nodeset remains (never a `key_name` one). */
  async release(nodeset: string): Promise<void> {
    if (this.settings.keyName) return;
    if ((await this.list(nodeset)).length > 0) return;
    const name = keyPairName(this.settings, nodeset);
    await this.call('DeleteKeyPair', () => this.client.send(new DeleteKeyPairCommand({ KeyName: name })));
    for (const key of this.keyPairs.keys()) if (key.startsWith(`${name}\n`)) this.keyPairs.delete(key);
  }
}
