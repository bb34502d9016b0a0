# relurl, built in a Rust image and run from a slim one.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# The dashboard's files, embedded in the binary.
COPY ui ui
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin relurl

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/relurl --create-home relurl
COPY --from=build /src/target/release/relurl /usr/local/bin/relurl
COPY config/relurl.toml /etc/relurl/relurl.toml
USER relurl
WORKDIR /var/lib/relurl
ENV RELURL_SERVER__LISTEN=0.0.0.0:8080 \
    RELURL_STORE__PATH=/var/lib/relurl/data
EXPOSE 8080
# Healthy once /readyz answers 200 (store reachable). The slim image has no curl
# or wget, so bash's /dev/tcp asks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["relurl", "serve", "--config", "/etc/relurl/relurl.toml"]
