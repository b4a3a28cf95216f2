import { isIPv4 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Address, ComputeClient, CreateServerOptions, Flavor as NovaFlavor, Image, KeyPair, Server } from 'pkgcloud';
import { configError, type CloudSettings } from './settings.js';
import { Caller, CloudCallError, FAIL_CODES } from './call.js';
import { cloudConfig } from './cloud-init.js';
import type { Nodeset, Role } from '../../src/nodeset/types.js';
import type { CreatedNode, CreateRequest, Flavor, NodeState, Provider, ProviderNode } from '../../src/provider.js';
import { parseImageName, type ImageLabels, type ImageRecord } from '../../src/image/strip.js';
import { pollUntil } from '../../src/util/retry-until.js';

/**
 * The Nova adapter behind the `openstack` and `rackspace` providers, through pkgcloud's compute
 * client. pkgcloud is loaded here, on first use, and nowhere else. Nodes are servers named after
 * the node and labelled with metadata (`silver-nodeset`, `silver-role`, `silver-index`); the host
 * key silver generates goes in through cloud-init user data (and its public half into the
 * `silver-hostkey` metadata, so another machine can learn it from the API).
 */

/** Knobs for tests; the defaults suit a real cloud. */
export interface Tuning {
  /** How long one pkgcloud call may take (default 60s). */
  callTimeoutMs?: number;
  /** Retries of a call that failed transiently (default 4). */
  retries?: number;
  /** The first retry's delay, doubling after (default 1s). */
  retryMinMs?: number;
  /** Between two looks at a server that is building or being deleted (default 3s). */
  pollMs?: number;
  /** How long destroy waits for the server to be gone (default 5 min). */
  destroyTimeoutMs?: number;
  /** How long a bake waits for its image to be ACTIVE (default 1 h). */
  imageTimeoutMs?: number;
  /** After a create that failed transiently, how long to look for the server it may have made before making it again (default 20s). */
  createSettleMs?: number;
}

export const LABEL = { nodeset: 'silver-nodeset', role: 'silver-role', index: 'silver-index', hostKey: 'silver-hostkey' } as const;

/** A baked image's metadata beside LABEL's nodeset and role. */
export const IMAGE_LABEL = { baked: 'silver-baked', packages: 'silver-packages' } as const;

/** Nova's statuses of an image that will never be ACTIVE. */
const IMAGE_FAILED = new Set(['ERROR', 'DELETED', 'KILLED']);

/** Nova statuses of servers that are on their way out. */
const GONE = new Set(['DELETED', 'SOFT_DELETED']);

export class NovaProvider implements Provider {
  readonly type: string;
  readonly adminUser: string;
  #client: Promise<ComputeClient> | null = null;
  #keypairs = new Map<string, Promise<string>>();
  #report: (message: string) => void = () => undefined;
  readonly #caller: Caller;
  readonly #pollMs: number;
  readonly #createSettleMs: number;
  readonly #destroyTimeoutMs: number;
  readonly #imageTimeoutMs: number;

