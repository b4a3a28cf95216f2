import test from 'ava';
import { builderName } from '../../src/image/builder.js';
import {
  CreateImageCommand, DeleteKeyPairCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand, EC2Client, EC2ServiceException, GetConsoleOutputCommand, ImportKeyPairCommand,
  RunInstancesCommand, StartInstancesCommand, TerminateInstancesCommand,
  type CreateImageCommandInput, type DescribeImagesCommandInput, type DescribeInstancesCommandInput, type DescribeInstanceTypesCommandInput,
  type Filter, type Image, type Instance, type InstanceTypeInfo, type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import ssh2 from 'ssh2';
import { createProvider, Ec2Provider } from '../../providers/ec2/index.js';
import { hostKeyFromConsole } from '../../providers/ec2/host-key.js';
import { isTransient } from '../../providers/ec2/retry.js';
import { ec2Settings } from '../../providers/ec2/settings.js';
import type { ProviderConfig } from '../../src/nodeset/types.js';
import { pickFlavor, type Labels } from '../../src/provider.js';
import { Secret } from '../../src/secret.js';
import { StateDir } from '../../src/state.js';
import { bakeImage } from '../../src/commands/image.js';
import { stripArgv, stripScript } from '../../src/image/builder.js';
import type { ImageRecord } from '../../src/image/strip.js';
import { answerBuilder } from '../helpers/bake.js';
import { fakeDeploy } from '../helpers/fake-nodes.js';
import { providerContract } from './contract.js';

/**
 * The ec2 provider against a small stateful EC2 built on aws-sdk-client-mock: no request leaves
 * the process. RunInstances stores instances with their tags, DescribeInstances filters by tag
 * and state and pages with NextToken, TerminateInstances marks instances terminated.
 */

const DEPLOY_KEY = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'silver-deploy' }).public;
/** createProvider needs a StateDir; these tests never call prepare() through it, so nothing is written. */
const UNUSED_STATE = new StateDir(join(tmpdir(), 'silver-ec2-test-unused'));
const FAST_RETRY = { retries: 3, minTimeout: 1, maxTimeout: 2, randomize: false };
const FAST_WAITER = { minDelay: 0.01, maxDelay: 0.02 };
const FAST_IMAGE_WAITER = { ...FAST_WAITER, maxWaitTime: 5 };
const DEBIAN = '136693071363';
const SELF = '111122223333';

function awsError(code: string, status = 400, message = `${code} (simulated)`): EC2ServiceException {
  return new EC2ServiceException({ name: code, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message });
}

function type(id: string, mib: number, vcpus: number, current = true, arch = 'x86_64'): InstanceTypeInfo {
  return {
    InstanceType: id as InstanceTypeInfo['InstanceType'],
    CurrentGeneration: current,
    MemoryInfo: { SizeInMiB: mib },
    VCpuInfo: { DefaultVCpus: vcpus },
    ProcessorInfo: { SupportedArchitectures: [arch as 'x86_64'] },
  };
}

/** Two pages, with a previous-generation and an arm64 type that the filters must leave out. */
const TYPE_PAGES: InstanceTypeInfo[][] = [
  [type('t3.micro', 1024, 2), type('m5.large', 8192, 2), type('t3.medium', 4096, 2), type('m3.medium', 3840, 1, false)],
  [type('t3.small', 2048, 2), type('t3.nano', 512, 2), type('c5.xlarge', 8192, 4), type('a1.medium', 2048, 1, true, 'arm64')],
];

function image(id: string, name: string, date: string, extra: Partial<Image> = {}): Image {
  return { ImageId: id, Name: name, CreationDate: date, OwnerId: DEBIAN, State: 'available', Architecture: 'x86_64', ...extra };
}

const IMAGES: Image[] = [
  image('ami-0000000000000a001', 'debian-12-amd64-20240101-1000', '2024-01-01T10:00:00.000Z'),
  image('ami-0000000000000a002', 'debian-12-amd64-20240601-1200', '2024-06-01T12:00:00.000Z'),
  image('ami-0000000000000a003', 'debian-12-amd64-20230901-0900', '2023-09-01T09:00:00.000Z'),
  image('ami-0000000000000a004', 'debian-12-arm64-20240701-1200', '2024-07-01T12:00:00.000Z', { Architecture: 'arm64' }),
  image('ami-0000000000000a005', 'debian-12-amd64-20240801-1200', '2024-08-01T12:00:00.000Z', { State: 'pending' }),
  image('ami-0000000000000a006', 'debian-11-amd64-20240901-1200', '2024-09-01T12:00:00.000Z'),
  // Same name pattern, newer, but published by a stranger: never picked.
  image('ami-0000000000000bad0', 'debian-12-amd64-20250101-0000', '2025-01-01T00:00:00.000Z', { OwnerId: '999999999999' }),
  image('ami-0000000000000c001', 'my-golden-2024', '2024-03-01T00:00:00.000Z', { OwnerId: SELF }),
];

function consoleWithKeys(ed25519: string): string {
  const rsa = ssh2.utils.generateKeyPairSync('rsa', { bits: 1024 }).public;
  return [
    '[   10.123456] cloud-init[512]: Cloud-init v. 22.4.2 running modules:final',
    '<14>Jan  1 00:00:00 cloud-init: #############################################################',
    '-----BEGIN SSH HOST KEY FINGERPRINTS-----',
    '256 SHA256:abc root@ip-10-0-0-1 (ED25519)',
    '-----END SSH HOST KEY FINGERPRINTS-----',
    '-----BEGIN SSH HOST KEY KEYS-----',
    `ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTY= root@ip-10-0-0-1`,
    `${ed25519.split(' ').slice(0, 2).join(' ')} root@ip-10-0-0-1`,
    `${rsa.split(' ').slice(0, 2).join(' ')} root@ip-10-0-0-1`,
    '-----END SSH HOST KEY KEYS-----',
    '',
  ].join('\r\n');
}

