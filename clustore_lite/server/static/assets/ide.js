// Starts GraphiQL against this server: queries and mutations over HTTP POST,
// subscriptions over a graphql-transport-ws WebSocket, both on /v1/graphql.
(function () {
  "use strict";
  var path = "/v1/graphql";
  var wsScheme = location.protocol === "https:" ? "wss:" : "ws:";
  // The Headers tab goes with every operation: as HTTP headers, and for subscriptions in
  // the WebSocket's connection_init payload as {"headers": {...}}, where the server (like
  // Hasura) reads them. A subscription gets a client of its own, so new headers apply to
  // the next one.
  function fetcher(params, options) {
    var headers = (options && options.headers) || {};
    return GraphiQL.createFetcher({
      url: location.origin + path,
      headers: headers,
      subscriptionUrl: wsScheme + "//" + location.host + path,
      wsConnectionParams: {headers: headers},
    })(params, Object.assign({}, options, {headers: undefined}));
  }
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
