/**
 * Timers the service sets for itself, and the hook tests use to run them by hand: a component takes a
 * `SetTimer` (default `setTimer`, plain setTimeout) and says what each timer is for.
 */

/** The longest delay setTimeout keeps (2^31 − 1 ms); above it, the timer fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Schedules `callback` after `delayMs`; `purpose` names which of the component's timers it is. */
export type SetTimer<Purpose extends string> = (callback: () => void, delayMs: number, purpose: Purpose) => NodeJS.Timeout

/** The default: setTimeout, whatever the purpose. */
export function setTimer (callback: () => void, delayMs: number): NodeJS.Timeout {
  return setTimeout(callback, delayMs)
}
