// tally/testing: a throwaway Tally in containers for integration tests (see README.md here).

export type { TransferEvent } from "../common/event.ts";
export type { VerifyReport } from "../verify/index.ts";
export { ContainerEngineError, TallyStartError } from "./engine.ts";
export { type Images, localImages, publicImages, resolveImages } from "./images.ts";
export type { TallyProcess } from "./processes.ts";
export { type StartedTally, type StartTallyOptions, startTally, type TallyEndpoints } from "./tally.ts";
