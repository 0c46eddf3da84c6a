/**
 * The tests' TypeScript loader (node --import): registers test/helpers/ts-hooks.mjs, which transpiles each
 * .ts module with SWC as it is imported. package.json's tap configuration passes it to every test process
 * (`node-arg`), in place of tap's own TypeScript plugin (ts-node), which cost each test process about a
 * second of CPU more: loading TypeScript's compiler and ts-node's per-module work, on top of the same SWC
 * transform. Types are checked by `tsc --noEmit`, not here. A child script of a test (test/helpers/*.ts)
 * is started with it too.
 */
import { register } from 'node:module'
import { URL } from 'node:url'

register(new URL('./ts-hooks.mjs', import.meta.url))
