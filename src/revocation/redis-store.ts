/**
 * The Redis revocation store: revocations shared by every replica. Each revocation is one key, announced on
 * one pub/sub channel; every process keeps its RevocationList current from the announcements and reads the
 * keys whole at start and after every reconnection.
 *
 * The keys, the channel and the Lua script that writes are in src/revocation/redis-layout.ts.
 *
 * Two connections: commands (EVALSHA, SCAN, MGET), without an offline queue so that a publish while Redis is
 * unreachable fails at once (503) instead of waiting; and a subscriber, which on every
 * (re)connection first subscribes and only then loads, so a revocation written during the load is either
 * read or received. Loading merges into the list, never replaces it: revocations are never withdrawn.
 *
 * Fail closed: the list is current only while the subscriber is connected, subscribed and loaded. When that
 * stops (the connection closes, a PING on it fails) a timer starts that fires maxStalenessSeconds after the
 * list was last known current (the last PING answered, announcement received or load), not after the
 * failure, which a PING to a Redis that does not answer reports only commandTimeoutMs after it was sent; when
 * it fires before a reload completed, the list is marked unavailable and verifications fail (503).
 * Reconnection is retried for ever, with a bounded back-off.
 *
 * Revocation values (sub, sid, jti) are personal data: logs name the issuer and kind only, and Redis errors
 * are reduced to their message (ioredis attaches the command's arguments to its errors).
 *
 * Redis permissions needed (ACL): EVALSHA, EVAL, GET, SET, PUBLISH, SUBSCRIBE, SCAN, MGET, PING, CLIENT
 * SETNAME, QUIT (and SELECT with a database in the URL) on the keys and channel under keyPrefix. INFO is not
 * needed (no ready check). Redis 6.2 or later (SET … PXAT); one instance, not Redis Cluster (SCAN reads one
 * node); maxmemory-policy noeviction (the volatile-* policies evict keys with an expiry, which every
 * revocation has), and persistence where a restart of Redis must not forget revocations.
 */
import { Redis, type RedisOptions } from 'ioredis'
import { silentLogger, type Logger } from '../core/logger.js'
import { parseRevocation, type Revocation } from './revocation.js'
import { MERGE_SCRIPT, parseEntry, redisDatabase, revocationChannel, revocationKeyPattern, revocationRedisKey, type MergeCommand } from './redis-layout.js'
import { SWEEP_INTERVAL_MS, type RevocationList } from './revocation-list.js'
import { RevocationStoreError, STORE_START_WAIT_MS, type PublishResult, type RevocationStore, type RevocationStoreStatus } from './store.js'
import { pingIntervalMs } from './redis-ping.js'
import { setTimer, type SetTimer } from '../timers.js'

export interface RedisRevocationStoreOptions {
  /** redis://[user:pass@]host:port/db or rediss:// (TLS). */
  url: string
  /** Every key and the channel start with it, e.g. 'oidc-verifier:'. */
  keyPrefix: string
  /** How long the list may be not known current (disconnected, not reloaded) before it is marked unavailable. */
  maxStalenessSeconds: number
  /** Per Redis command; a publish() that takes longer rejects. */
  commandTimeoutMs: number
  list: RevocationList
  logger?: Logger
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number
  /** Test hook: ioredis options applied over the store's own (to both connections). */
  redisOptions?: Partial<RedisOptions>
  /** Test hook: schedules the start-up safeguard and the staleness timer; default setTimeout. */
  setTimer?: SetTimer<'start' | 'stale'>
}

const SCAN_COUNT = 1000
/** Revocations written back per pipelined round trip. */
const WRITE_BACK_BATCH = 200
const CONNECT_TIMEOUT_MS = 5_000

/** ioredis errors carry the command's arguments (a revocation's JSON): keep the message only. */
function redisError (err: unknown): Error {
  const error = new Error(err instanceof Error ? err.message : String(err))
  if (err instanceof Error) error.name = err.name
  return error
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** ioredis's message for a command that got no answer within commandTimeout (and #withTimeout's). */
const TIMED_OUT = 'Command timed out'

/** The host and port of a Redis URL, for logs: never its user name or password. */
function redisHost (url: string): string {
  try {
    const parsed = new URL(url)
    return parsed.port === '' ? parsed.hostname : `${parsed.hostname}:${parsed.port}`
  } catch {
    return '(unparsable URL)'
  }
}

