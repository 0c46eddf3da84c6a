/**
 * deploy/kubernetes: every manifest validates against the Kubernetes schemas (kubernetes-models) and has no
 * unknown field; the pieces fit together (selectors, ports, the ConfigMap mount and the config path); probe
 * paths are real routes of the app the ConfigMap configures, on the port it listens on; the security
 * settings are there. Nothing here talks to a cluster.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, posix, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { parseAllDocuments } from 'yaml'
import { ConfigMap, Service } from 'kubernetes-models/v1'
import { Deployment } from 'kubernetes-models/apps/v1'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import type { IContainer, IPodSpec, IProbe } from 'kubernetes-models/v1'
import type { IDeployment } from 'kubernetes-models/apps/v1'
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1'
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1'
import type { IConfigMap, IService } from 'kubernetes-models/v1'
import { buildApp } from '../src/app.js'
import { HEAP_HEADROOM_BYTES } from '../src/config/heap-budget.js'
import { loadConfig } from '../src/config/load.js'
import { TOKEN_CACHE_DEFAULTS } from '../src/config/schema.js'
import type { Config } from '../src/config/types.js'
import { probeUrl } from '../src/health/probe.js'
import { readDockerfile } from './helpers/dockerfile.js'
import { FieldChecker } from './helpers/k8s-fields.js'

const DIR = fileURLToPath(new URL('../deploy/kubernetes/', import.meta.url))

/** The kinds we ship, with the model class (schema validation) and the interface (unknown fields). */
const MODELS = {
  ConfigMap: { Model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', name: 'IConfigMap' },
  Service: { Model: Service, module: 'kubernetes-models/v1/Service', name: 'IService' },
  Deployment: { Model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', name: 'IDeployment' },
  PodDisruptionBudget: { Model: PodDisruptionBudget, module: 'kubernetes-models/policy/v1/PodDisruptionBudget', name: 'IPodDisruptionBudget' },
  HorizontalPodAutoscaler: { Model: HorizontalPodAutoscaler, module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', name: 'IHorizontalPodAutoscaler' },
  NetworkPolicy: { Model: NetworkPolicy, module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', name: 'INetworkPolicy' }
} as const
type Kind = keyof typeof MODELS

interface Manifest { file: string, kind: string, doc: Record<string, unknown> }

function yamlFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) return yamlFiles(path)
    return /\.ya?ml$/.test(entry.name) ? [path] : []
  })
}

