// Starts Swagger UI on this service's own OpenAPI document. A separate file, so the
// page's Content-Security-Policy needs no inline script. The token pasted under
// "Authorize" stays in this tab's memory only (persistAuthorization is off).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false,
    validatorUrl: null,
  });
});
