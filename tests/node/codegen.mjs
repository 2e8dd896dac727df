// A frontend built with graphql-codegen's client preset (persistedDocuments, sha256): Apollo
// Client runs the generated documents through PersistedQueryLink with codegen's own hashes,
// as codegen's docs recommend, so only hashes travel; then a hand-written query is tried.
import { readFileSync } from "node:fs";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [generatedDir, url, token] = process.argv.slice(2);
// graphql.ts holds each document as a JSON literal with its hash in `__meta__`; Node 20 cannot
// load TypeScript, so the literals are read out of it as they are.
const generated = readFileSync(`${generatedDir}/graphql.ts`, "utf8");
const documents = Object.fromEntries(
  [...generated.matchAll(/^export const (\w+)Document = (\{.*\}) as unknown as/gm)].map(
    ([, name, literal]) => [name, JSON.parse(literal)],
  ),
);
const sent = [];
const http = new HttpLink({
  uri: url,
  headers: { authorization: `Bearer ${token}` },
  fetch: (input, init) => {
    sent.push(JSON.parse(init.body));
    return fetch(input, init);
  },
});
const persisted = new PersistedQueryLink({ generateHash: (document) => document.__meta__.hash });
const client = new ApolloClient({ cache: new InMemoryCache(), link: persisted.concat(http) });
const options = { fetchPolicy: "network-only", errorPolicy: "all" };
const overview = await client.query({ query: documents.Overview, ...options });
const id = overview.data.jobs.nodes[0].id;
const detail = await client.query({ query: documents.JobDetail, variables: { id }, ...options });
const plain = new ApolloClient({ cache: new InMemoryCache(), link: http });
const handWritten = await plain.query({ query: gql`{ jobs { totalCount } }`, ...options });
const errorsOf = (error) => (error === undefined ? [] : (error.errors ?? [{ message: String(error) }]));
console.log(
  JSON.stringify({
    hashes: Object.fromEntries(Object.entries(documents).map(([name, d]) => [name, d.__meta__.hash])),
    overview: overview.data,
    detail: detail.data,
    handWritten: { data: handWritten.data ?? null, errors: errorsOf(handWritten.error) },
    sent,
  }),
);