const manifests: Manifest[] = []
let kustomization: { resources?: string[], images?: Array<{ name: string }> } | undefined
for (const path of yamlFiles(DIR)) {
  const file = relative(DIR, path)
  for (const document of parseAllDocuments(readFileSync(path, 'utf8'))) {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]?.message}`)
    const doc = document.toJS() as Record<string, unknown> | null
    if (doc === null) continue
    if (doc.kind === 'Kustomization') kustomization = doc
    else manifests.push({ file, kind: String(doc.kind), doc })
  }
}
const of = <T>(kind: Kind, dir: 'base' | 'examples' = 'base'): Array<T & { file: string }> =>
  manifests.filter((m) => m.kind === kind && (dir === 'examples') === m.file.startsWith('examples/'))
    .map((m) => ({ ...(m.doc as T), file: m.file }))

const runtime = readDockerfile().at(-1)!
const imageUid = Number(runtime.user?.split(':')[0])
const fields = new FieldChecker(Object.fromEntries(Object.entries(MODELS).map(([kind, m]) => [kind, { module: m.module, name: m.name }])))

t.test('every manifest is a known kind, valid against the Kubernetes schemas, with no unknown field', async (t) => {
  t.ok(manifests.length >= 7, 'the manifests are found')
  for (const { file, kind, doc } of manifests) {
    const model = MODELS[kind as Kind]
    if (model === undefined) { t.fail(`${file}: unexpected kind ${kind}`); continue }
    t.doesNotThrow(() => { new model.Model(doc as never).validate() }, `${file}: ${kind} is valid`)
    t.same(fields.unknownFields(kind, doc), [], `${file}: ${kind} has no unknown field`)
  }
})

t.test('the field check and the schema check catch mistakes', async (t) => {
  const deployment = structuredClone(manifests.find((m) => m.kind === 'Deployment')!.doc) as unknown as IDeployment
  const container = deployment.spec!.template.spec!.containers[0] as unknown as Record<string, unknown>
  ;(container.securityContext as Record<string, unknown>).readOnlyRootFileSystem = true
  container.readinessprobe = {}
  t.same(fields.unknownFields('Deployment', deployment), [
    'spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem: unknown field',
    'spec.template.spec.containers[0].readinessprobe: unknown field'
  ])
  ;(container.ports as Array<Record<string, unknown>>)[0]!.containerPort = '8080'
  t.throws(() => { new Deployment(deployment as never).validate() }, 'a string port is refused by the schema')
})

t.test('kustomization.yaml lists every base manifest, and only those', async (t) => {
  const listed = [...(kustomization?.resources ?? [])].sort()
  const files = [...new Set(manifests.filter((m) => !m.file.startsWith('examples/')).map((m) => m.file))].sort()
  t.same(listed, files)
  const images = kustomization?.images?.map((i) => i.name) ?? []
  for (const d of [...of<IDeployment>('Deployment'), ...of<IDeployment>('Deployment', 'examples')]) {
    const spec = d.spec!.template.spec!
    const verifier = [...spec.containers, ...(spec.initContainers ?? [])].find((c) => c.name === 'oidc-verifier')
    t.ok(images.includes(verifier?.image?.split(':')[0] ?? ''), `${d.file}: the image is the one kustomize rewrites`)
  }
})

/** What the process in this container will run with: the image's ENV, then the container's; the ConfigMap mounted. */
function containerConfig (t: Test, spec: IPodSpec, container: IContainer): { config: Config, env: NodeJS.ProcessEnv, readFile: (path: string) => string } {
  const env: NodeJS.ProcessEnv = { ...runtime.env }
  for (const e of container.env ?? []) {
    t.ok(e.value !== undefined, `${container.name}: ${e.name} has a literal value (valueFrom would be outside this check)`)
    if (e.value !== undefined) env[e.name] = e.value
  }
  const readFile = (path: string): string => {
    for (const mount of container.volumeMounts ?? []) {
      const inside = posix.relative(mount.mountPath, path)
      if (inside.startsWith('..') || posix.isAbsolute(inside)) continue
      const volume = spec.volumes?.find((v) => v.name === mount.name)
      const configMap = of<IConfigMap>('ConfigMap').find((c) => c.metadata?.name === volume?.configMap?.name)
      const key = volume?.configMap?.items?.find((i) => i.path === inside)?.key ?? inside
      const data = configMap?.data?.[key]
      if (data !== undefined) return data
    }
    throw Object.assign(new Error(`${path} is not mounted`), { code: 'ENOENT' })
  }
  t.same(container.command, undefined, `${container.name}: the image's CMD (config comes from the environment)`)
  return { config: loadConfig({ argv: container.args ?? [], env, readFile }), env, readFile }
}

