/* global process, console, URL */
// Rebuilds tap's Test class when the plugins package.json's "tap.plugin" asks for are not the ones it was built
// with (after `npm ci`, the package's default set). tap notices a difference itself, but only after it has chosen
// the node arguments of that run's test processes from the old build: the first run after an install would
// still load every process with the loader of a plugin the configuration removed (@tapjs/mock: ~0.4 s of CPU
// per test file). Run by `npm test` before tap; does nothing when the build is current. The comparison is the
// runner's own: the configuration's pluginSignature against the built class's signature.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

await import('@tapjs/core') // @tapjs/test needs the core loaded first
const { signature } = await import('@tapjs/test')
const { TapConfig } = await import('@tapjs/config')

if ((await TapConfig.load()).pluginSignature !== signature) {
  console.error('tap: building the Test class with the configured plugins (package.json "tap.plugin")')
  const { status } = spawnSync(fileURLToPath(new URL('../node_modules/.bin/tap', import.meta.url)), ['build'], { stdio: 'inherit' })
  if (status !== 0) process.exit(status ?? 1)
}
