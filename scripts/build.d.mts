export declare const root: string
export declare const buildDist: () => Promise<unknown>
