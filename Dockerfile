# The one image of the hub (`mizu hub`) and the tappers (`mizu tapper`), with the bundled plugins,
# their packet path compiled (docs/compiled.md): the build stage has gcc, the image only the wheels.
# Build: docker build -t REGISTRY/mizu:0.1.0 . ; then `mizu tap --set agent-image=REGISTRY/mizu:0.1.0`
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libpcap-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY tools ./tools
COPY mizu_core ./mizu_core
COPY mizu_server ./mizu_server
COPY mizu_cli ./mizu_cli
COPY frontend ./frontend
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels . ./plugins/mizu_http ./plugins/mizu_amqp ./plugins/mizu_kafka ./plugins/mizu_tls \
    && ls /wheels/mizu-*cp311*.whl /wheels/mizu_http-*cp311*.whl /wheels/mizu_amqp-*cp311*.whl \
        /wheels/mizu_kafka-*cp311*.whl

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpcap0.8 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENTRYPOINT []
CMD ["mizu", "hub"]
