"""The GraphQL API: the schema, selections compiled to SQL, mutations over the Python
API, the fast path for plain queries, limits, errors and live queries."""
