/* global process, console, Buffer, URL, fetch, AbortSignal, structuredClone */
/**
 * Helper of scripts/container-check.sh (which explains the whole check). Subcommands:
 *
 *   build DOCKERFILE CONTEXT TARGET OUTDIR
 *       Repeats the Dockerfile's steps for TARGET and the stages it needs, without Docker: each stage gets a
 *       root folder OUTDIR/stages/NAME; WORKDIR, ENV, COPY (from the context or --from a stage) and RUN (sh -c
 *       on this machine, in the stage's WORKDIR, with its ENV) are carried out; USER, EXPOSE, HEALTHCHECK,
 *       ENTRYPOINT and CMD are recorded. Prints the target's image config as JSON. Any other instruction is
 *       an error, so a Dockerfile change this emulation does not understand fails CI instead of being skipped.
 *   field JSONFILE PATH           prints one field (a.b for nested) of that config (arrays NUL-separated, objects as KEY=VALUE lines)
 *   keys DIR                      an ES256 key pair: DIR/jwks.json (public) and DIR/private.pem
 *   serve FILE PORTFILE           serves FILE as a JWKS on 127.0.0.1 (port written to PORTFILE) until SIGTERM
 *   mint DIR ISS AUD SUB          prints an ID token signed with DIR/private.pem
 *   free-port                     prints a free TCP port on 127.0.0.1
 *   http METHOD URL [TOKEN]       prints "STATUS BODY" (Bearer TOKEN on POST /verify)
 */
import { spawnSync } from 'node:child_process'
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { dirname, join, posix } from 'node:path'
import { DockerfileParser } from 'dockerfile-ast'

const fail = (message) => {
  console.error(`container-check: ${message}`)
  process.exit(1)
}

// ---- build --------------------------------------------------------------------------------------------------

function execForm (instruction) {
  const text = instruction.getArgumentsContent() ?? ''
  let value
  try {
    value = JSON.parse(text)
  } catch {
    value = undefined
  }
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    fail(`line ${instruction.getRange().start.line + 1}: ${instruction.getKeyword()} must use the exec (JSON array) form, got ${text}`)
  }
  return value
}

function parseStages (text) {
  const dockerfile = DockerfileParser.parse(text)
  const stages = []
  for (const instruction of dockerfile.getInstructions()) {
    const keyword = instruction.getKeyword()
    if (keyword === 'FROM') {
      stages.push({ name: instruction.getBuildStage() ?? String(stages.length), base: instruction.getImage(), steps: [] })
    } else if (stages.length === 0) {
      fail(`${keyword} before the first FROM`)
    } else {
      stages[stages.length - 1].steps.push(instruction)
    }
  }
  return stages
}