function checkHardening (t: Test, label: string, spec: IPodSpec, container: IContainer): void {
  const pod = spec.securityContext ?? {}
  const own = container.securityContext ?? {}
  t.equal(own.runAsNonRoot ?? pod.runAsNonRoot, true, `${label}: runAsNonRoot`)
  t.equal(own.runAsUser ?? pod.runAsUser, imageUid, `${label}: runs as the image's USER`)
  t.equal(own.readOnlyRootFilesystem, true, `${label}: read-only root filesystem`)
  t.equal(own.allowPrivilegeEscalation, false, `${label}: no privilege escalation`)
  t.ok(own.capabilities?.drop?.includes('ALL'), `${label}: every capability dropped`)
  t.same(own.capabilities?.add ?? [], [], `${label}: none added back`)
  t.equal((own.seccompProfile ?? pod.seccompProfile)?.type, 'RuntimeDefault', `${label}: seccomp RuntimeDefault`)
  t.equal(spec.automountServiceAccountToken, false, `${label}: no service account token`)
  t.ok(container.resources?.requests?.cpu !== undefined && container.resources.requests.memory !== undefined, `${label}: CPU and memory requests`)
  t.ok(container.resources?.limits?.memory !== undefined, `${label}: a memory limit`)
  // V8 collects before garbage fills the container: its old generation capped well below the limit, and
  // above what the service refuses to start without for its default token cache (src/config/heap-budget.ts).
  const limitMiB = Number(/^([0-9]+)Mi$/.exec(String(container.resources?.limits?.memory))?.[1])
  const oldSpaceMiB = Number(/--max-old-space-size=([0-9]+)/.exec(container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '')?.[1])
  const neededMiB = (TOKEN_CACHE_DEFAULTS.maxBytes + HEAP_HEADROOM_BYTES) / 1024 / 1024
  t.ok(oldSpaceMiB >= neededMiB && oldSpaceMiB <= limitMiB * 0.7, `${label}: NODE_OPTIONS --max-old-space-size (${oldSpaceMiB} MiB) between ${neededMiB} MiB and 70 % of the ${limitMiB} MiB limit`)
  // The image's CMD caps the young generation on its command line; exec probes and `kubectl exec … check-config`
  // run another node, which has the server's heap limit (and heap budget) only with the same flag here.
  t.match(container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '', /(^| )--max-semi-space-size=4( |$)/, `${label}: NODE_OPTIONS repeats the CMD's --max-semi-space-size=4`)
}

/** Each probe: an HTTP path (httpGet) or the image's health check run with a path (exec). */
function probePaths (t: Test, label: string, container: IContainer): Array<{ name: string, path: string, port?: number | string }> {
  const out: Array<{ name: string, path: string, port?: number | string }> = []
  const probes: Array<[string, IProbe | undefined]> = [['liveness', container.livenessProbe], ['readiness', container.readinessProbe], ['startup', container.startupProbe]]
  for (const [name, probe] of probes) {
    if (probe === undefined) continue
    if (probe.httpGet !== undefined) {
      out.push({ name, path: probe.httpGet.path ?? '/', port: probe.httpGet.port })
    } else if (probe.exec?.command !== undefined) {
      const [node, script, path] = probe.exec.command
      t.same([node, script], runtime.healthcheck?.test, `${label}: the ${name} probe runs the image's health check`)
      out.push({ name, path: path ?? '/healthz' })
    } else {
      t.fail(`${label}: the ${name} probe is neither httpGet nor the health check`)
    }
  }
  t.ok(out.some((p) => p.name === 'liveness' && p.path === '/healthz'), `${label}: liveness on /healthz (never depends on an IdP)`)
  t.ok(out.some((p) => p.name === 'readiness' && p.path === '/readyz'), `${label}: readiness on /readyz (keys usable)`)
  return out
}

/** The probe paths are routes of the app this configuration builds (no I/O: the verifier is not started). */
async function checkRoutes (t: Test, label: string, config: Config, paths: string[]): Promise<void> {
  const app = await buildApp({ ...config, server: { ...config.server, logLevel: 'silent' } }, { startVerifier: false })
  t.teardown(() => app.close())
  for (const path of new Set(paths)) {
    const res = await app.inject({ method: 'GET', url: path })
    t.not(res.statusCode, 404, `${label}: GET ${path} is a route`)
    t.ok(res.statusCode === 200 || (path === '/readyz' && res.statusCode === 503), `${label}: GET ${path} answers ${res.statusCode}`)
  }
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v)

