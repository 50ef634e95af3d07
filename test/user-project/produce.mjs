// A user's producer, in plain JavaScript, with only @tally/producer: sends a few mints, moves, a
// burn and one double spend to Tally's topic (TALLY_KAFKA_BROKERS, TALLY_SCHEMA_REGISTRY_URL and
// TALLY_TOPIC, read by fromEnv), then prints the balances Tally must show for them: one JSON line
// on stdout, { "<wallet>": { "<asset>": "<minor units>" } }, non-zero balances only.
// infra/user-project.sh copies this file into a project outside the repository and runs it there.
import { randomUUID } from "node:crypto";
import { fromEnv, problemsText, TransferProducer } from "@tally/producer";

/** [token, asset, amount, from, to, prev state, next state]; from null = mint, to null = burn. */
const transfers = [
  ["tok-1", "USD", 1_000n, null, "alice", null, "s1"],
  ["tok-2", "USD", 2_500n, null, "alice", null, "s1"],
  ["tok-3", "EUR", 700n, null, "bob", null, "s1"],
  ["tok-4", "EUR", 99n, null, "bob", null, "s1"],
  ["tok-1", "USD", 1_000n, "alice", "bob", "s1", "s2"],
  // alice spends tok-1 again from the state she no longer holds: Tally rejects it (state_conflict)
  ["tok-1", "USD", 1_000n, "alice", "dave", "s1", "s9"],
  ["tok-1", "USD", 1_000n, "bob", "carol", "s2", "s3"],
  ["tok-3", "EUR", 700n, "bob", "alice", "s1", "s2"],
  ["tok-4", "EUR", 99n, "bob", null, "s1", "burned"],
];

const events = transfers.map(([token, asset, amount, from, to, prev, next], i) => ({
  transfer_id: randomUUID(),
  batch_id: null,
  token_id: token,
  asset,
  amount,
  from_wallet: from,
  to_wallet: to,
  prev_state: prev,
  next_state: next,
  occurred_at: Date.now() + i,
}));

// What a correct Tally makes of them: a move or burn applies only from the token's current state
// and owner; anything else is rejected and moves nothing.
const tokens = new Map();
const balances = {};
const add = (wallet, asset, amount) => {
  balances[wallet] ??= {};
  balances[wallet][asset] = (balances[wallet][asset] ?? 0n) + amount;
};
let rejected = 0;
for (const e of events) {
  const token = tokens.get(e.token_id);
  const applies =
    e.from_wallet === null
      ? token === undefined
      : token !== undefined && token.owner === e.from_wallet && token.state === e.prev_state;
  if (!applies) {
    rejected += 1;
    continue;
  }
  if (e.from_wallet !== null) add(e.from_wallet, e.asset, -e.amount);
  if (e.to_wallet !== null) add(e.to_wallet, e.asset, e.amount);
  tokens.set(e.token_id, { owner: e.to_wallet, state: e.next_state });
}

const connection = fromEnv();
const producer = new TransferProducer(connection);
await producer.connect();
try {
  const results = await producer.send(events);
  const failed = results.flatMap((r, i) => (r.ok ? [] : [`event ${i}: ${problemsText(r.problems)}`]));
  if (failed.length > 0) throw new Error(`events refused:\n${failed.join("\n")}`);
  const where = results.map((r) => `${r.partition}/${r.offset}`).join(" ");
  console.error(
    `produce: ${events.length} events sent to ${connection.topic} (partition/offset: ${where}); ` +
      `${rejected} of them a double spend Tally must reject`,
  );
} finally {
  await producer.disconnect();
}

// Every wallet named in an event, with its non-zero balances (bob ends with none; dave, the double
// spend's receiver, never had any).
const expected = {};
for (const wallet of events.flatMap((e) => [e.from_wallet, e.to_wallet]).filter((w) => w !== null)) {
  expected[wallet] = {};
  for (const [asset, amount] of Object.entries(balances[wallet] ?? {}))
    if (amount !== 0n) expected[wallet][asset] = amount.toString();
}
console.log(JSON.stringify(expected));
