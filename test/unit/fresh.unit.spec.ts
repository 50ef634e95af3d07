// freshAnswers: no caller gets an answer asked for before it asked (KafkaLog's log windows: an older
// answer could miss a commit made since and read as "stored offset above the log's end").
import { describe, expect, it } from "vitest";
import { freshAnswers } from "../../services/common/fresh.ts";

/** A server whose answers the test releases one by one; each answer is the request's number. */
function scriptedServer() {
  const pending: { n: number; release: () => void; fail: (e: Error) => void }[] = [];
  let asked = 0;
  const ask = () =>
    new Promise<number>((resolve, reject) => {
      const n = ++asked;
      pending.push({ n, release: () => resolve(n), fail: reject });
    });
  return { ask, pending, asked: () => asked };
}

const tick = () => new Promise((r) => setImmediate(r));

describe("freshAnswers", () => {
  it("given many callers while one request is under way, when answered, then they all share the next one", async () => {
    const server = scriptedServer();
    const fresh = freshAnswers(server.ask);
    const first = fresh();
    const rest = Promise.all([fresh(), fresh(), fresh()]);
    server.pending[0]!.release();
    await tick();
    server.pending[1]!.release();
    expect([await first, ...(await rest)]).toEqual([1, 2, 2, 2]);
    expect(server.asked()).toBe(2);
  });

  it("given a request under way, when a caller arrives, then it gets the next request's answer, not that one", async () => {
    const server = scriptedServer();
    const fresh = freshAnswers(server.ask);
    const first = fresh();
    const late = fresh(); // asked while request 1 was under way
    const later = fresh(); // shares the queued request with `late`
    expect(server.asked()).toBe(1);
    server.pending[0]!.release();
    expect(await first).toBe(1);
    await tick();
    expect(server.asked()).toBe(2);
    server.pending[1]!.release();
    expect(await Promise.all([late, later])).toEqual([2, 2]);
  });

  it("given a failed request, when a caller was queued behind it, then the queued caller still gets a fresh answer", async () => {
    const server = scriptedServer();
    const fresh = freshAnswers(server.ask);
    const first = fresh();
    const late = fresh();
    server.pending[0]!.fail(new Error("broker away"));
    await expect(first).rejects.toThrow("broker away");
    await tick();
    server.pending[1]!.release();
    expect(await late).toBe(2);
    // and once everything settled, a new caller asks anew
    const again = fresh();
    server.pending[2]!.release();
    expect(await again).toBe(3);
  });
});
