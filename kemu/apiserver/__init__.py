"""kemu's Kubernetes API server: the REST API (discovery, OpenAPI v3, CRUD, patch, watch, Table output) over the
store, for real `kubectl` and client libraries. It is a frontend for `kemu.client.Client`: every write takes
Client's admission path (validation, defaults, allocation); this package adds HTTP, TLS and the wire formats.

Modules: `server` (app, middleware, TLS, listeners, main), `handlers` (the verbs), `resources` (discovery and
path resolution), `schema` + `openapi` (field schema, OpenAPI v3, strict field validation), `patch` (JSON, merge,
strategic merge), `watch` (event streams), `bodies` (decoding, Table and list answers), `fields` (field
selectors), `auth` (users from client certificates; the authorization hook), `errors` (metav1.Status),
`dryrun`, `listen` (sockets, also inside another network namespace), `kubeconfig` (admin kubeconfig files).
"""
