"""Offline checks of rdev's deployment artifacts (kustomize, Dockerfiles, docker-compose)."""
