"""HTTP: addresses, the wording of HTTP failures, the requests session."""
