"""Development tools for the demo: `dev_idp.DevIdp` (an identity provider with Keycloak's paths, for
development only) and `demo_backend.DemoBackend` (an httpbin-like backend). The proxy never imports them."""
