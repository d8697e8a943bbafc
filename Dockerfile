# One image for every role; docker-compose.yml picks the command.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg espeak-ng fonts-dejavu-core ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/clipforge /src/target/release/clipforge-prepare \
     /src/target/release/clipforge-render /src/target/release/clipforge-publish /usr/local/bin/
COPY config /etc/clipforge
ENV CLIPFORGE_CONFIG=/etc/clipforge/production.example.toml
ENTRYPOINT ["clipforge"]
