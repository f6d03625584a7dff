"""HTTP translation of the registry: routers, auth, schemas, problem responses."""
