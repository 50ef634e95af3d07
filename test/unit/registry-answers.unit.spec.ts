// How registry answers are sorted, against a tiny local HTTP server that answers what a test says:
// only Confluent's "schema not found" (error_code 40403) is an unknown schema; any other 404, a 5xx,
// garbage, a timeout or a refused connection is transient; a schema Tally cannot parse is
// incompatible. A stub server is fine here: the real registry's answers are in registry.int.spec.ts.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { transferEventSchemaText } from "../../services/common/avro.ts";
import { loadConfig } from "../../services/common/config.ts";
import { freePort } from "../../services/common/ports.ts";
import {
  createRegistry,
  ensureSubjectCompatibility,
  IncompatibleSchemaError,
  RegistryAnswerError,
  registryEndpointOf,
  schemaById,
  UnknownSchemaError,
  writerTypeOf,
} from "../../services/common/registry.ts";
import { TransientError } from "../../services/common/retry.ts";

type Answer = { status: number; body: string; contentType?: string } | "hang" | "stall-body" | "cut-body";
const answers = new Map<string, Answer>();
const seen: IncomingMessage[] = [];
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push(request);
    const answer = answers.get(`${request.method} ${request.url}`) ??
      answers.get(request.url ?? "") ?? { status: 500, body: "no answer scripted" };
    if (answer === "hang") return; // never answers: the caller's timeout must end the wait
    if (answer === "stall-body" || answer === "cut-body") {
      // The head and a part of the body, then nothing more, or the connection closed under it.
      response.writeHead(200, { "content-type": "application/json", "content-length": "100" });
      response.write('{"schema": "');
      if (answer === "cut-body") setTimeout(() => response.socket?.destroy(), 20);
      return;
    }
    response.writeHead(answer.status, { "content-type": answer.contentType ?? "application/json" });
    response.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}/apis/ccompat/v7`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const configFor = (url: string, extra: Record<string, string> = {}) =>
  loadConfig({ TALLY_SCHEMA_REGISTRY_URL: url, ...extra });
const json = (value: unknown) => JSON.stringify(value);
const schemaAnswer = (schema: string, extra: object = {}) => ({
  status: 200,
  body: json({ schema, ...extra }),
});

/** What writerTypeOf makes of the scripted answer for schema id `id`, as an error class name. */
async function outcomeOf(id: number, answer: Answer, url = baseUrl): Promise<string> {
  answers.set(`/apis/ccompat/v7/schemas/ids/${id}`, answer);
  const registry = createRegistry(configFor(url));
  try {
    await writerTypeOf(registry, id);
    return "schema";
  } catch (error) {
    return (error as Error).name;
  }
}

/** schemaById of schema `id` answered as scripted, with a timeout: what it threw and how long it took. */
async function fetchScripted(
  id: number,
  answer: Answer,
  timeoutMs: number,
): Promise<{ error: unknown; elapsedMs: number }> {
  answers.set(`/apis/ccompat/v7/schemas/ids/${id}`, answer);
  const endpoint = { ...registryEndpointOf(configFor(baseUrl)), timeoutMs };
  const startedMs = performance.now();
  const error = await schemaById(endpoint, id).catch((e: unknown) => e);
  return { error, elapsedMs: performance.now() - startedMs };
}

describe("the answer to GET <base>/schemas/ids/<id>", () => {
  it("given 200 with Tally's schema, when fetched, then the writer type", async () => {
    expect(await outcomeOf(1, schemaAnswer(transferEventSchemaText))).toBe("schema");
  });

  it("given 404 with error_code 40403 (Confluent's and Apicurio's schema not found), then UnknownSchemaError", async () => {
    const notFound = { status: 404, body: json({ message: "Schema 2 not found.", error_code: 40403 }) };
    expect(await outcomeOf(2, notFound)).toBe("UnknownSchemaError");
  });

  it("given 404 from a path that is not the ccompat API (RESTEasy's answer), then transient", async () => {
    const body = json({ title: "RESTEASY003210: Could not find resource", status: 404 });
    expect(await outcomeOf(3, { status: 404, body })).toBe("TransientError");
  });

  it("given 404 with an HTML page (an ingress default), then transient", async () => {
    const page = { status: 404, body: "<html>default backend</html>", contentType: "text/html" };
    expect(await outcomeOf(4, page)).toBe("TransientError");
  });

  it("given 404 with another Confluent error code (40401 subject not found), then transient", async () => {
    expect(await outcomeOf(5, { status: 404, body: json({ error_code: 40401 }) })).toBe("TransientError");
  });

  it.each([500, 502, 503, 401, 403, 429])("given status %s, then transient", async (status) => {
    expect(await outcomeOf(100 + status, { status, body: json({ error_code: status * 100 }) })).toBe(
      "TransientError",
    );
  });

  it("given 200 with garbage instead of JSON, then transient (not the registry talking)", async () => {
    const garbage = { status: 200, body: "<html>welcome</html>", contentType: "text/html" };
    expect(await outcomeOf(6, garbage)).toBe("TransientError");
  });

  it("given 200 with JSON that holds no schema, then transient", async () => {
    expect(await outcomeOf(7, { status: 200, body: json({ hello: "world" }) })).toBe("TransientError");
  });

  it("given a port where nothing listens, when fetched, then transient", async () => {
    const url = `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`;
    expect(await outcomeOf(8, { status: 200, body: "" }, url)).toBe("TransientError");
  });

  it("given a registry that never answers, when fetched with a 200 ms timeout, then transient within it", async () => {
    const { error, elapsedMs } = await fetchScripted(9, "hang", 200);
    expect(error).toBeInstanceOf(TransientError);
    expect((error as TransientError).source).toBe("registry");
    expect(elapsedMs).toBeLessThan(2_000);
    expect((error as Error).message).toContain("no answer within 200 ms");
  });

  it("given a registry that sends the head and stalls in the body, when fetched with a 200 ms timeout, then transient within it", async () => {
    const { error, elapsedMs } = await fetchScripted(10, "stall-body", 200);
    expect(error).toBeInstanceOf(TransientError);
    expect(elapsedMs).toBeLessThan(2_000);
  });

  it("given a registry that closes the connection in the middle of the body, when fetched, then transient", async () => {
    const { error, elapsedMs } = await fetchScripted(11, "cut-body", 5_000);
    expect(error).toBeInstanceOf(TransientError);
    expect(elapsedMs).toBeLessThan(2_000);
  });
});

describe("a schema the registry has but Tally cannot read", () => {
  it("given schemaType PROTOBUF, then IncompatibleSchemaError naming the type", async () => {
    answers.set(
      "/apis/ccompat/v7/schemas/ids/20",
      schemaAnswer("syntax = 'proto3';", { schemaType: "PROTOBUF" }),
    );
    const error = await writerTypeOf(createRegistry(configFor(baseUrl)), 20).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompatibleSchemaError);
    expect((error as Error).message).toMatch(/PROTOBUF/);
  });

  it("given a decimal of scale 2, then IncompatibleSchemaError (read as scale 0 it would be 100 times off)", async () => {
    const scaled = JSON.parse(transferEventSchemaText);
    for (const field of scaled.fields) if (field.name === "amount") field.type.scale = 2;
    expect(await outcomeOf(21, schemaAnswer(json(scaled)))).toBe("IncompatibleSchemaError");
  });

  it("given a schema that is not JSON, then IncompatibleSchemaError", async () => {
    expect(await outcomeOf(22, schemaAnswer("{not json"))).toBe("IncompatibleSchemaError");
  });

  it("given a schema that is JSON but not Avro, then IncompatibleSchemaError", async () => {
    expect(await outcomeOf(23, schemaAnswer(json({ type: "no-such-type" })))).toBe("IncompatibleSchemaError");
  });
});

describe("credentials", () => {
  it("given a registry username, when fetched, then basic auth is sent and the password is in no error", async () => {
    answers.set("/apis/ccompat/v7/schemas/ids/30", { status: 503, body: "unavailable" });
    const config = configFor(baseUrl, {
      TALLY_SCHEMA_REGISTRY_USERNAME: "tally",
      TALLY_SCHEMA_REGISTRY_PASSWORD: "s3cret@,?",
    });
    seen.length = 0;
    const error = await schemaById(registryEndpointOf(config), 30).catch((e: unknown) => e);
    expect(seen[0]?.headers.authorization).toBe(`Basic ${Buffer.from("tally:s3cret@,?").toString("base64")}`);
    expect(error).toBeInstanceOf(TransientError);
    expect(String((error as Error).message)).not.toContain("s3cret");
  });
});

describe("a subject's compatibility, as `tally topics` sees it", () => {
  const configPath = (subject: string) => `/apis/ccompat/v7/config/${subject}`;
  const rulesPath = (subject: string) => `/apis/registry/v3/groups/default/artifacts/${subject}/rules`;

  /** Scripts GET config (and Apicurio's rules), runs ensureSubjectCompatibility, says what was PUT. */
  async function ensureWith(subject: string, config: Answer, rules?: Answer) {
    answers.set(`GET ${configPath(subject)}`, config);
    if (rules) answers.set(`GET ${rulesPath(subject)}`, rules);
    answers.set(`PUT ${configPath(subject)}`, {
      status: 200,
      body: json({ compatibility: "FULL_TRANSITIVE" }),
    });
    seen.length = 0;
    const result = await ensureSubjectCompatibility(configFor(baseUrl), subject);
    const put = seen.find((request) => request.method === "PUT");
    return { ...result, put: put?.url ?? null };
  }

  it("given a subject that does not exist (40401), when ensured, then FULL_TRANSITIVE is set", async () => {
    const result = await ensureWith("s1", { status: 404, body: json({ error_code: 40401 }) });
    expect(result).toEqual({ level: "FULL_TRANSITIVE", setByTally: true, put: configPath("s1") });
  });

  it("given Confluent's 'no compatibility of its own' (40408), when ensured, then FULL_TRANSITIVE is set", async () => {
    const result = await ensureWith("s2", { status: 404, body: json({ error_code: 40408 }) });
    expect(result).toEqual({ level: "FULL_TRANSITIVE", setByTally: true, put: configPath("s2") });
  });

  it("given an operator's BACKWARD, when ensured, then it is kept and nothing is PUT", async () => {
    const result = await ensureWith("s3", { status: 200, body: json({ compatibilityLevel: "BACKWARD" }) });
    expect(result).toEqual({ level: "BACKWARD", setByTally: false, put: null });
  });

  it("given Apicurio's NONE with a COMPATIBILITY rule (an operator's NONE), when ensured, then it is kept", async () => {
    const none = { status: 200, body: json({ compatibilityLevel: "NONE" }) };
    const result = await ensureWith("s4", none, { status: 200, body: json(["COMPATIBILITY"]) });
    expect(result).toEqual({ level: "NONE", setByTally: false, put: null });
  });

  it("given Apicurio's NONE with no rule at all (no level of its own), when ensured, then FULL_TRANSITIVE is set", async () => {
    const none = { status: 200, body: json({ compatibilityLevel: "NONE" }) };
    const result = await ensureWith("s5", none, { status: 200, body: json([]) });
    expect(result).toEqual({ level: "FULL_TRANSITIVE", setByTally: true, put: configPath("s5") });
  });

  it("given NONE and no way to tell whether it is the subject's own, when ensured, then it is kept", async () => {
    const none = { status: 200, body: json({ compatibilityLevel: "NONE" }) };
    const result = await ensureWith("s6", none, { status: 404, body: "not Apicurio" });
    expect(result).toEqual({ level: "NONE", setByTally: false, put: null });
  });

  it("given a registry answering 503, when ensured, then transient and nothing is PUT", async () => {
    const error = await ensureWith("s7", { status: 503, body: "busy" }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
    expect(seen.some((request) => request.method === "PUT")).toBe(false);
  });
});

describe("registering a schema (producers and tally topics)", () => {
  const versionsPath = (subject: string) => `/apis/ccompat/v7/subjects/${subject}/versions`;

  it("given a fresh subject, when registered, then one POST and its id: no compatibility read or set", async () => {
    answers.set(`POST ${versionsPath("r1")}`, { status: 200, body: json({ id: 41 }) });
    answers.set(`GET /apis/ccompat/v7/config/r1`, { status: 404, body: json({ error_code: 40401 }) });
    seen.length = 0;

    const { id } = await createRegistry(configFor(baseUrl)).register(
      { schema: transferEventSchemaText },
      { subject: "r1" },
    );

    expect(id).toBe(41);
    expect(seen.map((request) => `${request.method} ${request.url}`)).toEqual([`POST ${versionsPath("r1")}`]);
  });

  it("given a subject whose level refuses the schema (409), when registered, then RegistryAnswerError 409, not transient", async () => {
    const refusal = { status: 409, body: json({ error_code: 409, message: "Incompatible artifact" }) };
    answers.set(`POST ${versionsPath("r2")}`, refusal);
    const error = await createRegistry(configFor(baseUrl))
      .register({ schema: transferEventSchemaText }, { subject: "r2" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryAnswerError);
    expect(error).toMatchObject({ status: 409, errorCode: 409 });
  });

  it("given a registry answering 503, when registered, then transient", async () => {
    answers.set(`POST ${versionsPath("r3")}`, { status: 503, body: "busy" });
    const error = await createRegistry(configFor(baseUrl))
      .register({ schema: transferEventSchemaText }, { subject: "r3" })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransientError);
  });
});

describe("the classes", () => {
  it("given the error classes, then an unknown schema is no transient error and vice versa", () => {
    expect(new UnknownSchemaError("x")).not.toBeInstanceOf(TransientError);
    expect(new IncompatibleSchemaError("x")).not.toBeInstanceOf(TransientError);
  });
});
