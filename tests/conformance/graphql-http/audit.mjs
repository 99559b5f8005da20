// Runs graphql-http's serverAudits against TALKGATE_URL (with TALKGATE_KEY as a bearer key
// when set) and prints one JSON line per audit: {"id", "name", "status", "reason"}.
// status: "ok", "warn" (a SHOULD or MAY not met) or "error" (a MUST not met).
import { serverAudits } from 'graphql-http';

const url = process.env.TALKGATE_URL;
const key = process.env.TALKGATE_KEY;
if (!url) {
  console.error('TALKGATE_URL is required');
  process.exit(2);
}

function fetchFn(input, init = {}) {
  if (!key) return fetch(input, init);
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${key}`);
  return fetch(input, { ...init, headers });
}

for (const { id, name, fn } of serverAudits({ url, fetchFn })) {
  // One at a time: the answers do not depend on which ran first (the response cache is
  // filled by the first well-formed query).
  const result = await fn();
  const reason = result.status === 'ok' ? null : result.reason;
  console.log(JSON.stringify({ id, name, status: result.status, reason }));
}
