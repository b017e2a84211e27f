"""rdev on a 3-node NATS cluster with R3 streams, and several replicas of every service."""
