/**
 * src/config/heap-budget.ts: a token cache that cannot fit in V8's heap is a configuration problem, with the
 * numbers and the setting that fixes it (the refusal at start, on reload and in check-config is in
 * test/server-process.test.ts).
 */
import t from 'tap'
import { ConfigError, parseConfig } from '../src/config/load.js'
import { HEAP_HEADROOM_BYTES, heapBudgetProblem, heapLimitBytes, withinHeapBudget } from '../src/config/heap-budget.js'
import { TOKEN_CACHE_DEFAULTS } from '../src/config/schema.js'

const MiB = 1024 * 1024
const issuers = [{ id: 'a', issuer: 'https://a.example.com', audiences: ['x'], jwksUri: 'https://a.example.com/jwks' }]
const config = (tokenCache?: Record<string, unknown>) => parseConfig({ issuers, ...(tokenCache !== undefined ? { tokenCache } : {}) }, 'test.yaml', {})

t.test('the default cache fits the image\'s cap and the manifests\' smallest one', async (t) => {
  const defaults = config()
  t.equal(defaults.tokenCache.maxBytes, TOKEN_CACHE_DEFAULTS.maxBytes)
  // --max-old-space-size=112 with --max-semi-space-size=4: V8 reports a heap limit of 124 MiB.
  t.equal(heapBudgetProblem(defaults, 124 * MiB), undefined)
  t.equal(heapBudgetProblem(defaults, TOKEN_CACHE_DEFAULTS.maxBytes + HEAP_HEADROOM_BYTES), undefined, 'exactly enough is enough')
  t.equal(withinHeapBudget(defaults, 172 * MiB), defaults, 'the same configuration object comes back')
  t.ok(heapLimitBytes() > 0, 'this process\'s limit is read from V8')
})

t.test('a cache larger than the heap allows: one problem naming both numbers and the fix', async (t) => {
  const big = config({ maxBytes: 512 * MiB })
  const problem = heapBudgetProblem(big, 172 * MiB)
  t.equal(problem, 'tokenCache.maxBytes: 512 MiB does not fit in this process\'s V8 heap: its limit is 172 MiB, and the cache needs 560 MiB ' +
    'with the 48 MiB the rest of the service uses; raise the limit (NODE_OPTIONS=--max-old-space-size=560 or more, within the ' +
    'container\'s memory limit) or lower tokenCache.maxBytes')
  t.throws(() => withinHeapBudget(big, 172 * MiB), ConfigError)
  let thrown: unknown
  try { withinHeapBudget(big, 172 * MiB) } catch (err) { thrown = err }
  t.same((thrown as ConfigError).problems, [problem], 'the ConfigError carries that one problem')
  t.equal(heapBudgetProblem(config({ maxBytes: 64 * MiB }), 111 * MiB)?.startsWith('tokenCache.maxBytes: 64 MiB does not fit'), true, 'one MiB short is short')
})

t.test('a disabled cache needs only the headroom', async (t) => {
  const off = config({ enabled: false, maxBytes: 4096 * MiB })
  t.equal(heapBudgetProblem(off, HEAP_HEADROOM_BYTES), undefined)
  t.match(heapBudgetProblem(off, HEAP_HEADROOM_BYTES - 1) ?? '', /tokenCache\.maxBytes: 0 MiB does not fit.*needs 48 MiB/)
})

t.test('with revocation on, its list counts too', async (t) => {
  const on = (maxEntries?: number) => parseConfig({ issuers, revocation: { enabled: true, ...(maxEntries === undefined ? {} : { maxEntries }) } }, 'test.yaml', {})
  t.equal(heapBudgetProblem(on(), 124 * MiB), undefined, 'the default list fits beside the default cache under the sidecars\' cap')
  const problem = heapBudgetProblem(on(400_000), 172 * MiB)
  t.match(problem, /^tokenCache\.maxBytes \(64 MiB\) and revocation\.maxEntries \(400000, up to 153 MiB\) do not fit in this process's V8 heap: its limit is 172 MiB, and they need 265 MiB/)
  t.match(problem, /or lower tokenCache\.maxBytes or revocation\.maxEntries$/)
  t.equal(heapBudgetProblem(parseConfig({ issuers, revocation: { enabled: false, maxEntries: 10_000_000 } }, 'test.yaml', {}), 124 * MiB), undefined, 'a disabled list needs nothing')
})
