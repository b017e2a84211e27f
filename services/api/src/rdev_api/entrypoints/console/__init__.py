"""The web console: a small static bundle served by the api on its own origin."""
