import type { ConfigHost } from './config/host.js';
import type { ProviderConfig } from './nodeset/types.js';
import type { Io } from './output/io.js';
import type { Provider } from './provider.js';
import type { SshTarget } from './ssh/connect.js';
import type { AttachHandle, AttachOptions } from './ssh/attach.js';
import type { NodeExecutor } from './ssh/keeper.js';
import type { StateDir } from './state.js';

/** Everything a command touches outside itself, passed in (no module singletons). */
export interface Runtime {
  io: Io;
  host: ConfigHost;
  state: StateDir;
  providerFor(config: ProviderConfig): Promise<Provider>;
  /** Proves a node answers SSH with its pinned host key. */
  sshProbe(target: SshTarget): Promise<void>;
  /**
   * One command on its own SSH channel, for as long as it runs (silver run, logs -f): output
   * handed over as it comes, standard input forwarded, a PTY when asked; a fake in tests.
   */
  attach(target: SshTarget, command: string, opts: AttachOptions): AttachHandle;
  /** The connections to these nodes of a nodeset (the SSH pool or kept connections; a fake in tests). */
  executor(nodeset: string, targets: SshTarget[]): Promise<NodeExecutor>;
  /**
   * Calls `handler` on SIGINT or SIGTERM until the returned function is called; while one is
   * registered, the signal does not end the process.
   */
  onInterrupt(handler: (signal: string) => void): () => void;
  now(): number;
  /** Asks the user a yes/no question; false when nobody can answer. */
  confirm(question: string): Promise<boolean>;
}
