"""pybuild: build OCI container images from Containerfiles, without a daemon."""
