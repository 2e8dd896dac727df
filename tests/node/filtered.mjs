// Paging a filtered list whose pages can come back short or empty (the gateway's scan stopped
// early): Apollo Client with relayStylePagination merging each page fetched on endCursor, and
// urql (its document cache) paging on endCursor as its docs show, each until hasNextPage is
// false. Prints the jobs each ends with. (Graphcache's relayPagination is not used: it skips
// pages with no edges, so its merged endCursor would not move past an empty page.)
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";
import { Client, cacheExchange, fetchExchange } from "@urql/core";

const [url, token, filterJson] = process.argv.slice(2);
const filter = JSON.parse(filterJson);
const headers = { authorization: `Bearer ${token}` };
const QUERY = `
  query Filtered($filter: JobFilter, $after: String) {
    jobs(first: 4, after: $after, filter: $filter) {
      edges { cursor node { id jobId } }
      pageInfo { hasNextPage endCursor }
    }
  }
`;

const apollo = new ApolloClient({
  cache: new InMemoryCache({ typePolicies: { Query: { fields: { jobs: relayStylePagination(["filter"]) } } } }),
  link: new HttpLink({ uri: url, headers }),
});
// Each later page is written under the same field (keyArgs: filter) and merged by
// relayStylePagination, as fetchMore does; the merged list is read back from the cache.
const first = await apollo.query({ query: gql(QUERY), variables: { filter } });
let pageInfo = first.data.jobs.pageInfo;
let apolloPages = 1;
let shortPages = 0;
while (pageInfo.hasNextPage) {
  const more = await apollo.query({
    query: gql(QUERY),
    variables: { filter, after: pageInfo.endCursor },
    fetchPolicy: "network-only",
  });
  if (more.data.jobs.edges.length < 4) shortPages += 1;
  pageInfo = more.data.jobs.pageInfo;
  apolloPages += 1;
  if (apolloPages > 200) throw new Error("Apollo did not reach the end");
}
const page = { data: apollo.readQuery({ query: gql(QUERY), variables: { filter } }) };
const apolloJobs = page.data.jobs.edges.map((edge) => edge.node.jobId);

const urql = new Client({
  url,
  exchanges: [cacheExchange, fetchExchange],
  fetchOptions: { headers },
  preferGetMethod: false,
});
let after = null;
let urqlPages = 0;
let urqlJobs = [];
for (;;) {
  const result = await urql.query(QUERY, { filter, after }).toPromise();
  if (result.error) throw result.error;
  urqlPages += 1;
  urqlJobs = urqlJobs.concat(result.data.jobs.edges.map((edge) => edge.node.jobId));
  if (!result.data.jobs.pageInfo.hasNextPage) break;
  after = result.data.jobs.pageInfo.endCursor;
  if (urqlPages > 200) throw new Error("urql did not reach the end");
}
console.log(JSON.stringify({ apolloJobs, apolloPages, shortPages, urqlJobs, urqlPages }));
