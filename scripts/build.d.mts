export declare const root: string
export declare const buildDist: () => Promise<unknown>
/** esbuild options every bundle of the checkout shares (dist/, and the tests' bundled children). */
export declare const bundleOptions: import("esbuild").BuildOptions
