/**
 * The container health check's two halves, apart from the process (src/healthcheck.ts) so tests can call
 * them: where to probe (the same configuration the server reads) and one GET with a hard timeout.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { isIP } from 'node:net'
import type { LoadConfigOptions } from '../config/load.js'
import { isLoopbackHost } from '../net/fetch-json.js'

/** Below Docker's HEALTHCHECK --timeout (5 s in the Dockerfile), so the probe reports its own reason first. */
export const PROBE_TIMEOUT_MS = 3000
export const DEFAULT_PROBE_PATH = '/healthz'
/** The server's defaults (SERVER_DEFAULTS in src/config/schema.ts; a test keeps them equal). */
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 8080
const SAFE_PATH = /^\/[A-Za-z0-9._~/-]{0,200}$/
const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::', '[::]'])

export class ProbeTargetError extends Error {
  override name = 'ProbeTargetError'
}

export interface ProbeResult {
  ok: boolean
  status?: number
  /** Why it is not ok, when no status was received (refused, timed out, …). */
  error?: string
}

/**
 * The URL to probe. `HEALTHCHECK_URL` wins; otherwise the server's own configuration from the environment
 * (OIDC_VERIFIER_CONFIG or OIDC_*, HOST, PORT), so the probe goes where the server listens: the ops port when
 * `server.opsPort` is set (https with `server.opsTls`), else the main port (https when `server.tls` is set;
 * with mutual TLS use the ops port, the probe has no client certificate). When the configuration cannot be read (the server got
 * `--config` on its command line, which a health check process cannot see), `PORT` or 8080. A wildcard
 * listen address is probed on 127.0.0.1.
 *
 * Without a configuration file (environment-only mode, a sidecar's) the listener is HOST and PORT alone, and
 * the configuration loader is not even imported: an exec probe is a second node process in the service's
 * container, and the loader (schemas, YAML) would add about 20 MB to it (README, "Kubernetes").
 */
export async function probeUrl (path: string = DEFAULT_PROBE_PATH, opts: Pick<LoadConfigOptions, 'env' | 'readFile'> & { warn?: (message: string) => void } = {}): Promise<URL> {
  if (!SAFE_PATH.test(path) || path.startsWith('//')) throw new ProbeTargetError(`expected a path such as /healthz or /readyz, got ${JSON.stringify(path.slice(0, 64))}`)
  const env = opts.env ?? process.env
  const explicit = env.HEALTHCHECK_URL
  if (explicit !== undefined && explicit !== '') {
    let url: URL
    try {
      url = new URL(explicit)
    } catch {
      throw new ProbeTargetError('HEALTHCHECK_URL: expected an absolute http(s) URL')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeTargetError('HEALTHCHECK_URL: expected an http or https URL')
    return url
  }

  let listener = fromEnvironment(env)
  const configFile = env.OIDC_VERIFIER_CONFIG
  if (configFile !== undefined && configFile !== '') {
    try {
      const { loadConfig } = await import('../config/load.js')
      const { server } = loadConfig({ argv: [], env, ...(opts.readFile !== undefined ? { readFile: opts.readFile } : {}) })
      // The ops listener (HTTPS with opsTls) is then the only one that serves health.
      listener = server.opsPort !== undefined && server.opsPort > 0
        ? { host: server.opsHost ?? server.host, port: server.opsPort, scheme: server.opsTls !== undefined ? 'https' : 'http' }
        : { host: server.host, port: server.port, scheme: server.tls !== undefined ? 'https' : 'http' }
    } catch (err) {
      // Unreadable or invalid: the server would not be running with it either; HOST and PORT are the best guess.
      // Said, though: in an environment other than the server's, the guess may be another server's port.
      // A configuration problem names the setting or the variable, never a secret; the first one says enough.
      const problems = (err as { problems?: unknown }).problems
      const first = Array.isArray(problems) && typeof problems[0] === 'string' ? problems[0] : err instanceof Error ? err.message.split('\n')[0] : String(err)
      const reason = (first ?? '').slice(0, 200)
      opts.warn?.(`OIDC_VERIFIER_CONFIG could not be loaded (${reason}); probing HOST/PORT instead`)
    }
  }
  const host = WILDCARD_HOSTS.has(listener.host) ? '127.0.0.1' : listener.host
  const authority = isIP(host) === 6 ? `[${host}]` : host
  return new URL(`${listener.scheme}://${authority}:${listener.port}${path}`)
}

/** Where an environment-only server listens: HOST and PORT over the defaults (the only server settings it reads). */
function fromEnvironment (env: NodeJS.ProcessEnv): { host: string, port: number, scheme: 'http' | 'https' } {
  const port = env.PORT !== undefined && /^[0-9]{1,5}$/.test(env.PORT) && Number(env.PORT) <= 65535 ? Number(env.PORT) : DEFAULT_PORT
  const host = env.HOST !== undefined && env.HOST !== '' ? env.HOST : DEFAULT_HOST
  return { host, port, scheme: 'http' }
}

/**
 * One GET: ok for a 2xx. Redirects are not followed; the status line is all that is read (no body is kept).
 * On https the certificate is not verified when the host is loopback: it is our own process, nothing is
 * sent, and only the status is used.
 */
export async function probe (url: URL, timeoutMs: number = PROBE_TIMEOUT_MS): Promise<ProbeResult> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest
  // 127.x.y.z as an address only: a name such as 127.attacker.example is not this host.
  const loopback = isLoopbackHost(url.hostname)
  return await new Promise<ProbeResult>((resolve) => {
    let settled = false
    const done = (result: ProbeResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      req.destroy()
      resolve(result)
    }
    const req = request(url, {
      method: 'GET',
      agent: false,
      headers: { 'user-agent': 'oidc-verifier-healthcheck', accept: 'application/json' },
      ...(url.protocol === 'https:' && loopback ? { rejectUnauthorized: false } : {})
    }, (res: IncomingMessage) => {
      const status = res.statusCode ?? 0
      res.resume()
      done({ ok: status >= 200 && status < 300, status })
    })
    const timer = setTimeout(() => done({ ok: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs)
    req.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, error: err.code ?? err.message }))
    req.end()
  })
}
