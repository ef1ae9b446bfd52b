// Starts GraphiQL against this server: queries and mutations over HTTP POST,
// subscriptions over a graphql-transport-ws WebSocket, both on /v1/graphql.
(function () {
  "use strict";
  var path = "/v1/graphql";
  var wsScheme = location.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({
    url: location.origin + path,
    subscriptionUrl: wsScheme + "//" + location.host + path,
  });
  var defaultQuery = [
    "# clustore-lite: Clustore's API, Hasura's conventions.",
    "# Ctrl+Enter runs, Ctrl+Space completes.",
    "",
    "{",
    "  organizations(order_by: {name: asc}) {",
    "    name",
    "    datasets {",
    "      name",
    "      dataframe { rows dim columns }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }));
})();
