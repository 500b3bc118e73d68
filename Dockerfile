# walcast as a container. Not built on the development machines (they have no
# Docker engine); the same binary is what the tests run.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /walcast ./cmd/walcast

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /walcast /walcast
EXPOSE 8080
ENTRYPOINT ["/walcast"]
CMD ["serve"]
