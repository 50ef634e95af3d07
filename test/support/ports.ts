// One freePort for the tests and tally/testing.
export { freePort } from "../../services/testing/ports.ts";
