/**
 * Retry-After (RFC 9110 §10.2.3) on a provider's 429 or 503: how long it asked us to stay away. The header is
 * hostile input: anything but a delay in whole seconds or one of the three HTTP-date forms (§5.6.7), a wait of
 * zero, a date in the past or a wait longer than MAX_RETRY_AFTER_SECONDS is ignored (the caller's own backoff
 * then applies alone). What is done with a wait is src/jwks/retry-wait.ts's concern.
 */

/**
 * The longest Retry-After taken at all: a day, the ceiling of jwks.backoffMaxSeconds. A longer one is a broken or
 * hostile value, not a plan (a provider that means "come back in a week" is down), and is ignored.
 */
export const MAX_RETRY_AFTER_SECONDS = 86_400

export type RetryAfter = { delayMs: number } | { problem: string }

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const MONTH = `(${MONTHS.join('|')})`
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'
/** IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) ${MONTH} (\\d{4}) ${TIME} GMT$`)
/** obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-${MONTH}-(\\d{2}) ${TIME} GMT$`)
/** obsolete asctime: Sun Nov  6 08:49:37 1994 */
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ${MONTH} ( \\d|\\d{2}) ${TIME} (\\d{4})$`)

/** Date.UTC of the parts, or undefined when they name no real time (31 Feb, 25:00). */
function utc (year: number, month: string, day: number, hour: number, minute: number, second: number): number | undefined {
  const m = MONTHS.indexOf(month)
  // A leap second (:60) is read as the next second rather than refused.
  if (day < 1 || hour > 23 || minute > 59 || second > 60) return undefined
  const ms = Date.UTC(year, m, day, hour, minute, second)
  return new Date(ms).getUTCDate() === day || second === 60 ? ms : undefined
}

/** An HTTP-date in any of its three forms, in ms since the epoch; undefined for anything else. */
export function parseHttpDate (value: string, nowMs: number): number | undefined {
  let match = IMF_FIXDATE.exec(value)
  if (match !== null) {
    const [, day, month, year, h, m, s] = match as unknown as string[]
    return utc(Number(year), month as string, Number(day), Number(h), Number(m), Number(s))
  }
  match = RFC850_DATE.exec(value)
  if (match !== null) {
    const [, day, month, yy, h, m, s] = match as unknown as string[]
    // §5.6.7: a two-digit year more than 50 years in the future is in the past century.
    const thisYear = new Date(nowMs).getUTCFullYear()
    let year = Math.floor(thisYear / 100) * 100 + Number(yy)
    if (year > thisYear + 50) year -= 100
    return utc(year, month as string, Number(day), Number(h), Number(m), Number(s))
  }
  match = ASCTIME_DATE.exec(value)
  if (match !== null) {
    const [, month, day, h, m, s, year] = match as unknown as string[]
    return utc(Number(year), month as string, Number((day as string).trim()), Number(h), Number(m), Number(s))
  }
  return undefined
}

/** Retry-After of an answer received at `nowMs`: the wait it asks for, or why it is ignored. */
export function parseRetryAfter (header: string, nowMs: number): RetryAfter {
  const value = header.trim()
  let delayMs: number
  if (/^\d+$/.test(value)) {
    // Beyond 9 digits the number is not a plan; past 2^53 it would not even be exact. Leading zeros are not
    // digits of the number (delta-seconds allows them): "0000000120" is 120 s, not a wait too long.
    const digits = value.replace(/^0+(?=\d)/, '')
    delayMs = digits.length > 9 ? Infinity : Number(digits) * 1000
  } else {
    const at = parseHttpDate(value, nowMs)
    if (at === undefined) return { problem: 'neither a number of seconds nor an HTTP date' }
    delayMs = at - nowMs
    if (delayMs <= 0) return { problem: 'a date that has passed' }
  }
  if (delayMs === 0) return { problem: 'a wait of 0 s' }
  if (delayMs > MAX_RETRY_AFTER_SECONDS * 1000) return { problem: `a wait longer than a day (${MAX_RETRY_AFTER_SECONDS} s)` }
  return { delayMs }
}
