// The member's pause and resume of a partition (services/applier/member.ts pauseControlOf) while
// kafkajs restarts a crashed consumer: found by the cluster's leader-broker fault test, where a
// deferral's resume timer fired in that window and the thrown error ended the applier process.
import { Kafka, logLevel } from "kafkajs";
import { describe, expect, it } from "vitest";
import { pauseControlOf } from "../../services/applier/member.ts";

/** A kafkajs consumer with no group: as after a crash, before kafkajs starts it again. */
function consumerWithoutGroup() {
  return new Kafka({ brokers: ["127.0.0.1:1"], logLevel: logLevel.NOTHING }).consumer({ groupId: "g" });
}

describe("pauseControlOf", () => {
  it("given a consumer without a group (restarting after a crash), when a partition is paused and resumed, then nothing is thrown", () => {
    const consumer = consumerWithoutGroup();
    // What the member called directly before: kafkajs throws here.
    expect(() => consumer.resume([{ topic: "t", partitions: [3] }])).toThrow(
      /Consumer group was not initialized/,
    );
    const control = pauseControlOf(consumer, "t");

    expect(() => control.pause(3)).not.toThrow();
    expect(() => control.resume(3)).not.toThrow();
  });

  it("given a running consumer, when a partition is paused and resumed, then the calls reach it for that topic and partition", () => {
    const calls: string[] = [];
    const consumer = {
      pause: (tps: { topic: string; partitions?: number[] }[]) =>
        void calls.push(`pause ${JSON.stringify(tps)}`),
      resume: (tps: { topic: string; partitions?: number[] }[]) =>
        void calls.push(`resume ${JSON.stringify(tps)}`),
    };
    const control = pauseControlOf(consumer, "t");

    control.pause(2);
    control.resume(2);

    expect(calls).toEqual([
      'pause [{"topic":"t","partitions":[2]}]',
      'resume [{"topic":"t","partitions":[2]}]',
    ]);
  });

  it("given any other error from the consumer, when resumed, then it is thrown as before", () => {
    const consumer = {
      pause: () => {},
      resume: () => {
        throw new Error("Invalid topic t");
      },
    };

    expect(() => pauseControlOf(consumer, "t").resume(1)).toThrow("Invalid topic t");
  });
});
