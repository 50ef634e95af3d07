// One freePort for the tests, tally/testing and the bench.
export { freePort } from "../../services/common/ports.ts";
