"""acumatica-jira-connector: the connector package, shipped as the ConnectorLayer Lambda layer."""
