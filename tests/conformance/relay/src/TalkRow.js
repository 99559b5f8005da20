import { graphql } from "react-relay";

// A Node type's fragment Relay can refetch by itself (through Query.node).
export const talkRow = graphql`
  fragment TalkRow_talk on Talk @refetchable(queryName: "TalkRowRefetchQuery") {
    id
    databaseId
    trackingNumber
    status
    createdAt
    customer {
      id
      name
    }
    agent {
      id
      login
      queueStatus {
        status
        changedAt
      }
    }
  }
`;

export const customerCard = graphql`
  fragment CustomerCard_customer on Customer @refetchable(queryName: "CustomerCardRefetchQuery") {
    id
    databaseId
    name
  }
`;
