import { readFileSync, realpathSync, statSync } from 'node:fs';
import { homedir } from 'node:os';

/** What resolving a nodeset may read from the machine: files and the environment. */
export interface ConfigHost {
  /** The file's text, or undefined when it does not exist or cannot be read. */
  readFile(path: string): string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  home: string;
  /** Whether a folder exists (left out by hosts that hold only files, e.g. tests' memory host). */
  isDirectory?(path: string): boolean;
  /** The path with every link followed, undefined when it does not exist (left out likewise). */
  realPath?(path: string): string | undefined;
}

/** The largest file silver reads as configuration (a nodeset, an extends, app.ini, a key list). */
export const MAX_CONFIG_BYTES = 16 << 20;

export function realHost(env: NodeJS.ProcessEnv = process.env): ConfigHost {
  return {
    isDirectory(path) {
      try {
        return statSync(path).isDirectory();
      } catch {
        return false;
      }
    },
    realPath(path) {
      try {
        return realpathSync(path);
      } catch {
        return undefined;
      }
    },
    readFile(path) {
      try {
        // (a configuration is a regular file of a few kilobytes: /dev/zero, a FIFO or a huge file
        // named by mistake or on purpose is no file to read — never read until memory runs out)
        const st = statSync(path);
        if (!st.isFile() || st.size > MAX_CONFIG_BYTES) return undefined;
        return readFileSync(path, 'utf8');
      } catch {
        return undefined;
      }
    },
    env,
    home: env['HOME'] ?? homedir(),
  };
}

/** An in-memory host for tests and benchmarks. */
export function memoryHost(files: Record<string, string>, env: Record<string, string> = {}, home = '/home/user'): ConfigHost {
  return {
    readFile: (path) => files[path],
    env: { HOME: home, ...env },
    home,
  };
}
