/**
 * The memory revocation store (src/revocation/memory-store.ts) around its cluster relay, with a stand-in
 * relay: a complete list never asks the primary again, a worker the primary sent nothing has never been
 * current, and a current list reports the time of the asking.
 */
import t from 'tap'
import type { WorkerRelay } from '../src/revocation/cluster-relay.js'
import { MemoryRevocationStore } from '../src/revocation/memory-store.js'
import { RevocationList } from '../src/revocation/revocation-list.js'

function stubRelay (started: boolean): { relay: WorkerRelay, resyncs: () => number } {
  let resyncs = 0
  const relay = {
    start: async () => started,
    resync: () => { resyncs++ },
    primaryCopyMayBeComplete: () => true,
    send: async () => {},
    close: () => {}
  } as unknown as WorkerRelay
  return { relay, resyncs: () => resyncs }
}

t.test('a sweep of a complete list does not ask the primary again', async (t) => {
  const list = new RevocationList(10)
  const { relay, resyncs } = stubRelay(true)
  const store = new MemoryRevocationStore(list, { relay, now: () => 1_700_000_000_000 })
  t.teardown(() => store.close())
  await store.start()
  t.equal(list.complete, true)
  store.sweep()
  t.equal(resyncs(), 0)
})

t.test('a worker the primary sent no revocations has never been current', async (t) => {
  const list = new RevocationList(10, false)
  const store = new MemoryRevocationStore(list, { relay: stubRelay(false).relay, now: () => 1_700_000_000_000 })
  t.teardown(() => store.close())
  await store.start()
  t.same(store.status(), { kind: 'memory', current: false, lastCurrentAt: null })
})

t.test('a current list is current as of the asking', async (t) => {
  let now = 1_700_000_000_000
  const store = new MemoryRevocationStore(new RevocationList(10), { now: () => now })
  t.teardown(() => store.close())
  await store.start()
  now += 5_000
  t.same(store.status(), { kind: 'memory', current: true, lastCurrentAt: now })
})
