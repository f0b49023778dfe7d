"""The embedded local stack: moto's server as AWS, stateful Acumatica and Jira sandboxes, and the CLI."""