  constructor(
    private readonly s: CloudSettings,
    tuning: Tuning = {},
  ) {
    this.type = s.type;
    this.adminUser = s.adminUser;
    this.#pollMs = tuning.pollMs ?? 3000;
    this.#destroyTimeoutMs = tuning.destroyTimeoutMs ?? 300_000;
    this.#imageTimeoutMs = tuning.imageTimeoutMs ?? 3_600_000;
    this.#createSettleMs = tuning.createSettleMs ?? 20_000;
    this.#caller = new Caller({
      prefix: s.type,
      authUrl: s.authUrl,
      region: s.region,
      secrets: s.secrets,
      timeoutMs: tuning.callTimeoutMs ?? 60_000,
      retries: tuning.retries ?? 4,
      retryMinMs: tuning.retryMinMs ?? 1000,
      onRetry: (m) => this.#report(m),
    });
  }

  /** The authenticated compute client: pkgcloud is loaded and the token issued on first use. */
  private client(): Promise<ComputeClient> {
    this.#client ??= this.connect().catch((e: unknown) => {
      this.#client = null;
      throw e;
    });
    return this.#client;
  }

  private async connect(): Promise<ComputeClient> {
    const { default: pkgcloud } = await import('pkgcloud');
    let client: ComputeClient;
    try {
      client = pkgcloud.compute.createClient(this.s.clientOptions());
    } catch (e) {
      throw this.#caller.describe('createClient', e);
    }
    client.failCodes = FAIL_CODES;
    const endpoint = this.s.endpoint;
    if (endpoint) client._identity.getServiceEndpointUrl = () => endpoint;
    await this.#caller.call<void>(`authentication at ${this.s.authUrl}`, (cb) => client.auth(cb));
    return client;
  }

  async prepare(_nodeset: Nodeset, report: (message: string) => void): Promise<void> {
    this.#report = report;
    await this.client();
  }

  async listSizes(): Promise<Flavor[]> {
    const c = await this.client();
    const flavors = await this.#caller.call<NovaFlavor[]>('getFlavors', (cb) => c.getFlavors(cb));
    const sizes: Flavor[] = flavors
      .filter((f) => Number.isFinite(Number(f.ram)))
      .map((f) => ({
        id: String(f.id),
        ramMb: Number(f.ram),
        description: `${f.name}: ${f.vcpus ?? '?'} vCPU, ${f.ram} MB RAM, ${f.disk ?? '?'} GB disk`,
      }))
      .sort((a, b) => a.ramMb - b.ramMb || a.id.localeCompare(b.id));
    // Without a size: the smallest flavor a Debian cloud image runs well on.
    const fallback = sizes.find((f) => f.ramMb >= 1024);
    if (fallback) fallback.default = true;
    return sizes;
  }

  /** Every image of the project, whatever its status. */
  private async allImages(): Promise<Image[]> {
    const c = await this.client();
    return this.#caller.call<Image[]>('getImages', (cb) => c.getImages(cb));
  }

  private async images() {
    return (await this.allImages()).filter((i) => !i.status || i.status.toUpperCase() === 'ACTIVE');
  }

  /** A baked image's labels from its name (pkgcloud does not read image metadata); the bake time: Nova's `created`. */
  async imageRecord(image: string): Promise<ImageLabels | null> {
    const found = (await this.images()).find((i) => i.id === image);
    const labels = found ? parseImageName(found.name) : null;
    if (!labels) return null;
    const created = Date.parse(found?.created ?? '');
    return Number.isNaN(created) ? labels : { ...labels, built: new Date(created).toISOString() };
  }

  /**
   * The server action createImage of the stripped builder (a snapshot of its disk, with the
   * bake's metadata), then its image polled until Nova says ACTIVE. A retried createImage whose
   * first attempt went through finds that image by its name instead of making another.
   */
  async snapshotImage(builder: ProviderNode, record: ImageRecord, report: (message: string) => void, signal?: AbortSignal): Promise<string> {
    const c = await this.client();
    const metadata: Record<string, string> = {
      [LABEL.nodeset]: record.nodeset,
      [LABEL.role]: record.role,
      [IMAGE_LABEL.baked]: record.built,
      [IMAGE_LABEL.packages]: String(record.packages.length),
    };
    const id = await this.#caller.retry('createImage', async (attempt) => {
      if (attempt > 1) {
        const made = (await this.allImages()).find((i) => i.name === record.name);
        if (made) return made.id;
      }
      return (await this.#caller.once<Image>('createImage', (cb) => c.createImage({ server: builder.id, name: record.name, metadata }, cb))).id;
    });
    report(`${this.type}: image ${id} (${record.name}) is being made from ${builder.name} (${builder.id})`);
    const deadline = Date.now() + this.#imageTimeoutMs;
    for (;;) {
      if (signal?.aborted) throw this.fail(`${this.type}: stopped waiting for image ${id} (${record.name}); the cloud may still complete it`);
      const image = await this.ignore404(this.#caller.call<Image>('getImage', (cb) => c.getImage(id, cb)));
      const status = String(image?.status ?? 'DELETED').toUpperCase();
      if (status === 'ACTIVE') return id;
      if (IMAGE_FAILED.has(status)) throw this.fail(`${this.type}: image ${id} (${record.name}) went into ${status}`);
      if (Date.now() + this.#pollMs > deadline) throw this.fail(`${this.type}: image ${id} (${record.name}) was not ACTIVE within ${Math.round(this.#imageTimeoutMs / 1000)}s (status ${status})`);
      await sleep(this.#pollMs, undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  }

  async listImages(): Promise<string[]> {
    return [...new Set((await this.images()).map((i) => i.name))].sort();
  }

  /** By id, else by name (the newest image of that name); default: the `image` setting. */
  async resolveImage(image: string | null): Promise<string> {
    const want = image ?? this.s.image;
    if (!want) throw configError(this.type, 'no image given: set image = NAME-OR-ID in the provider settings (silver list-images shows the names)');
    const images = await this.images();
    const byId = images.find((i) => i.id === want);
    if (byId) return byId.id;
    const named = images.filter((i) => i.name === want).sort((a, b) => String(b.created ?? '').localeCompare(String(a.created ?? '')));
    if (named[0]) return named[0].id;
    const names = [...new Set(images.map((i) => i.name))].sort();
    throw this.fail(`${this.type}: no active image "${want}" (by id or name); available: ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''}`);
  }

  /** Every server of the project, page by page (Nova answers at most its max_limit at a time). */
  private async servers(): Promise<Server[]> {
    const c = await this.client();
    const out: Server[] = [];
    const seen = new Set<string>();
    let marker: string | undefined;
    for (;;) {
      const m = marker;
      const page = await this.#caller.call<Server[]>('getServers', (cb) => c.getServers(m ? { marker: m } : {}, cb));
      const fresh = page.filter((s) => !seen.has(s.id));
      if (fresh.length === 0) return out;
      for (const s of fresh) {
        seen.add(s.id);
        out.push(s);
      }
      marker = page[page.length - 1]!.id;
    }
  }

  async list(nodeset: string): Promise<ProviderNode[]> {
    return (await this.servers())
      .filter((s) => s.metadata?.[LABEL.nodeset] === nodeset && !GONE.has(rawStatus(s)))
      .map((s) => toNode(s))
      .filter((n): n is ProviderNode => n !== null);
  }

  async create(req: CreateRequest): Promise<CreatedNode> {
    const c = await this.client();
    const keyname = await this.keypair(req.labels.nodeset, req.authorizedKey);
    const metadata: Record<string, string> = {
      [LABEL.nodeset]: req.labels.nodeset,
      [LABEL.role]: req.labels.role,
      [LABEL.index]: String(req.labels.index),
    };
    const hostKey = req.hostKey.public.trim().split(/\s+/).slice(0, 2).join(' ');
    if (hostKey.length <= 255) metadata[LABEL.hostKey] = hostKey;
    const options: CreateServerOptions = {
      name: req.labels.name,
      flavor: req.flavor.id,
      image: req.image,
      keyname,
      metadata,
      cloudConfig: Buffer.from(cloudConfig(req, { rootLogin: this.adminUser === 'root' })).toString('base64'),
      ...(this.s.networks.length > 0 ? { networks: this.s.networks.map((uuid) => ({ uuid })) } : {}),
    };
    const id = await this.#caller.retry('createServer', async (attempt) => {
      // A create that failed with a 5xx or a lost connection may still have made the server —
      // Nova goes on behind a proxy's 502 or 504, and lists it a moment later: looked for during
      // createSettleMs before it is made again (Nova takes no idempotency token, as EC2 does).
      if (attempt > 1) {
        const made = await this.appeared(req.labels.nodeset, req.labels.name);
        if (made) return made;
      }
      return (await this.#caller.once<Server>('createServer', (cb) => c.createServer(options, cb))).id;
    });
    return {
      node: { ...req.labels, id, state: 'pending', privateAddress: null, publicAddress: null },
      hostKey: req.hostKey.public,
    };
  }

  /** The id of the nodeset's server of this name, once it is listed within createSettleMs; null when it is not. */
  private appeared(nodeset: string, name: string): Promise<string | null> {
    return pollUntil(Date.now() + this.#createSettleMs, Date.now, async () => (await this.list(nodeset)).find((n) => n.name === name)?.id ?? null, this.#pollMs);
  }

  /** The keypair new servers get: `key_name`, or the deploy key imported as `silver-<nodeset>`. */
  private keypair(nodeset: string, publicKey: string): Promise<string> {
    if (this.s.keyName) return Promise.resolve(this.s.keyName);
    const name = `silver-${nodeset}`;
    let p = this.#keypairs.get(name);
    if (!p) {
      p = this.importKeypair(name, publicKey).catch((e: unknown) => {
        this.#keypairs.delete(name);
        throw e;
      });
      this.#keypairs.set(name, p);
    }
    return p;
  }

  private async importKeypair(name: string, publicKey: string): Promise<string> {
    const c = await this.client();
    const existing = await this.getKeypair(name);
    if (existing !== null && sameKey(existing, publicKey)) return name;
    if (existing !== null) {
      // Servers read their keypair only when they are created: replacing it leaves them alone.
      this.#report(`${this.type}: keypair ${name} holds another key; replacing it with this machine's deploy key`);
      await this.ignore404(this.#caller.call<void>('destroyKey', (cb) => c.destroyKey(name, cb)));
    }
    try {
      await this.#caller.call<KeyPair>('addKey', (cb) => c.addKey({ name, public_key: publicKey.trim() }, cb));
    } catch (e) {
      // Another run imported it at the same moment.
      if (!(e instanceof CloudCallError && e.status === 409)) throw e;
      const now = await this.getKeypair(name);
      if (now === null || !sameKey(now, publicKey)) throw e;
    }
    return name;
  }

  private async getKeypair(name: string): Promise<string | null> {
    const c = await this.client();
    const kp = await this.ignore404(this.#caller.call<KeyPair>('getKey', (cb) => c.getKey(name, cb)));
    return kp?.public_key ?? null;
  }

  async start(node: ProviderNode): Promise<ProviderNode> {
    const c = await this.client();
    const server = await this.getServer(node);
    const raw = rawStatus(server);
    if (server.status === 'ERROR') throw this.fail(`${this.type}: ${node.name} (${node.id}) is in ERROR${fault(server)}: delete it (silver delete-node) and create it again`);
    const action: Record<string, null> | null =
      raw === 'SHUTOFF' || raw === 'STOPPED' ? { 'os-start': null }
        : raw === 'SUSPENDED' ? { resume: null }
          : raw === 'PAUSED' ? { unpause: null }
            : raw.startsWith('SHELVED') ? { unshelve: null }
              : null;
    if (action) {
      const verb = Object.keys(action)[0]!;
      await this.#caller.call<unknown>(`server action ${verb}`, (cb) => c._doServerAction(node.id, action, cb));
    }
    return { ...node, state: 'pending' };
  }

  private async getServer(node: ProviderNode): Promise<Server> {
    const c = await this.client();
    return this.#caller.call<Server>('getServer', (cb) => c.getServer(node.id, cb));
  }

  /** Polls the server until Nova says it runs (pkgcloud's RUNNING) and it has an address. No TCP. */
  async waitReachable(node: ProviderNode, timeoutMs: number): Promise<ProviderNode> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let server: Server;
      try {
        server = await this.getServer(node);
      } catch (e) {
        if (e instanceof CloudCallError && e.status === 404) throw this.fail(`${this.type}: ${node.name} (${node.id}) does not exist any more`);
        throw e;
      }
      const seen = toNode(server);
      if (server.status === 'RUNNING' && seen && (seen.privateAddress || seen.publicAddress)) {
        return { ...node, state: 'running', privateAddress: seen.privateAddress, publicAddress: seen.publicAddress };
      }
      if (server.status === 'ERROR') throw this.fail(`${this.type}: ${node.name} (${node.id}) went into ERROR${fault(server)}`);
      if (Date.now() + this.#pollMs > deadline) {
        throw this.fail(`${this.type}: ${node.name} was not running with an address within ${Math.round(timeoutMs / 1000)}s (status ${rawStatus(server) || server.status})`);
      }
      await sleep(this.#pollMs);
    }
  }

  /** The host key silver gave the server, from its metadata. */
  async hostKey(node: ProviderNode): Promise<string | null> {
    const server = await this.ignore404(this.getServer(node));
    const key = server?.metadata?.[LABEL.hostKey];
    return key && /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+$/.test(key) ? key : null;
  }

  /** Deletes the server and waits until Nova no longer has it. */
  async destroy(node: ProviderNode): Promise<void> {
    const c = await this.client();
    const gone = await this.#caller.call<unknown>('destroyServer', (cb) => c.destroyServer(node.id, cb)).then(
      () => false,
      (e: unknown) => {
        if (e instanceof CloudCallError && e.status === 404) return true;
        throw e;
      },
    );
    if (gone) return;
    const deadline = Date.now() + this.#destroyTimeoutMs;
    for (;;) {
      const server = await this.ignore404(this.getServer(node));
      if (server === null || GONE.has(rawStatus(server))) return;
      if (Date.now() + this.#pollMs > deadline) throw this.fail(`${this.type}: ${node.name} (${node.id}) was still there ${Math.round(this.#destroyTimeoutMs / 1000)}s after its deletion (status ${rawStatus(server)})`);
      await sleep(this.#pollMs);
    }
  }

  /** Once the nodeset has no server left: deletes the `silver-<nodeset>` keypair. */
  async release(nodeset: string): Promise<void> {
    if (this.s.keyName) return;
    if ((await this.list(nodeset)).length > 0) return;
    const c = await this.client();
    const name = `silver-${nodeset}`;
    await this.ignore404(this.#caller.call<void>('destroyKey', (cb) => c.destroyKey(name, cb)));
    this.#keypairs.delete(name);
  }

  /** An error of the adapter's own, scrubbed of secrets like the calls' errors. */
  private fail(message: string): Error {
    return new Error(this.#caller.redact(message));
  }

  /** null for a 404, the value otherwise. */
  private async ignore404<T>(p: Promise<T>): Promise<T | null> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof CloudCallError && e.status === 404) return null;
      throw e;
    }
  }
}

/** A server as a node, when its metadata labels it as one (name: the server's name). */
export function toNode(s: Server): ProviderNode | null {
  const md = s.metadata ?? {};
  const nodeset = md[LABEL.nodeset];
  const role = md[LABEL.role];
  const index = Number(md[LABEL.index]);
  if (!nodeset || !role || !isRole(role) || !Number.isInteger(index) || index < 1 || !s.name) return null;
  const { privateAddress, publicAddress } = addresses(s);
  return { nodeset, role, name: s.name, index, id: s.id, state: nodeState(s), privateAddress, publicAddress };
}

function isRole(r: string): r is Role {
  return r === 'appserver' || r === 'balancer' || /^service:[a-z0-9_-]+$/i.test(r);
}

function nodeState(s: Server): NodeState {
  switch (s.status) {
    case 'RUNNING':
      return 'running';
    case 'PROVISIONING':
    case 'REBOOT':
    case 'UPDATING':
      return 'pending';
    case 'STOPPED':
      return 'stopped';
    case 'ERROR':
      return 'error';
    default:
      return 'unknown';
  }
}

/**
 * pkgcloud leaves `{public, private}` lists: plain strings (it sorted Neutron networks by address
 * range) or Nova's `{addr, version}` (networks named public/private, as on Rackspace). IPv4 first.
 */
export function addresses(s: Server): { privateAddress: string | null; publicAddress: string | null } {
  const list = (v: unknown): string[] =>
    Array.isArray(v)
      ? (v as Address[]).map((a) => (typeof a === 'string' ? a : a?.addr)).filter((a): a is string => typeof a === 'string' && a.length > 0)
      : [];
  const pick = (all: string[]) => all.find((a) => isIPv4(a)) ?? all[0] ?? null;
  return { privateAddress: pick(list(s.addresses?.private)), publicAddress: pick(list(s.addresses?.public)) };
}

function rawStatus(s: Server): string {
  return String(s.original?.status ?? '').toUpperCase();
}

function fault(s: Server): string {
  const m = s.original?.fault?.message;
  return typeof m === 'string' && m ? ` (${m.replace(/\s+/g, ' ').slice(0, 200)})` : '';
}

/** Same key type and data; comments may differ. */
function sameKey(a: string, b: string): boolean {
  const core = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(' ');
  return core(a) === core(b);
}
