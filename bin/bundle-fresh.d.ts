export declare const root: string
export declare const bundlePath: (name: string) => string
export declare const bundleIsFresh: (names?: ReadonlyArray<string>) => boolean
