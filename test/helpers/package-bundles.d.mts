/** Types of test/helpers/package-bundles.mjs. */
export declare function bundledUrl (url: string): string | undefined
