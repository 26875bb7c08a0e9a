"""A guided tour of the node CLI on a throwaway containerd: no cluster, no registry.

Starts Debian's containerd with its own root and socket under /tmp, imports a few
images we build (one used by a running container, one pinned-by-sandbox, several
versions of an app), then runs `imageprune images`, `prune --dry-run` and `prune`
and shows what stayed and why. Everything is removed at the end. Run as root via
hack/demo.sh, which installs what is missing first.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from testkit import containerd as containerd_kit
from testkit import oci

DAY = datetime.timedelta(days=1)


def run(node: containerd_kit.ContainerdNode, state: str, *args: str) -> None:
    cmd = ["imageprune", "--runtime-endpoint", node.endpoint, "--state-dir", state, *args]
    print(f"\n$ imageprune {' '.join(args)}", flush=True)
    subprocess.run([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], check=False)


def main() -> None:
    print("Starting a throwaway containerd 1.6 and importing demo images...", flush=True)
    with containerd_kit.running("1.6") as node:
        now = datetime.datetime.now(datetime.UTC)
        node.add_images(
            *(
                oci.ImageSpec(
                    repo_tags=(f"docker.io/demo/app:1.{n}",),
                    created=now - (40 - 10 * n) * DAY,
                    payload_size=3_000_000,
                )
                for n in range(4)
            ),
            oci.ImageSpec(repo_tags=("docker.io/demo/web:2", "docker.io/demo/web:latest")),
            oci.ImageSpec(repo_tags=("registry.k8s.io/kube-proxy:v1.36.3",)),
            oci.ImageSpec(seed="leftover-build-layer", dangling=True, payload_size=5_000_000),
        )
        sandbox = node.run_sandbox("demo-pod")
        node.create_container(sandbox, "demo-pod", name="web", image="docker.io/demo/web:latest")
        state = tempfile.mkdtemp(prefix="imageprune-demo-")
        selection = ["--keep-latest", "2", "--exclude", "registry.k8s.io/*"]
        run(node, state, "images", *selection)
        run(node, state, "prune", "--dry-run", *selection)
        run(node, state, "prune", *selection)
        run(node, state, "images", *selection)
        print("\nDone: the throwaway containerd and its images are being removed.")


if __name__ == "__main__":
    main()
