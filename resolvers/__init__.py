"""The read side: the Strawberry GraphQL schema and its resolvers over the per-account cache."""
