# loopgate developer tasks. Tools are pinned Go modules (tools/go.mod for the
# protoc plugins, tools/buf/go.mod for buf) run with `go tool`, so nothing
# needs installing and no remote registry is used.

BUF := go tool -modfile=tools/buf/go.mod buf

.PHONY: generate check-generated lint-proto breaking-proto baseline-proto

## generate: regenerate gen/ (Go, gRPC, gateway, OpenAPI) from proto/
generate:
	$(BUF) generate
	cp scripts/gen/openapi.go.in gen/openapi/openapi.go

## check-generated: fail if gen/ differs from what `make generate` makes
check-generated: generate
	scripts/gen/check-generated.sh

## lint-proto: buf lint (STANDARD, exceptions in buf.yaml)
lint-proto:
	$(BUF) lint

## breaking-proto: buf breaking (FILE) against the released API, proto/baseline.binpb
## (AGAINST=REF compares with the protos of a git ref instead)
AGAINST ?=
breaking-proto:
ifeq ($(AGAINST),)
	$(BUF) breaking --against proto/baseline.binpb
else
	$(BUF) breaking --against '.git#ref=$(AGAINST)'
endif

## baseline-proto: record the current protos as the released API (at a release)
baseline-proto:
	$(BUF) build -o proto/baseline.binpb
