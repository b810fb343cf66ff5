# tandem's container image: a static binary on distroless, as a non-root user.
# Build with `make image` (needs Docker). The binary runs its own render workers
# (`tandem render-worker`) and needs no git, shell or helm in the image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tandem ./cmd/tandem

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tandem /usr/local/bin/tandem
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/tandem"]
