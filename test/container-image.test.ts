/**
 * The Dockerfile's rules (the best-practice part of a Dockerfile linter such as hadolint, which cannot be
 * installed here; dockerfile-utils in CI checks the syntax), .dockerignore, and docker-compose.yml with its
 * commented variants. scripts/container-check.sh runs what the Dockerfile builds; this checks how it is written.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parse, stringify } from 'yaml'
import { loadConfig } from '../src/config/load.js'
import { HEAP_HEADROOM_BYTES } from '../src/config/heap-budget.js'
import { SERVER_DEFAULTS, TOKEN_CACHE_DEFAULTS } from '../src/config/schema.js'
import { advertisedHost } from '../src/dev/dev-issuer.js'
import { PROBE_TIMEOUT_MS, probeUrl } from '../src/health/probe.js'
import { readDockerfile, type Stage } from './helpers/dockerfile.js'
import { tempDir } from './helpers/temp-dir.js'

const stages = readDockerfile()
const byName = new Map(stages.map((s) => [s.name, s]))
const runtime = stages[stages.length - 1] as Stage
const dev = byName.get('dev')
const text = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8')
const pkg = JSON.parse(text('package.json')) as { devDependencies: Record<string, string> }

t.test('stages: runtime is the last (the default target); dev exists for docker-compose.yml', async (t) => {
  t.equal(runtime.name, 'runtime')
  t.ok(dev, 'a dev stage')
  t.same(stages.map((s) => s.name).filter((n, i, all) => all.indexOf(n) !== i), [], 'stage names are unique')
})

t.test('base images: explicit tags, never latest; build on the current Node LTS (24)', async (t) => {
  for (const stage of stages) {
    if (byName.has(stage.base)) continue
    const tag = /:([^/@]+)$/.exec(stage.base)?.[1]
    t.ok(tag !== undefined && tag !== 'latest', `${stage.name}: ${stage.base} has an explicit tag`)
    t.match(stage.base, /(^node:24-|nodejs24-)/, `${stage.name}: Node 24`)
  }
})

t.test('every stage: exec-form commands, absolute WORKDIR, no ADD, npm ci only, no secrets in ENV', async (t) => {
  for (const stage of stages) {
    t.same(stage.shellForm, [], `${stage.name}: CMD/ENTRYPOINT/HEALTHCHECK in exec form (signals reach node; no shell needed)`)
    t.match(stage.workdir, /^\//, `${stage.name}: WORKDIR is absolute`)
    t.notOk(stage.keywords.includes('ADD'), `${stage.name}: COPY, not ADD (no remote URLs or auto-extraction)`)
    for (const run of stage.runs) {
      t.notMatch(run, /\bnpm (install|i)\b/, `${stage.name}: npm ci (the lockfile), not npm install: ${run}`)
      t.notMatch(run, /\b(curl|wget|sudo|apt-get upgrade)\b/, `${stage.name}: no downloads, sudo or upgrades in RUN: ${run}`)
      if (/\bnpm ci\b/.test(run)) t.match(run, /--ignore-scripts/, `${stage.name}: dependencies run no install scripts`)
    }
    for (const name of Object.keys(stage.env)) t.notMatch(name, /SECRET|PASSWORD|TOKEN|PRIVATE|API_?KEY/i, `${stage.name}: ${name} is not a secret`)
  }
})

t.test('runtime: production only, non-root by number, node as PID 1, health check without curl', async (t) => {
  t.equal(runtime.env.NODE_ENV, 'production')
  t.equal(runtime.env.HOST, '0.0.0.0', 'reachable from outside the container')
  t.notOk('PORT' in runtime.env, 'no PORT: it would override the port of a mounted config file')
  t.match(runtime.user ?? '', /^[1-9][0-9]*:[1-9][0-9]*$/, 'USER is a numeric non-root UID:GID')
  t.same(runtime.entrypoint, [], 'the base image ENTRYPOINT is cleared')
  const start = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: { start: string } }).scripts.start
  t.match(start, /^exec node /, 'npm start execs node: sh replaces itself, so a signal npm passes on reaches the service')
  t.same(runtime.cmd, start.replace(/^exec /, '').split(' '), 'node itself, not npm, with the same flags as npm start')
  t.same(runtime.cmd?.slice(0, 2), ['node', '--max-semi-space-size=4'], 'V8\'s young generation capped (README, "Memory")')
  // The old generation capped through NODE_OPTIONS (a deployment can set its own), with room for the default cache.
  const nodeOptions = (runtime.env.NODE_OPTIONS ?? '').split(' ')
  const oldSpaceMiB = Number(/^--max-old-space-size=([0-9]+)$/.exec(nodeOptions.find((o) => o.startsWith('--max-old-space-size=')) ?? '')?.[1])
  // The CMD's young-generation cap in NODE_OPTIONS too: node dist/cli.js check-config and the health check then
  // have the server's heap limit, and check-config's heap budget is the server's.
  t.ok(nodeOptions.includes(runtime.cmd?.[1] ?? '-'), `NODE_OPTIONS repeats the CMD's ${runtime.cmd?.[1]}`)
  t.same(nodeOptions.filter((o) => !/^--max-(old|semi)-space-size=[0-9]+$/.test(o)), [], 'and holds nothing else')
  t.ok(oldSpaceMiB * 1024 * 1024 >= TOKEN_CACHE_DEFAULTS.maxBytes + HEAP_HEADROOM_BYTES, `NODE_OPTIONS caps the old generation (${oldSpaceMiB} MiB) above the default cache + headroom`)
  t.notOk(runtime.cmd?.some((arg) => arg.startsWith('--max-old-space-size')), 'not in CMD: a command-line flag would override NODE_OPTIONS')
  t.same(runtime.healthcheck?.test, ['node', 'dist/healthcheck.js'])
  const seconds = (v: string | undefined): number => Number(/^([0-9]+)s$/.exec(v ?? '')?.[1] ?? NaN)
  t.ok(seconds(runtime.healthcheck?.flags.timeout) * 1000 > PROBE_TIMEOUT_MS, 'Docker\'s timeout exceeds the script\'s own (PROBE_TIMEOUT_MS), so the script reports its reason first')
  t.ok(runtime.expose.includes(String(SERVER_DEFAULTS.port)), 'EXPOSE the default port')
  t.ok(runtime.keywords.indexOf('USER') < runtime.keywords.indexOf('CMD'), 'USER before CMD')

  // What is copied in: production node_modules, dist and, next to it, openapi.yaml and package.json ("type": "module").
  const copied = runtime.copies.flatMap((c) => c.sources.map((s) => ({ from: c.from, source: s, dest: c.dest })))
  t.ok(copied.some((c) => c.from === 'prod-deps' && c.source.endsWith('/node_modules')), 'node_modules from the production-only stage')
  t.ok(copied.some((c) => c.from === 'build' && c.source.endsWith('/dist')), 'dist from the build stage')
  for (const file of ['package.json', 'openapi.yaml']) t.ok(copied.some((c) => c.from === undefined && c.source === file && c.dest === './'), `${file} next to dist/`)
  t.notOk(copied.some((c) => c.source === '.' || c.source === 'src' || c.source === 'package-lock.json'), 'no sources, no whole context')

  const prodDeps = byName.get('prod-deps')
  t.ok(prodDeps?.runs.some((r) => /npm ci\b.*--omit=dev/.test(r)), 'production dependencies only (npm ci --omit=dev)')
})

t.test('.dockerignore: everything out, then exactly what COPY takes from the context', async (t) => {
  const lines = text('.dockerignore').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  t.equal(lines[0], '*', 'starts by excluding everything')
  const included = lines.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''))
  const fromContext = [...new Set(stages.flatMap((s) => s.copies.filter((c) => c.from === undefined).flatMap((c) => c.sources)))]
  t.same([...included].sort(), [...fromContext].sort(), 're-included = copied from the context')
})

t.test('dev stage: the development issuer, never in production', async (t) => {
  if (dev === undefined) return
  t.not(dev.env.NODE_ENV, 'production', 'the development issuer refuses NODE_ENV=production')
  t.same(dev.cmd, ['node', 'dist/dev.js'])
  t.same(dev.healthcheck?.test, ['node', 'dist/healthcheck.js'])
  t.match(dev.user ?? '', /^[1-9][0-9]*:[1-9][0-9]*$/, 'not root either')
  t.ok(dev.expose.includes(dev.env.PORT ?? '') && dev.expose.includes(dev.env.DEV_ISSUER_PORT ?? ''), 'exposes the service and issuer ports')
  t.equal(advertisedHost(dev.env.DEV_ISSUER_HOST ?? ''), '127.0.0.1', 'the issuer bound to every interface is still named by loopback')
  t.equal(advertisedHost('127.0.0.1'), '127.0.0.1')
  t.equal(advertisedHost('::'), '127.0.0.1')
  t.equal(advertisedHost('localhost'), 'localhost')
  t.equal((await probeUrl(undefined, { env: dev.env })).href, `http://127.0.0.1:${dev.env.PORT}/healthz`, 'its health check probes the service port')
  t.notOk(Object.keys(pkg.devDependencies).some((d) => dev.copies.some((c) => c.sources.includes(`/app/node_modules/${d}`))), 'no devDependencies copied')
  t.equal(dev.copies.find((c) => c.dest === './node_modules')?.from, 'prod-deps')
})

interface ComposeService {
  build?: { context?: string, target?: string }
  ports?: string[]
  environment?: Record<string, string>
  volumes?: string[]
  read_only?: boolean
  cap_drop?: string[]
  security_opt?: string[]
}

/** Published ports: "127.0.0.1:HOST:CONTAINER" → container port; refuses anything not on loopback. */
function containerPorts (t: Test, service: ComposeService): number[] {
  return (service.ports ?? []).map((p) => {
    const m = /^127\.0\.0\.1:([0-9]+):([0-9]+)$/.exec(p)
    t.ok(m, `${p} is published on the host's loopback only`)
    return Number(m?.[2])
  })
}

