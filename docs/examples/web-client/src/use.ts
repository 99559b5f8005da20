// Compiles only if the generated types fit what the partner guide's code does with them.
import type { TalkPageQuery, TalkPageQueryVariables } from "./generated/graphql";

export function trackingNumbers(page: TalkPageQuery): string[] {
  // `talks` is null when the whole field failed (an error is in `errors` then).
  return (page.talks?.edges ?? []).map((edge) => edge.node.trackingNumber);
}

export const firstPage: TalkPageQueryVariables = { first: 5, after: null };
