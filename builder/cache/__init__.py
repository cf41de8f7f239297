"""The build cache: step keys, a stat cache for context hashing, the local index
of cached steps and a cache shared through a registry."""
