"""HTTP API: parse, authorize, hand over to the service. No business logic here."""