function checkHardening (t: Test, service: ComposeService, label: string): void {
  t.equal(service.read_only, true, `${label}: read-only root filesystem`)
  t.same(service.cap_drop, ['ALL'], `${label}: no capabilities`)
  t.ok(service.security_opt?.includes('no-new-privileges:true'), `${label}: no new privileges`)
}

t.test('docker-compose.yml: `docker compose up` runs the dev stage with its issuer', async (t) => {
  const compose = parse(text('docker-compose.yml')) as { services: Record<string, ComposeService> }
  const service = compose.services['oidc-verifier']
  if (service === undefined || dev === undefined) { t.fail('service oidc-verifier'); return }
  t.equal(service.build?.target, 'dev')
  t.ok(byName.has(service.build?.target ?? ''), 'the target is a Dockerfile stage')
  t.same(containerPorts(t, service).sort(), [Number(dev.env.PORT), Number(dev.env.DEV_ISSUER_PORT)].sort(), 'publishes the service and the issuer')
  checkHardening(t, service, 'dev')
})

t.test('docker-compose.yml: the commented variants for a real provider are valid', async (t) => {
  // Each variant is a block of lines commented as "#  " (YAML indented under the comment).
  const blocks: string[][] = []
  let current: string[] | undefined
  for (const line of text('docker-compose.yml').split('\n')) {
    if (/^# {2}\S/.test(line) || (current !== undefined && /^# {3,}/.test(line))) {
      current ??= []
      current.push(line.slice(3))
    } else if (current !== undefined) {
      blocks.push(current)
      current = undefined
    }
  }
  if (current !== undefined) blocks.push(current)
  t.equal(blocks.length, 2, 'two variants: environment only, and a mounted config file')

  const env = { ...runtime.env }
  const kinds: string[] = []
  for (const block of blocks) {
    const variant = (parse(block.join('\n')) as Record<string, ComposeService>)['oidc-verifier']
    if (variant === undefined) { t.fail('each variant defines oidc-verifier'); continue }
    t.equal(variant.build?.target, 'runtime', 'the production image')
    checkHardening(t, variant, 'variant')
    const ports = containerPorts(t, variant)
    const mounts = (variant.volumes ?? []).map((v) => v.split(':'))
    const file = variant.environment?.OIDC_VERIFIER_CONFIG
    kinds.push(file === undefined ? 'environment' : 'file')
    if (file !== undefined) {
      const mount = mounts.find((m) => m[1] === file)
      t.ok(mount, 'OIDC_VERIFIER_CONFIG is the mount target')
      t.equal(mount?.[2], 'ro', 'mounted read-only')
      t.same(ports, [SERVER_DEFAULTS.port], 'publishes the default port (server.port in the file must match)')
    } else {
      const config = loadConfig({ argv: [], env: { ...env, ...variant.environment } })
      t.same(ports, [config.server.port], 'publishes the port the service listens on')
      t.equal(config.server.host, '0.0.0.0')
      t.equal(config.issuers[0]?.issuer, 'https://accounts.google.com')
    }
  }
  t.same(kinds.sort(), ['environment', 'file'], 'one variant of each kind')
})

