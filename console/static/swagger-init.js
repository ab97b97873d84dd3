// Starts the pinned Swagger UI on /schema (a file, not inline script, so the page's CSP needs no exception).
window.ui = SwaggerUIBundle({
  url: "/schema/openapi.json",
  dom_id: "#swagger-container",
  deepLinking: true,
  validatorUrl: null, // the default badge calls validator.swagger.io: a third-party request
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
