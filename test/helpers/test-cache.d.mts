/** Types of test/helpers/test-cache.mjs. */
export declare const TEST_CACHE: string
export declare function readCached (file: string): string | undefined
export declare function writeCached (file: string, text: string): void