export class RedisRevocationStore implements RevocationStore {
  readonly list: RevocationList
  readonly #keyPrefix: string
  /** The database the URL selects: 0, or one that the commands connection must have selected before any use. */
  readonly #database: number
  readonly #channel: string
  readonly #maxStalenessMs: number
  readonly #commandTimeoutMs: number
  readonly #pingIntervalMs: number
  readonly #host: string
  readonly #logger: Logger
  readonly #now: () => number
  readonly #setTimer: SetTimer<'start' | 'stale'>
  readonly #cmd: Redis
  readonly #sub: Redis

  /** Bumped on every (re)connection and loss of the subscriber: a load of an older one does not count. */
  #epoch = 0
  #subscribed = false
  /**
   * The commands connection has selected #database (always so for 0). ioredis selects it on connecting but
   * carries on in database 0 when that fails (out of range, an ACL without SELECT): nothing is read or written
   * until the store's own SELECT has succeeded on the connection.
   */
  #databaseSelected: boolean
  #current = false
  #lastCurrentAt: number | null = null
  #ensuring = false
  #ensureAgain = false
  #staleTimer: NodeJS.Timeout | undefined
  #pingTimer: NodeJS.Timeout | undefined
  #sweepTimer: NodeJS.Timeout | undefined
  #startTimer: NodeJS.Timeout | undefined
  #startSettle: (() => void) | undefined
  #started: Promise<void> | undefined
  #closed = false
  #closing: Promise<void> | undefined
  /** Resolves `loaded`. */
  readonly #resolveLoaded: () => void
  readonly loaded: Promise<void>
  /** The last warning logged by #warnOnce. */
  #lastLoggedError: string | undefined
  /** A write-back is running; one that failed is due again (tried from #tick while the list is current). */
  #writingBack = false
  #writeBackDue = false

  constructor (options: RedisRevocationStoreOptions) {
    this.list = options.list
    let resolveLoaded: () => void = () => {}
    this.loaded = new Promise<void>((resolve) => { resolveLoaded = resolve })
    this.#resolveLoaded = resolveLoaded
    this.#keyPrefix = options.keyPrefix
    // The configuration refuses a URL whose path is not a database number.
    this.#database = redisDatabase(options.url) ?? 0
    this.#databaseSelected = this.#database === 0
    this.#channel = revocationChannel(options.keyPrefix, this.#database)
    this.#maxStalenessMs = options.maxStalenessSeconds * 1000
    this.#commandTimeoutMs = options.commandTimeoutMs
    this.#pingIntervalMs = pingIntervalMs(this.#maxStalenessMs)
    this.#host = redisHost(options.url)
    this.#logger = (options.logger ?? silentLogger).child({ component: 'revocation-store', store: 'redis' })
    this.#now = options.now ?? Date.now
    this.#setTimer = options.setTimer ?? setTimer
    this.list.setAvailable(false)

    const redisOptions: RedisOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      // Commands in flight when the connection drops are rejected at once, not resent after a reconnection.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // The subscriber subscribes itself on every 'ready', then loads (#ensure).
      autoResubscribe: false,
      // The ready check needs INFO, which a restricted ACL user may lack; a LOADING Redis fails the load, retried.
      enableReadyCheck: false,
      retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepAlive: 10_000,
      connectionName: 'oidc-verifier-revocations',
      ...options.redisOptions
    }
    this.#cmd = new Redis(options.url, redisOptions)
    this.#cmd.defineCommand('revocationMerge', { numberOfKeys: 1, lua: MERGE_SCRIPT })
    this.#sub = this.#cmd.duplicate({ connectionName: 'oidc-verifier-revocations-subscriber', ...options.redisOptions })

