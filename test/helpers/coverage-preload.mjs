/**
 * Preload (node --import) for the built service's child processes under tap: the coverage half of tap's own
 * preload (@tapjs/processinfo's import.mjs) without its ES module loader hook.
 *
 * On Node 20 that hook runs off-thread (module.register): every module the child imports makes a round trip
 * to the hooks thread, ~1.4 s of CPU for the service's hundreds of modules on top of ~1.2 s for the import itself.
 * The hook only lists loaded files and caches line lengths; the coverage needs neither for a build with
 * source maps (Node's own source map cache has the line lengths; a covered file missing from the list is
 * added when the coverage is written). So this registers what processinfo's getProcessInfo() registers, except
 * its hook on child processes (register-env): cluster workers and other children of this process inherit
 * this preload as it is, through execArgv and NODE_OPTIONS, instead of tap's full one.
 *
 * Same output as the full preload: .tap/processinfo/<uuid>.json and .tap/coverage/<uuid>.json with the
 * source map cache, the process's parent and root from the environment tap set. Test instrumentation only.
 */
import process from 'node:process'
import { URL } from 'node:url'

// processinfo's entry point (its package exports nothing deeper); the modules below sit beside it.
const entry = import.meta.resolve('@tapjs/processinfo')
const sibling = (name) => new URL(`./${name}`, entry).href

// getProcessInfo() registers all four hooks unless this variable names the process: it is set for that call only.
process.env.__TAPJS_PROCESSINFO_TESTING_NO_REGISTER__ = String(process.pid)
const { getProcessInfo } = await import(sibling('get-process-info.js'))
getProcessInfo()
delete process.env.__TAPJS_PROCESSINFO_TESTING_NO_REGISTER__

const [requireHook, coverage, processEnd] = await Promise.all([
  import(sibling('register-require.js')),
  import(sibling('register-coverage.js')),
  import(sibling('register-process-end.js'))
])
requireHook.register()
coverage.register()
processEnd.register()
