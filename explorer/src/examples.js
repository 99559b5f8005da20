// The example operations the explorer opens with, one tab each. Field names follow
// schema.graphql; the ids are those of the demo's first sample talk (talkgate serve --demo:
// talk 200000, customer 500000, tracking number 20250901200000), and every tab answers with
// data there (tests/gateway/http/test_explorer_examples.py, tests/test_browser.py).

const talks = `# A page of talks, newest first. Pass pageInfo.endCursor as $after for the next page.
query Talks($first: Int = 5, $after: String) {
  talks(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node { id trackingNumber status createdAt finishedAt agent { name login } }
    }
  }
}
`;

const talk = `# One talk with its messages (oldest first) and events.
query Talk($id: ID = "200000") {
  talk(id: $id) {
    id trackingNumber status createdAt finishedAt
    channel { description }
    histories(first: 20) {
      totalCount
      edges { node { id type message createdAt user { name } } }
    }
    events { id createdAt isSuccess event { description } agent { name } }
  }
}
`;

const customer = `# A customer with personal data: needs the customers:pii scope.
query Customer($id: ID! = "500000") {
  customer(id: $id) {
    id name documentNumber
    telephones { areaCode number type }
    emails { email }
    customFields { name value }
    talks(first: 5) { totalCount edges { node { id trackingNumber status } } }
  }
}
`;

const recording = `# A call recording link from Talk.me: needs the recordings:read scope.
query Recording($protocol: String! = "20250901200000") {
  recording(protocol: $protocol) { protocol url fetchedAt }
}
`;

const pause = `# Pause an agent in the call queues: needs the agents:control scope.
# The demo's sandbox knows agents 1001, 1002 and 1003 (password demo-password).
mutation Pause($login: String! = "1001", $password: String! = "demo-password") {
  pauseAgent(input: { credentials: { login: $login, password: $password } }) {
    login status changedAt
  }
}
`;

const resume = `# Resume a paused agent in the call queues: needs the agents:control scope.
mutation Resume($login: String! = "1001", $password: String! = "demo-password") {
  resumeAgent(input: { credentials: { login: $login, password: $password } }) {
    login status changedAt
  }
}
`;

const talkUpdated = `# Every talk a webhook delivery changes, as it arrives (over graphql-transport-ws).
# Run it, then POST a talk to /webhooks/talks.
subscription TalkUpdated {
  talkUpdated {
    id trackingNumber status
    customer { name }
    histories(first: 3) { totalCount }
  }
}
`;

export const EXAMPLES = [talks, talk, customer, recording, pause, resume, talkUpdated];
