"""Build images with pybuild's Python API.

Uses the store in $PYBUILD_ROOT (or the default one) and its
localhost/busybox:latest image; with $REGISTRY (host:port of a plain-HTTP
registry) it also pushes the result there and pulls it back.
"""

import os
import tempfile
from pathlib import Path

from builder import BuildRequest, CommitOptions, ConfigChanges, CopyOptions, RunOptions, Session
from builder.registry.client import RegistryOptions

session = Session(os.environ.get("PYBUILD_ROOT"))

with tempfile.TemporaryDirectory() as tmp:
    # 1. a working container, step by step
    script = Path(tmp, "hello.sh")
    script.write_text('#!/bin/sh\necho "$GREETING from $(cat /etc/motd)"\n')
    ctr = session.from_image("localhost/busybox:latest")
    ctr.copy([script], "/usr/local/bin/hello", CopyOptions(chmod="755"))
    ctr.run(["sh", "-c", "echo \"$WHO\" > /etc/motd"], RunOptions(env=("WHO=the API",)))
    ctr.config(ConfigChanges(env=("GREETING=hello",), cmd='["/usr/local/bin/hello"]',
                             labels=("example=api",)))
    image_id = ctr.commit("localhost/api-example:latest", CommitOptions(rm=True))
    print("committed", image_id)

    # 2. the same image from a Containerfile
    Path(tmp, "Containerfile").write_text(
        "FROM localhost/busybox:latest\n"
        "COPY --chmod=755 hello.sh /usr/local/bin/hello\n"
        "RUN echo 'the API' > /etc/motd\n"
        "ENV GREETING=hello\n"
        "LABEL example=api\n"
        'CMD ["/usr/local/bin/hello"]\n'
    )
    built_id = session.build(BuildRequest(context=Path(tmp), tags=("localhost/api-built:latest",)))
    print("built", built_id)

# 3. push and pull
registry = os.environ.get("REGISTRY")
if registry:
    insecure = RegistryOptions(tls_verify=False)
    digest = session.push("localhost/api-example:latest", f"{registry}/api/example:1", insecure)
    print("pushed", digest)
    print("pulled", session.pull(f"{registry}/api/example:1", insecure))
