// A real graphql-transport-ws client (the `graphql-ws` package over `ws`), for tests and benchmarks.
//
//   node subscribe.mjs --url ws://HOST:PORT/graphql --token iapi_... --query 'subscription {...}'
//        [--variables JSON] [--origin URL] [--subscriptions N] [--count N]
//
// Opens one connection (token in connection_init, like a browser), starts the subscription N
// times on it (default 1), and prints one JSON object per line on stdout:
//   {"event":"connected"}                          connection_ack received
//   {"event":"ping"}                               the server pinged (the client answers pong)
//   {"event":"next","sub":i,"payload":{...},"at":ms} a result of subscription i (at: epoch ms)
//   {"event":"error","sub":i,"errors":[...]}       subscription i failed
//   {"event":"complete","sub":i}                   subscription i ended
//   {"event":"socket-error","message":"..."}       e.g. the handshake was refused (403)
//   {"event":"closed","code":4403,"reason":"..."}  the socket closed; the process then exits
// With --count it disposes the client and exits after that many results. It never retries.

import { parseArgs } from "node:util";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    query: { type: "string" },
    variables: { type: "string", default: "{}" },
    origin: { type: "string" },
    subscriptions: { type: "string", default: "1" },
    count: { type: "string" },
  },
});
if (!args.url || !args.token || !args.query) {
  process.stderr.write("usage: subscribe.mjs --url URL --token TOKEN --query QUERY [...]\n");
  process.exit(2);
}

const emit = (record) => process.stdout.write(JSON.stringify(record) + "\n");
const limit = args.count === undefined ? Infinity : Number(args.count);
let received = 0;

// Browsers send Origin themselves; `ws` sends it only when told, so the server's check can be
// exercised with any origin.
class OriginWebSocket extends WebSocket {
  constructor(address, protocols) {
    super(address, protocols, args.origin ? { headers: { Origin: args.origin } } : {});
  }
}

const client = createClient({
  url: args.url,
  webSocketImpl: OriginWebSocket,
  connectionParams: { Authorization: `Bearer ${args.token}` },
  lazy: false,
  retryAttempts: 0,
  shouldRetry: () => false,
  onNonLazyError: () => {},
  on: {
    connected: () => emit({ event: "connected" }),
    ping: (received) => received && emit({ event: "ping" }),
    error: (error) => emit({ event: "socket-error", message: String(error?.message ?? error) }),
    closed: (event) => {
      emit({ event: "closed", code: event?.code ?? null, reason: event?.reason ?? "" });
      process.exitCode = 0;
      setImmediate(() => process.exit());
    },
  },
});

const variables = JSON.parse(args.variables);
for (let sub = 0; sub < Number(args.subscriptions); sub += 1) {
  client.subscribe(
    { query: args.query, variables },
    {
      next: (payload) => {
        emit({ event: "next", sub, payload, at: performance.timeOrigin + performance.now() });
        received += 1;
        if (received >= limit) {
          client.dispose();
        }
      },
      error: (error) => {
        const errors = Array.isArray(error) ? error : [{ message: String(error?.reason ?? error) }];
        emit({ event: "error", sub, errors });
      },
      complete: () => emit({ event: "complete", sub }),
    },
  );
}
