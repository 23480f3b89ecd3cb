"""Real servers and processes for the test suite (no mocks of our own code)."""
