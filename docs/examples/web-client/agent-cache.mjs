// Apollo Client's normalized cache and the agent mutations: pauseAgent's payload selects its
// `agent` (with `id`), so the agent a screen watches shows PAUSED without a refetch.
// Run: node agent-cache.mjs URL KEY LOGIN PASSWORD
// (tests/test_web_client.py runs it against a demo and checks what it prints).
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [url, key, login, password] = process.argv.slice(2);

let requests = 0;
const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new HttpLink({
    uri: url,
    headers: { Authorization: `Bearer ${key}` },
    fetch: (...args) => {
      requests += 1;
      return fetch(...args);
    },
  }),
});

const AGENT = gql`
  query Agent($login: String!) {
    agent(login: $login) { id name queueStatus { status } }
  }
`;
const PAUSE = gql`
  mutation Pause($input: AgentAuthInput!) {
    pauseAgent(input: $input) {
      status
      agent { id queueStatus { status changedAt } }
    }
  }
`;

// Until `done()` holds, or 5 seconds.
const until = async (done) => {
  for (let waited = 0; !done() && waited < 5000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

// A screen watching the agent, from the cache once it is there.
const seen = [];
const watched = client
  .watchQuery({ query: AGENT, variables: { login }, fetchPolicy: "cache-first" })
  .subscribe(({ data }) => {
    if (data?.agent) seen.push(data.agent.queueStatus.status);
  });
await until(() => seen.length > 0);

await client.mutate({
  mutation: PAUSE,
  variables: { input: { credentials: { login, password } } },
});
await until(() => seen.length > 1);
watched.unsubscribe();

// What the screen showed, and how many requests it took: the query and the mutation only.
console.log(JSON.stringify({ seen, requests }));
