/**
 * The one place remote commands become shell text: each argument is single-quoted unless it
 * is made only of characters no POSIX shell treats specially.
 */
export function quoteArg(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function quoteCommand(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error('empty remote command');
  return argv.map(quoteArg).join(' ');
}

/** `env K=V ... argv`: environment for one remote command, names checked, values quoted. */
export function withEnv(env: Readonly<Record<string, string>>, argv: readonly string[]): string[] {
  const assignments = Object.entries(env).map(([k, v]) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad environment variable name ${k}`);
    return `${k}=${v}`;
  });
  return assignments.length > 0 ? ['env', ...assignments, ...argv] : [...argv];
}