const globMatch = (pattern: string, value: string) => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`).test(value);
const values = (filters: Filter[] | undefined, name: string) => filters?.find((f) => f.Name === name)?.Values;

class FakeEc2 {
  readonly client = new EC2Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake' } });
  readonly mock = mockClient(this.client);
  readonly instances: Instance[] = [];
  readonly keyPairs = new Map<string, string>();
  readonly consoles = new Map<string, string>();
  /** Errors the next calls of an operation throw, in order. */
  readonly failures = new Map<string, Error[]>();
  /** Instances per DescribeInstances page. */
  pageSize = 2;
  /** How many DescribeInstances-by-id polls a new instance stays pending. */
  pendingPolls = 1;
  /** Whether new instances print their host keys on the console. */
  printsHostKey = true;
  /** The images DescribeImages knows: the fixed ones, and those CreateImage made. */
  readonly amis: Image[] = IMAGES.map((i) => structuredClone(i));
  /** How many DescribeImages-by-id polls a new image stays pending, and the state it ends in. */
  imagePendingPolls = 2;
  imageEnds: 'available' | 'failed' = 'available';
  private next = 1;
  private readonly polls = new Map<string, number>();

  constructor() {
    this.mock.on(RunInstancesCommand).callsFake(this.guard('RunInstances', (i: RunInstancesCommandInput) => this.run(i)));
    this.mock.on(DescribeInstancesCommand).callsFake(this.guard('DescribeInstances', (i: DescribeInstancesCommandInput) => this.describe(i)));
    this.mock.on(TerminateInstancesCommand).callsFake(this.guard('TerminateInstances', (i: { InstanceIds: string[] }) => {
      for (const inst of this.byIds(i.InstanceIds)) inst.State = { Name: 'terminated', Code: 48 };
      return { TerminatingInstances: i.InstanceIds.map((InstanceId) => ({ InstanceId })) };
    }));
    this.mock.on(StartInstancesCommand).callsFake(this.guard('StartInstances', (i: { InstanceIds: string[] }) => {
      for (const inst of this.byIds(i.InstanceIds)) {
        inst.State = { Name: 'pending', Code: 0 };
        this.polls.set(inst.InstanceId!, this.pendingPolls);
      }
      return {};
    }));
    this.mock.on(DescribeInstanceTypesCommand).callsFake(this.guard('DescribeInstanceTypes', (i: DescribeInstanceTypesCommandInput) => {
      const page = i.NextToken === 'page-2' ? 1 : 0;
      const current = values(i.Filters, 'current-generation')?.[0];
      const arch = values(i.Filters, 'processor-info.supported-architecture');
      const types = TYPE_PAGES[page]!.filter(
        (t) => (current === undefined || String(t.CurrentGeneration) === current) && (!arch || t.ProcessorInfo!.SupportedArchitectures!.some((a) => arch.includes(a))),
      );
      return { InstanceTypes: types, ...(page === 0 ? { NextToken: 'page-2' } : {}) };
    }));
    this.mock.on(DescribeImagesCommand).callsFake(this.guard('DescribeImages', (i: DescribeImagesCommandInput) => this.images(i)));
    this.mock.on(CreateImageCommand).callsFake(this.guard('CreateImage', (i: CreateImageCommandInput) => this.createImage(i)));
    this.mock.on(DescribeKeyPairsCommand).callsFake(this.guard('DescribeKeyPairs', (i: { KeyNames: string[] }) => {
      const missing = i.KeyNames.find((k) => !this.keyPairs.has(k));
      if (missing) throw awsError('InvalidKeyPair.NotFound', 400, `The key pair '${missing}' does not exist`);
      return { KeyPairs: i.KeyNames.map((KeyName) => ({ KeyName, PublicKey: this.keyPairs.get(KeyName) })) };
    }));
    this.mock.on(ImportKeyPairCommand).callsFake(this.guard('ImportKeyPair', (i: { KeyName: string; PublicKeyMaterial: Uint8Array }) => {
      if (this.keyPairs.has(i.KeyName)) throw awsError('InvalidKeyPair.Duplicate', 400, `The keypair already exists`);
      this.keyPairs.set(i.KeyName, new TextDecoder().decode(i.PublicKeyMaterial));
      return { KeyName: i.KeyName, KeyPairId: `key-${i.KeyName}` };
    }));
    this.mock.on(DeleteKeyPairCommand).callsFake(this.guard('DeleteKeyPair', (i: { KeyName: string }) => {
      this.keyPairs.delete(i.KeyName);
      return {};
    }));
    this.mock.on(GetConsoleOutputCommand).callsFake(this.guard('GetConsoleOutput', (i: { InstanceId: string }) => {
      const text = this.consoles.get(i.InstanceId);
      return { InstanceId: i.InstanceId, ...(text ? { Output: Buffer.from(text).toString('base64') } : {}) };
    }));
  }

  provider(settings: ProviderConfig['settings'] = { region: 'eu-west-1' }, deployKey = DEPLOY_KEY, consoleWait = { everyMs: 1, maxMs: 30 }): Ec2Provider {
    return new Ec2Provider(ec2Settings({ type: 'ec2', name: null, settings }), {
      client: this.client, deployKey: () => deployKey, retry: FAST_RETRY, waiter: FAST_WAITER, imageWaiter: FAST_IMAGE_WAITER, consoleWait,
    });
  }

  failOnce(operation: string, error: Error): void {
    this.failures.set(operation, [...(this.failures.get(operation) ?? []), error]);
  }

  inputs<T>(command: Parameters<typeof this.mock.commandCalls>[0]): T[] {
    return this.mock.commandCalls(command).map((c) => c.args[0].input as T);
  }

  /** An instance put straight into the fake, as if made earlier. */
  seed(labels: Labels, state = 'running'): Instance {
    const tags = [
      { Key: 'Name', Value: labels.name }, { Key: 'silver:nodeset', Value: labels.nodeset },
      { Key: 'silver:role', Value: labels.role }, { Key: 'silver:name', Value: labels.name }, { Key: 'silver:index', Value: String(labels.index) },
    ];
    const n = this.next++;
    const inst: Instance = { InstanceId: `i-${String(n).padStart(17, '0')}`, State: { Name: state as 'running' }, Tags: tags, PrivateIpAddress: `10.0.0.${n}` };
    this.instances.push(inst);
    return inst;
  }

  private guard<I, O>(operation: string, fn: (input: I) => O): (input: I) => Promise<O> {
    return async (input) => {
      const failure = this.failures.get(operation)?.shift();
      if (failure) throw failure;
      return fn(input);
    };
  }

  private byIds(ids: readonly string[]): Instance[] {
    return ids.map((id) => {
      const inst = this.instances.find((i) => i.InstanceId === id);
      if (!inst) throw awsError('InvalidInstanceID.NotFound', 400, `The instance ID '${id}' does not exist`);
      return inst;
    });
  }

  private run(input: RunInstancesCommandInput) {
    const n = this.next++;
    const id = `i-${String(n).padStart(17, '0')}`;
    const inst: Instance = {
      InstanceId: id, ImageId: input.ImageId, InstanceType: input.InstanceType, KeyName: input.KeyName,
      State: { Name: 'pending', Code: 0 }, PrivateIpAddress: `10.0.0.${n}`,
      Tags: input.TagSpecifications?.find((t) => t.ResourceType === 'instance')?.Tags ?? [],
    };
    this.instances.push(inst);
    this.polls.set(id, this.pendingPolls);
    if (this.printsHostKey) this.consoles.set(id, consoleWithKeys(ssh2.utils.generateKeyPairSync('ed25519').public));
    return { Instances: [structuredClone(inst)] };
  }

  private describe(input: DescribeInstancesCommandInput) {
    if (input.InstanceIds) {
      const found = this.byIds(input.InstanceIds);
      for (const inst of found) {
        const left = this.polls.get(inst.InstanceId!) ?? 0;
        this.polls.set(inst.InstanceId!, left - 1);
        if (inst.State?.Name === 'pending' && left <= 0) {
          inst.State = { Name: 'running', Code: 16 };
          inst.PublicIpAddress = `203.0.113.${inst.PrivateIpAddress!.split('.')[3]}`;
        }
      }
      return { Reservations: found.map((i) => ({ Instances: [structuredClone(i)] })) };
    }
    const matches = this.instances.filter((inst) =>
      (input.Filters ?? []).every((f) => {
        if (f.Name?.startsWith('tag:')) return inst.Tags?.some((t) => t.Key === f.Name!.slice(4) && f.Values!.includes(t.Value!));
        if (f.Name === 'instance-state-name') return f.Values!.includes(inst.State!.Name!);
        throw new Error(`fake EC2: unknown filter ${f.Name}`);
      }),
    );
    const start = Number(input.NextToken ?? 0);
    const end = start + this.pageSize;
    return {
      Reservations: matches.slice(start, end).map((i) => ({ Instances: [structuredClone(i)] })),
      ...(end < matches.length ? { NextToken: String(end) } : {}),
    };
  }

  private createImage(input: CreateImageCommandInput) {
    this.byIds([input.InstanceId!]);
    if (this.amis.some((i) => i.Name === input.Name && i.OwnerId === SELF)) throw awsError('InvalidAMIName.Duplicate', 400, `AMI name ${input.Name} is already in use by AMI ami-x`);
    const id = `ami-${String(this.next++).padStart(17, '0')}`;
    const tags = input.TagSpecifications?.find((t) => t.ResourceType === 'image')?.Tags ?? [];
    this.amis.push(image(id, input.Name!, '2026-12-02T10:05:00.000Z', { OwnerId: SELF, State: 'pending', Tags: tags, Description: input.Description! }));
    this.polls.set(id, this.imagePendingPolls);
    return { ImageId: id };
  }

  private images(input: DescribeImagesCommandInput) {
    if (input.ImageIds) {
      const found = this.amis.filter((i) => input.ImageIds!.includes(i.ImageId!));
      if (found.length < input.ImageIds.length) throw awsError('InvalidAMIID.NotFound', 400, `The image id '[${input.ImageIds.join(', ')}]' does not exist`);
      for (const i of found.filter((x) => x.State === 'pending')) {
        const left = this.polls.get(i.ImageId!) ?? 0;
        this.polls.set(i.ImageId!, left - 1);
        if (left <= 0) i.State = this.imageEnds;
        if (i.State === 'failed') i.StateReason = { Code: 'Client.InternalError', Message: 'Client.InternalError: snapshot failed' };
      }
      return { Images: structuredClone(found) };
    }
    const owners = (input.Owners ?? []).map((o) => (o === 'self' ? SELF : o));
    const name = values(input.Filters, 'name');
    const state = values(input.Filters, 'state');
    const arch = values(input.Filters, 'architecture');
    return {
      Images: this.amis.filter(
        (i) =>
          (owners.length === 0 || owners.includes(i.OwnerId!)) &&
          (!name || name.some((p) => globMatch(p, i.Name!))) &&
          (!state || state.includes(i.State!)) &&
          (!arch || arch.includes(i.Architecture!)),
      ),
    };
  }
}

const labels = (nodeset: string, name: string, index = 1): Labels => ({ nodeset, role: 'appserver', name, index });

async function created(p: Ec2Provider, l: Labels) {
  const flavors = await p.listSizes();
  return p.create({
    labels: l, flavor: flavors.find((f) => f.default)!, image: await p.resolveImage(null),
    authorizedKey: DEPLOY_KEY, hostKey: ssh2.utils.generateKeyPairSync('ed25519'),
  });
}

// The shared contract, against the fake.
providerContract(test, {
  name: 'ec2 contract test (aws-sdk-client-mock)',
  make: async () => new FakeEc2().provider(),
  nodeset: 'contract-ec2',
  authorizedKey: DEPLOY_KEY,
  installsHostKey: false,
  timeoutMs: 5_000,
});

test('ec2 contract test: DescribeInstances pages are all read; other nodesets, shutting-down and terminated instances are left out', async (t) => {
  const fake = new FakeEc2();
  fake.pageSize = 2;
  for (let i = 1; i <= 5; i++) fake.seed(labels('pages', `app${i}.pages.test`, i), i === 2 ? 'stopped' : 'running');
  fake.seed(labels('pages-other', 'app1.other.test'));
  fake.seed(labels('pages', 'old1.pages.test', 9), 'shutting-down');
  fake.seed(labels('pages', 'old2.pages.test', 10), 'terminated');
  const nodes = await fake.provider().list('pages');
  t.deepEqual(nodes.map((n) => n.name).sort(), [1, 2, 3, 4, 5].map((i) => `app${i}.pages.test`));
  t.is(nodes.find((n) => n.name === 'app2.pages.test')!.state, 'stopped');
  const calls = fake.inputs<DescribeInstancesCommandInput>(DescribeInstancesCommand);
  t.deepEqual(calls.map((c) => c.NextToken), [undefined, '2', '4']);
  t.deepEqual(values(calls[0]!.Filters, 'tag:silver:nodeset'), ['pages']);
});

test('ec2 contract test: waitReachable waits with the SDK waiter while the instance is pending, then returns it running with both addresses', async (t) => {
  const fake = new FakeEc2();
  fake.pendingPolls = 2;
  const p = fake.provider();
  const { node } = await created(p, labels('wait', 'app1.wait.test'));
  t.is(node.state, 'pending');
  t.is(node.publicAddress, null);
  const up = await p.waitReachable(node, 10_000);
  t.is(up.state, 'running');
  t.is(up.privateAddress, node.privateAddress);
  t.regex(up.publicAddress ?? '', /^203\.0\.113\.\d+$/);
  const polls = fake.inputs<DescribeInstancesCommandInput>(DescribeInstancesCommand).filter((c) => c.InstanceIds);
  t.is(polls.length, 3, 'pending, pending, running');
});

test('ec2 contract test: waitReachable gives up after the timeout with the state in the message', async (t) => {
  const fake = new FakeEc2();
  fake.pendingPolls = Number.POSITIVE_INFINITY;
  const p = fake.provider();
  const { node } = await created(p, labels('stuck', 'app1.stuck.test'));
  const err = await t.throwsAsync(p.waitReachable(node, 500));
  t.regex(err.message, /app1\.stuck\.test .* is not running after 1s \(state: pending\)/);
});

test('ec2 contract test: a throttled call (RequestLimitExceeded) is retried and then succeeds', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  fake.seed(labels('throttle', 'app1.throttle.test'));
  fake.failOnce('DescribeInstances', awsError('RequestLimitExceeded', 503, 'Request limit exceeded.'));
  t.is((await p.list('throttle')).length, 1);
  t.is(fake.mock.commandCalls(DescribeInstancesCommand).length, 2, 'one throttled call, one retry');

  // RunInstances retried keeps its client token: EC2 launches one instance, not two.
  fake.failOnce('RunInstances', awsError('ServiceUnavailable', 503));
  await created(p, labels('throttle', 'app2.throttle.test', 2));
  const runs = fake.inputs<RunInstancesCommandInput>(RunInstancesCommand);
  t.is(runs.length, 2);
  t.truthy(runs[0]!.ClientToken);
  t.is(runs[0]!.ClientToken, runs[1]!.ClientToken);
});

test('ec2 contract test: transient errors are retried a bounded number of times, then reported with the call name', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  for (let i = 0; i < 10; i++) fake.failOnce('DescribeInstances', awsError('Throttling', 400, 'Rate exceeded'));
  const err = await t.throwsAsync(p.list('busy'));
  t.is(fake.mock.commandCalls(DescribeInstancesCommand).length, FAST_RETRY.retries + 1);
  t.is(err.message, `ec2 DescribeInstances failed: Throttling: Rate exceeded (gave up after ${FAST_RETRY.retries + 1} attempts)`);
});

test('ec2 contract test: throttling, 5xx and network errors are transient; permanent errors are not', (t) => {
  for (const e of [
    awsError('RequestLimitExceeded', 503), awsError('Throttling'), awsError('ThrottlingException'),
    awsError('InternalError', 500), awsError('Unavailable', 503), Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
  ]) t.true(isTransient(e), (e as Error).message);
  for (const e of [awsError('InvalidAMIID.NotFound'), awsError('UnauthorizedOperation', 403), awsError('InvalidParameterValue'), new Error('plain')]) {
    t.false(isTransient(e), e.message);
  }
});

test('ec2 contract test: a permanent error (InvalidAMIID.NotFound, UnauthorizedOperation) is reported at once, naming the call', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  const err = await t.throwsAsync(p.resolveImage('ami-00000000deadbeef0'));
  t.is(fake.mock.commandCalls(DescribeImagesCommand).length, 1, 'not retried');
  t.regex(err.message, /^ec2 DescribeImages failed: InvalidAMIID\.NotFound: The image id/);

  fake.failOnce('RunInstances', awsError('UnauthorizedOperation', 403, 'You are not authorized to perform this operation.'));
  const err2 = await t.throwsAsync(created(p, labels('denied', 'app1.denied.test')));
  t.is(fake.mock.commandCalls(RunInstancesCommand).length, 1, 'not retried');
  t.regex(err2.message, /^ec2 RunInstances failed: UnauthorizedOperation: You are not authorized/);
  t.deepEqual(await p.list('denied'), []);
});

test('ec2 contract test: ram 3GB resolves to the smallest fitting current-generation x86_64 type; the list is read over two pages and cached', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  const flavors = await p.listSizes();
  t.deepEqual(flavors.map((f) => f.id), ['t3.nano', 't3.micro', 't3.small', 't3.medium', 'm5.large', 'c5.xlarge']);
  t.deepEqual(flavors.filter((f) => f.default).map((f) => f.id), ['t3.small']);
  const fallback = flavors.find((f) => f.default)!;
  t.like(pickFlavor(flavors, { kind: 'ram', mb: 3 * 1024 }, fallback), { id: 't3.medium', ramMb: 4096 });
  t.like(pickFlavor(flavors, { kind: 'id', id: 'm5.large' }, fallback), { id: 'm5.large' });
  t.is(typeof pickFlavor(flavors, { kind: 'id', id: 'm3.medium' }, fallback), 'string', 'previous generation is not offered');
  await p.listSizes();
  const calls = fake.inputs<DescribeInstanceTypesCommandInput>(DescribeInstanceTypesCommand);
  t.deepEqual(calls.map((c) => c.NextToken), [undefined, 'page-2'], 'two pages, once');
  t.deepEqual(values(calls[0]!.Filters, 'current-generation'), ['true']);
  t.deepEqual(values(calls[0]!.Filters, 'processor-info.supported-architecture'), ['x86_64']);
});

test('ec2 contract test: images by name filter pick the newest available x86_64 one of a trusted owner; ids are checked', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  t.is(await p.resolveImage(null), 'ami-0000000000000a002', 'default: newest Debian 12 amd64');
  const [first] = fake.inputs<DescribeImagesCommandInput>(DescribeImagesCommand);
  t.deepEqual(first!.Owners, [DEBIAN]);
  t.deepEqual(values(first!.Filters, 'name'), ['debian-12-amd64-*']);
  t.is(await p.resolveImage('debian-12-amd64-*'), 'ami-0000000000000a002', 'a stranger\'s newer image of that name is not picked');
  t.is(await p.resolveImage('self/my-golden-*'), 'ami-0000000000000c001');
  t.is(await p.resolveImage('ami-0000000000000a003'), 'ami-0000000000000a003');
  await p.resolveImage(null);
  t.is(fake.mock.commandCalls(DescribeImagesCommand).length, 4, 'resolved images are cached');
  t.deepEqual((await p.listImages()).map((l) => l.split(' ')[0]), ['ami-0000000000000a002', 'ami-0000000000000a001', 'ami-0000000000000a003']);
  const err = await t.throwsAsync(p.resolveImage('debian-99-*'));
  t.regex(err.message, /no available image matches "debian-99-\*"/);
});

test('ec2 contract test: the host key is read from the console output (ed25519 preferred), null when not printed', async (t) => {
  const key = ssh2.utils.generateKeyPairSync('ed25519').public.split(' ').slice(0, 2).join(' ');
  t.is(hostKeyFromConsole(consoleWithKeys(key)), key);
  t.is(hostKeyFromConsole('-----BEGIN SSH HOST KEY KEYS-----\nssh-rsa AAAAB3NzaC1yc2E= root@x\n-----END SSH HOST KEY KEYS-----\n'), 'ssh-rsa AAAAB3NzaC1yc2E=');
  t.is(hostKeyFromConsole('Debian GNU/Linux 12 ip-10-0-0-1 ttyS0\n'), null);
  t.is(hostKeyFromConsole('-----BEGIN SSH HOST KEY KEYS-----\nssh-ed25519 AAAAC3Nz'), null, 'an unfinished block');

  const fake = new FakeEc2();
  const p = fake.provider();
  const { node } = await created(p, labels('hk', 'app1.hk.test'));
  fake.consoles.set(node.id, `boot...\n${consoleWithKeys(key)}`);
  t.is(await p.hostKey(node), key);
  t.deepEqual(fake.inputs<{ InstanceId: string; Latest?: boolean }>(GetConsoleOutputCommand).map((c) => [c.InstanceId, c.Latest]), [[node.id, true]], 'the latest output, not the one buffered at start');
  fake.consoles.delete(node.id);
  let calls = fake.inputs(GetConsoleOutputCommand).length;
  const waiting = fake.provider(undefined, undefined, { everyMs: 1, maxMs: 300 });
  t.is(await waiting.hostKey(node), null, 'a node not just made: one look, no wait');
  t.is(fake.inputs(GetConsoleOutputCommand).length - calls, 1);
  calls = fake.inputs(GetConsoleOutputCommand).length;
  t.is(await waiting.hostKey(node, true), null, 'none printed within the wait: null (silver pins on first contact, and says so)');
  t.true(fake.inputs(GetConsoleOutputCommand).length - calls >= 2, 'a node just made: looked for again meanwhile');
  // The keys printed only after a few looks (cloud-init's final stage comes after sshd): found.
  let looks = 0;
  const early = fake.inputs(GetConsoleOutputCommand).length;
  fake.mock.on(GetConsoleOutputCommand).callsFake(async (i: { InstanceId: string }) => {
    looks++;
    return { InstanceId: i.InstanceId, Output: Buffer.from(looks < 3 ? 'boot...\n' : `boot...\n${consoleWithKeys(key)}`).toString('base64') };
  });
  // (a wait long enough for any load: found at the third look, it returns then)
  const patient = fake.provider(undefined, undefined, { everyMs: 1, maxMs: 60_000 });
  t.is(await patient.hostKey(node, true), key);
  t.is(looks, 3);
  t.true(fake.inputs(GetConsoleOutputCommand).length >= early);
  // An instance type without the latest output (not Nitro): the buffered one, from then on.
  const q = fake.provider(undefined, undefined, { everyMs: 1, maxMs: 60_000 });
  const seen: (boolean | undefined)[] = [];
  fake.mock.on(GetConsoleOutputCommand).callsFake(async (i: { InstanceId: string; Latest?: boolean }) => {
    seen.push(i.Latest);
    if (i.Latest) throw awsError('UnsupportedOperation', 400, 'This instance type does not support retrieving the latest console output.');
    return { InstanceId: i.InstanceId, Output: Buffer.from(consoleWithKeys(key)).toString('base64') };
  });
  t.is(await q.hostKey(node), key);
  t.is(await q.hostKey(node), key);
  t.deepEqual(seen, [true, undefined, undefined], 'that instance asked for the buffered output from then on');
  const { node: other } = await created(q, labels('hk', 'app2.hk.test'));
  seen.length = 0;
  await q.hostKey(other);
  t.is(seen[0], true, 'another instance (another type, perhaps) asked for the latest first');
});

test('ec2 contract test: the secret access key and session token never appear in an error message', async (t) => {
  const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
  const TOKEN = 'FwoGZXIvYXdzEXAMPLETOKEN';
  const config: ProviderConfig = {
    type: 'ec2', name: 'aws',
    settings: { region: 'eu-west-1', username: 'AKIAIOSFODNN7EXAMPLE', secret: new Secret(SECRET), session_token: new Secret(TOKEN) },
  };
  const p = createProvider(config, UNUSED_STATE) as Ec2Provider;
  const mock = mockClient(p.client);
  mock.on(DescribeInstancesCommand).rejects(awsError('AuthFailure', 401, `signature for ${SECRET} with token ${TOKEN} does not match`));
  const err = await t.throwsAsync(p.list('leak'));
  t.false(err.message.includes(SECRET));
  t.false(err.message.includes(TOKEN));
  t.regex(err.message, /^ec2 DescribeInstances failed: AuthFailure: signature for \[REDACTED\] with token \[REDACTED\]/);
  t.false(inspect(p, { depth: 4 }).includes(SECRET));
  t.false(JSON.stringify(p.settings).includes(SECRET));
  // A half-given credential pair is refused without echoing anything secret.
  const half = t.throws(() => ec2Settings({ type: 'ec2', name: null, settings: { secret: new Secret(SECRET) } }));
  t.false(half.message.includes(SECRET));
  t.regex(half.message, /set both username .* and secret/);
});

test('ec2 contract test: createProvider builds the client from region, endpoint and credentials (no request sent)', async (t) => {
  const state = UNUSED_STATE;
  const p = createProvider({
    type: 'ec2', name: null,
    settings: { region: 'eu-central-1', endpoint: 'http://localhost:4566', username: 'AKIDLOCAL', secret: new Secret('local-secret') },
  }, state) as Ec2Provider;
  t.is(p.adminUser, 'admin');
  t.is(await p.client.config.region(), 'eu-central-1');
  const creds = await p.client.config.credentials();
  t.is(creds.accessKeyId, 'AKIDLOCAL');
  t.is(creds.secretAccessKey, 'local-secret');
  t.is((await p.client.config.endpoint?.())?.hostname, 'localhost');
  t.is(await p.client.config.maxAttempts(), 1, 'p-retry is the one retry layer');
  // Nothing given: the SDK chain decides, and nothing is required.
  t.notThrows(() => createProvider({ type: 'ec2', name: null, settings: {} }, state));
});

test('ec2 contract test: prepare imports the deploy key once as silver-<nodeset>, reuses it, and refuses a key pair holding another key', async (t) => {
  const fake = new FakeEc2();
  const ns = { name: 'kp' } as Parameters<Ec2Provider['prepare']>[0];
  const messages: string[] = [];
  await fake.provider().prepare(ns, (m) => messages.push(m));
  await fake.provider().prepare(ns, (m) => messages.push(m));
  t.is(fake.mock.commandCalls(ImportKeyPairCommand).length, 1);
  t.is(fake.keyPairs.get('silver-kp'), DEPLOY_KEY);
  t.true(messages.some((m) => m.includes('key pair silver-kp')));
  t.true(messages.some((m) => m.includes('ami-0000000000000a002')), 'prepare checks the image');

  fake.keyPairs.set('silver-other', ssh2.utils.generateKeyPairSync('ed25519').public);
  const err = await t.throwsAsync(fake.provider().prepare({ ...ns, name: 'other' }, () => undefined));
  t.regex(err.message, /key pair "silver-other" exists but holds another public key/);

  const bad = await t.throwsAsync(fake.provider({ region: 'eu-west-1', image: 'ami-00000000000000000' }).prepare({ ...ns, name: 'img' }, () => undefined));
  t.regex(bad.message, /DescribeImages failed: InvalidAMIID\.NotFound/);
});

test('ec2 contract test: RunInstances carries the labels as tags, the key pair, IMDSv2 and the network settings', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider({ region: 'eu-west-1', key_name: 'ops', subnet_id: 'subnet-0abc', security_group: 'sg-0123, web', availability_zone: 'eu-west-1b' });
  fake.keyPairs.set('ops', DEPLOY_KEY);
  const { node, hostKey } = await created(p, { nodeset: 'tags', role: 'service:mysql', name: 'mysql.tags.test', index: 1 });
  t.is(hostKey, null, 'known only later, from the console');
  t.like(node, { nodeset: 'tags', role: 'service:mysql', name: 'mysql.tags.test', index: 1, state: 'pending' });
  const [run] = fake.inputs<RunInstancesCommandInput>(RunInstancesCommand);
  t.like(run!, {
    KeyName: 'ops', InstanceType: 't3.small', ImageId: 'ami-0000000000000a002', MinCount: 1, MaxCount: 1,
    SubnetId: 'subnet-0abc', SecurityGroupIds: ['sg-0123'], SecurityGroups: ['web'], Placement: { AvailabilityZone: 'eu-west-1b' },
    MetadataOptions: { HttpTokens: 'required' },
  });
  t.deepEqual(run!.TagSpecifications!.find((s) => s.ResourceType === 'instance')!.Tags, [
    { Key: 'Name', Value: 'mysql.tags.test' }, { Key: 'silver:nodeset', Value: 'tags' }, { Key: 'silver:role', Value: 'service:mysql' },
    { Key: 'silver:name', Value: 'mysql.tags.test' }, { Key: 'silver:index', Value: '1' },
  ]);
  t.is(fake.mock.commandCalls(ImportKeyPairCommand).length, 0, 'key_name: the existing key pair is used');
  t.deepEqual((await p.list('tags')).map((n) => n.id), [node.id]);
});

test('ec2 contract test: start, destroy (idempotent) and release, which deletes silver-<nodeset> once no node is left', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  await p.prepare({ name: 'rel' } as Parameters<Ec2Provider['prepare']>[0], () => undefined);
  const { node } = await created(p, labels('rel', 'app1.rel.test'));
  fake.instances.find((i) => i.InstanceId === node.id)!.State = { Name: 'stopped' };
  t.is((await p.list('rel'))[0]!.state, 'stopped');
  t.is((await p.start(node)).state, 'pending');
  t.is((await p.waitReachable(node, 5_000)).state, 'running');
  await p.release('rel');
  t.true(fake.keyPairs.has('silver-rel'), 'kept while a node exists');
  await p.destroy(node);
  await p.destroy(node);
  await p.destroy({ ...node, id: 'i-0000000000000dead' });
  t.deepEqual(await p.list('rel'), []);
  await p.release('rel');
  t.false(fake.keyPairs.has('silver-rel'));
  t.is(fake.mock.commandCalls(DeleteKeyPairCommand).length, 1);
  t.is(fake.mock.commandCalls(StartInstancesCommand).length, 1);
});

// silver image bake on EC2.

const RECORD: ImageRecord = {
  name: 'silver-image-shop-appserver-20261202T1000Z', nodeset: 'shop', role: 'appserver', from: 'silver-builder-appserver.invalid',
  built: '2026-12-02T10:00:00.000Z', packages: ['haproxy 2.6.12-1', 'nginx 1.22.1-9'],
};
const IMAGE_TAGS = [
  { Key: 'Name', Value: RECORD.name }, { Key: 'silver:nodeset', Value: 'shop' }, { Key: 'silver:role', Value: 'appserver' },
  { Key: 'silver:baked', Value: RECORD.built }, { Key: 'silver:packages', Value: '2' },
];
const builderLabels: Labels = { nodeset: 'shop', role: 'appserver', name: 'silver-builder-appserver.invalid', index: 1 };

test('ec2 contract test: a bake\'s CreateImage names the image and tags it and its snapshot; the SDK waiter polls DescribeImages until it is available', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  const { node } = await created(p, builderLabels);
  const said: string[] = [];
  const id = await p.snapshotImage(node, RECORD, (m) => said.push(m));
  t.deepEqual(fake.inputs<CreateImageCommandInput>(CreateImageCommand), [{
    InstanceId: node.id,
    Name: RECORD.name,
    Description: 'silver image bake: appserver of nodeset shop, 2 packages, 2026-12-02T10:00:00.000Z',
    TagSpecifications: [{ ResourceType: 'image', Tags: IMAGE_TAGS }, { ResourceType: 'snapshot', Tags: IMAGE_TAGS }],
  }]);
  const polls = fake.inputs<DescribeImagesCommandInput>(DescribeImagesCommand).filter((c) => c.ImageIds);
  t.deepEqual(polls, [{ ImageIds: [id] }, { ImageIds: [id] }, { ImageIds: [id] }], 'the waiter: pending, pending, available');
  t.deepEqual(said, [`ec2: image ${id} (${RECORD.name}) is being made from silver-builder-appserver.invalid (${node.id})`]);
  // image = NAME finds it among the account's own images; create-node learns its age from EC2.
  t.is(await p.resolveImage(RECORD.name), id);
  t.deepEqual(await p.imageRecord(id), { name: RECORD.name, nodeset: 'shop', role: 'appserver', built: '2026-12-02T10:05:00.000Z' }, "the bake time is EC2's CreationDate");
  t.is(await p.imageRecord('ami-0000000000000a002'), null, 'a Debian image is not a baked one');
});

test('ec2 contract test: an image that ends failed, or is not available in time, is an error naming it and EC2\'s reason', async (t) => {
  const fake = new FakeEc2();
  fake.imageEnds = 'failed';
  const p = fake.provider();
  const { node } = await created(p, builderLabels);
  const e = await t.throwsAsync(p.snapshotImage(node, RECORD, () => undefined));
  t.regex(e!.message, /^ec2: image ami-\d+ \(silver-image-shop-appserver-20261202T1000Z\) failed \(state: failed: Client\.InternalError: snapshot failed\)$/);

  const slow = new FakeEc2();
  slow.imagePendingPolls = Number.POSITIVE_INFINITY;
  const q = new Ec2Provider(ec2Settings({ type: 'ec2', name: null, settings: { region: 'eu-west-1' } }), {
    client: slow.client, deployKey: () => DEPLOY_KEY, retry: FAST_RETRY, waiter: FAST_WAITER, imageWaiter: { ...FAST_WAITER, maxWaitTime: 0.2 },
  });
  const b = await created(q, builderLabels);
  const late = await t.throwsAsync(q.snapshotImage(b.node, RECORD, () => undefined));
  t.regex(late!.message, /is not available after 0\.2s \(state: pending\)$/);
});

test('ec2 contract test: an abort (SIGINT) stops the image waiter at once', async (t) => {
  const fake = new FakeEc2();
  fake.imagePendingPolls = Number.POSITIVE_INFINITY;
  const p = fake.provider();
  const { node } = await created(p, builderLabels);
  const abort = new AbortController();
  const before = fake.mock.commandCalls(DescribeImagesCommand).length;
  fake.mock.on(DescribeImagesCommand).callsFake((i: DescribeImagesCommandInput) => {
    if (i.ImageIds) abort.abort();
    return { Images: fake.amis.filter((a) => i.ImageIds?.includes(a.ImageId!)) };
  });
  const e = await t.throwsAsync(p.snapshotImage(node, RECORD, () => undefined, abort.signal));
  t.regex(e!.message, /^ec2: stopped waiting for image ami-\d+ \(silver-image-shop-appserver-20261202T1000Z, state: pending\); EC2 may still complete it$/);
  t.is(fake.mock.commandCalls(DescribeImagesCommand).length - before, 2, 'one poll, then the state for the message');
});

test('ec2 contract test: a CreateImage retried after a 503 whose first attempt went through uses that image, not another', async (t) => {
  const fake = new FakeEc2();
  const p = fake.provider();
  const { node } = await created(p, builderLabels);
  // The first attempt made the image, then the answer was lost.
  fake.amis.push(image('ami-0000000000000f001', RECORD.name, '2026-12-02T10:05:00.000Z', { OwnerId: SELF, State: 'pending', Tags: IMAGE_TAGS }));
  fake.failOnce('CreateImage', awsError('ServiceUnavailable', 503));
  t.is(await p.snapshotImage(node, RECORD, () => undefined), 'ami-0000000000000f001');
  t.is(fake.mock.commandCalls(CreateImageCommand).length, 2);
  // Someone else's image of that name is not taken for this bake's.
  fake.amis.find((a) => a.ImageId === 'ami-0000000000000f001')!.Tags = IMAGE_TAGS.map((x) => (x.Key === 'silver:baked' ? { ...x, Value: '2026-11-01T00:00:00.000Z' } : x));
  await t.throwsAsync(p.snapshotImage(node, RECORD, () => undefined), { message: /CreateImage failed: InvalidAMIName\.Duplicate/ });
});

test('ec2 contract test: silver image bake launches a labelled builder from the current Debian image, strips it over SSH, images it, and terminates it even when CreateImage fails', async (t) => {
  for (const fails of [false, true]) {
    const d = await fakeDeploy();
    const stdins = answerBuilder(d.nodes);
    const fake = new FakeEc2();
    const p = fake.provider({ region: 'eu-west-1' }, d.rt.state.deployKey().public);
    d.rt.providerFor = async () => p;
    if (fails) fake.failOnce('CreateImage', awsError('UnauthorizedOperation', 403, 'You are not authorized to perform this operation.'));
    const bake = bakeImage(d.ns, d.rt, { role: 'appserver' });
    if (fails) await t.throwsAsync(bake, { message: /^image bake: ec2 CreateImage failed: UnauthorizedOperation: You are not authorized to perform this operation\. \(check the credentials and their IAM permissions\) \(no image made\)$/ });
    else t.like(await bake, { name: RECORD.name, id: 'ami-00000000000000002', from: builderName('appserver'), packages: RECORD.packages });
    const [launch, ...more] = fake.inputs<RunInstancesCommandInput>(RunInstancesCommand);
    t.is(more.length, 0, 'one builder');
    t.is(launch!.ImageId, 'ami-0000000000000a002', "the provider's current image");
    t.deepEqual(launch!.TagSpecifications![0]!.Tags, [
      { Key: 'Name', Value: builderName('appserver') }, { Key: 'silver:nodeset', Value: 'shop' }, { Key: 'silver:role', Value: 'appserver' },
      { Key: 'silver:name', Value: builderName('appserver') }, { Key: 'silver:index', Value: '1' },
    ]);
    const builder = fake.instances[0]!.InstanceId!;
    t.like(fake.inputs<CreateImageCommandInput>(CreateImageCommand)[0], { InstanceId: builder, Name: RECORD.name });
    t.deepEqual(fake.inputs<{ InstanceIds: string[] }>(TerminateInstancesCommand), [{ InstanceIds: [builder] }]);
    const order = fake.mock.calls().map((c) => (c.args[0] as object).constructor.name);
    t.true(order.lastIndexOf('CreateImageCommand') < order.indexOf('TerminateInstancesCommand'), 'terminated after the image call');
    t.deepEqual(d.nodes.calls.filter((c) => c.node === builderName('appserver')).map((c) => c.argv), [
      ['sudo', '-n', 'sh', '-s'], ['dpkg-query', '-W', '-f', '${Package} ${Version}\\n'], ['sudo', '-n', 'tee', '/etc/silverlining/silver-image.json'], stripArgv('admin'),
    ], 'setup, packages, record and strip as root through sudo (Debian on EC2 logs in as admin)');
    t.true(stripArgv('admin').includes('home/admin/.ssh/authorized_keys'));
    t.is(stdins.get('strip'), stripScript());
  }
});