t.test('the shared Deployment: config mount, ports, probes, hardening', async (t) => {
  const deployments = of<IDeployment>('Deployment')
  t.equal(deployments.length, 1)
  const deployment = deployments[0]!
  const spec = deployment.spec!.template.spec!
  const container = spec.containers.find((c) => c.name === 'oidc-verifier')!
  t.ok(container, 'the oidc-verifier container')
  const label = `${deployment.file}`

  // The config file the container is told to read is the ConfigMap mounted where it looks.
  const configPath = container.env?.find((e) => e.name === 'OIDC_VERIFIER_CONFIG')?.value
  t.ok(configPath, 'OIDC_VERIFIER_CONFIG is set')
  const mount = container.volumeMounts?.find((m) => configPath?.startsWith(`${m.mountPath}/`))
  t.ok(mount, 'its directory is a volume mount')
  t.equal(mount?.readOnly, true, 'mounted read-only')
  t.equal(mount?.subPath, undefined, 'no subPath, so ConfigMap updates reach the file')
  const { config, env, readFile } = containerConfig(t, spec, container)
  t.equal(config.source, configPath, 'the configuration comes from that file')

  // Ports: the container port the probes and the Service use is where the service listens.
  const http = container.ports?.find((p) => p.name === 'http')
  t.equal(http?.containerPort, config.server.port, 'containerPort "http" = the configured port')
  t.ok(config.server.host === '0.0.0.0' || config.server.host === '::', 'listens beyond loopback, where kubelet probes and the Service reach it')
  const probes = probePaths(t, label, container)
  for (const p of probes) {
    const port = typeof p.port === 'string' ? container.ports?.find((cp) => cp.name === p.port)?.containerPort : p.port
    t.equal(port, config.server.port, `${p.name} probe port = the configured port`)
  }
  await checkRoutes(t, label, config, probes.map((p) => p.path))
  t.equal((await probeUrl(undefined, { env, readFile })).href, `http://127.0.0.1:${config.server.port}/healthz`, 'the image HEALTHCHECK (Docker) finds the same port')

  checkHardening(t, label, spec, container)
  t.equal(spec.enableServiceLinks, false, 'no service-link variables')
  const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0
  t.ok((spec.terminationGracePeriodSeconds ?? 30) > preStop + config.server.shutdownGraceSeconds,
    'terminationGracePeriodSeconds leaves room for the preStop pause and the shutdown grace period')
  t.equal(deployment.spec!.replicas, undefined, 'replicas left to the HorizontalPodAutoscaler')
  t.ok(matches(deployment.spec!.selector.matchLabels, deployment.spec!.template.metadata?.labels), 'the selector matches the pod template')
  t.equal(deployment.spec!.strategy?.rollingUpdate?.maxUnavailable, 0, 'rolling updates keep every ready replica until a new one is ready')
})

t.test('Service, PodDisruptionBudget, HorizontalPodAutoscaler, NetworkPolicy point at that Deployment', async (t) => {
  const deployment = of<IDeployment>('Deployment')[0]!
  const podLabels = deployment.spec!.template.metadata?.labels
  const container = deployment.spec!.template.spec!.containers[0]!
  const portNames = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]))

  const service = of<IService>('Service')[0]!
  t.ok(matches(service.spec?.selector, podLabels), 'Service selects the pods')
  for (const port of service.spec?.ports ?? []) {
    const target = typeof port.targetPort === 'string' ? portNames.get(port.targetPort) : port.targetPort
    t.equal(target, portNames.get('http'), `Service port ${port.name} reaches the container port`)
  }

  const pdb = of<IPodDisruptionBudget>('PodDisruptionBudget')[0]!
  t.ok(matches(pdb.spec?.selector?.matchLabels, podLabels), 'PodDisruptionBudget selects the pods')
  t.equal(pdb.spec?.unhealthyPodEvictionPolicy, 'AlwaysAllow', 'not-ready pods (IdP outage) do not block a drain')

  const hpa = of<IHorizontalPodAutoscaler>('HorizontalPodAutoscaler')[0]!
  t.same(hpa.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata?.name })
  t.ok((hpa.spec?.minReplicas ?? 1) >= 2, 'at least two replicas, so one survives a disruption')
  t.ok(hpa.spec?.metrics?.some((m) => m.resource?.name === 'cpu') && container.resources?.requests?.cpu !== undefined, 'CPU target, against a CPU request')

  const policy = of<INetworkPolicy>('NetworkPolicy')[0]!
  t.ok(matches(policy.spec?.podSelector.matchLabels, podLabels), 'NetworkPolicy selects the pods')
  t.same(policy.spec?.policyTypes, ['Ingress', 'Egress'], 'both directions are restricted')
  const ingressPorts = policy.spec?.ingress?.flatMap((r) => r.ports ?? []) ?? []
  t.ok(ingressPorts.length > 0 && ingressPorts.every((p) => (typeof p.port === 'string' ? portNames.get(p.port) : p.port) === portNames.get('http')), 'ingress only to the service port')
  const egress = policy.spec?.egress ?? []
  t.ok(egress.some((r) => r.ports?.some((p) => p.port === 53)), 'DNS allowed')
  const https = egress.find((r) => r.ports?.some((p) => p.port === 443))
  t.ok(https?.to?.[0]?.ipBlock?.except?.includes('169.254.0.0/16'), 'HTTPS out, but not to the cloud metadata address')
})

