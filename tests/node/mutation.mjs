// Apollo Client's normalised cache and a mutation: read a page of jobs, abort one with a
// mutation whose payload carries the job (with its `id`), then read the page from the cache
// alone: the job in it shows the new status without another request.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";

const [url, token] = process.argv.slice(2);
let requests = 0;
const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new HttpLink({
    uri: url,
    headers: { authorization: `Bearer ${token}` },
    fetch: (...args) => {
      requests += 1;
      return fetch(...args);
    },
  }),
});
const PAGE = gql`
  query Page {
    jobs(first: 12) { nodes { id metadata { clientJobId status } } }
  }
`;
const page = await client.query({ query: PAGE });
const open = page.data.jobs.nodes.find(
  (node) => !["Completed", "Aborted", "Abandoned"].includes(node.metadata.status),
);
const result = await client.mutate({
  mutation: gql`
    mutation Abort($clientJobId: ID!) {
      abortJob(input: { clientJobId: $clientJobId, clientMutationId: "abort-1" }) {
        clientMutationId
        job { id metadata { clientJobId status } }
      }
    }
  `,
  variables: { clientJobId: open.metadata.clientJobId },
});
const before = requests;
const cached = await client.query({ query: PAGE, fetchPolicy: "cache-only" });
const after = cached.data.jobs.nodes.find((node) => node.id === open.id);
console.log(
  JSON.stringify({
    id: open.id,
    statusBefore: open.metadata.status,
    payload: result.data.abortJob,
    statusInCache: after.metadata.status,
    requestsForCacheRead: requests - before,
  }),
);
