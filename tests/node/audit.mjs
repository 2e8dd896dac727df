// Runs graphql-http's GraphQL-over-HTTP server audits against a URL; prints JSON results.
import { auditServer } from "graphql-http";

const results = await auditServer({ url: process.argv[2] });
console.log(JSON.stringify(results.map(({ id, name, status, reason }) => ({ id, name, status, reason }))));
