import { graphql } from "react-relay";

// Relay's cursor pagination over talks: @connection, with a filter as the connection's key.
export const talkList = graphql`
  fragment TalkList_query on Query
  @argumentDefinitions(
    count: { type: "Int", defaultValue: 20 }
    cursor: { type: "String" }
    filter: { type: "TalkFilter" }
  )
  @refetchable(queryName: "TalkListPaginationQuery") {
    talks(first: $count, after: $cursor, filter: $filter) @connection(key: "TalkList_talks") {
      totalCount
      edges {
        node {
          id
          ...TalkRow_talk
        }
      }
    }
  }
`;

export const talksPage = graphql`
  query TalkListQuery($filter: TalkFilter) {
    ...TalkList_query @arguments(filter: $filter)
  }
`;

export const byId = graphql`
  query NodeQuery($id: ID!, $ids: [ID!]!) {
    node(id: $id) {
      __typename
      id
      ... on TalkHistory {
        message
        sentAt
      }
    }
    nodes(ids: $ids) {
      id
      ... on Agent {
        name
      }
    }
  }
`;