function build (dockerfilePath, context, target, outDir) {
  const stages = parseStages(readFileSync(dockerfilePath, 'utf8'))
  const byName = new Map(stages.map((s) => [s.name, s]))
  if (!byName.has(target)) fail(`no stage named ${target} in ${dockerfilePath}`)
  const built = new Map()
  const npmCache = join(outDir, 'npm-cache')

  const buildStage = (name, chain = []) => {
    if (built.has(name)) return built.get(name)
    if (chain.includes(name)) fail(`stage cycle: ${[...chain, name].join(' → ')}`)
    const stage = byName.get(name)
    const root = join(outDir, 'stages', name)
    const image = { stage: name, base: stage.base, root, workdir: '/', env: {}, user: undefined, expose: [], healthcheck: undefined, entrypoint: undefined, cmd: undefined }
    if (byName.has(stage.base)) {
      const parent = buildStage(stage.base, [...chain, name])
      cpSync(parent.root, root, { recursive: true })
      Object.assign(image, structuredClone({ ...parent, stage: name, base: stage.base, root }))
    } else {
      mkdirSync(root, { recursive: true })
    }
    const inRoot = (path) => join(root, posix.resolve(image.workdir, path))
    let entrypointSet = false
    let cmdSet = false

    for (const step of stage.steps) {
      const keyword = step.getKeyword()
      const line = step.getRange().start.line + 1
      const args = step.getArguments().map((a) => a.getValue())
      if (keyword === 'WORKDIR') {
        image.workdir = posix.resolve(image.workdir, args[0])
        mkdirSync(inRoot('.'), { recursive: true })
      } else if (keyword === 'ENV') {
        for (const property of step.getProperties()) image.env[property.getName()] = property.getValue() ?? ''
      } else if (keyword === 'COPY') {
        if (step.getFlags().some((f) => f.getName() !== 'from')) fail(`line ${line}: COPY flags other than --from are not emulated`)
        const from = step.getFromFlag()?.getValue()
        const sources = args.slice(0, -1)
        const dest = args[args.length - 1]
        const sourceRoot = from === undefined ? undefined : buildStage(from, [...chain, name]).root
        for (const source of sources) {
          const src = sourceRoot === undefined ? join(context, source) : join(sourceRoot, source)
          if (!existsSync(src)) fail(`line ${line}: COPY source ${source} not found${from !== undefined ? ` in stage ${from}` : ''}`)
          const target = dest.endsWith('/') ? join(inRoot(dest), posix.basename(source)) : inRoot(dest)
          mkdirSync(dirname(target), { recursive: true })
          cpSync(src, target, { recursive: true })
        }
      } else if (keyword === 'RUN') {
        const command = (step.getArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ')
        console.error(`[${name}] RUN ${command}`)
        const result = spawnSync('sh', ['-c', command], {
          cwd: inRoot('.'),
          stdio: ['ignore', 2, 2], // stdout is the image config
          // The stage's ENV over this machine's PATH; a private npm cache (container-check.sh seeds it).
          env: { PATH: process.env.PATH, HOME: join(outDir, 'home'), npm_config_cache: npmCache, npm_config_prefer_offline: 'true', npm_config_update_notifier: 'false', ...image.env }
        })
        if (result.status !== 0) fail(`line ${line}: RUN ${command}: exit ${result.status ?? result.signal}`)
      } else if (keyword === 'USER') {
        image.user = args[0]
      } else if (keyword === 'EXPOSE') {
        image.expose.push(...args)
      } else if (keyword === 'HEALTHCHECK') {
        const flags = Object.fromEntries(step.getFlags().map((f) => [f.getName(), f.getValue()]))
        const content = step.getArgumentsContent() ?? ''
        if (!content.startsWith('CMD ')) fail(`line ${line}: HEALTHCHECK must be HEALTHCHECK [flags] CMD [...]`)
        let test
        try { test = JSON.parse(content.slice(4)) } catch { test = undefined }
        if (!Array.isArray(test)) fail(`line ${line}: HEALTHCHECK CMD must use the exec (JSON array) form`)
        image.healthcheck = { flags, test }
      } else if (keyword === 'ENTRYPOINT') {
        image.entrypoint = execForm(step)
        entrypointSet = true
      } else if (keyword === 'CMD') {
        image.cmd = execForm(step)
        cmdSet = true
      } else {
        fail(`line ${line}: ${keyword} is not emulated by scripts/container-check.mjs; extend it together with the Dockerfile`)
      }
    }
    // Docker: an ENTRYPOINT clears the CMD inherited from the base unless this stage sets one too.
    if (entrypointSet && !cmdSet) image.cmd = undefined
    built.set(name, image)
    return image
  }

  // Needed stages in file order, as the classic builder runs them (a stage's npm cache warms the next).
  const needed = new Set()
  const collect = (name) => {
    if (needed.has(name)) return
    needed.add(name)
    const stage = byName.get(name)
    if (byName.has(stage.base)) collect(stage.base)
    for (const step of stage.steps) {
      const from = step.getKeyword() === 'COPY' ? step.getFromFlag()?.getValue() : undefined
      if (from !== undefined && byName.has(from)) collect(from)
    }
  }
  collect(target)
  for (const stage of stages) if (needed.has(stage.name)) buildStage(stage.name)
  const image = buildStage(target)
  image.app = join(image.root, image.workdir)
  process.stdout.write(JSON.stringify(image, null, 2) + '\n')
}

function field (file, name) {
  const value = name.split('.').reduce((v, key) => v?.[key], JSON.parse(readFileSync(file, 'utf8')))
  if (value === undefined || value === null) fail(`${name}: not set in ${file}`)
  if (Array.isArray(value)) process.stdout.write(value.map((v) => `${v}\0`).join(''))
  else if (typeof value === 'object') process.stdout.write(Object.entries(value).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}\n`).join(''))
  else process.stdout.write(`${value}\n`)
}

// ---- keys, JWKS server, tokens, HTTP -------------------------------------------------------------------------

const KID = 'container-check-es256'

function keys (dir) {
  // As PEM, and the public key re-imported: Node 20 can deadlock exporting a KeyObject straight from
  // generateKeyPairSync (a GC during the export finalizes the generation job, which waits for the export's lock).
  const { privateKey } = generateKeyPairSync('ec', {
    namedCurve: 'P-256', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' }
  })
  writeFileSync(join(dir, 'private.pem'), privateKey, { mode: 0o600 })
  const publicKey = createPublicKey(createPrivateKey(privateKey))
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: KID, alg: 'ES256', use: 'sig' }] }))
}

function serve (file, portFile) {
  const body = readFileSync(file)
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' })
      res.end(body)
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)))
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
}

function mint (dir, iss, aud, sub) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const input = `${b64({ alg: 'ES256', typ: 'JWT', kid: KID })}.${b64({ iss, aud, sub, iat: now, exp: now + 600 })}`
  const key = createPrivateKey(readFileSync(join(dir, 'private.pem')))
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  process.stdout.write(`${input}.${signature.toString('base64url')}\n`)
}

function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => process.stdout.write(`${port}\n`))
  })
}

async function http (method, url, token) {
  const headers = token === undefined ? {} : { authorization: `Bearer ${token}` }
  try {
    const res = await fetch(new URL(url), { method, headers, redirect: 'manual', signal: AbortSignal.timeout(5000) })
    process.stdout.write(`${res.status} ${(await res.text()).replace(/\s+/g, ' ')}\n`)
  } catch (err) {
    process.stdout.write(`000 ${err?.cause?.code ?? err?.name ?? 'error'}\n`)
  }
}

const [command, ...rest] = process.argv.slice(2)
const commands = {
  build: () => build(rest[0], rest[1], rest[2], rest[3]),
  field: () => field(rest[0], rest[1]),
  keys: () => keys(rest[0]),
  serve: () => serve(rest[0], rest[1]),
  mint: () => mint(rest[0], rest[1], rest[2], rest[3]),
  'free-port': () => freePort(),
  http: () => http(rest[0], rest[1], rest[2])
}
if (!(command in commands)) fail(`unknown subcommand ${command}; see the comment at the top of this file`)
await commands[command]()
