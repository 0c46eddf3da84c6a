/** A listen error as a line an operator can act on (the setting that moves it); other errors as they are. */
export function listenProblem (err: unknown, [host, port]: [string, string], what: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  const message = (err as Error | undefined)?.message
  if (code === 'EADDRINUSE') return new Error(`${what}: ${message} (another process has that port: stop it, or set ${port} to a free one)`)
  if (code === 'EACCES') return new Error(`${what}: ${message} (ports below 1024 need privileges: set ${port} to 1024 or above)`)
  if (code === 'EADDRNOTAVAIL') return new Error(`${what}: ${message} (no interface of this machine has that address: check ${host})`)
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new Error(`${what}: ${message} (that host name does not resolve: check ${host})`)
  return err
}
