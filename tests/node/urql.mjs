// urql as an app uses it (its default fetchExchange, which sends queries as GET within the
// URL limit): runs one query and prints the data and the GraphQL errors it got beside them.
import { Client, fetchExchange, gql } from "@urql/core";

const [url, token, query] = process.argv.slice(2);
let methods = [];
const client = new Client({
  url,
  exchanges: [fetchExchange],
  fetchOptions: { headers: { authorization: `Bearer ${token}` } },
  fetch: (input, init) => {
    methods.push(init.method);
    return fetch(input, init);
  },
});
const result = await client.query(gql(query), {}).toPromise();
console.log(
  JSON.stringify({
    methods,
    data: result.data ?? null,
    errors: (result.error?.graphQLErrors ?? []).map(({ message, path, extensions }) => ({
      message,
      path,
      extensions,
    })),
    networkError: result.error?.networkError ? String(result.error.networkError) : null,
  }),
);