t.test('the sidecar example: a native sidecar on localhost, probed by the health check', async (t) => {
  const deployment = of<IDeployment>('Deployment', 'examples')[0]!
  t.ok(deployment, 'examples/sidecar.yaml has a Deployment')
  const spec = deployment.spec!.template.spec!
  const sidecar = spec.initContainers?.find((c) => c.name === 'oidc-verifier')
  if (sidecar === undefined) { t.fail('an oidc-verifier init container'); return }
  t.equal(sidecar.restartPolicy, 'Always', 'a native sidecar: up before the app, down after it')
  const label = `${deployment.file} sidecar`
  const { config, env } = containerConfig(t, spec, sidecar)
  t.equal(config.source, 'environment', 'environment-only configuration')
  t.equal(config.server.host, '127.0.0.1', 'reachable from its own pod only')
  const probes = probePaths(t, label, sidecar)
  t.ok(probes.some((p) => p.name === 'startup'), 'a startup probe holds the app back until the verifier answers')
  for (const p of probes) {
    const url = await probeUrl(p.path, { env })
    t.equal(url.host, `127.0.0.1:${config.server.port}`, `the ${p.name} probe reaches the configured port`)
  }
  await checkRoutes(t, label, config, probes.map((p) => p.path))
  checkHardening(t, label, spec, sidecar)

  const app = spec.containers.find((c) => c.name === 'app')
  const target = new URL(app?.env?.find((e) => e.name === 'OIDC_VERIFIER_URL')?.value ?? 'http://invalid/')
  t.equal(target.hostname, '127.0.0.1', 'the app calls the verifier over localhost')
  t.equal(Number(target.port), config.server.port, 'on the port it listens on')
  t.equal(target.pathname, '/verify')
  t.notOk(app?.ports?.some((p) => p.containerPort === config.server.port), 'the app does not use the verifier\'s port')
})

t.test('the forward-auth pod example (examples/kubernetes/sidecar.yaml): valid, and its verifier runs as the image does', async (t) => {
  const path = fileURLToPath(new URL('../examples/kubernetes/sidecar.yaml', import.meta.url))
  const docs = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Record<string, unknown>).filter((d) => d !== null)
  t.same(docs.map((d) => d.kind), ['ConfigMap', 'Deployment', 'Service'])
  for (const doc of docs) {
    const model = MODELS[doc.kind as Kind]
    t.doesNotThrow(() => { new model.Model(doc as never).validate() }, `${String(doc.kind)} is valid`)
    t.same(fields.unknownFields(doc.kind as string, doc), [], `${String(doc.kind)} has no unknown field`)
  }
  const spec = (docs[1] as unknown as IDeployment).spec!.template.spec!
  const verifier = [...spec.containers, ...(spec.initContainers ?? [])].find((c) => c.name === 'oidc-verifier')
  const nodeOptions = verifier?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? ''
  t.match(nodeOptions, /(^| )--max-semi-space-size=4( |$)/, 'NODE_OPTIONS repeats the CMD\'s --max-semi-space-size=4, so its exec probes have the server\'s heap limit')
  t.match(verifier?.command ?? [], ['node', '--max-semi-space-size=4', 'dist/server.js'], 'started as the image starts it')
})