t.test('in the image, check-config and the server agree on whether a token cache fits the heap', async (t) => {
  // Run as the image runs them: its NODE_OPTIONS, the server with the CMD's node flags, check-config without.
  const env = { ...process.env, NODE_ENV: 'production', NODE_OPTIONS: runtime.env.NODE_OPTIONS ?? '' }
  const flags = (runtime.cmd ?? []).slice(1, -1)
  const limit = Number(spawnSync('node', [...flags, '-p', 'require("node:v8").getHeapStatistics().heap_size_limit'], { env, encoding: 'utf8' }).stdout)
  t.ok(limit > 0, `the server's heap limit: ${limit / 2 ** 20} MiB`)
  const configWith = (maxBytes: number): string => {
    const dir = tempDir(t, {
      'config.yaml': stringify({
        server: { host: '127.0.0.1', port: 0 },
        issuers: [{ id: 'a', issuer: 'https://a.example.com', audiences: ['aud'], jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] } }],
        tokenCache: { maxBytes }
      })
    })
    return join(dir, 'config.yaml')
  }
  // One MiB more than the server's heap can take beside the rest of the service: both must refuse it.
  const tooLarge = configWith(limit - HEAP_HEADROOM_BYTES + 2 ** 20)
  const check = spawnSync('node', ['dist/cli.js', 'check-config', '--config', tooLarge], { env, encoding: 'utf8', timeout: 30_000 })
  const server = spawnSync('node', [...flags, 'dist/server.js', '--config', tooLarge], { env, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' })
  t.equal(server.status, 2, 'the server refuses it')
  t.match(server.stderr, /tokenCache\.maxBytes: .* does not fit/)
  t.not(check.status, 0, `check-config refuses it too: ${check.stdout}${check.stderr}`.slice(0, 300))
  t.match(`${check.stdout}${check.stderr}`, /tokenCache\.maxBytes: .* does not fit/)
  // One MiB less: check-config passes it (the server would start).
  const fits = spawnSync('node', ['dist/cli.js', 'check-config', '--config', configWith(limit - HEAP_HEADROOM_BYTES - 2 ** 20)], { env, encoding: 'utf8', timeout: 30_000 })
  t.equal(fits.status, 0, `check-config passes what fits: ${fits.stdout}${fits.stderr}`.slice(0, 300))
})
