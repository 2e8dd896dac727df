// Apollo Client as an app uses it: runs the operations given as JSON, concurrently, against a
// URL with errorPolicy "all" (data beside errors), over HttpLink or BatchHttpLink, and prints
// what each query gave and how many HTTP requests carried them.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { BatchHttpLink } from "@apollo/client/link/batch-http";

const [url, token, linkName, operationsJson] = process.argv.slice(2);
let requests = 0;
const countingFetch = (...args) => {
  requests += 1;
  return fetch(...args);
};
const options = { uri: url, headers: { authorization: `Bearer ${token}` }, fetch: countingFetch };
const link =
  linkName === "batch"
    ? new BatchHttpLink({ ...options, batchMax: 10, batchInterval: 20 })
    : new HttpLink(options);
const client = new ApolloClient({ cache: new InMemoryCache(), link });
const operations = JSON.parse(operationsJson);
const results = await Promise.all(
  operations.map(({ query, variables }) =>
    client.query({ query: gql(query), variables, fetchPolicy: "network-only", errorPolicy: "all" }),
  ),
);
const errorsOf = (error) =>
  error === undefined ? [] : (error.errors ?? [{ message: String(error) }]);
console.log(
  JSON.stringify({
    requests,
    results: results.map(({ data, error }) => ({ data: data ?? null, errors: errorsOf(error) })),
  }),
);
