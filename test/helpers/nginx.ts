/**
 * A real nginx for integration tests: started as a child process (daemon off, no master) with a generated
 * configuration in a temporary directory (pid, logs and temp paths there too), listening on 127.0.0.1 only.
 *
 *   const nginx = await startNginx(httpBlockText, { 'x.conf': '…' })  // inside http { }; LISTEN is the address
 *   await fetch(`${nginx.url}/path`)
 *   await nginx.close()                                // in t.teardown
 *
 * nginx is the Debian package `nginx` (bash .ci/run installs it). When it is missing the test FAILS with a
 * message saying so: a forward-auth test that silently skips would prove nothing.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { startEchoServer, type EchoServer } from './echo-server.js'
import { findBinary, freePort, stopChild } from './system-server.js'

/** Replaced in the http block text by 127.0.0.1:<free port>. */
export const LISTEN = '__LISTEN__'

const CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx', '/usr/local/bin/nginx', '/usr/local/nginx/sbin/nginx']
const START_TIMEOUT_MS = 10_000

export function findNginx (): string {
  return findBinary('nginx', CANDIDATES, 'NGINX_BIN', 'nginx')
}

async function canConnect (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

export interface NginxHandle {
  port: number
  /** http://127.0.0.1:<port> */
  url: string
  /** The error log so far (for failure messages). */
  errorLog: () => string
  close: () => Promise<void>
}

function mainConfig (dir: string, httpBlock: string): string {
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${httpBlock}
}
`
}

/**
 * Starts nginx with `httpBlock` inside http { }; LISTEN in it becomes 127.0.0.1:<a free port>. `files` are
 * written next to nginx.conf, where relative include paths are resolved.
 */
export async function startNginx (httpBlock: string, files: Record<string, string> = {}): Promise<NginxHandle> {
  const binary = findNginx()
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-nginx-'))
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  const errorLog = (): string => { try { return readFileSync(join(dir, 'error.log'), 'utf8') } catch { return '' } }
  let lastError = ''
  // A port found free can be taken before nginx binds it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    writeFileSync(join(dir, 'nginx.conf'), mainConfig(dir, httpBlock.split(LISTEN).join(`127.0.0.1:${port}`)))
    const child = spawn(binary, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
      if (await canConnect(port)) {
        return {
          port,
          url: `http://127.0.0.1:${port}`,
          errorLog,
          close: async () => {
            await stopChild(child)
            rmSync(dir, { recursive: true, force: true })
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await stopChild(child)
    lastError = `${stderr}\n${errorLog()}`.trim()
    if (!/Address already in use/.test(lastError)) break
  }
  rmSync(dir, { recursive: true, force: true })
  throw new Error(`nginx did not start: ${lastError === '' ? 'no output' : lastError}`)
}

/** examples/nginx/NAME as it is in the repository. */
export function nginxExample (name: string): string {
  return readFileSync(new URL(`../../examples/nginx/${name}`, import.meta.url), 'utf8')
}

/**
 * nginx with examples/nginx/oidc-verifier.conf (and its auth-request include) as shipped, pointed at a verifier on
 * `verifierPort` and an app on `appPort`, listening on a free port. `edit` may change the include's text.
 */
export async function startNginxExample (verifierPort: number, appPort: number, edit: (include: string) => string = (text) => text): Promise<NginxHandle> {
  return await startNginx(nginxExample('oidc-verifier.conf')
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${verifierPort};`)
    .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${appPort};`)
    .replace('listen 8000;', `listen ${LISTEN};`), { 'oidc-verifier-auth-request.conf': edit(nginxExample('oidc-verifier-auth-request.conf')) })
}

/** The status of one request to 127.0.0.1:`port` (on a connection of its own), its body read and dropped. */
export async function statusOf (port: number, method: string, path: string, headers: Record<string, string>): Promise<number> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { ...headers, connection: 'close' } }, (res) => {
      res.resume()
      res.on('end', () => { resolve(res.statusCode ?? 0) })
    })
    req.setTimeout(10_000, () => { req.destroy(new Error('timeout')) })
    req.on('error', reject)
    req.end()
  })
}

/**
 * The shipped nginx example in front of an echo app, its auth requests going to `verifier` (listening here on a
 * free port); everything is closed at the end of `t`.
 */
export async function nginxExampleInFront (t: Test, verifier: FastifyInstance): Promise<{ nginx: NginxHandle, upstream: EchoServer, verifierPort: number }> {
  await verifier.listen({ host: '127.0.0.1', port: 0 })
  const verifierPort = (verifier.server.address() as { port: number }).port
  const upstream = await startEchoServer()
  const nginx = await startNginxExample(verifierPort, upstream.port)
  t.teardown(async () => {
    await nginx.close()
    await upstream.close()
    await verifier.close()
  })
  return { nginx, upstream, verifierPort }
}
