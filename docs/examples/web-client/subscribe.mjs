import { createClient } from "graphql-ws";
import WebSocket from "ws"; // Node only; a browser has WebSocket built in

const client = createClient({
  url: process.env.TALKGATE_WS_URL ?? "ws://127.0.0.1:8000/graphql",
  webSocketImpl: WebSocket, // Node; omit it in a browser
  connectionParams: { authorization: `Bearer ${process.env.TALKGATE_KEY}` },
  on: { closed: (event) => console.log("closed", event.code, event.reason) },
});

const stop = client.subscribe(
  {
    query: `subscription Finished($filter: TalkFilter) {
      talkUpdated(filter: $filter) { id status finishedAt customer { name } }
    }`,
    variables: { filter: { status: "FINISHED" } },
  },
  {
    next: ({ data, errors }) =>
      console.log("talkUpdated", JSON.stringify(data), ...(errors ? [errors] : [])),
    error: (error) => console.error("subscription failed", error),
    complete: () => console.log("complete"),
  },
);

const agents = client.subscribe(
  { query: `subscription { agentStatusChanged(login: "1001") { login status changedAt } }` },
  {
    next: ({ data }) => console.log("agentStatusChanged", JSON.stringify(data)),
    error: (error) => console.error("subscription failed", error),
    complete: () => {},
  },
);

// Stop after a while (a real client keeps listening).
setTimeout(() => { stop(); agents(); client.dispose(); }, Number(process.env.LISTEN_MS ?? 60000));
