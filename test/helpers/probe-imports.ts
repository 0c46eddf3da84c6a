/**
 * Child process for test/healthcheck.test.ts: where probeUrl points for the environment given as JSON in argv[2]
 * (a config file's text in argv[3]), and whether the configuration loader's YAML parser got loaded meanwhile.
 */
import { createRequire } from 'node:module'
import { probeUrl } from '../../src/health/probe.js'

const env = JSON.parse(process.argv[2] ?? '{}') as NodeJS.ProcessEnv
const file = process.argv[3] ?? ''
const url = await probeUrl('/healthz', { env, readFile: () => file })
const yamlLoaded = Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/node_modules/yaml/'))
process.stdout.write(JSON.stringify({ url: url.href, yamlLoaded }))
