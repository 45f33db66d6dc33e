// Starts Swagger UI on the service's own spec. A file rather than an inline script, so the
// page's Content-Security-Policy can keep `script-src 'self'`.
window.ui = SwaggerUIBundle({
  url: '/openapi.yaml',
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: 'BaseLayout',
  // The default would load a validity badge from validator.swagger.io.
  validatorUrl: null,
});
