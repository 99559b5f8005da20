// talkgate's explorer: GraphiQL with the explorer plugin, self-hosted (no CDN, no inline
// script), talking to this gateway over HTTP and, for subscriptions, graphql-transport-ws.
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { getOperationAST, parse } from "graphql";
import { setNonce } from "get-nonce";
import { createClient } from "graphql-ws";
import { createRoot } from "react-dom/client";

import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./explorer.css";

import { EXAMPLES } from "./examples.js";

// GraphiQL's dialogs (react-remove-scroll) add a <style> element while they are open. The
// page's policy admits no inline style but the one carrying this response's nonce, which the
// gateway writes on this script's tag (browsers hide it from the DOM, not from the element).
const styleNonce = document.currentScript?.nonce;
if (styleNonce) setNonce(styleNonce);

const HTTP_URL = `${location.origin}/graphql`;
const WS_URL = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;

// In demo mode the gateway writes a ready key into this meta tag; otherwise it is empty.
const demoKey = document.querySelector('meta[name="talkgate-demo-key"]')?.content ?? "";
const HEADERS = JSON.stringify({ Authorization: `Bearer ${demoKey || "<your key>"}` }, null, 2);

function authorizationOf(headers) {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.toLowerCase() === "authorization" && typeof value === "string") return value;
  }
  return "";
}

// The socket authenticates once, in connection_init: a new Authorization in the headers
// tab needs a new socket, so there is one fetcher per header value (the old one is closed).
let current = { authorization: null, fetcher: null, client: null };

function fetcherFor(authorization) {
  if (current.authorization !== authorization) {
    current.client?.dispose();
    const client = createClient({
      url: WS_URL,
      lazy: true,
      retryAttempts: 0,
      connectionParams: authorization ? { authorization } : {},
    });
    current = {
      authorization,
      client,
      fetcher: createGraphiQLFetcher({ url: HTTP_URL, wsClient: client }),
    };
  }
  return current.fetcher;
}

// The toolkit sends an operation over the socket when `documentAST` names it as a
// subscription. GraphiQL's own `documentAST` and operation name can be missing (no schema
// yet, before the key is set) or stale (from the tab shown before): both are settled here
// from the query actually sent.
function resolved(params, options) {
  let document;
  try {
    document = parse(params.query);
  } catch {
    return [params, options];
  }
  // A name that is not in the document is a stale one (from another tab): a lone
  // operation is then the one to run.
  const operation =
    getOperationAST(document, params.operationName || undefined) ?? getOperationAST(document);
  const operationName = operation?.name?.value ?? params.operationName;
  return [{ ...params, operationName }, { ...options, documentAST: document }];
}

// GraphiQL loads the schema without the headers tab's content: it goes with the headers
// of the last operation run (at first, the default ones), so the schema button works
// once the key has been used.
let lastHeaders = JSON.parse(HEADERS);

function fetcher(params, options) {
  const [named, opts] = resolved(params, options ?? {});
  if (opts.headers) {
    lastHeaders = opts.headers;
  } else {
    opts.headers = lastHeaders;
  }
  return fetcherFor(authorizationOf(opts.headers))(named, opts);
}

const explorer = explorerPlugin({ showAttribution: false });

function Explorer() {
  return (
    <GraphiQL
      fetcher={fetcher}
      plugins={[explorer]}
      defaultHeaders={HEADERS}
      defaultTabs={EXAMPLES.map((query) => ({ query, headers: HEADERS }))}
      defaultEditorToolsVisibility="headers"
      isHeadersEditorEnabled
      shouldPersistHeaders={false}
    >
      <GraphiQL.Logo>talkgate</GraphiQL.Logo>
    </GraphiQL>
  );
}

createRoot(document.getElementById("explorer")).render(<Explorer />);
