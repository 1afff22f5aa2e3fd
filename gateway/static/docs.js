// The API reference: Swagger UI (shipped with the package, served by the gateway) rendering the
// OpenAPI document served next to this page. No inline script, so the page's CSP allows only
// scripts from the gateway itself.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    validatorUrl: null,
  });
});