    this.#cmd.on('error', (err: unknown) => { this.#warnOnce({ connection: 'commands' }, err, 'Redis connection error; reconnecting') })
    this.#cmd.on('ready', () => { this.#ensure() })
    this.#cmd.on('close', () => { this.#databaseSelected = this.#database === 0 })
    this.#sub.on('error', (err: unknown) => { this.#warnOnce({ connection: 'subscriber' }, err, 'Redis connection error; reconnecting') })
    this.#sub.on('ready', () => {
      // A new connection: subscribed to nothing (autoResubscribe is off), nothing loaded on it yet.
      this.#epoch++
      this.#subscribed = false
      this.#current = false
      this.#ensure()
    })
    this.#sub.on('close', () => { this.#lost('the subscriber connection closed') })
    this.#sub.on('end', () => { this.#lost('the subscriber connection ended') })
    this.#sub.on('message', (channel: string, message: string) => { this.#received(channel, message) })
  }

  /** Connects and loads; resolves once the list is current or the first attempt failed (it keeps trying). */
  async start (): Promise<void> {
    if (this.#started !== undefined) return await this.#started
    this.#started = new Promise<void>((resolve) => {
      this.#startSettle = () => {
        this.#startSettle = undefined
        if (this.#startTimer !== undefined) clearTimeout(this.#startTimer)
        this.#startTimer = undefined
        resolve()
      }
    })
    if (this.#closed) {
      this.#startSettle?.()
      return await this.#started
    }
    // A safeguard: every step has its own timeout, but start-up must never wait for ever, nor past Fastify's
    // onReady timeout; then the list is not current (fail closed) and the connection keeps trying meanwhile.
    this.#startTimer = this.#setTimer(() => { this.#startSettle?.() }, Math.min(STORE_START_WAIT_MS, CONNECT_TIMEOUT_MS + 4 * this.#commandTimeoutMs + 1000), 'start')
    this.#startTimer.unref()
    this.#pingTimer = setInterval(() => { this.#tick() }, this.#pingIntervalMs)
    this.#pingTimer.unref()
    this.#sweepTimer = setInterval(() => { this.list.sweep(this.#now() / 1000) }, SWEEP_INTERVAL_MS)
    this.#sweepTimer.unref()
    // A failed first attempt settles start(); ioredis goes on reconnecting (retryStrategy).
    const failed = (): void => { this.#startSettle?.() }
    this.#cmd.connect().catch(failed)
    this.#sub.connect().catch(failed)
    return await this.#started
  }

  /**
   * Stores the revocation in Redis (merged with the stored one), announces it to every process, and applies
   * the stored result to this process's list; resolves with what that changed in the list as it was before
   * the call ('added', 'extended', 'unchanged'). Rejects with RevocationStoreError: 'full' when the list
   * cannot take a new revocation (nothing written; or, when it filled up during the call, stored but not
   * held here, which makes the list incomplete), 'unreachable' on any Redis error or timeout (and when
   * closed). A TypeError when it is not a revocation.
   */
  async publish (revocation: Revocation): Promise<PublishResult> {
    const valid = parseRevocation(revocation)
    if (valid === undefined) throw new TypeError('not a valid revocation')
    if (this.#closed) throw new RevocationStoreError('unreachable', { cause: new Error('the revocation store is closed') })
    const nowSeconds = this.#now() / 1000
    if (valid.expiresAt <= nowSeconds) return 'unchanged'
    const held = this.list.get(valid.issuer, valid.kind, valid.value, nowSeconds)
    // Headroom for what other replicas record meanwhile: this list must hold theirs too, or fail closed.
    if (!this.list.hasRoomFor(valid, this.list.sharedHeadroom, nowSeconds)) {
      this.#logger.warn({ issuer: valid.issuer, kind: valid.kind, maxEntries: this.list.maxEntries }, 'revocation refused: the revocation list is full (raise revocation.maxEntries, or lower revocation.retentionSeconds)')
      throw new RevocationStoreError('full')
    }
    let stored: string
    try {
      if (!this.#databaseSelected) throw new Error(`database ${this.#database} of revocation.redis.url is not selected on this connection (yet)`)
      stored = await this.#merge(valid)
    } catch (err) {
      this.#logger.warn({ issuer: valid.issuer, kind: valid.kind, redis: this.#host, error: errorMessage(err) }, 'revocation could not be stored in Redis')
      this.#recycleIfTimedOut(err)
      throw new RevocationStoreError('unreachable', { cause: redisError(err) })
    }
    const merged = parseEntry(stored) ?? valid
    // Stored: every other process holds it, so one that cannot is incomplete (receive), this one included.
    const result = this.list.receive(merged, this.#now() / 1000)
    if (result === 'full') throw new RevocationStoreError('full')
    // Our own announcement may have been received (and applied) before the script's reply: the result is
    // what this publish changed in the list as it was before it.
    const after = this.list.get(valid.issuer, valid.kind, valid.value, this.#now() / 1000)
    if (after === undefined) return result
    if (held === undefined) return 'added'
    return after.before !== held.before || after.expiresAt !== held.expiresAt ? 'extended' : 'unchanged'
  }

  status (): RevocationStoreStatus {
    return { kind: 'redis', current: this.list.available, lastCurrentAt: this.#lastCurrentAt }
  }

  async close (): Promise<void> {
    if (this.#closing !== undefined) return await this.#closing
    this.#closed = true
    for (const timer of [this.#staleTimer, this.#pingTimer, this.#sweepTimer]) clearTimeout(timer)
    this.#staleTimer = this.#pingTimer = this.#sweepTimer = undefined
    this.#startSettle?.()
    this.#closing = Promise.all([this.#sub, this.#cmd].map(async (connection) => {
      try {
        if (connection.status === 'ready') await connection.quit()
      } catch {
        // closed below
      } finally {
        connection.disconnect()
      }
    })).then(() => undefined)
    return await this.#closing
  }


  /** Stores a revocation merged with the stored one and announces the result; resolves with the stored JSON. */
  async #merge (revocation: Revocation): Promise<string> {
    return await this.#withTimeout((this.#cmd as Redis & MergeCommand).revocationMerge(revocationRedisKey(this.#keyPrefix, revocation), JSON.stringify(revocation), this.#channel))
  }

  /**
   * A command that timed out may sit on a connection that will never answer again (half-open after a failover
   * or a dropped NAT entry: nothing closes it for about 15 minutes). Only the subscriber is PINGed, so the
   * commands connection is started again here, and the next reload or publish goes through a new one.
   */
  #recycleIfTimedOut (err: unknown): void {
    if (this.#closed || errorMessage(err) !== TIMED_OUT) return
    this.#cmd.disconnect(true)
  }

  /** Rejects after commandTimeoutMs even when ioredis would not (its timeout starts only once a command is sent). */
  async #withTimeout<T> (promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => { reject(new Error(TIMED_OUT)) }, this.#commandTimeoutMs)
      timer.unref()
    })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Logs a warning unless it repeats the last one: a Redis that stays down is logged once, not every retry. */
  #warnOnce (fields: Record<string, unknown>, err: unknown, msg: string): void {
    if (this.#closed) return
    const error = errorMessage(err)
    if (`${msg}\n${error}` === this.#lastLoggedError) return
    this.#lastLoggedError = `${msg}\n${error}`
    this.#logger.warn({ redis: this.#host, ...fields, error }, msg)
  }

  /** The subscriber connection is gone or unhealthy: the list is no longer known current. */
  #lost (reason: string): void {
    if (this.#closed) return
    this.#epoch++
    this.#subscribed = false
    if (this.#current) {
      this.#current = false
      this.#logger.warn({ redis: this.#host, reason, maxStalenessSeconds: this.#maxStalenessMs / 1000 },
        'revocations from Redis are no longer known current; reconnecting')
    }
    this.#settleStartIfFailed()
    if (this.#staleTimer === undefined && this.list.available) {
      // From the last moment the list was known current: the failure may be noticed long after it.
      const now = this.#now()
      const delay = Math.max(0, (this.#lastCurrentAt ?? now) + this.#maxStalenessMs - now)
      this.#staleTimer = this.#setTimer(() => { this.#stale() }, delay, 'stale')
      this.#staleTimer.unref()
    }
  }

  #stale (): void {
    this.#staleTimer = undefined
    if (this.#closed || this.#current) return
    this.list.setAvailable(false)
    this.#logger.error({ redis: this.#host, maxStalenessSeconds: this.#maxStalenessMs / 1000, lastCurrentAt: this.#lastCurrentAt },
      `revocations are unavailable: not current for more than maxStalenessSeconds; verifications now fail closed (503) until Redis at ${this.#host} is reachable again (check that Redis is running, the URL's host, port and credentials, and the network)`)
  }

  /** start() waits for the first attempt only: a failure settles it (a success settles it in #ensure). */
  #settleStartIfFailed (): void {
    this.#startSettle?.()
  }

  /** Every ping interval: PING the subscriber while current; otherwise (re)subscribe and load. */
  #tick (): void {
    if (this.#closed) return
    if (!this.list.complete && this.#current) {
      // A revocation did not fit: read everything again once some have expired (the load marks it complete).
      const nowSeconds = this.#now() / 1000
      this.list.sweep(nowSeconds)
      if (this.list.size < this.list.maxEntries) this.#current = false
    }
    if (!this.#current) {
      this.#ensure()
      return
    }
    if (this.#writeBackDue && this.#databaseSelected && this.#cmd.status === 'ready') this.#startWriteBack(undefined)
    if (this.#sub.status !== 'ready') return
    const epoch = this.#epoch
    this.#sub.ping().then(() => {
      if (epoch === this.#epoch && this.#current) this.#lastCurrentAt = this.#now()
    }, (err: unknown) => {
      if (this.#closed || epoch !== this.#epoch) return
      this.#lost(`PING failed: ${errorMessage(err)}`)
      // A connection that does not answer may never close by itself: start a new one (then reload).
      this.#sub.disconnect(true)
    })
  }

  /** Subscribes if needed, then loads if needed; one run at a time (a call during a run runs it again after). */
  #ensure (): void {
    if (this.#closed) return
    if (this.#ensuring) {
      this.#ensureAgain = true
      return
    }
    this.#ensuring = true
    this.#ensureAgain = false
    this.#subscribeAndLoad().catch((err: unknown) => {
      this.#warnOnce({}, err, 'subscribing to or loading revocations from Redis failed; retrying')
      this.#recycleIfTimedOut(err)
      this.#settleStartIfFailed()
    }).finally(() => {
      this.#ensuring = false
      if (this.#ensureAgain) this.#ensure()
    })
  }

  async #subscribeAndLoad (): Promise<void> {
    if (this.#sub.status !== 'ready') return
    const epoch = this.#epoch
    if (!this.#subscribed) {
      await this.#sub.subscribe(this.#channel)
      if (epoch !== this.#epoch) return
      this.#subscribed = true
    }
    // Loads only once subscribed: whatever is written from now on is received if it is not read.
    if (this.#cmd.status !== 'ready') return
    // A new commands connection selects its database whether or not the list needs loading: it may have
    // reconnected alone (Redis's idle timeout closes it, never the subscriber), and publish needs the database too.
    await this.#selectDatabase()
    if (this.#current) return
    const { count, complete, stored } = await this.#load()
    // A load that raced a lost subscriber proves nothing: the list stays as it was (incomplete: failing closed).
    if (this.#closed || epoch !== this.#epoch || !this.#subscribed) return
    if (complete) this.list.markComplete()
    const wasAvailable = this.list.available
    this.#current = true
    this.#lastCurrentAt = this.#now()
    this.#lastLoggedError = undefined
    if (this.#staleTimer !== undefined) clearTimeout(this.#staleTimer)
    this.#staleTimer = undefined
    this.list.setAvailable(true)
    this.#logger.info({ redis: this.#host, count, size: this.list.size, wasAvailable }, 'revocations loaded from Redis; the list is current')
    this.#startSettle?.()
    this.#resolveLoaded()
    // After the list is current, not before: writing back many takes time, during which the staleness timer
    // would fail verifications closed, and a subscriber lost meanwhile would go unnoticed.
    this.#startWriteBack(stored)
  }

  /** One write-back at a time; a failed one is due again on a later tick (the list stays current meanwhile). */
  #startWriteBack (stored: ReadonlySet<string> | undefined): void {
    if (this.#closed) return
    if (this.#writingBack) { this.#writeBackDue = true; return }
    this.#writingBack = true
    this.#writeBackDue = false
    const keys = stored !== undefined ? Promise.resolve(stored) : this.#storedKeys()
    keys.then(async (k) => { await this.#writeBack(k) }).catch((err: unknown) => {
      if (this.#closed) return
      this.#writeBackDue = true
      this.#warnOnce({}, err, 'revocations Redis had lost could not be written back; trying again')
      this.#recycleIfTimedOut(err)
    }).finally(() => { this.#writingBack = false })
  }

  async #storedKeys (): Promise<Set<string>> {
    const stored = new Set<string>()
    let cursor = '0'
    do {
      const [next, keys] = await this.#withTimeout(this.#cmd.scan(cursor, 'MATCH', revocationKeyPattern(this.#keyPrefix), 'COUNT', SCAN_COUNT))
      cursor = next
      for (const key of keys) stored.add(key)
    } while (cursor !== '0' && !this.#closed)
    return stored
  }

  /** Selects the URL's database on the commands connection, once per connection; a refusal is the URL's fault. */
  async #selectDatabase (): Promise<void> {
    if (this.#databaseSelected) return
    try {
      await this.#cmd.select(this.#database)
    } catch (err) {
      throw new Error(`Redis refuses to select database ${this.#database} of revocation.redis.url (${errorMessage(err)}): check the database number (the server's "databases" setting) and the user's ACL (SELECT)`)
    }
    this.#databaseSelected = true
  }

  /**
   * Writes back the revocations this process holds that Redis no longer has: Redis restarted without
   * persistence (or from a snapshot older than them), or was flushed. Without this, the running replicas would
   * go on refusing those tokens and every replica started later would accept them.
   */
  async #writeBack (stored: ReadonlySet<string>): Promise<void> {
    const nowSeconds = this.#now() / 1000
    const lost: Revocation[] = []
    for (const revocation of this.list.entries()) {
      if (revocation.expiresAt > nowSeconds && !stored.has(revocationRedisKey(this.#keyPrefix, revocation))) lost.push(revocation)
    }
    if (lost.length === 0) return
    // Pipelined: one round trip per batch, not per revocation.
    for (let i = 0; i < lost.length && !this.#closed; i += WRITE_BACK_BATCH) {
      const pipeline = this.#cmd.pipeline() as ReturnType<Redis['pipeline']> & { revocationMerge: (key: string, json: string, channel: string) => unknown }
      for (const revocation of lost.slice(i, i + WRITE_BACK_BATCH)) {
        pipeline.revocationMerge(revocationRedisKey(this.#keyPrefix, revocation), JSON.stringify(revocation), this.#channel)
      }
      const failed = (await this.#withTimeout(pipeline.exec()))?.find(([err]) => err !== null)
      if (failed !== undefined) throw failed[0] as Error
    }
    this.#logger.warn({ redis: this.#host, count: lost.length },
      'Redis had lost revocations this process holds (restarted without persistence or from an older snapshot, or flushed); written back')
  }

  /**
   * Reads every stored revocation (SCAN, MGET) into the list; returns how many valid ones were read, whether
   * all of them fit (the caller marks the list complete only if the subscriber was there the whole time), and
   * the keys found.
   */
  async #load (): Promise<{ count: number, complete: boolean, stored: Set<string> }> {
    const match = revocationKeyPattern(this.#keyPrefix)
    const stored = new Set<string>()
    let cursor = '0'
    let count = 0
    let invalid = 0
    let full = 0
    do {
      const [next, keys] = await this.#cmd.scan(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT)
      cursor = next
      if (keys.length === 0) continue
      for (const key of keys) stored.add(key)
      const values = await this.#cmd.mget(...keys)
      const nowSeconds = this.#now() / 1000
      for (const value of values) {
        if (value === null) continue // expired since the SCAN
        const revocation = parseEntry(value)
        if (revocation === undefined) {
          invalid++
          continue
        }
        count++
        if (this.list.receive(revocation, nowSeconds) === 'full') full++
      }
    } while (cursor !== '0' && !this.#closed)
    if (invalid > 0) this.#logger.warn({ redis: this.#host, invalid }, 'ignored Redis values under the revocation prefix that are not revocations')
    if (full > 0) {
      this.#logger.error({ redis: this.#host, refused: full, maxEntries: this.list.maxEntries },
        'the revocation list is full: revocations stored in Redis do not fit, so verifications fail closed (503) until they do (raise revocation.maxEntries)')
    }
    return { count, complete: full === 0, stored }
  }

  #received (channel: string, message: string): void {
    if (this.#closed || channel !== this.#channel) return
    const revocation = parseEntry(message)
    if (revocation === undefined) {
      this.#logger.warn({ redis: this.#host, channel, length: message.length }, 'ignored a message on the revocation channel that is not a revocation')
      return
    }
    const result = this.list.receive(revocation, this.#now() / 1000)
    if (result === 'full') {
      this.#logger.error({ issuer: revocation.issuer, kind: revocation.kind, maxEntries: this.list.maxEntries },
        'the revocation list is full: a revocation announced by Redis does not fit, so verifications fail closed (503) until it does (raise revocation.maxEntries)')
    } else if (result !== 'unchanged') {
      this.#logger.debug({ issuer: revocation.issuer, kind: revocation.kind, result }, 'revocation received')
    }
    if (this.#current) this.#lastCurrentAt = this.#now()
  }
}
