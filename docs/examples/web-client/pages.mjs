// Apollo Client's cache on talkgate's connections: two pages of talks merged into one list by
// relayStylePagination, as the partner guide shows. Run: node pages.mjs URL KEY
// (tests/test_web_client.py runs it against a demo and checks what it prints).
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";

const [url, key] = process.argv.slice(2);

const cache = new InMemoryCache({
  typePolicies: {
    Query: {
      fields: {
        // One list per filter and order; pages (after:) are merged into it.
        talks: relayStylePagination(["filter", "orderBy"]),
        customers: relayStylePagination(["filter"]),
      },
    },
    Customer: { fields: { talks: relayStylePagination() } },
    Talk: { fields: { histories: relayStylePagination() } },
  },
});

const client = new ApolloClient({
  cache,
  link: new HttpLink({ uri: url, headers: { Authorization: `Bearer ${key}` } }),
});

const TALKS = gql`
  query TalkPage($first: Int!, $after: String) {
    talks(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id trackingNumber } }
    }
  }
`;

const first = await client.query({ query: TALKS, variables: { first: 5 } });
// The next page, as `fetchMore` asks for it in an app: from the network, merged into the list.
await client.query({
  query: TALKS,
  variables: { first: 5, after: first.data.talks.pageInfo.endCursor },
  fetchPolicy: "network-only",
});
// The cache's list for `talks` (no filter): both pages, in order.
const merged = cache.readQuery({ query: TALKS, variables: { first: 5 } });
console.log(
  JSON.stringify({
    totalCount: merged.talks.totalCount,
    ids: merged.talks.edges.map((edge) => edge.node.id),
    hasNextPage: merged.talks.pageInfo.hasNextPage,
  }),
);
