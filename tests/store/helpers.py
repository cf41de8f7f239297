"""Build small real images in a store for the store and transport tests."""

from __future__ import annotations

from pathlib import Path

from builder.image.layer import tree_entries, write_layer
from builder.image.spec import ContainerConfig, History, ImageConfig
from builder.store import ImageRecord, Store


def make_image(store: Store, tmp: Path, content: str, names: tuple[str, ...] = (),
               *, format: str = "oci", compression: str = "gzip") -> ImageRecord:
    src = tmp / f"src-{content}"
    (src / "etc").mkdir(parents=True, exist_ok=True)
    (src / "etc/content").write_text(content)
    with store.pin():
        layer = write_layer(tree_entries(src), store.layout, timestamp=0, format=format,
                            compression=compression)
        config = ImageConfig(
            architecture="amd64", os="linux", created="2024-01-01T00:00:00Z",
            config=ContainerConfig(cmd=["/bin/sh"], env=["PATH=/bin"], labels={"c": content}),
            history=[History(created="2024-01-01T00:00:00Z", created_by=f"COPY {content}")],
        )
        return store.commit(config, [layer], names=names, format=format)
