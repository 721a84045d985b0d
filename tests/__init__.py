"""replyd's test suite."""
