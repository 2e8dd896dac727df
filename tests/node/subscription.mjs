// Apollo Client subscribing as a frontend would: `jobChanged` over a WebSocket (GraphQLWsLink
// and graphql-ws, the token in connection_init) and over plain HTTP (HttpLink's multipart
// subscriptions). Once both are open, a mutation through the gateway aborts a job of the
// window; each subscription must then deliver that job's UPDATED event.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { GraphQLWsLink } from "@apollo/client/link/subscriptions";
import { isSubscriptionOperation } from "@apollo/client/utilities";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token] = process.argv.slice(2);
const headers = { authorization: `Bearer ${token}` };
const http = new HttpLink({ uri: url, headers });
const sockets = createClient({
  url: url.replace(/^http/, "ws"),
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
});
const overSocket = new ApolloClient({
  cache: new InMemoryCache(),
  link: ApolloLink.split(({ query }) => isSubscriptionOperation(query), new GraphQLWsLink(sockets), http),
});
const overHttp = new ApolloClient({ cache: new InMemoryCache(), link: http });
const WATCH = gql`
  subscription Watch {
    jobChanged(first: 10) { kind jobId job { id jobId metadata { clientJobId status } } }
  }
`;

function firstUpdate(client) {
  return new Promise((resolve, reject) => {
    const subscription = client.subscribe({ query: WATCH }).subscribe({
      next: (result) => {
        if (result.data?.jobChanged?.kind === "UPDATED") {
          subscription.unsubscribe();
          resolve(result.data.jobChanged);
        }
      },
      error: reject,
    });
  });
}

const events = Promise.all([firstUpdate(overSocket), firstUpdate(overHttp)]);
await new Promise((resolve) => setTimeout(resolve, 1500)); // both pollers' baselines
const page = await overSocket.query({
  query: gql`query Window { jobs(first: 10) { nodes { jobId metadata { clientJobId status } } } }`,
});
const open = page.data.jobs.nodes.find(
  (node) => !["Completed", "Aborted", "Abandoned"].includes(node.metadata.status),
);
await overSocket.mutate({
  mutation: gql`mutation Abort($id: ID!) { abortJob(input: { clientJobId: $id }) { job { id } } }`,
  variables: { id: open.metadata.clientJobId },
});
const timeout = setTimeout(() => {
  console.log(JSON.stringify({ error: "no events within 10 s" }));
  process.exit(1);
}, 10000);
const [socketEvent, httpEvent] = await events;
clearTimeout(timeout);
await sockets.dispose();
console.log(JSON.stringify({ aborted: open.jobId, socketEvent, httpEvent }));
process.exit(0);
