# One image for `imageprune operator` and `imageprune agent` (docs/image.md).
#
# BASE is required and should be pinned (a digest or an image ID): a Debian 12 root
# filesystem with python3, python3-venv and libstdc++6. hack/build-image.sh makes one with
# mmdebstrap and builds this file offline with buildah. With a Docker engine and network
# access, `docker build --build-arg BASE=<such an image>@sha256:... .` should work too
# (PIP_ARGS empty: from PyPI); not tried here, where there is no Docker engine.
ARG BASE

# ---- build: a venv with our wheel and its dependencies, nothing else ----------------
FROM ${BASE} AS build
# Empty: dependencies from PyPI. hack/build-image.sh passes
# "--no-index --find-links /src/.wheelhouse" (wheels downloaded on the host).
ARG PIP_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
COPY . /src
# pip and setuptools are install-time tools (the running image never installs anything),
# and some dependencies ship their own test suites (croniter): all left out.
# The bytecode stays (pip compiles it): the root filesystem is read-only at run time, so
# without it every start would compile kopf, grpc and the rest from source. The last line
# fails the build when a compiled dependency cannot load on this base (grpcio needs
# libstdc++6).
RUN python3 -m venv /opt/imageprune \
 && /opt/imageprune/bin/pip install ${PIP_ARGS} /src \
 && /opt/imageprune/bin/pip uninstall --yes pip setuptools \
 && rm -f /opt/imageprune/bin/activate* \
 && find /opt/imageprune/lib -depth -type d -name tests -exec rm -rf {} + \
 && /opt/imageprune/bin/python -c "import imageprune.entry, imageprune.agent.main, imageprune.cluster.main"

# ---- runtime ------------------------------------------------------------------------
FROM ${BASE}
COPY --from=build /opt/imageprune /opt/imageprune
# A named user, so that tools and logs show a name; 65532 is the chart's runAsUser.
RUN echo "imageprune:x:65532:65532:imageprune:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
 && echo "imageprune:x:65532:" >> /etc/group
ENV PATH=/opt/imageprune/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["imageprune"]
CMD ["--help"]
