// The reference graphql-transport-ws client against talkgate: each scenario prints one JSON
// line, {"scenario", "saw"}, with what the client saw (results, errors' codes, close codes);
// tests/conformance/test_graphql_ws_client.py compares them with what the protocol says.
//
//   TALKGATE_WS_URL          a server with a subscription limit of 2
//   TALKGATE_WS_URL_LIMITED  a server whose key has 1 operation a minute
//   TALKGATE_KEY             a key with talks:read on both
// The line {"ready": "talks"} means a talkUpdated subscription is open: the caller then
// posts one talk to the first server.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const key = process.env.TALKGATE_KEY;
const print = (line) => console.log(JSON.stringify(line));

function client(url) {
  const closes = [];
  const made = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${key}` },
    retryAttempts: 0,
    lazy: false,
    on: { closed: (event) => closes.push(event.code) },
  });
  made.closes = closes;
  return made;
}

// What one operation delivers: results, then "complete" or its errors' codes.
function run(on, payload, { take = Infinity, onStart } = {}) {
  return new Promise((resolve) => {
    const saw = [];
    let stop = () => {};
    stop = on.subscribe(payload, {
      next: (result) => {
        saw.push({ next: result });
        if (saw.length >= take) {
          stop(); // the client sends `complete`
          resolve(saw);
        }
      },
      error: (error) => {
        if (Array.isArray(error)) {
          saw.push({ error: error.map((e) => ({ code: e.extensions?.code, ...pick(e.extensions) })) });
        } else {
          saw.push({ closed: error?.code ?? String(error) });
        }
        resolve(saw);
      },
      complete: () => {
        saw.push("complete");
        resolve(saw);
      },
    });
    if (onStart) onStart(stop);
  });
}

function pick(extensions = {}) {
  const kept = {};
  for (const name of ["limit"]) if (name in extensions) kept[name] = extensions[name];
  return kept;
}

const TALK = "subscription { talkUpdated { id: databaseId } }";
const main = client(process.env.TALKGATE_WS_URL);

print({ scenario: "query", saw: await run(main, { query: "{ __typename }" }) });

const event = run(main, { query: TALK }, { take: 1 });
// The server has the subscription once it answers an operation sent after it.
await run(main, { query: "{ __typename }" });
print({ ready: "talks" });
print({ scenario: "subscription event, then complete", saw: await event });

print({
  scenario: "validation error",
  saw: await run(main, { query: "subscription { talkUpdated { nope } }" }),
});
print({ scenario: "syntax error", saw: await run(main, { query: "subscription { talkUpdated { id " }) });
print({
  scenario: "unknown operation",
  saw: await run(main, { query: "subscription A { talkUpdated { id } }", operationName: "B" }),
});

// Two subscriptions held open: a third is refused, and the socket carries on.
const held = [];
const one = run(main, { query: TALK }, { onStart: (stop) => held.push(stop) });
const two = run(main, { query: TALK }, { onStart: (stop) => held.push(stop) });
print({ scenario: "subscription limit", saw: await run(main, { query: TALK }) });
for (const stop of held) stop();
await Promise.race([Promise.all([one, two]), new Promise((r) => setTimeout(r, 200))]);
print({ scenario: "after the limit", saw: await run(main, { query: "{ __typename }" }) });
// Errors and limits are the operations': the one socket stayed up through all of them.
print({ scenario: "sockets closed before dispose", saw: main.closes });
await main.dispose();

const limited = client(process.env.TALKGATE_WS_URL_LIMITED);
print({ scenario: "first operation on a 1-a-minute key", saw: await run(limited, { query: "{ __typename }" }) });
print({ scenario: "rate limit", saw: await run(limited, { query: "{ __typename }" }) });
await limited.dispose();

// The legacy subprotocol alone: refused at the handshake, no 101.
const legacy = await new Promise((resolve) => {
  const socket = new WebSocket(process.env.TALKGATE_WS_URL, "graphql-ws");
  socket.on("unexpected-response", (_request, response) => resolve({ status: response.statusCode }));
  socket.on("open", () => resolve({ opened: socket.protocol }));
  socket.on("error", (error) => resolve({ error: error.message }));
});
print({ scenario: "legacy subprotocol", saw: legacy });
