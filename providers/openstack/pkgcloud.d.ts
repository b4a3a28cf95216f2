/**
 * The part of pkgcloud 2.x (untyped, callback-based) that the openstack and rackspace adapters
 * use. Only `providers/openstack/client.ts` imports it, and only dynamically.
 */
declare module 'pkgcloud' {
  /** pkgcloud calls back once (usually): an error (an Error or a plain object) or the result. */
  export type Callback<T> = (err: unknown, result?: T) => void;

  export interface Flavor {
    id: string;
    name: string;
    ram: number;
    disk?: number;
    vcpus?: number;
  }

  export interface Image {
    id: string;
    name: string;
    /** Nova's: ACTIVE, SAVING, ERROR, DELETED, UNKNOWN (not normalised by pkgcloud). */
    status?: string;
    created?: string;
    updated?: string;
  }

  export interface CreateImageOptions {
    /** The server's id. */
    server: string;
    name: string;
    metadata?: Record<string, string>;
  }

  /** An address as pkgcloud leaves it: a plain string, or Nova's `{addr, version}` (networks named public/private). */
  export type Address = string | { addr?: string; version?: number };

  export interface Server {
    id: string;
    name: string;
    /** Normalised: RUNNING, PROVISIONING, STOPPED, REBOOT, UPDATING, ERROR, UNKNOWN. */
    status: string;
    addresses: { public?: Address[]; private?: Address[] } & Record<string, unknown>;
    metadata: Record<string, string>;
    /** Nova's own representation (raw `status`, `fault`). */
    original: { status?: string; fault?: { message?: string } } & Record<string, unknown>;
  }

  export interface KeyPair {
    name: string;
    public_key: string;
    fingerprint?: string;
  }

  export interface CreateServerOptions {
    name: string;
    flavor: string;
    image: string;
    keyname?: string;
    metadata?: Record<string, string>;
    /** Base64 user data; pkgcloud sends it as `user_data` with `config_drive: true`. */
    cloudConfig?: string;
    networks?: { uuid: string }[];
  }

  /** What pkgcloud's calls return: the underlying request, when it has one. */
  export interface Pending {
    abort?: () => void;
  }

  export interface ComputeClient {
    auth(cb: Callback<void>): void;
    getFlavors(cb: Callback<Flavor[]>): Pending | undefined;
    getImages(cb: Callback<Image[]>): Pending | undefined;
    getImage(id: string, cb: Callback<Image>): Pending | undefined;
    /** The server action createImage, then a GET of the image its Location header names. */
    createImage(options: CreateImageOptions, cb: Callback<Image>): Pending | undefined;
    getServers(options: { marker?: string; limit?: number }, cb: Callback<Server[]>): Pending | undefined;
    getServer(id: string, cb: Callback<Server>): Pending | undefined;
    createServer(options: CreateServerOptions, cb: Callback<Server>): Pending | undefined;
    destroyServer(id: string, cb: Callback<{ ok: string }>): Pending | undefined;
    getKey(name: string, cb: Callback<KeyPair>): Pending | undefined;
    addKey(options: { name: string; public_key: string }, cb: Callback<KeyPair>): Pending | undefined;
    destroyKey(name: string, cb: Callback<void>): Pending | undefined;
    _doServerAction(id: string, body: Record<string, unknown>, cb: Callback<unknown>): Pending | undefined;
    /** Status codes `_parseError` treats as errors (every other code counts as success). */
    failCodes: Record<string, string>;
    _identity: { getServiceEndpointUrl(options: unknown): string };
  }

  const pkgcloud: {
    compute: { createClient(options: Record<string, unknown>): ComputeClient };
  };
  export default pkgcloud;
}
