"""HTTP routes: the engine API, the public executions API and the resume webhooks."""
