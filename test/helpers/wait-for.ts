/** Polling for a condition that something in the background makes true (a fetch answered, a store written): one copy for all tests. */

/** Waits until `condition` holds, checked every `everyMs`, at most `timeoutMs` (then throws, naming `what`). */
export async function waitFor (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 8000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}
