// Apollo Client with its persisted-queries link: runs one query twice against a URL and
// prints what the client got. The link sends the hash first and the query only when asked.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, token, useGet] = process.argv.slice(2);
const sha256 = (text) => createHash("sha256").update(text).digest("hex");
const client = new ApolloClient({
  cache: new InMemoryCache(),
  link: new PersistedQueryLink({ sha256, useGETForHashedQueries: useGet === "get" }).concat(
    new HttpLink({ uri: url, headers: { authorization: `Bearer ${token}` } }),
  ),
});
const query = gql`
  query FirstJobs {
    jobs(first: 3) {
      nodes { jobId metadata { jobTitle } }
    }
  }
`;
const first = await client.query({ query, fetchPolicy: "network-only" });
const second = await client.query({ query, fetchPolicy: "network-only" });
console.log(JSON.stringify({ first: first.data, second: second.data }));
