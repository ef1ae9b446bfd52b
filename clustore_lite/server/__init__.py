"""The HTTP server: Starlette routes for GraphQL, WebSockets, Arrow streams and the IDE."""
